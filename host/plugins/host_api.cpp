// The host API table handed to every plugin: each slot is a small adapter from the C ABI to
// the host's C++ objects. Nothing here throws across the boundary.
#include <algorithm>
#include <cctype>
#include <cstring>

#include "plugins/plugin_host.hpp"

struct kg_stream {
  std::shared_ptr<kghost::StreamState> state;
};

namespace kghost {
namespace {

using State = kg_plugin_ctx::State;

Exchange* ex_of(kg_request* r) { return reinterpret_cast<Exchange*>(r); }
std::string_view sv(kg_str s) {
  return s.len ? std::string_view(s.ptr, s.len) : std::string_view();
}
kg_str ks(std::string_view s) { return kg_str{s.data(), s.size()}; }
bool registering(kg_plugin_ctx* c) { return c && c->state == State::creating; }
bool setting_up(kg_plugin_ctx* c) {
  return c && (c->state == State::creating || c->state == State::created);
}
bool header_safe(std::string_view s) { return s.find_first_of("\r\n") == std::string_view::npos; }
bool token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

// A plugin's struct as this host reads it: the bytes its struct_size covers, never more than
// the host's own sizeof, the rest zero (so a field the plugin's header lacked reads as 0).
template <class T>
T copy_in(const T* p) {
  T out{};
  if (p) std::memcpy(&out, p, std::min<std::size_t>(p->struct_size, sizeof(T)));
  return out;
}
// Writes a field of a plugin-owned out-struct only when the plugin's struct_size covers it.
#define KG_PUT(out, type, field, value)                         \
  do {                                                          \
    if (KG_HAS_FIELD(out, type, field)) (out)->field = (value); \
  } while (0)

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

// --- plugin-wide ---------------------------------------------------------------------------
void api_log_fields(kg_plugin_ctx* c, kg_request* req, kg_log_level level, kg_str msg,
                    kg_str fields_json) {
  if (!c) return;
  auto lvl = static_cast<LogLevel>(std::clamp<int32_t>(level, 0, 3));
  if (req) {
    auto* ex = ex_of(req);
    c->services->log.log(lvl, c->name, sv(msg), ex->request_id, ex->trace_id(), sv(fields_json));
  } else {
    c->services->log.log(lvl, c->name, sv(msg), {}, {}, sv(fields_json));
  }
}
void api_log(kg_plugin_ctx* c, kg_request* req, kg_log_level level, kg_str msg) {
  api_log_fields(c, req, level, msg, kg_str{nullptr, 0});
}
kg_str api_config_json(kg_plugin_ctx* c) { return ks(c->config_text); }
kg_status api_config_get(kg_plugin_ctx* c, kg_str path, kg_str* out) {
  const nlohmann::json* node = &c->config;
  std::string_view rest = sv(path);
  while (!rest.empty()) {
    auto dot = rest.find('.');
    std::string key(rest.substr(0, dot));
    if (!node->is_object() || !node->contains(key)) return KG_ERR_NOT_FOUND;
    node = &(*node)[key];
    rest = dot == std::string_view::npos ? std::string_view() : rest.substr(dot + 1);
  }
  c->kept.push_back(node->is_string() ? node->get<std::string>() : node->dump());
  *out = ks(c->kept.back());
  return KG_OK;
}
void api_set_error(kg_plugin_ctx* c, kg_str reason) { c->error = sv(reason); }
kg_str api_mode(kg_plugin_ctx* c) { return ks(c->services->mode); }

// --- registration -----------------------------------------------------------------------------
// A JSON Schema handed over as text: empty, or a JSON object or boolean.
bool schema_text(std::string_view s) {
  if (s.empty()) return true;
  auto j = nlohmann::json::parse(s, nullptr, false);
  return j.is_object() || j.is_boolean();
}
kg_status api_register_route(kg_plugin_ctx* c, const kg_route* route) {
  if (!registering(c)) return KG_ERR_STATE;
  kg_route r = copy_in(route);
  if (!route || !r.handler || !token(sv(r.method))) return KG_ERR_INVALID;
  if (!schema_text(sv(r.request_schema)) || !schema_text(sv(r.response_schema))) {
    c->services->log.log(LogLevel::error, c->name,
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
  c->routes.emplace_back(std::move(info), HandlerEntry{r.handler, r.user_data, {}});
  return KG_OK;
}
kg_status api_register_filter(kg_plugin_ctx* c, const kg_filter* filter) {
  if (!registering(c)) return KG_ERR_STATE;
  kg_filter f = copy_in(filter);
  if (!filter || !f.fn || f.scope > KG_FILTER_PATH_PREFIX) return KG_ERR_INVALID;
  std::string prefix(sv(f.path_prefix));
  if (f.scope == KG_FILTER_PATH_PREFIX && (prefix.empty() || prefix[0] != '/'))
    return KG_ERR_INVALID;
  c->filters.push_back(FilterEntry{std::string(sv(f.name)), c->name, f.order, f.fn, f.user_data,
                                   f.scope, std::move(prefix)});
  return KG_OK;
}
kg_status api_register_observer(kg_plugin_ctx* c, kg_observer_fn fn, void* ud) {
  if (!registering(c)) return KG_ERR_STATE;
  if (!fn) return KG_ERR_INVALID;
  c->observers.push_back(ObserverEntry{c->name, fn, ud});
  return KG_OK;
}
kg_status api_register_stream_observer(kg_plugin_ctx* c, kg_observer_fn fn, void* ud) {
  if (!registering(c)) return KG_ERR_STATE;
  if (!fn) return KG_ERR_INVALID;
  c->stream_observers.push_back(ObserverEntry{c->name, fn, ud});
  return KG_OK;
}
kg_status api_register_task(kg_plugin_ctx* c, const kg_task* task) {
  if (!registering(c)) return KG_ERR_STATE;
  kg_task t = copy_in(task);
  if (!task || !t.fn) return KG_ERR_INVALID;
  c->tasks.push_back({std::string(sv(t.name)), t.interval_ms, t.fn, t.user_data});
  return KG_OK;
}
kg_status api_set_health_reporter(kg_plugin_ctx* c, kg_health_fn fn, void* ud) {
  if (!registering(c)) return KG_ERR_STATE;
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
int32_t api_stop_requested(kg_stop* s) { return reinterpret_cast<StopToken*>(s)->requested(); }
int32_t api_stop_wait(kg_stop* s, uint32_t ms) {
  return reinterpret_cast<StopToken*>(s)->wait_for(std::chrono::milliseconds(ms));
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

// --- metrics ----------------------------------------------------------------------------------
kg_metric* api_metric_new(kg_plugin_ctx* c, const kg_metric_desc* desc) {
  if (!desc) return nullptr;
  kg_metric_desc copy = copy_in(desc);
  const kg_metric_desc* d = &copy;
  if (d->kind > KG_METRIC_HISTOGRAM) return nullptr;
  std::vector<std::string> labels;
  for (size_t i = 0; i < d->label_count; ++i) labels.emplace_back(sv(d->label_names[i]));
  std::vector<double> buckets;
  if (d->buckets) buckets.assign(d->buckets, d->buckets + d->bucket_count);
  std::string error;
  auto* f = c->services->metrics.family(static_cast<MetricKind>(d->kind), std::string(sv(d->name)),
                                        std::string(sv(d->help)), labels, buckets, error);
  if (!f) c->services->log.log(LogLevel::error, c->name, error);
  return reinterpret_cast<kg_metric*>(f);
}
kg_series* api_metric_series(kg_metric* m, const kg_str* values, size_t count) {
  if (!m) return nullptr;
  std::vector<std::string> v;
  for (size_t i = 0; i < count; ++i) v.emplace_back(sv(values[i]));
  return reinterpret_cast<kg_series*>(Metrics::series(*reinterpret_cast<MetricFamily*>(m), v));
}
void api_series_add(kg_series* s, double v) {
  if (s) reinterpret_cast<MetricSeries*>(s)->add(v);
}
void api_series_set(kg_series* s, double v) {
  if (s) reinterpret_cast<MetricSeries*>(s)->set(v);
}
void api_series_observe(kg_series* s, double v) {
  if (s) reinterpret_cast<MetricSeries*>(s)->observe(v);
}

// --- event bus --------------------------------------------------------------------------------
kg_status api_bus_publish(kg_plugin_ctx* c, kg_str topic, kg_str data, kg_str id) {
  return c->services->bus.publish(sv(topic), sv(data), sv(id)) ? KG_OK : KG_ERR_INVALID;
}
kg_status api_bus_publish_confirmed(kg_plugin_ctx* c, kg_str topic, kg_str data, kg_str id,
                                    void (*done)(void*, kg_status), void* ud) {
  if (!done) return KG_ERR_INVALID;
  auto published = c->services->bus.publish_confirmed(
      sv(topic), sv(data), sv(id), [done, ud](bool ok) { done(ud, ok ? KG_OK : KG_ERR_INTERNAL); });
  return published ? KG_OK : KG_ERR_INVALID;
}
kg_status api_bus_subscribe(kg_plugin_ctx* c, kg_str pattern, kg_bus_fn fn, void* ud) {
  if (!setting_up(c)) return KG_ERR_STATE;
  if (!fn || !valid_pattern(sv(pattern))) return KG_ERR_INVALID;
  if (c->state == State::creating) {  // subscribed for real only if create succeeds
    c->subscriptions.push_back({std::string(sv(pattern)), fn, ud});
    return KG_OK;
  }
  return PluginHost::subscribe(*c, sv(pattern), fn, ud) ? KG_OK : KG_ERR_INVALID;
}

// --- store ------------------------------------------------------------------------------------
kg_status to_status(StoreCode code) {
  switch (code) {
    case StoreCode::ok:
      return KG_OK;
    case StoreCode::not_found:
      return KG_ERR_NOT_FOUND;
    case StoreCode::error:
      return KG_ERR_UNAVAILABLE;
  }
  return KG_ERR_INTERNAL;
}
// Fills the fields of the caller's result that its struct_size covers; never struct_size.
void fill(kg_store_result* out, const StoreReply& r, std::string_view data) {
  KG_PUT(out, kg_store_result, status, to_status(r.code));
  KG_PUT(out, kg_store_result, created, r.created);
  KG_PUT(out, kg_store_result, value, r.value);
  KG_PUT(out, kg_store_result, ttl_ms, r.ttl_ms);
  KG_PUT(out, kg_store_result, data, r.code == StoreCode::ok ? ks(data) : kg_str());
}
// Adapts one store call: answer now into *now, or later through done.
template <class Call>
kg_status store_call(kg_store_result* now, kg_store_fn done, void* ud, Call&& call) {
  StoreDone later = [done, ud](const StoreReply& r) {
    if (!done) return;
    kg_store_result res{};
    res.struct_size = sizeof res;  // the host's own struct: the plugin reads what it knows
    fill(&res, r, r.data);
    done(ud, &res);
  };
  std::optional<StoreReply> reply = call(std::move(later));
  if (!reply) return KG_PENDING;
  thread_local std::string data;  // now->data: valid until the next store call on this thread
  data = std::move(reply->data);
  if (now) fill(now, *reply, data);
  return KG_OK;
}
std::chrono::milliseconds ms(int64_t v) { return std::chrono::milliseconds(v); }

// Every key lives under a prefix: the plugin's own ("plugin/<name>/") or a shared space's
// ("shared/<name>/"). Names hold no '/', so no two prefixes overlap.
struct KeySpace {
  kg_plugin_ctx* c;
  std::string_view prefix;
  std::string key(kg_str k) const { return std::string(prefix).append(sv(k)); }
  Store& store() const { return c->services->store; }
};
KeySpace own(kg_plugin_ctx* c) { return {c, c->store_prefix}; }
KeySpace shared(kg_store_space* s) { return {s->owner, s->prefix}; }

kg_status check_and_set_in(KeySpace space, kg_str key, int64_t ttl, kg_store_result* now,
                           kg_store_fn done, void* ud) {
  return store_call(now, done, ud, [&](StoreDone d) {
    return space.store().check_and_set(space.key(key), ms(ttl), std::move(d));
  });
}
kg_status incr_in(KeySpace space, kg_str key, int64_t delta, int64_t ttl, kg_store_result* now,
                  kg_store_fn done, void* ud) {
  return store_call(now, done, ud, [&](StoreDone d) {
    return space.store().incr(space.key(key), delta, ms(ttl), std::move(d));
  });
}
kg_status get_in(KeySpace space, kg_str key, kg_store_result* now, kg_store_fn done, void* ud) {
  return store_call(now, done, ud,
                    [&](StoreDone d) { return space.store().get(space.key(key), std::move(d)); });
}
kg_status put_in(KeySpace space, kg_str key, kg_str value, int64_t ttl, kg_store_result* now,
                 kg_store_fn done, void* ud) {
  return store_call(now, done, ud, [&](StoreDone d) {
    return space.store().put(space.key(key), sv(value), ms(ttl), std::move(d));
  });
}
kg_status del_in(KeySpace space, kg_str key, kg_store_result* now, kg_store_fn done, void* ud) {
  return store_call(now, done, ud,
                    [&](StoreDone d) { return space.store().del(space.key(key), std::move(d)); });
}

kg_status api_check_and_set(kg_plugin_ctx* c, kg_str key, int64_t ttl, kg_store_result* now,
                            kg_store_fn done, void* ud) {
  return check_and_set_in(own(c), key, ttl, now, done, ud);
}
kg_status api_incr(kg_plugin_ctx* c, kg_str key, int64_t delta, int64_t ttl, kg_store_result* now,
                   kg_store_fn done, void* ud) {
  return incr_in(own(c), key, delta, ttl, now, done, ud);
}
kg_status api_get(kg_plugin_ctx* c, kg_str key, kg_store_result* now, kg_store_fn done, void* ud) {
  return get_in(own(c), key, now, done, ud);
}
kg_status api_put(kg_plugin_ctx* c, kg_str key, kg_str value, int64_t ttl, kg_store_result* now,
                  kg_store_fn done, void* ud) {
  return put_in(own(c), key, value, ttl, now, done, ud);
}
kg_status api_del(kg_plugin_ctx* c, kg_str key, kg_store_result* now, kg_store_fn done, void* ud) {
  return del_in(own(c), key, now, done, ud);
}

kg_store_space* api_store_shared(kg_plugin_ctx* c, kg_str name) {
  if (!setting_up(c)) return nullptr;
  std::string n(sv(name));
  bool ok = !n.empty() && n.size() <= 64 && std::all_of(n.begin(), n.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' ||
           ch == '-';
  });
  if (!ok) return nullptr;
  std::string prefix = "shared/" + n + "/";
  for (auto& s : c->spaces) {
    if (s.prefix == prefix) return &s;
  }
  return &c->spaces.emplace_back(kg_store_space{c, std::move(prefix)});
}
kg_status api_shared_check_and_set(kg_store_space* s, kg_str key, int64_t ttl, kg_store_result* now,
                                   kg_store_fn done, void* ud) {
  return s ? check_and_set_in(shared(s), key, ttl, now, done, ud) : KG_ERR_INVALID;
}
kg_status api_shared_incr(kg_store_space* s, kg_str key, int64_t delta, int64_t ttl,
                          kg_store_result* now, kg_store_fn done, void* ud) {
  return s ? incr_in(shared(s), key, delta, ttl, now, done, ud) : KG_ERR_INVALID;
}
kg_status api_shared_get(kg_store_space* s, kg_str key, kg_store_result* now, kg_store_fn done,
                         void* ud) {
  return s ? get_in(shared(s), key, now, done, ud) : KG_ERR_INVALID;
}
kg_status api_shared_put(kg_store_space* s, kg_str key, kg_str value, int64_t ttl,
                         kg_store_result* now, kg_store_fn done, void* ud) {
  return s ? put_in(shared(s), key, value, ttl, now, done, ud) : KG_ERR_INVALID;
}
kg_status api_shared_del(kg_store_space* s, kg_str key, kg_store_result* now, kg_store_fn done,
                         void* ud) {
  return s ? del_in(shared(s), key, now, done, ud) : KG_ERR_INVALID;
}

// --- durable queue ----------------------------------------------------------------------------
DurableQueue* q_of(kg_queue* q) { return reinterpret_cast<DurableQueue*>(q); }
kg_queue* api_queue_open(kg_plugin_ctx* c, kg_str name, const kg_queue_options* options) {
  if (!setting_up(c)) return nullptr;
  std::string n(sv(name));
  if (!token(n) || n.find("..") != std::string::npos || n.find('.') == 0) {
    c->error = "queue name \"" + n + "\" must be [A-Za-z0-9_-]";
    return nullptr;
  }
  kg_queue_options o = copy_in(options);  // zero (host defaults) past the plugin's struct_size
  QueueOptions opts;
  opts.dir = c->services->data_dir / "queues" / c->name / n;
  opts.name = c->name + "." + n;
  if (o.max_attempts) opts.max_attempts = o.max_attempts;
  if (o.max_bytes) opts.max_bytes = o.max_bytes;
  if (o.retry_backoff_ms) opts.retry_backoff = std::chrono::milliseconds(o.retry_backoff_ms);
  try {
    c->queues.push_back(DurableQueue::open(opts, c->services->pool, c->services->metrics.registry(),
                                           c->services->log));
  } catch (const std::exception& e) {
    c->error = std::string("cannot open durable queue ") + opts.name + ": " + e.what();
    c->services->log.log(LogLevel::error, c->name, c->error);
    return nullptr;
  }
  return reinterpret_cast<kg_queue*>(c->queues.back().get());
}
kg_status api_queue_append(kg_queue* q, kg_str data, kg_append_fn done, void* ud) {
  if (!q) return KG_ERR_INVALID;
  auto st = q_of(q)->append(sv(data), [done, ud](AppendStatus s, uint64_t id) {
    if (done) done(ud, s == AppendStatus::ok ? KG_OK : KG_ERR_UNAVAILABLE, id);
  });
  switch (st) {
    case AppendStatus::ok:
      return KG_PENDING;
    case AppendStatus::full:
      return KG_ERR_FULL;
    case AppendStatus::io_error:
      return KG_ERR_UNAVAILABLE;
  }
  return KG_ERR_INTERNAL;
}
thread_local std::string consumer_reason;  // set by queue_fail_reason during a consumer call
void api_queue_fail_reason(kg_str reason) { consumer_reason = sv(reason); }
kg_status api_queue_consume(kg_queue* q, kg_consume_fn fn, void* ud) {
  if (!q || !fn) return KG_ERR_INVALID;
  q_of(q)->consume([fn, ud](const QueueEntry& e, std::string& error) {
    kg_queue_entry ce{sizeof(kg_queue_entry), e.id, e.attempt, ks(e.data), ks(e.last_error)};
    consumer_reason.clear();
    kg_status st = fn(ud, &ce);
    if (st == KG_OK) return DurableQueue::Outcome::ack;
    error = consumer_reason.empty() ? "consumer returned status " + std::to_string(st)
                                    : std::move(consumer_reason);
    return DurableQueue::Outcome::retry;
  });
  return KG_OK;
}
uint64_t api_queue_depth(kg_queue* q) { return q ? q_of(q)->depth() : 0; }
kg_status api_queue_list_dead(kg_queue* q, kg_entry_visit_fn visit, void* ud) {
  if (!q || !visit) return KG_ERR_INVALID;
  q_of(q)->list_dead([&](const QueueEntry& e) {
    kg_queue_entry ce{sizeof(kg_queue_entry), e.id, e.attempt, ks(e.data), ks(e.last_error)};
    return visit(ud, &ce) == 0;
  });
  return KG_OK;
}
kg_status api_queue_replay(kg_queue* q, uint64_t id) {
  if (!q) return KG_ERR_INVALID;
  return q_of(q)->replay(id) ? KG_OK : KG_ERR_NOT_FOUND;
}

// --- introspection ----------------------------------------------------------------------------
kg_status api_metrics_render(kg_plugin_ctx* c, kg_sink_fn sink, void* ud) {
  if (!sink) return KG_ERR_INVALID;
  std::string text = c->services->metrics.render();
  sink(ud, ks(text));
  return KG_OK;
}
kg_status api_health_render(kg_plugin_ctx* c, kg_sink_fn sink, void* ud) {
  if (!sink) return KG_ERR_INVALID;
  std::string text = c->services->render_health();
  sink(ud, ks(text));
  return KG_OK;
}

kg_status api_error_body(kg_str code, kg_str message, kg_str request_id, kg_sink_fn sink,
                         void* ud) {
  if (!sink) return KG_ERR_INVALID;
  auto body = error_response(500, sv(code), sv(message), sv(request_id)).body;
  sink(ud, ks(body));
  return KG_OK;
}
kg_str api_data_dir(kg_plugin_ctx* c) { return ks(c->services->data_dir_text); }
kg_health_status api_store_status(kg_plugin_ctx* c) {
  return static_cast<kg_health_status>(c->services->store.health().status);
}

}  // namespace

bool PluginHost::subscribe(kg_plugin_ctx& c, std::string_view pattern, kg_bus_fn fn, void* ud) {
  return c.services->bus.subscribe(pattern, c.name, [fn, ud](const BusEvent& e) {
    kg_bus_event ev{sizeof(kg_bus_event), ks(e.topic), ks(e.data), ks(e.id)};
    return fn(ud, &ev) == KG_OK;
  }) != 0;
}

const kg_host_api& PluginHost::api() {
  static const kg_host_api table = [] {
    kg_host_api t{};
    t.struct_size = sizeof(kg_host_api);
    t.abi_major = KG_ABI_MAJOR;
    t.abi_minor = KG_ABI_MINOR;
    t.log = api_log;
    t.config_json = api_config_json;
    t.config_get = api_config_get;
    t.set_error = api_set_error;
    t.mode = api_mode;
    t.register_route = api_register_route;
    t.register_filter = api_register_filter;
    t.register_observer = api_register_observer;
    t.register_task = api_register_task;
    t.set_health_reporter = api_set_health_reporter;
    t.health_set = api_health_set;
    t.stop_requested = api_stop_requested;
    t.stop_wait = api_stop_wait;
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
    t.metric_new = api_metric_new;
    t.metric_series = api_metric_series;
    t.series_add = api_series_add;
    t.series_set = api_series_set;
    t.series_observe = api_series_observe;
    t.bus_publish = api_bus_publish;
    t.bus_subscribe = api_bus_subscribe;
    t.store_check_and_set = api_check_and_set;
    t.store_incr = api_incr;
    t.store_get = api_get;
    t.store_put = api_put;
    t.store_del = api_del;
    t.queue_open = api_queue_open;
    t.queue_append = api_queue_append;
    t.queue_consume = api_queue_consume;
    t.queue_depth = api_queue_depth;
    t.queue_list_dead = api_queue_list_dead;
    t.queue_replay = api_queue_replay;
    t.metrics_render = api_metrics_render;
    t.health_render = api_health_render;
    t.data_dir = api_data_dir;
    t.store_status = api_store_status;
    t.queue_fail_reason = api_queue_fail_reason;
    t.error_body = api_error_body;
    // 1.1
    t.reply_error = api_reply_error;
    t.register_stream_observer = api_register_stream_observer;
    t.store_shared = api_store_shared;
    t.shared_check_and_set = api_shared_check_and_set;
    t.shared_incr = api_shared_incr;
    t.shared_get = api_shared_get;
    t.shared_put = api_shared_put;
    t.shared_del = api_shared_del;
    t.bus_publish_confirmed = api_bus_publish_confirmed;
    t.log_fields = api_log_fields;
    return t;
  }();
  return table;
}

}  // namespace kghost
