// Stripe event parsing: a pure function of the raw body (no I/O, no global state, no
// exceptions: safe to fuzz). A usable event is a JSON object with a string `id` and `type`:
// - id: 1..255 of [A-Za-z0-9_-] (it becomes part of store keys);
// - type: 1..200 of [A-Za-z0-9_-.], dot-separated non-empty tokens (it becomes a bus topic).
// Stripe ids and types are short ASCII; anything else cannot be a real event and would only
// pollute store keys and bus topics.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace kghost::webhooks {

bool valid_event_id(std::string_view s);
bool valid_event_type(std::string_view s);

struct ParsedEvent {
  std::string id, type;
  bool data_object = false;  // `data.object` is an object (see has_data_object)
};
// The event's id and type, or nothing for a body that is not a usable event. The whole body is
// checked to be JSON either way. Without `doc_out` no document is built (a streaming parse that
// keeps only id, type and whether data.object is an object); with it, `doc_out` receives the
// parsed document of a usable event. Both read duplicate keys the same way: the last one wins.
std::optional<ParsedEvent> parse_event(std::string_view body, nlohmann::json* doc_out = nullptr);

// Whether a parsed event carries the object it is about (`data.object`, an object).
bool has_data_object(const nlohmann::json& doc);

}  // namespace kghost::webhooks
