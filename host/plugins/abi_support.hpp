// Small helpers for reading and writing the ABI's structs, shared by the host API table's
// files (host_api.cpp, api_*.cpp). Nothing here throws.
#pragma once

#include <kghost/plugin.h>

#include <algorithm>
#include <cstring>
#include <kghost/sdk/text.hpp>
#include <string_view>

namespace kghost::abi {

inline std::string_view sv(kg_str s) {
  return s.len ? std::string_view(s.ptr, s.len) : std::string_view();
}
inline kg_str ks(std::string_view s) { return kg_str{s.data(), s.size()}; }

// Hands `text` to a plugin's sink (it copies what it keeps); KG_ERR_INVALID without a sink.
inline kg_status to_sink(kg_sink_fn sink, void* ud, std::string_view text) {
  if (!sink) return KG_ERR_INVALID;
  sink(ud, ks(text));
  return KG_OK;
}

inline bool header_safe(std::string_view s) { return !sdk::has_line_break(s); }
// [A-Za-z0-9._-]+: header names, methods, queue names. ASCII compares: std::isalnum would
// consult the locale for every byte of every header a plugin adds.
inline bool token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
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

}  // namespace kghost::abi

// Writes a field of a plugin-owned out-struct only when the plugin's struct_size covers it.
#define KG_PUT(out, type, field, value)                         \
  do {                                                          \
    if (KG_HAS_FIELD(out, type, field)) (out)->field = (value); \
  } while (0)
