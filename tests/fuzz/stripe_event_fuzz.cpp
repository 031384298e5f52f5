// libFuzzer target for Stripe event parsing. Input: the raw body. Checks, besides "no crash,
// no sanitizer report": the streaming parse (no document) and the document parse agree (same
// acceptance, id, type and data.object), an accepted event's id and type obey the id and type
// rules, and an accepted event re-serialised parses to the same id and type. The spooled entry
// (spooled_event.hpp): reading any input never crashes, reading a raw body agrees with the
// parse, and an accepted event's entry reads back as the same event and body.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "spooled_event.hpp"
#include "stripe_event.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kghost::webhooks;
  std::string_view body(reinterpret_cast<const char*>(data), size);
  nlohmann::json doc;
  auto e1 = parse_event(body, &doc);
  auto e2 = parse_event(body);
  if (e1.has_value() != e2.has_value()) std::abort();
  auto spooled = read_spooled(body);
  if (body.substr(0, 6) != "kgwh1 " && spooled.has_value() != e1.has_value()) std::abort();
  if (spooled && !(valid_event_id(spooled->event.id) && valid_event_type(spooled->event.type)))
    std::abort();
  if (!e1) return 0;
  std::string entry;
  spool_entry(*e1, body, entry);
  auto back = read_spooled(entry);
  if (!back || back->event.id != e1->id || back->event.type != e1->type ||
      back->event.data_object != e1->data_object || back->body != body)
    std::abort();
  if (e1->id != e2->id || e1->type != e2->type) std::abort();
  if (e1->data_object != e2->data_object || e1->data_object != has_data_object(doc)) std::abort();
  if (!valid_event_id(e1->id) || !valid_event_type(e1->type)) std::abort();
  auto again = parse_event(doc.dump());
  if (!again || again->id != e1->id || again->type != e1->type) std::abort();
  return 0;
}
