// The host API table handed to every plugin, and its request slots: each a small adapter from
// the C ABI to the request pipeline. The other domains' slots are in the api_*.cpp files beside
// this one. Nothing here throws across the boundary.
#include "plugins/host_api.hpp"

#include <algorithm>

#include "http/pipeline.hpp"
#include "plugins/abi_support.hpp"

struct kg_stream {
  std::shared_ptr<kghost::StreamState> state;
};

namespace kghost {
namespace {

using abi::copy_in;
using abi::header_safe;
using abi::ks;
using abi::sv;
using abi::to_sink;
using abi::token;

Exchange* ex_of(kg_request* r) { return reinterpret_cast<Exchange*>(r); }

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

// --- the request ----------------------------------------------------------------------------
kg_str api_method(kg_request* r) { return ks(ex_of(r)->method()); }
kg_str api_path(kg_request* r) { return ks(ex_of(r)->path); }
kg_str api_query(kg_request* r) { return ks(ex_of(r)->query); }
kg_str api_route(kg_request* r) {
  auto* ex = ex_of(r);
  return ex->match.route ? ks(ex->match.route->path) : kg_str{nullptr, 0};
}
kg_str api_route_scopes(kg_request* r) {
  auto* ex = ex_of(r);
  return ex->match.route ? ks(ex->match.route->scopes) : kg_str{nullptr, 0};
}
int32_t api_route_public(kg_request* r) {
  auto* ex = ex_of(r);
  return ex->match.route && ex->match.route->is_public;
}
kg_str api_body(kg_request* r) { return ks(ex_of(r)->body()); }
kg_str api_request_id(kg_request* r) { return ks(ex_of(r)->request_id); }
kg_str api_remote_addr(kg_request* r) { return ks(ex_of(r)->remote_addr); }
kg_str api_traceparent(kg_request* r) { return ks(ex_of(r)->traceparent()); }
kg_status api_header(kg_request* r, kg_str name, size_t index, kg_str* out) {
  auto v = ex_of(r)->header(sv(name), index);
  if (!v) return KG_ERR_NOT_FOUND;
  *out = ks(*v);
  return KG_OK;
}
kg_status api_param(kg_request* r, kg_str name, kg_str* out) {
  for (auto& [n, v] : ex_of(r)->match.params) {
    if (n == sv(name)) {
      *out = ks(v);
      return KG_OK;
    }
  }
  return KG_ERR_NOT_FOUND;
}
kg_status api_query_param(kg_request* r, kg_str name, kg_str* out) {
  auto* ex = ex_of(r);
  std::string_view q = ex->query;
  while (!q.empty()) {
    auto amp = q.find('&');
    auto pair = q.substr(0, amp);
    auto eq = pair.find('=');
    std::string key_raw(pair.substr(0, eq)), key;
    std::replace(key_raw.begin(), key_raw.end(), '+', ' ');
    if (percent_decode(key_raw, key) && key == sv(name)) {
      std::string raw(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1));
      std::replace(raw.begin(), raw.end(), '+', ' ');
      auto value = std::make_unique<std::string>();
      if (!percent_decode(raw, *value)) return KG_ERR_INVALID;
      *out = ks(*value);
      ex->scratch.push_back(std::move(value));
      return KG_OK;
    }
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
  }
  return KG_ERR_NOT_FOUND;
}
kg_status api_set_principal(kg_request* r, const kg_principal* principal) {
  if (!principal) return KG_ERR_INVALID;
  kg_principal p = copy_in(principal);
  ex_of(r)->principal = OwnedPrincipal{std::string(sv(p.user_id)), std::string(sv(p.tenant_id)),
                                       std::string(sv(p.tier)), std::string(sv(p.scopes))};
  return KG_OK;
}
kg_status api_get_principal(kg_request* r, kg_principal* out) {
  if (!out) return KG_ERR_INVALID;
  auto& p = ex_of(r)->principal;
  if (!p) return KG_ERR_NOT_FOUND;
  KG_PUT(out, kg_principal, user_id, ks(p->user_id));
  KG_PUT(out, kg_principal, tenant_id, ks(p->tenant_id));
  KG_PUT(out, kg_principal, tier, ks(p->tier));
  KG_PUT(out, kg_principal, scopes, ks(p->scopes));
  return KG_OK;
}
kg_status api_add_response_header(kg_request* r, kg_str name, kg_str value) {
  if (!token(sv(name)) || !header_safe(sv(value))) return KG_ERR_INVALID;
  ex_of(r)->extra_headers.emplace_back(sv(name), sv(value));
  return KG_OK;
}
kg_status api_respond(kg_request* r, const kg_response* resp) {
  auto* ex = ex_of(r);
  if (!resp || resp->status < 100 || resp->status > 599) return KG_ERR_INVALID;
  if (ex->phase == Exchange::Phase::responded || ex->deferred) return KG_ERR_STATE;
  ex->staged = to_response(resp);
  return KG_OK;
}
// The one error answer (1.1 reply_error); the 1.0 error slots are built on it.
kg_status api_reply_error(kg_request* r, kg_responder* resp, const kg_error* error) {
  kg_error e = copy_in(error);
  bool valid = error && e.status >= 100 && e.status <= 599 && (r == nullptr) != (resp == nullptr);
  if (resp) {  // released whatever happens, so that no request is left hanging
    std::string_view id = resp->exchange->request_id;
    resp->pipeline->complete(resp, valid ? to_error(e, id)
                                         : error_response(500, "internal_error",
                                                          "a plugin failed while handling the "
                                                          "request",
                                                          id));
    return valid ? KG_OK : KG_ERR_INVALID;
  }
  if (!r || !valid) return KG_ERR_INVALID;
  auto* ex = ex_of(r);
  if (ex->phase == Exchange::Phase::responded || ex->deferred) return KG_ERR_STATE;
  ex->staged = to_error(e, ex->request_id);
  return KG_OK;
}
kg_error error_of(uint16_t status, kg_str code, kg_str message) {
  return kg_error{sizeof(kg_error), status, code, message, nullptr, 0};
}
kg_status api_respond_error(kg_request* r, uint16_t status, kg_str code, kg_str message) {
  kg_error e = error_of(status, code, message);
  return r ? api_reply_error(r, nullptr, &e) : KG_ERR_INVALID;
}
kg_responder* api_defer(kg_request* r) {
  auto* ex = ex_of(r);
  if (ex->phase == Exchange::Phase::responded || ex->deferred || ex->staged) return nullptr;
  ex->deferred = true;
  return new kg_responder{ex->shared_from_this(), ex->pipeline};
}
void api_complete(kg_responder* resp, const kg_response* r) {
  if (resp) resp->pipeline->complete(resp, to_response(r));
}
void api_complete_error(kg_responder* resp, uint16_t status, kg_str code, kg_str message) {
  kg_error e = error_of(status, code, message);
  if (resp) api_reply_error(nullptr, resp, &e);
}
kg_stream* api_stream_begin(kg_request* r, const kg_response* head, kg_stream_closed_fn on_closed,
                            void* ud) {
  auto* ex = ex_of(r);
  if (!head || head->status < 100 || head->status > 599 || ex->staged) return nullptr;
  std::function<void()> notify;
  if (on_closed) notify = [on_closed, ud] { on_closed(ud); };
  auto state = ex->pipeline->begin_stream(*ex, to_response(head), std::move(notify));
  if (!state) return nullptr;
  return new kg_stream{std::move(state)};
}
kg_status api_stream_write(kg_stream* s, kg_str data) {
  return s ? s->state->write(sv(data)) : KG_ERR_INVALID;
}
void api_stream_close(kg_stream* s) {
  if (!s) return;
  s->state->close();
  delete s;
}

kg_status api_error_body(kg_str code, kg_str message, kg_str request_id, kg_sink_fn sink,
                         void* ud) {
  if (!sink) return KG_ERR_INVALID;
  return to_sink(sink, ud, error_response(500, sv(code), sv(message), sv(request_id)).body);
}

}  // namespace

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
    return t;
  }();
  return table;
}

}  // namespace kghost
