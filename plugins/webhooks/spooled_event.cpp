#include "spooled_event.hpp"

namespace kghost::webhooks {

namespace {

constexpr std::string_view kMagic = "kgwh1 ";

// The next space-separated field of the header, consumed from `rest`.
std::string_view next_field(std::string_view& rest) {
  const auto end = rest.find(' ');
  std::string_view field = rest.substr(0, end);
  rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
  return field;
}

}  // namespace

void spool_entry(const ParsedEvent& ev, std::string_view body, std::string& out) {
  out.clear();
  out.reserve(kMagic.size() + ev.id.size() + ev.type.size() + 4 + body.size());
  out.append(kMagic).append(ev.id).append(1, ' ').append(ev.type);
  out.append(ev.data_object ? " 1\n" : " 0\n").append(body);
}

std::optional<SpooledEvent> read_spooled(std::string_view entry) {
  if (entry.substr(0, kMagic.size()) != kMagic) {
    auto ev = parse_event(entry);  // an entry from before the header
    if (!ev) return std::nullopt;
    return SpooledEvent{std::move(*ev), entry};
  }
  const auto eol = entry.find('\n');
  if (eol == std::string_view::npos) return std::nullopt;
  std::string_view header = entry.substr(kMagic.size(), eol - kMagic.size());
  const std::string_view id = next_field(header), type = next_field(header), shape = header;
  if (!valid_event_id(id) || !valid_event_type(type) || (shape != "0" && shape != "1"))
    return std::nullopt;
  return SpooledEvent{ParsedEvent{std::string(id), std::string(type), shape == "1"},
                      entry.substr(eol + 1)};
}

}  // namespace kghost::webhooks
