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

namespace {

// Streaming (SAX) reader of the few fields an event needs: the same parser as json::parse, so
// the same bodies are JSON, but no document is built.
class EventFields {
 public:
  using string_t = json::string_t;
  bool null() { return value(Kind::scalar); }
  bool boolean(bool) { return value(Kind::scalar); }
  bool number_integer(json::number_integer_t) { return value(Kind::scalar); }
  bool number_unsigned(json::number_unsigned_t) { return value(Kind::scalar); }
  bool number_float(json::number_float_t, const string_t&) { return value(Kind::scalar); }
  bool binary(json::binary_t&) { return value(Kind::scalar); }
  bool string(string_t& s) {
    if (depth_ == 1 && (key1_ == Key::id || key1_ == Key::type)) {
      (key1_ == Key::id ? ev_.id : ev_.type) = std::move(s);
      (key1_ == Key::id ? id_ok_ : type_ok_) = true;
      return true;
    }
    return value(Kind::scalar);
  }
  bool start_object(std::size_t) {
    if (depth_ == 0) top_object_ = true;
    if (!value(Kind::object)) return false;
    ++depth_;
    return true;
  }
  bool start_array(std::size_t) {
    if (!value(Kind::array)) return false;
    ++depth_;
    return true;
  }
  bool end_object() { return end(); }
  bool end_array() { return end(); }
  bool key(string_t& k) {
    if (depth_ == 1)
      key1_ = k == "id" ? Key::id : k == "type" ? Key::type : k == "data" ? Key::data : Key::other;
    if (depth_ == 2) key2_ = k == "object" ? Key::object : Key::other;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) {
    return false;
  }

  std::optional<ParsedEvent> result() {
    if (!top_object_ || !id_ok_ || !type_ok_) return std::nullopt;
    return std::move(ev_);
  }

 private:
  enum class Key { other, id, type, data, object };
  enum class Kind { scalar, object, array };

  // A value (or the start of a container) at the current depth, in the slot of the last key.
  bool value(Kind kind) {
    if (depth_ == 0) return kind == Kind::object;  // the body must be an object: stop early
    if (depth_ == 1) {
      if (key1_ == Key::id) id_ok_ = false;
      if (key1_ == Key::type) type_ok_ = false;
      if (key1_ == Key::data) {
        in_data_ = kind == Kind::object;
        ev_.data_object = false;
      }
    } else if (depth_ == 2 && in_data_ && key2_ == Key::object) {
      ev_.data_object = kind == Kind::object;
    }
    return true;
  }
  bool end() {
    if (--depth_ == 1) in_data_ = false;
    return true;
  }

  ParsedEvent ev_;
  int depth_ = 0;
  Key key1_ = Key::other, key2_ = Key::other;
  bool top_object_ = false, id_ok_ = false, type_ok_ = false;
  bool in_data_ = false;  // inside the top-level `data` object (depth 2)
};

std::optional<ParsedEvent> parse_document(std::string_view body, json* doc_out) {
  json doc = json::parse(body, nullptr, false);
  if (!doc.is_object()) return std::nullopt;
  auto id = doc.find("id");
  auto type = doc.find("type");
  if (id == doc.end() || type == doc.end() || !id->is_string() || !type->is_string())
    return std::nullopt;
  ParsedEvent e{id->get<std::string>(), type->get<std::string>(), has_data_object(doc)};
  if (!valid_event_id(e.id) || !valid_event_type(e.type)) return std::nullopt;
  *doc_out = std::move(doc);
  return e;
}

}  // namespace

std::optional<ParsedEvent> parse_event(std::string_view body, json* doc_out) {
  if (doc_out) return parse_document(body, doc_out);
  EventFields fields;
  if (!json::sax_parse(body, &fields)) return std::nullopt;
  auto e = fields.result();
  if (!e || !valid_event_id(e->id) || !valid_event_type(e->type)) return std::nullopt;
  return e;
}

bool has_data_object(const json& doc) {
  auto data = doc.find("data");
  if (data == doc.end() || !data->is_object()) return false;
  auto object = data->find("object");
  return object != data->end() && object->is_object();
}

}  // namespace kghost::webhooks
