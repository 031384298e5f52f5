// Stripe webhook signature check: a pure function of (header, raw body, secrets, clock).
//
// Scheme (CONTRACT.md §5, Stripe's "verify manually" text): the header is
//   Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…][,v0=<hex>]
// and each v1 is hex(HMAC-SHA256(secret, "<t>.<raw body>")), keyed with the secret string
// exactly as configured ("whsec_…" included, not decoded). Rules:
// - exactly one `t`, all digits; none or several → malformed (node and python disagree on a
//   repeated `t`, so we refuse it);
// - only `v1` counts; `v0` and unknown schemes are ignored (no downgrade);
// - any configured secret and any `v1` may match (secret rotation); compare in constant time;
// - the timestamp must be within `tolerance` of `now` in both directions (stricter than
//   Stripe's libraries, which accept future timestamps).
// No I/O, no global state, no exceptions once the secrets are keyed: safe to fuzz.
#pragma once

#include <openssl/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace kghost::webhooks {

// The configured secrets, each held as an HMAC-SHA256 context keyed once: a check copies the
// keyed context instead of fetching the digest and keying it again, which halves the cost of
// a check. Built once per configuration; const use is safe from any number of threads.
class SigningSecrets {
 public:
  using Digest = std::array<unsigned char, 32>;

  // Throws std::runtime_error when OpenSSL cannot key a secret.
  explicit SigningSecrets(const std::vector<std::string>& secrets);

  std::size_t size() const { return keyed_.size(); }
  // HMAC-SHA256(secret i, "<timestamp>.<body>"); false if OpenSSL fails.
  bool digest(std::size_t i, int64_t timestamp, std::string_view body, Digest& out) const;

 private:
  struct FreeCtx {
    void operator()(EVP_MAC_CTX* ctx) const;
  };
  std::vector<std::unique_ptr<EVP_MAC_CTX, FreeCtx>> keyed_;
};

enum class SignatureResult {
  ok,
  missing_header,  // header absent or empty
  malformed,       // no `t`, several `t`, or a `t` that is not a plain number
  no_signature,    // no `v1` (e.g. `v0` only)
  mismatch,        // no `v1` matches any secret (also garbage hex)
  too_old,         // valid signature, timestamp older than now - tolerance
  too_new,         // valid signature, timestamp later than now + tolerance
};

std::string_view to_string(SignatureResult r);

// The fields of a header, as parsed. v1 values are kept as written (validated on compare).
struct SignatureHeader {
  int t_count = 0;
  bool t_valid = false;
  int64_t timestamp = 0;
  std::vector<std::string_view> v1;  // views into the header
};
SignatureHeader parse_signature_header(std::string_view header);

// now: seconds since the epoch (injected). tolerance: seconds; negative disables the check.
SignatureResult verify(std::string_view header, std::string_view raw_body,
                       const SigningSecrets& secrets, int64_t now, std::chrono::seconds tolerance);

// hex(HMAC-SHA256(secret, "<t>.<body>")), lower case: for tests, tools and benchmarks.
std::string sign(std::string_view secret, int64_t timestamp, std::string_view raw_body);

}  // namespace kghost::webhooks
