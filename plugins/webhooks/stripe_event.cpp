#include "stripe_event.hpp"

#include <cctype>

namespace kghost::webhooks {

using nlohmann::json;

bool valid_event_id(std::string_view s) {
  if (s.empty() || s.size() > 255) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
  return true;
}

bool valid_event_type(std::string_view s) {
  if (s.empty() || s.size() > 200 || s.front() == '.' || s.back() == '.') return false;
  char prev = 0;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'))
      return false;
    if (c == '.' && prev == '.') return false;
    prev = c;
  }
  return true;
}

std::optional<ParsedEvent> parse_event(std::string_view body, json* doc_out) {
  json doc = json::parse(body, nullptr, false);
  if (!doc.is_object()) return std::nullopt;
  auto id = doc.find("id");
  auto type = doc.find("type");
  if (id == doc.end() || type == doc.end() || !id->is_string() || !type->is_string())
    return std::nullopt;
  ParsedEvent e{id->get<std::string>(), type->get<std::string>()};
  if (!valid_event_id(e.id) || !valid_event_type(e.type)) return std::nullopt;
  if (doc_out) *doc_out = std::move(doc);
  return e;
}

bool has_data_object(const json& doc) {
  auto data = doc.find("data");
  if (data == doc.end() || !data->is_object()) return false;
  auto object = data->find("object");
  return object != data->end() && object->is_object();
}

}  // namespace kghost::webhooks
