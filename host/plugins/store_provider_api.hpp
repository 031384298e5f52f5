// The host-table slots of ABI 1.2's store providers (register_store_provider, store_complete,
// store_provider_changed), kept apart from the rest of the table.
#pragma once

#include <kghost/plugin.h>

namespace kghost {

// Fills the store-provider slots of the host table.
void add_store_provider_slots(kg_host_api& table);

}  // namespace kghost
