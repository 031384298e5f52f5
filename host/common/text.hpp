// Small text helpers shared across the host: hex encoding and scope lists. The host uses the
// plugin SDK's header-only helpers (kghost/sdk/text.hpp, standard library only) so that both
// sides encode and split exactly alike; this adds the one overload only the host needs.
#pragma once

#include <cstdint>
#include <kghost/sdk/text.hpp>
#include <string>
#include <string_view>

namespace kghost {

using sdk::for_each_scope;
using sdk::has_scope;
using sdk::to_hex;

// The 16 lower-case hex digits of `v`, most significant first.
inline std::string to_hex(uint64_t v) {
  char bytes[8];
  for (int i = 7; i >= 0; --i, v >>= 8) bytes[i] = static_cast<char>(v & 0xff);
  return to_hex(std::string_view(bytes, sizeof bytes));
}

// True when `s` holds a CR or LF, which would end a header line early. One pass: the
// string_view find_first_of("\r\n") would call memchr once per character of `s`.
inline bool has_line_break(std::string_view s) {
  for (char c : s)
    if (c == '\r' || c == '\n') return true;
  return false;
}

}  // namespace kghost
