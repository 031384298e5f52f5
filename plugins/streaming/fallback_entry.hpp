// streaming: the record of one event in the durable fallback queue.
//
// Format (version 1): one version byte, then four fields, each a 4-byte little-endian length
// followed by that many bytes: subject, Nats-Msg-Id, traceparent header (may be empty), data.
// A later version gets a new version byte; decode() refuses versions it does not know, so an
// older plugin never publishes a record it misreads.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kghost::streaming {

struct FallbackEntry {
  std::string subject, msg_id, traceparent, data;
};

inline constexpr unsigned char kFallbackEntryVersion = 1;

std::string encode_entry(std::string_view subject, std::string_view msg_id,
                         std::string_view traceparent, std::string_view data);
// nullopt for an unknown version, a truncated record or trailing bytes.
std::optional<FallbackEntry> decode_entry(std::string_view record);

}  // namespace kghost::streaming
