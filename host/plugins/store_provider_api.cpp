#include "plugins/store_provider_api.hpp"

#include "plugins/instance.hpp"
#include "store/provider_store.hpp"

namespace kghost {
namespace {

// The shared store when it is the failover wrapper around this plugin's provider, else null.
ProviderStore* selected_for(kg_plugin_ctx* c) {
  auto* store = dynamic_cast<ProviderStore*>(&c->services.store);
  return store && store->plugin() == c->name ? store : nullptr;
}

kg_status api_register_store_provider(kg_plugin_ctx* c, const kg_store_provider* table,
                                      void* provider) {
  if (!c || !table) return KG_ERR_INVALID;
  if (!c->registering()) return KG_ERR_STATE;
  ProviderStore* store = selected_for(c);
  if (!store) {
    c->services.log.log(LogLevel::info, c->name,
                        "offers a store provider, but [store] backend names another; it is not "
                        "used");
    return KG_OK;
  }
  if (std::string err = store->attach(*table, provider); !err.empty()) {
    c->error = "register_store_provider: " + err;
    return KG_ERR_INVALID;
  }
  return KG_OK;
}

void api_store_complete(kg_store_op* op, const kg_store_result* result) {
  ProviderStore::complete(op, result);
}

void api_store_provider_changed(kg_plugin_ctx* c) {
  if (!c) return;
  if (ProviderStore* store = selected_for(c)) store->provider_changed();
}

}  // namespace

void add_store_provider_slots(kg_host_api& t) {
  t.register_store_provider = api_register_store_provider;
  t.store_complete = api_store_complete;
  t.store_provider_changed = api_store_provider_changed;
}

}  // namespace kghost
