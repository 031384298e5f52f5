// The host API table handed to every plugin. Each domain's slots are in their own file beside
// this one (request_api.cpp for the request, api_*.cpp for the rest).
#include "plugins/host_api.hpp"

#include "plugins/store_provider_api.hpp"

namespace kghost {

const kg_host_api& host_api() {
  static const kg_host_api table = [] {
    kg_host_api t{};
    t.struct_size = sizeof(kg_host_api);
    t.abi_major = KG_ABI_MAJOR;
    t.abi_minor = KG_ABI_MINOR;
    fill_plugin_api(t);
    fill_registration_api(t);
    fill_request_api(t);
    fill_metrics_api(t);
    fill_bus_api(t);
    fill_store_api(t);
    fill_queue_api(t);
    add_store_provider_slots(t);  // 1.2
    return t;
  }();
  return table;
}

}  // namespace kghost
