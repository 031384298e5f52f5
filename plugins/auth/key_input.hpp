// Extracting an API key from a request: X-API-Key or Authorization: Bearer (CONTRACT §4).
// Shared by the auth and devkeys plugins so both read exactly the same key, or none.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace kghost::auth {

inline constexpr std::size_t kMaxKeyLength = 256;

enum class KeyInputKind { none, invalid, key };

struct KeyInput {
  KeyInputKind kind = KeyInputKind::none;
  std::string_view key;     // kind == key: a view into the request's header (borrowed)
  std::string_view reason;  // kind == invalid: why, for logs (never contains the key)
};

// True when every byte is printable ASCII without spaces (0x21..0x7e) and the length is in
// 1..kMaxKeyLength.
inline bool well_formed_key(std::string_view k) {
  if (k.empty() || k.size() > kMaxKeyLength) return false;
  for (unsigned char c : k)
    if (c < 0x21 || c > 0x7e) return false;
  return true;
}

inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Pure core. `header(name, index)` returns the index-th value of a request header or nullopt.
// Rules: at most one X-API-Key and one Authorization header; an Authorization header with
// another scheme (Basic, …) is not ours and is ignored; a present key must be well formed;
// when both headers carry a key they must be the same key. Anything else is `invalid`, so a
// client never gets a 500 for a strange header, and never gets in with an ambiguous one.
template <class HeaderFn>
KeyInput extract_key(HeaderFn&& header) {
  std::optional<std::string_view> api = header("x-api-key", 0);
  if (api && header("x-api-key", 1))
    return {KeyInputKind::invalid, {}, "more than one X-API-Key header"};
  std::optional<std::string_view> authz = header("authorization", 0);
  if (authz && header("authorization", 1))
    return {KeyInputKind::invalid, {}, "more than one Authorization header"};

  std::optional<std::string_view> bearer;
  if (authz) {
    std::string_view v = trim(*authz);
    std::size_t sp = v.find_first_of(" \t");
    std::string_view scheme = v.substr(0, sp);
    if (iequals(scheme, "bearer")) {
      bearer = sp == std::string_view::npos ? std::string_view() : trim(v.substr(sp));
    }
  }
  if (api) {
    std::string_view k = trim(*api);
    if (!well_formed_key(k))
      return {KeyInputKind::invalid, {}, "X-API-Key is empty, too long or has invalid characters"};
    if (bearer && *bearer != k)
      return {
          KeyInputKind::invalid, {}, "X-API-Key and Authorization: Bearer carry different keys"};
    return {KeyInputKind::key, k, {}};
  }
  if (bearer) {
    if (!well_formed_key(*bearer))
      return {KeyInputKind::invalid,
              {},
              "the Bearer token is empty, too long or has invalid characters"};
    return {KeyInputKind::key, *bearer, {}};
  }
  return {};
}

// What may be logged of a key: at most its first 8 characters, and never more than half.
inline std::string_view loggable_prefix(std::string_view key) {
  std::size_t n = key.size() / 2;
  if (n > 8) n = 8;
  return key.substr(0, n);
}

inline constexpr std::string_view kDevKeyPrefix = "kg_dev_";

}  // namespace kghost::auth
