// streaming: channel names, tenant subjects and the browser access tokens (CONTRACT §7).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kghost::streaming {

// [A-Za-z0-9_-]{1,64}
bool valid_channel(std::string_view channel);

// A tenant id as one NATS subject token: bytes outside [A-Za-z0-9_-] become %XX, so '.', '*',
// '>' and whitespace can never widen a subject and two tenants never share a token.
std::string subject_token(std::string_view tenant_id);

// "kgent.tenant.<token(tenant)>.<channel>" (channel already validated).
std::string tenant_subject(std::string_view tenant_id, std::string_view channel);

// Who a browser token speaks for.
struct TokenClaims {
  std::string tenant_id, user_id, tier, channel;
  int64_t expires_unix_s = 0;
};

// HMAC-SHA256 tokens: base64url(JSON claims) "." base64url(MAC). Verification is constant-time
// and checks expiry; the caller checks the channel.
class TokenSigner {
 public:
  // An empty secret draws 32 random bytes (tokens then only hold on this process).
  explicit TokenSigner(std::string secret);
  std::string mint(const TokenClaims& claims) const;
  // nullopt when malformed, forged or expired at `now_unix_s`.
  std::optional<TokenClaims> verify(std::string_view token, int64_t now_unix_s) const;

 private:
  std::string mac(std::string_view payload) const;
  std::string secret_;
};

std::string base64url(std::string_view bytes);
std::optional<std::string> unbase64url(std::string_view text);

}  // namespace kghost::streaming
