// Small text helpers shared by plugins: hex encoding, scope lists, header value checks.
// Header-only, no dependency beyond the standard library. The host uses them too
// (host/common/text.hpp).
#pragma once

#include <string>
#include <string_view>

namespace kghost::sdk {

// Hex digits of `bytes`, two per byte, lower-case ("a0ff") or upper-case ("A0FF"). Lower-case
// is what SHA-256 key hashes, Stripe signatures and ids use; OpenSSL's OPENSSL_buf2hexstr
// only writes upper-case.
inline std::string to_hex(std::string_view bytes, bool upper = false) {
  const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string out(bytes.size() * 2, '0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    out[2 * i] = digits[c >> 4];
    out[2 * i + 1] = digits[c & 15];
  }
  return out;
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

// True when `s` holds a CR or LF, which would end a header line early. One pass: the
// string_view find_first_of("\r\n") would call memchr once per character of `s`.
inline bool has_line_break(std::string_view s) {
  for (char c : s)
    if (c == '\r' || c == '\n') return true;
  return false;
}

}  // namespace kghost::sdk
