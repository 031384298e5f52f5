// Registration slots, taken only while a plugin is being created: routes, filters, observers,
// tasks (and their stop tokens), the health reporter. Held in the instance's pending
// registrations until create succeeds.
#include <nlohmann/json.hpp>

#include "plugins/abi_support.hpp"
#include "plugins/host_api.hpp"
#include "plugins/instance.hpp"
#include "plugins/request_api.hpp"

namespace kghost {
namespace {

using abi::copy_in;
using abi::sv;
using abi::token;

// A JSON Schema handed over as text: empty, or a JSON object or boolean.
bool schema_text(std::string_view s) {
  if (s.empty()) return true;
  auto j = nlohmann::json::parse(s, nullptr, false);
  return j.is_object() || j.is_boolean();
}
kg_status api_register_route(kg_plugin_ctx* c, const kg_route* route) {
  if (!c || !c->registering()) return KG_ERR_STATE;
  kg_route r = copy_in(route);
  if (!route || !r.handler || !token(sv(r.method))) return KG_ERR_INVALID;
  if (!schema_text(sv(r.request_schema)) || !schema_text(sv(r.response_schema))) {
    c->services.log.log(LogLevel::error, c->name,
                        "route " + std::string(sv(r.method)) + " " + std::string(sv(r.path)) +
                            ": a request/response schema is not a JSON object");
    return KG_ERR_INVALID;
  }
  RouteInfo info;
  info.method = sv(r.method);
  info.path = sv(r.path);
  info.scopes = sv(r.scopes);
  info.is_public = (r.flags & KG_ROUTE_PUBLIC) != 0;
  info.owner = c->name;
  info.summary = sv(r.summary);
  info.description = sv(r.description);
  info.request_schema = sv(r.request_schema);
  info.response_schema = sv(r.response_schema);
  info.timeout_ms = r.timeout_ms;
  c->pending.routes.emplace_back(std::move(info),
                                 HandlerEntry{plugin_handler(r.handler, r.user_data)});
  return KG_OK;
}
kg_status api_register_filter(kg_plugin_ctx* c, const kg_filter* filter) {
  if (!c || !c->registering()) return KG_ERR_STATE;
  kg_filter f = copy_in(filter);
  if (!filter || !f.fn || f.scope > KG_FILTER_PATH_PREFIX) return KG_ERR_INVALID;
  std::string prefix(sv(f.path_prefix));
  if (f.scope == KG_FILTER_PATH_PREFIX && (prefix.empty() || prefix[0] != '/'))
    return KG_ERR_INVALID;
  c->pending.filters.push_back(FilterEntry{std::string(sv(f.name)), c->name, f.order,
                                           plugin_filter(f.fn, f.user_data), filter_scope(f.scope),
                                           std::move(prefix)});
  return KG_OK;
}
kg_status api_register_observer(kg_plugin_ctx* c, kg_observer_fn fn, void* ud) {
  if (!c || !c->registering()) return KG_ERR_STATE;
  if (!fn) return KG_ERR_INVALID;
  c->pending.observers.push_back(ObserverEntry{c->name, plugin_observer(fn, ud)});
  return KG_OK;
}
kg_status api_register_stream_observer(kg_plugin_ctx* c, kg_observer_fn fn, void* ud) {
  if (!c || !c->registering()) return KG_ERR_STATE;
  if (!fn) return KG_ERR_INVALID;
  c->pending.stream_observers.push_back(ObserverEntry{c->name, plugin_observer(fn, ud)});
  return KG_OK;
}
kg_status api_register_task(kg_plugin_ctx* c, const kg_task* task) {
  if (!c || !c->registering()) return KG_ERR_STATE;
  kg_task t = copy_in(task);
  if (!task || !t.fn) return KG_ERR_INVALID;
  c->pending.tasks.push_back({std::string(sv(t.name)), t.interval_ms, t.fn, t.user_data});
  return KG_OK;
}
int32_t api_stop_requested(kg_stop* s) { return reinterpret_cast<StopToken*>(s)->requested(); }
int32_t api_stop_wait(kg_stop* s, uint32_t ms) {
  return reinterpret_cast<StopToken*>(s)->wait_for(std::chrono::milliseconds(ms));
}
kg_status api_set_health_reporter(kg_plugin_ctx* c, kg_health_fn fn, void* ud) {
  if (!c || !c->registering()) return KG_ERR_STATE;
  c->health_fn = fn;
  c->health_ud = ud;
  return KG_OK;
}
void api_health_set(kg_health* out, kg_health_status status, kg_str details) {
  if (!out) return;
  out->status = static_cast<HealthStatus>(std::clamp<int32_t>(status, 0, 2));
  if (details.len == 0) return;
  auto parsed = nlohmann::json::parse(sv(details), nullptr, false);
  if (parsed.is_object()) {
    out->details = std::move(parsed);
  } else {
    out->details = {{"details_error", "the plugin reported details that are not a JSON object"}};
  }
}

}  // namespace

void fill_registration_api(kg_host_api& t) {
  t.register_route = api_register_route;
  t.register_filter = api_register_filter;
  t.register_observer = api_register_observer;
  t.register_task = api_register_task;
  t.set_health_reporter = api_set_health_reporter;
  t.health_set = api_health_set;
  t.stop_requested = api_stop_requested;
  t.stop_wait = api_stop_wait;
  t.register_stream_observer = api_register_stream_observer;  // 1.1
}

}  // namespace kghost
