// Small text helpers shared across the host: hex encoding, scope lists, header checks. The host
// uses the plugin SDK's header-only helpers (kghost/sdk/text.hpp, standard library only) so that
// both sides encode and split exactly alike; this adds the one overload only the host needs.
#pragma once

#include <cstdint>
#include <kghost/sdk/text.hpp>
#include <string>
#include <string_view>

namespace kghost {

using sdk::for_each_scope;
using sdk::has_line_break;
using sdk::has_scope;
using sdk::to_hex;

// The 16 lower-case hex digits of `v`, most significant first.
inline std::string to_hex(uint64_t v) {
  char bytes[8];
  for (int i = 7; i >= 0; --i, v >>= 8) bytes[i] = static_cast<char>(v & 0xff);
  return to_hex(std::string_view(bytes, sizeof bytes));
}

}  // namespace kghost
