#include "fallback_entry.hpp"

#include <cstdint>

namespace kghost::streaming {

namespace {

void put_field(std::string& out, std::string_view field) {
  auto n = static_cast<uint32_t>(field.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out.append(field);
}

bool get_field(std::string_view& in, std::string& field) {
  if (in.size() < 4) return false;
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n |= uint32_t{static_cast<unsigned char>(in[i])} << (8 * i);
  in.remove_prefix(4);
  if (in.size() < n) return false;
  field.assign(in.substr(0, n));
  in.remove_prefix(n);
  return true;
}

}  // namespace

std::string encode_entry(std::string_view subject, std::string_view msg_id,
                         std::string_view traceparent, std::string_view data) {
  std::string out;
  out.reserve(1 + 16 + subject.size() + msg_id.size() + traceparent.size() + data.size());
  out.push_back(static_cast<char>(kFallbackEntryVersion));
  put_field(out, subject);
  put_field(out, msg_id);
  put_field(out, traceparent);
  put_field(out, data);
  return out;
}

std::optional<FallbackEntry> decode_entry(std::string_view in) {
  if (in.empty() || static_cast<unsigned char>(in[0]) != kFallbackEntryVersion) return std::nullopt;
  in.remove_prefix(1);
  FallbackEntry e;
  if (!get_field(in, e.subject) || !get_field(in, e.msg_id) || !get_field(in, e.traceparent) ||
      !get_field(in, e.data) || !in.empty())
    return std::nullopt;
  return e;
}

}  // namespace kghost::streaming
