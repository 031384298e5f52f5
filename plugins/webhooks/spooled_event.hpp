// webhooks: the queue entry of an accepted event.
//
// Ingress has parsed and validated the body before it appends it; the entry keeps what it
// learnt in a one-line header before the raw body, so processing reads the id, type and shape
// without parsing the JSON a second time (that parse was a tenth of the host's CPU per event):
//
//   kgwh1 <id> <type> <0|1>\n<raw body>      (1: data.object is an object)
//
// id and type were checked by valid_event_id / valid_event_type, so they hold no space or
// newline. Entries spooled before the header existed are a raw body (they start with '{'):
// they are parsed as before, so a queue left by an older version drains unchanged.
//
// Pure functions, no exceptions: safe to fuzz.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "stripe_event.hpp"

namespace kghost::webhooks {

// The entry for `body`, whose parse gave `ev`; written into `out` (its capacity is reused).
void spool_entry(const ParsedEvent& ev, std::string_view body, std::string& out);

struct SpooledEvent {
  ParsedEvent event;
  std::string_view body;  // the raw body as Stripe signed it, inside the entry
};
// The event an entry holds, or nothing for an entry that is not one (a malformed header, or a
// raw body that is not a usable event).
std::optional<SpooledEvent> read_spooled(std::string_view entry);

}  // namespace kghost::webhooks
