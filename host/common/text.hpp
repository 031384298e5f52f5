// Small text helpers shared across the host: hex encoding and scope lists. Header-only.
// (Plugins have the same helpers in kghost/sdk/text.hpp: they never include host headers.)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kghost {

// Lower-case hex digits of `bytes`, two per byte. (OpenSSL's OPENSSL_buf2hexstr writes
// upper-case; request ids and trace ids must be lower-case.)
inline std::string to_hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(bytes.size() * 2, '0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    out[2 * i] = kDigits[c >> 4];
    out[2 * i + 1] = kDigits[c & 15];
  }
  return out;
}

// The 16 lower-case hex digits of `v`, most significant first.
inline std::string to_hex(uint64_t v) {
  char bytes[8];
  for (int i = 7; i >= 0; --i, v >>= 8) bytes[i] = static_cast<char>(v & 0xff);
  return to_hex(std::string_view(bytes, sizeof bytes));
}

// Calls visit(scope) for each non-empty scope of a space-separated list ("read write"), in
// order, until visit returns false. Returns false when it stopped early. Allocates nothing.
template <typename Visit>
bool for_each_scope(std::string_view list, Visit&& visit) {
  while (!list.empty()) {
    const auto sp = list.find(' ');
    const auto scope = list.substr(0, sp);
    if (!scope.empty() && !visit(scope)) return false;
    if (sp == std::string_view::npos) break;
    list.remove_prefix(sp + 1);
  }
  return true;
}

// True when the space-separated `list` holds `scope`.
inline bool has_scope(std::string_view list, std::string_view scope) {
  return !for_each_scope(list, [&](std::string_view s) { return s != scope; });
}

}  // namespace kghost
