// Small helpers of the host API table's slots: strings across the ABI, and structs read and
// written within the plugin's struct_size. Internal to host/plugins.
#pragma once

#include <kghost/plugin.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <string_view>

namespace kghost {

inline std::string_view sv(kg_str s) {
  return s.len ? std::string_view(s.ptr, s.len) : std::string_view();
}
inline kg_str ks(std::string_view s) { return kg_str{s.data(), s.size()}; }

// [A-Za-z0-9._-]+: header names, methods, queue names.
inline bool token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

// A plugin's struct as this host reads it: the bytes its struct_size covers, never more than
// the host's own sizeof, the rest zero (so a field the plugin's header lacked reads as 0).
template <class T>
T copy_in(const T* p) {
  T out{};
  if (p) std::memcpy(&out, p, std::min<std::size_t>(p->struct_size, sizeof(T)));
  return out;
}

}  // namespace kghost

// Writes a field of a plugin-owned out-struct only when the plugin's struct_size covers it.
#define KG_PUT(out, type, field, value)                         \
  do {                                                          \
    if (KG_HAS_FIELD(out, type, field)) (out)->field = (value); \
  } while (0)
