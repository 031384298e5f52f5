// The pure Stripe signature check, with the clock injected (no test reads the real time).
#include "stripe_signature.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace kghost::webhooks {
namespace {

using std::chrono::seconds;

constexpr int64_t kT = 1492774577;
const std::string kBody = R"({"id":"evt_test_webhook","object":"event"})";
const std::string kSecret = "whsec_test_secret";
const std::string kSig = "88a022085c6bdb887b02cb26ff76dd681234d9675c0f22844059f55552a8883a";
const std::vector<std::string> kSecrets{kSecret};

SignatureResult check(const std::string& header, int64_t now = kT,
                      const std::vector<std::string>& secrets = kSecrets,
                      const std::string& body = kBody) {
  return verify(header, body, SigningSecrets(secrets), now, seconds(300));
}

TEST(StripeSignature, SignsThePublishedFixedVector) { EXPECT_EQ(sign(kSecret, kT, kBody), kSig); }

TEST(StripeSignature, AcceptsThePublishedFixedVector) {
  EXPECT_EQ(check("t=1492774577,v1=" + kSig), SignatureResult::ok);
}

TEST(StripeSignature, AcceptsUpperCaseHexAndSpacesAroundItems) {
  std::string upper = kSig;
  for (auto& c : upper) c = static_cast<char>(std::toupper(c));
  EXPECT_EQ(check("t=1492774577, v1=" + upper), SignatureResult::ok);
}

TEST(StripeSignature, AcceptsAnyV1AndIgnoresV0AndUnknownSchemes) {
  EXPECT_EQ(check("t=1492774577,v1=" + std::string(64, 'a') + ",v0=xyz,v9=1,v1=" + kSig),
            SignatureResult::ok);
}

TEST(StripeSignature, AcceptsAnyConfiguredSecret) {
  EXPECT_EQ(check("t=1492774577,v1=" + kSig, kT, {"whsec_old", kSecret}), SignatureResult::ok);
  EXPECT_EQ(check("t=1492774577,v1=" + sign("whsec_old", kT, kBody), kT, {"whsec_old", kSecret}),
            SignatureResult::ok);
}

// The keyed contexts are shared: a check must copy them, never consume or change them, so the
// same set gives the same answers call after call and from several threads at once.
TEST(StripeSignature, OneKeyedSetAnswersAlikeAcrossCallsAndThreads) {
  const SigningSecrets secrets({"whsec_old", kSecret});
  const std::string good = "t=1492774577,v1=" + kSig;
  const std::string old = "t=1492774577,v1=" + sign("whsec_old", kT, kBody);
  const std::string bad = "t=1492774577,v1=" + sign("whsec_other", kT, kBody);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 500; ++i) {
        wrong += verify(good, kBody, secrets, kT, seconds(300)) != SignatureResult::ok;
        wrong += verify(bad, kBody, secrets, kT, seconds(300)) != SignatureResult::mismatch;
        wrong += verify(old, kBody, secrets, kT, seconds(300)) != SignatureResult::ok;
        wrong += verify(good, kBody + " ", secrets, kT, seconds(300)) != SignatureResult::mismatch;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(StripeSignature, KeysWithTheSecretStringAsConfigured) {
  // "whsec_" is part of the key: signing with the suffix alone must not verify.
  EXPECT_EQ(check("t=1492774577,v1=" + sign("test_secret", kT, kBody)), SignatureResult::mismatch);
}

TEST(StripeSignature, RejectsMissingHeader) {
  EXPECT_EQ(check(""), SignatureResult::missing_header);
  EXPECT_EQ(check("   "), SignatureResult::missing_header);
}

TEST(StripeSignature, RejectsHeaderWithoutTimestamp) {
  EXPECT_EQ(check("v1=" + kSig), SignatureResult::malformed);
}

TEST(StripeSignature, RejectsSeveralTimestamps) {
  EXPECT_EQ(check("t=1492774577,t=1492774577,v1=" + kSig), SignatureResult::malformed);
  EXPECT_EQ(check("t=1,t=1492774577,v1=" + kSig), SignatureResult::malformed);
}

TEST(StripeSignature, RejectsNonNumericTimestamp) {
  EXPECT_EQ(check("t=14927745x7,v1=" + kSig), SignatureResult::malformed);
  EXPECT_EQ(check("t=-1492774577,v1=" + kSig), SignatureResult::malformed);
  EXPECT_EQ(check("t=,v1=" + kSig), SignatureResult::malformed);
  EXPECT_EQ(check("t=99999999999999999999999,v1=" + kSig), SignatureResult::malformed);
}

TEST(StripeSignature, RejectsV0Only) {
  EXPECT_EQ(check("t=1492774577,v0=" + kSig), SignatureResult::no_signature);
}

TEST(StripeSignature, RejectsGarbageHex) {
  EXPECT_EQ(check("t=1492774577,v1=zz" + kSig.substr(2)), SignatureResult::mismatch);
  EXPECT_EQ(check("t=1492774577,v1=" + kSig.substr(1)), SignatureResult::mismatch);
  EXPECT_EQ(check("t=1492774577,v1=" + kSig + "00"), SignatureResult::mismatch);
  EXPECT_EQ(check("t=1492774577,v1="), SignatureResult::mismatch);
}

TEST(StripeSignature, RejectsWrongSecret) {
  EXPECT_EQ(check("t=1492774577,v1=" + kSig, kT, {"whsec_other"}), SignatureResult::mismatch);
  EXPECT_EQ(check("t=1492774577,v1=" + kSig, kT, {}), SignatureResult::mismatch);
}

TEST(StripeSignature, RejectsATamperedBodyOrTimestamp) {
  EXPECT_EQ(check("t=1492774577,v1=" + kSig, kT, kSecrets, kBody + " "), SignatureResult::mismatch);
  EXPECT_EQ(check("t=1492774578,v1=" + kSig, kT), SignatureResult::mismatch);
}

TEST(StripeSignature, RejectsTimestampOutsideToleranceInBothDirections) {
  const std::string h = "t=1492774577,v1=" + kSig;
  EXPECT_EQ(check(h, kT + 300), SignatureResult::ok);
  EXPECT_EQ(check(h, kT - 300), SignatureResult::ok);
  EXPECT_EQ(check(h, kT + 301), SignatureResult::too_old);
  EXPECT_EQ(check(h, kT - 301), SignatureResult::too_new);
  EXPECT_EQ(verify(h, kBody, SigningSecrets(kSecrets), kT + 10, seconds(5)),
            SignatureResult::too_old);
  EXPECT_EQ(verify(h, kBody, SigningSecrets(kSecrets), kT + 100000, seconds(-1)),
            SignatureResult::ok);
}

TEST(StripeSignature, VerifiesAnEmptyBody) {
  // Signature checks are about bytes; the payload check (invalid_payload) comes after.
  EXPECT_EQ(check("t=1492774577,v1=" + sign(kSecret, kT, ""), kT, kSecrets, ""),
            SignatureResult::ok);
}

TEST(StripeSignature, ParsesHeaderFields) {
  auto h = parse_signature_header("t=12,v1=ab,v0=cd,v1=ef,junk,=x,t");
  EXPECT_EQ(h.t_count, 1);
  EXPECT_TRUE(h.t_valid);
  EXPECT_EQ(h.timestamp, 12);
  ASSERT_EQ(h.v1.size(), 2u);
  EXPECT_EQ(h.v1[0], "ab");
  EXPECT_EQ(h.v1[1], "ef");
}

}  // namespace
}  // namespace kghost::webhooks
