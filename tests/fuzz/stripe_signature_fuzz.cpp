// libFuzzer target for the Stripe signature check. Input layout: the header, a NUL byte, the
// body (a missing NUL makes the whole input the header with an empty body). Checks, besides
// "no crash, no sanitizer report": the result is stable, and a header we sign ourselves over
// the same body always verifies (so the parser never loses a well-formed v1 among junk).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "stripe_signature.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kghost::webhooks;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto nul = in.find('\0');
  std::string_view header = in.substr(0, nul);
  std::string_view body = nul == std::string_view::npos ? std::string_view() : in.substr(nul + 1);
  static const SigningSecrets secrets({"whsec_test_secret", "whsec_other"});
  constexpr int64_t now = 1492774577;

  auto r1 = verify(header, body, secrets, now, std::chrono::seconds(300));
  auto r2 = verify(header, body, secrets, now, std::chrono::seconds(300));
  if (r1 != r2) std::abort();
  (void)parse_signature_header(header);

  // Our own signature appended to the fuzzed v1 list verifies whenever the header has exactly
  // one valid t within tolerance.
  auto h = parse_signature_header(header);
  if (h.t_count == 1 && h.t_valid && h.timestamp >= now - 300 && h.timestamp <= now + 300) {
    std::string extended(header);
    extended += ",v1=" + sign("whsec_other", h.timestamp, body);
    if (verify(extended, body, secrets, now, std::chrono::seconds(300)) != SignatureResult::ok)
      std::abort();
  }
  return 0;
}
