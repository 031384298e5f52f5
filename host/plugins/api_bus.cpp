// Event bus slots: publish (plain or confirmed) and subscribe.
#include "plugins/abi_support.hpp"
#include "plugins/host_api.hpp"
#include "plugins/instance.hpp"

namespace kghost {
namespace {

using abi::sv;

kg_status api_bus_publish(kg_plugin_ctx* c, kg_str topic, kg_str data, kg_str id) {
  return c->services.bus.publish(sv(topic), sv(data), sv(id)) ? KG_OK : KG_ERR_INVALID;
}
kg_status api_bus_publish_confirmed(kg_plugin_ctx* c, kg_str topic, kg_str data, kg_str id,
                                    void (*done)(void*, kg_status), void* ud) {
  if (!done) return KG_ERR_INVALID;
  auto published = c->services.bus.publish_confirmed(
      sv(topic), sv(data), sv(id), [done, ud](bool ok) { done(ud, ok ? KG_OK : KG_ERR_INTERNAL); });
  return published ? KG_OK : KG_ERR_INVALID;
}
kg_status api_bus_subscribe(kg_plugin_ctx* c, kg_str pattern, kg_bus_fn fn, void* ud) {
  if (!c || !c->setting_up()) return KG_ERR_STATE;
  if (!fn || !valid_pattern(sv(pattern))) return KG_ERR_INVALID;
  if (c->registering()) {  // subscribed for real only if create succeeds
    c->pending.subscriptions.push_back({std::string(sv(pattern)), fn, ud});
    return KG_OK;
  }
  uint64_t id = subscribe(c->services.bus, c->name, sv(pattern), fn, ud);
  if (id == 0) return KG_ERR_INVALID;
  c->subscriptions.push_back(id);
  return KG_OK;
}

}  // namespace

void fill_bus_api(kg_host_api& t) {
  t.bus_publish = api_bus_publish;
  t.bus_subscribe = api_bus_subscribe;
  t.bus_publish_confirmed = api_bus_publish_confirmed;  // 1.1
}

}  // namespace kghost
