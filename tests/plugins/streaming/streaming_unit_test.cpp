// Unit tests of the streaming plugin's pure parts: breaker, settings, channel names, tokens,
// fallback records.
#include <gtest/gtest.h>

#include "breaker.hpp"
#include "fallback_entry.hpp"
#include "settings.hpp"
#include "tokens.hpp"

using namespace kghost::streaming;
using namespace std::chrono_literals;

TEST(Breaker, OpensAfterNConsecutiveFailuresHalfOpensAndCloses) {
  Breaker b(3, 30s);
  auto t = Breaker::Clock::now();
  EXPECT_EQ(b.state(t), Breaker::State::closed);
  b.on_failure(t);
  b.on_failure(t);
  b.on_success();  // not consecutive any more
  b.on_failure(t);
  b.on_failure(t);
  EXPECT_EQ(b.state(t), Breaker::State::closed);
  EXPECT_TRUE(b.on_failure(t));
  EXPECT_EQ(b.state(t), Breaker::State::open);
  EXPECT_EQ(b.state(t + 29s), Breaker::State::open);
  EXPECT_EQ(b.state(t + 30s), Breaker::State::half_open);
  EXPECT_TRUE(b.on_failure(t + 30s));  // the probe failed: open again for 30 s
  EXPECT_EQ(b.state(t + 59s), Breaker::State::open);
  EXPECT_EQ(b.state(t + 60s), Breaker::State::half_open);
  b.on_success();
  EXPECT_EQ(b.state(t + 60s), Breaker::State::closed);
}

TEST(Settings, DefaultsAndEnvServers) {
  auto s = parse_settings("{}", "nats://a:4222, nats://b:4222");
  ASSERT_EQ(s.servers.size(), 2u);
  EXPECT_EQ(s.servers[1], "nats://b:4222");
  EXPECT_EQ(s.duplicate_window_s, 1800);
  EXPECT_EQ(s.max_age_s, 0);
  EXPECT_EQ(s.fallback_capacity, 1000u);
  EXPECT_EQ(s.breaker_failures, 5);
  EXPECT_EQ(s.breaker_open, 30000ms);
  EXPECT_EQ(s.heartbeat, 15000ms);
  EXPECT_EQ(s.bridge_topics, (std::vector<std::string>{"stripe.>", "billing.>"}));
}

TEST(Settings, EmptyServersKeyDisablesEvenWithEnv) {
  EXPECT_TRUE(parse_settings(R"({"servers":""})", "nats://a:4222").servers.empty());
}

TEST(Settings, RejectsUnknownKeysAndBadValues) {
  EXPECT_THROW(parse_settings(R"({"sevrers":"x"})", ""), std::invalid_argument);
  EXPECT_THROW(parse_settings(R"({"fallback_capacity":0})", ""), std::invalid_argument);
  EXPECT_THROW(parse_settings(R"({"duplicate_window_s":600,"max_age_s":60})", ""),
               std::invalid_argument);
  EXPECT_THROW(parse_settings(R"({"token_secret":"short"})", ""), std::invalid_argument);
}

TEST(Channels, NamesAndSubjects) {
  EXPECT_TRUE(valid_channel("orders_1-a"));
  EXPECT_TRUE(valid_channel(std::string(64, 'a')));
  EXPECT_FALSE(valid_channel(std::string(65, 'a')));
  for (const char* bad : {"", "a.b", "*", ">", "a b", "a/b", "é"})
    EXPECT_FALSE(valid_channel(bad)) << bad;
  EXPECT_EQ(tenant_subject("user_bob", "c1"), "kgent.tenant.user_bob.c1");
  // A tenant id can never widen or shift the subject.
  EXPECT_EQ(tenant_subject("a.b", "c"), "kgent.tenant.a%2Eb.c");
  EXPECT_EQ(tenant_subject("*", "c"), "kgent.tenant.%2A.c");
  EXPECT_EQ(tenant_subject(">", "c"), "kgent.tenant.%3E.c");
  EXPECT_NE(subject_token("%2A"), subject_token("*"));
}

TEST(Tokens, RoundTripExpiryAndForgery) {
  TokenSigner s("");
  TokenClaims c{"t1", "u1", "PRO", "orders", 1000};
  auto tok = s.mint(c);
  auto ok = s.verify(tok, 999);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->tenant_id, "t1");
  EXPECT_EQ(ok->channel, "orders");
  EXPECT_FALSE(s.verify(tok, 1000));  // expired
  std::string forged = tok;
  forged[3] = forged[3] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(s.verify(forged, 999));
  EXPECT_FALSE(TokenSigner("").verify(tok, 999));  // another process's secret
  EXPECT_FALSE(s.verify("garbage", 999));
  std::string shared(40, 'k');
  EXPECT_TRUE(TokenSigner(shared).verify(TokenSigner(shared).mint(c), 999));  // replicas
}

TEST(Tokens, Base64Url) {
  for (std::string s : {"", "a", "ab", "abc", "abcd", "\xff\xfe\x00"}) {
    auto back = unbase64url(base64url(s));
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, s);
  }
}

TEST(FallbackEntry, RoundTripsEveryFieldIncludingEmptyAndBinary) {
  std::string data("{\"a\":1}\0\xff", 9);
  auto rec = encode_entry("kgent.tenant.t1.c", "kg:ab:1", "", data);
  EXPECT_EQ(static_cast<unsigned char>(rec[0]), kFallbackEntryVersion);
  auto e = decode_entry(rec);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->subject, "kgent.tenant.t1.c");
  EXPECT_EQ(e->msg_id, "kg:ab:1");
  EXPECT_EQ(e->traceparent, "");
  EXPECT_EQ(e->data, data);
  auto t = decode_entry(
      encode_entry("s", "m", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", ""));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->traceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  EXPECT_EQ(t->data, "");
}

TEST(FallbackEntry, RefusesOtherVersionsTruncationAndTrailingBytes) {
  auto rec = encode_entry("s", "m", "t", "data");
  EXPECT_FALSE(decode_entry(""));
  std::string other = rec;
  other[0] = static_cast<char>(kFallbackEntryVersion + 1);
  EXPECT_FALSE(decode_entry(other));
  for (std::size_t n = 0; n < rec.size(); ++n) EXPECT_FALSE(decode_entry(rec.substr(0, n))) << n;
  EXPECT_FALSE(decode_entry(rec + "x"));
  std::string huge = rec;
  huge[1] = '\xff';  // the subject claims more bytes than there are
  huge[4] = '\x7f';
  EXPECT_FALSE(decode_entry(huge));
}
