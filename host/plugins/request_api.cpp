// The request half of the host API table, and the plugins' callbacks as http/ objects. Each
// slot is a small adapter from the C ABI to an Exchange transition; nothing here throws
// across the boundary.
#include "plugins/request_api.hpp"

#include <algorithm>
#include <functional>
#include <optional>
#include <string>

#include "http/router.hpp"
#include "plugins/abi_support.hpp"
#include "plugins/host_api.hpp"

// A deferred answer handed to a plugin (see kg_host_api.defer).
struct kg_responder {
  kghost::Responder responder;
};

// A stream handed to a plugin (see kg_host_api.stream_begin).
struct kg_stream {
  std::shared_ptr<kghost::StreamState> state;
};

namespace kghost {

static_assert(static_cast<int>(FilterScope::path_prefix) == KG_FILTER_PATH_PREFIX &&
              static_cast<int>(FilterScope::own_routes) == KG_FILTER_OWN_ROUTES &&
              static_cast<int>(FilterScope::all_routes) == KG_FILTER_ALL_ROUTES);
static_assert(static_cast<int>(StreamEnd::client_gone) == KG_STREAM_CLIENT_GONE &&
              static_cast<int>(StreamEnd::closed_by_plugin) == KG_STREAM_CLOSED_BY_PLUGIN &&
              static_cast<int>(StreamEnd::host_shutdown) == KG_STREAM_HOST_SHUTDOWN);
static_assert(static_cast<int>(Observation::Kind::response) == KG_OBSERVED_RESPONSE &&
              static_cast<int>(Observation::Kind::stream_start) == KG_OBSERVED_STREAM_START &&
              static_cast<int>(Observation::Kind::stream_end) == KG_OBSERVED_STREAM_END);

namespace {

using abi::copy_in;
using abi::header_safe;
using abi::ks;
using abi::sv;
using abi::to_sink;
using abi::token;

Exchange* ex_of(kg_request* r) { return exchange_of(r); }

Verdict verdict_of(kg_status st) {
  switch (st) {
    case KG_OK:
      return {Verdict::answered, st};
    case KG_CONTINUE:
      return {Verdict::next, st};
    case KG_PENDING:
      return {Verdict::later, st};
    default:
      return {Verdict::failed, st};
  }
}

// --- the plugins' callbacks ---------------------------------------------------------------
class PluginHandler final : public Handler {
 public:
  PluginHandler(kg_handler_fn fn, void* ud) : fn_(fn), ud_(ud) {}
  Verdict handle(Exchange& ex) override { return verdict_of(fn_(ud_, request_of(&ex))); }

 private:
  kg_handler_fn fn_;
  void* ud_;
};

class PluginFilter final : public Filter {
 public:
  PluginFilter(kg_filter_fn fn, void* ud) : fn_(fn), ud_(ud) {}
  Verdict filter(Exchange& ex) override { return verdict_of(fn_(ud_, request_of(&ex))); }

 private:
  kg_filter_fn fn_;
  void* ud_;
};

class PluginObserver final : public Observer {
 public:
  PluginObserver(kg_observer_fn fn, void* ud) : fn_(fn), ud_(ud) {}
  void observe(Exchange& ex, const Observation& what) override {
    kg_observation obs{};
    obs.struct_size = sizeof obs;
    obs.method = ks(what.method);
    if (!what.route.empty()) obs.route = ks(what.route);
    obs.status = what.status;
    obs.duration_ns = what.duration_ns;
    obs.request_bytes = what.request_bytes;
    obs.response_bytes = what.response_bytes;
    obs.kind = static_cast<kg_observation_kind>(what.kind);
    obs.end_reason = static_cast<kg_stream_end_reason>(what.end_reason);
    fn_(ud_, request_of(&ex), &obs);
  }

 private:
  kg_observer_fn fn_;
  void* ud_;
};

// --- answers --------------------------------------------------------------------------------
void add_headers(HttpResponse& out, const kg_header* headers, size_t count) {
  for (size_t i = 0; headers && i < count; ++i) {
    auto n = sv(headers[i].name), v = sv(headers[i].value);
    if (token(n) && header_safe(v)) out.headers.emplace_back(n, v);
  }
}

HttpResponse to_response(const kg_response* plugin_response) {
  HttpResponse out;
  if (!plugin_response)
    return error_response(500, "internal_error", "a plugin answered with no response", "");
  kg_response r = copy_in(plugin_response);
  out.status = r.status;
  out.content_type = sv(r.content_type);
  out.body = sv(r.body);
  add_headers(out, r.headers, r.header_count);
  return out;
}

HttpResponse to_error(const kg_error& e, std::string_view request_id) {
  HttpResponse out = error_response(e.status, sv(e.code), sv(e.message), request_id);
  add_headers(out, e.headers, e.header_count);
  return out;
}

// Completes and releases a responder: whatever happens, no request is left hanging.
void complete(kg_responder* resp, HttpResponse&& r) {
  resp->responder.complete(std::move(r));
  delete resp;
}

// --- the request ----------------------------------------------------------------------------
kg_str api_method(kg_request* r) { return ks(ex_of(r)->method()); }
kg_str api_path(kg_request* r) { return ks(ex_of(r)->path()); }
kg_str api_query(kg_request* r) { return ks(ex_of(r)->query()); }
kg_str api_route(kg_request* r) {
  const RouteInfo* route = ex_of(r)->route();
  return route ? ks(route->path) : kg_str{nullptr, 0};
}
kg_str api_route_scopes(kg_request* r) {
  const RouteInfo* route = ex_of(r)->route();
  return route ? ks(route->scopes) : kg_str{nullptr, 0};
}
int32_t api_route_public(kg_request* r) {
  const RouteInfo* route = ex_of(r)->route();
  return route && route->is_public;
}
kg_str api_body(kg_request* r) { return ks(ex_of(r)->body()); }
kg_str api_request_id(kg_request* r) { return ks(ex_of(r)->request_id()); }
kg_str api_remote_addr(kg_request* r) { return ks(ex_of(r)->remote_addr()); }
kg_str api_traceparent(kg_request* r) { return ks(ex_of(r)->traceparent()); }
kg_status api_header(kg_request* r, kg_str name, size_t index, kg_str* out) {
  auto v = ex_of(r)->header(sv(name), index);
  if (!v) return KG_ERR_NOT_FOUND;
  *out = ks(*v);
  return KG_OK;
}
kg_status api_param(kg_request* r, kg_str name, kg_str* out) {
  for (auto& [n, v] : ex_of(r)->params()) {
    if (n == sv(name)) {
      *out = ks(v);
      return KG_OK;
    }
  }
  return KG_ERR_NOT_FOUND;
}
kg_status api_query_param(kg_request* r, kg_str name, kg_str* out) {
  auto* ex = ex_of(r);
  std::string_view q = ex->query();
  while (!q.empty()) {
    auto amp = q.find('&');
    auto pair = q.substr(0, amp);
    auto eq = pair.find('=');
    std::string key_raw(pair.substr(0, eq)), key;
    std::replace(key_raw.begin(), key_raw.end(), '+', ' ');
    if (percent_decode(key_raw, key) && key == sv(name)) {
      std::string raw(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
      std::replace(raw.begin(), raw.end(), '+', ' ');
      std::string value;
      if (!percent_decode(raw, value)) return KG_ERR_INVALID;
      *out = ks(ex->keep(std::move(value)));
      return KG_OK;
    }
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
  }
  return KG_ERR_NOT_FOUND;
}
kg_status api_set_principal(kg_request* r, const kg_principal* principal) {
  if (!principal) return KG_ERR_INVALID;
  kg_principal p = copy_in(principal);
  ex_of(r)->set_principal(OwnedPrincipal{std::string(sv(p.user_id)), std::string(sv(p.tenant_id)),
                                         std::string(sv(p.tier)), std::string(sv(p.scopes))});
  return KG_OK;
}
kg_status api_get_principal(kg_request* r, kg_principal* out) {
  if (!out) return KG_ERR_INVALID;
  auto& p = ex_of(r)->principal();
  if (!p) return KG_ERR_NOT_FOUND;
  KG_PUT(out, kg_principal, user_id, ks(p->user_id));
  KG_PUT(out, kg_principal, tenant_id, ks(p->tenant_id));
  KG_PUT(out, kg_principal, tier, ks(p->tier));
  KG_PUT(out, kg_principal, scopes, ks(p->scopes));
  return KG_OK;
}
kg_status api_add_response_header(kg_request* r, kg_str name, kg_str value) {
  if (!token(sv(name)) || !header_safe(sv(value))) return KG_ERR_INVALID;
  ex_of(r)->add_response_header(sv(name), sv(value));
  return KG_OK;
}
kg_status api_respond(kg_request* r, const kg_response* resp) {
  if (!resp || resp->status < 100 || resp->status > 599) return KG_ERR_INVALID;
  return ex_of(r)->respond(to_response(resp)) ? KG_OK : KG_ERR_STATE;
}
// The one error answer (1.1 reply_error); the 1.0 error slots are built on it.
kg_status api_reply_error(kg_request* r, kg_responder* resp, const kg_error* error) {
  kg_error e = copy_in(error);
  bool valid = error && e.status >= 100 && e.status <= 599 && (r == nullptr) != (resp == nullptr);
  if (resp) {  // released whatever happens, so that no request is left hanging
    std::string_view id = resp->responder.request_id();
    complete(resp, valid ? to_error(e, id)
                         : error_response(500, "internal_error",
                                          "a plugin failed while handling the request", id));
    return valid ? KG_OK : KG_ERR_INVALID;
  }
  if (!r || !valid) return KG_ERR_INVALID;
  auto* ex = ex_of(r);
  return ex->respond(to_error(e, ex->request_id())) ? KG_OK : KG_ERR_STATE;
}
kg_error error_of(uint16_t status, kg_str code, kg_str message) {
  return kg_error{sizeof(kg_error), status, code, message, nullptr, 0};
}
kg_status api_respond_error(kg_request* r, uint16_t status, kg_str code, kg_str message) {
  kg_error e = error_of(status, code, message);
  return r ? api_reply_error(r, nullptr, &e) : KG_ERR_INVALID;
}
kg_responder* api_defer(kg_request* r) {
  std::optional<Responder> responder = ex_of(r)->defer();
  return responder ? new kg_responder{std::move(*responder)} : nullptr;
}
void api_complete(kg_responder* resp, const kg_response* r) {
  if (resp) complete(resp, to_response(r));
}
void api_complete_error(kg_responder* resp, uint16_t status, kg_str code, kg_str message) {
  kg_error e = error_of(status, code, message);
  if (resp) api_reply_error(nullptr, resp, &e);
}
kg_stream* api_stream_begin(kg_request* r, const kg_response* head, kg_stream_closed_fn on_closed,
                            void* ud) {
  if (!head || head->status < 100 || head->status > 599) return nullptr;
  std::function<void()> notify;
  if (on_closed) notify = [on_closed, ud] { on_closed(ud); };
  auto state = ex_of(r)->begin_stream(to_response(head), std::move(notify));
  if (!state) return nullptr;
  return new kg_stream{std::move(state)};
}
kg_status api_error_body(kg_str code, kg_str message, kg_str request_id, kg_sink_fn sink,
                         void* ud) {
  if (!sink) return KG_ERR_INVALID;
  return to_sink(sink, ud, error_response(500, sv(code), sv(message), sv(request_id)).body);
}
kg_status api_stream_write(kg_stream* s, kg_str data) {
  if (!s) return KG_ERR_INVALID;
  switch (s->state->write(sv(data))) {
    case StreamWrite::accepted:
      return KG_OK;
    case StreamWrite::full:
      return KG_ERR_FULL;
    case StreamWrite::closed:
      break;
  }
  return KG_ERR_CLOSED;
}
void api_stream_close(kg_stream* s) {
  if (!s) return;
  s->state->close();
  delete s;
}

}  // namespace

std::shared_ptr<Handler> plugin_handler(kg_handler_fn fn, void* user_data) {
  return std::make_shared<PluginHandler>(fn, user_data);
}
std::shared_ptr<Filter> plugin_filter(kg_filter_fn fn, void* user_data) {
  return std::make_shared<PluginFilter>(fn, user_data);
}
std::shared_ptr<Observer> plugin_observer(kg_observer_fn fn, void* user_data) {
  return std::make_shared<PluginObserver>(fn, user_data);
}

void fill_request_api(kg_host_api& t) {
  t.request_method = api_method;
  t.request_path = api_path;
  t.request_query = api_query;
  t.request_route = api_route;
  t.request_route_scopes = api_route_scopes;
  t.request_route_public = api_route_public;
  t.request_body = api_body;
  t.request_id = api_request_id;
  t.request_remote_addr = api_remote_addr;
  t.request_traceparent = api_traceparent;
  t.request_header = api_header;
  t.request_param = api_param;
  t.request_query_param = api_query_param;
  t.set_principal = api_set_principal;
  t.get_principal = api_get_principal;
  t.add_response_header = api_add_response_header;
  t.respond = api_respond;
  t.respond_error = api_respond_error;
  t.defer = api_defer;
  t.complete = api_complete;
  t.complete_error = api_complete_error;
  t.stream_begin = api_stream_begin;
  t.stream_write = api_stream_write;
  t.stream_close = api_stream_close;
  t.error_body = api_error_body;
  t.reply_error = api_reply_error;  // 1.1
}

}  // namespace kghost
