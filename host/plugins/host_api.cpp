// The host API table handed to every plugin. Each domain's slots are in their own file beside
// this one (request_api.cpp for the request, api_*.cpp for the rest).
#include "plugins/host_api.hpp"

namespace kghost {

<<<<<<< HEAD
const kg_host_api& host_api() {
=======
using State = kg_plugin_ctx::State;
using abi::copy_in;
using abi::header_safe;
using abi::ks;
using abi::sv;
using abi::token;

bool registering(kg_plugin_ctx* c) { return c && c->state == State::creating; }
bool setting_up(kg_plugin_ctx* c) {
  return c && (c->state == State::creating || c->state == State::created);
}

// --- plugin-wide ---------------------------------------------------------------------------
void api_log_fields(kg_plugin_ctx* c, kg_request* req, kg_log_level level, kg_str msg,
                    kg_str fields_json) {
  if (!c) return;
  auto lvl = static_cast<LogLevel>(std::clamp<int32_t>(level, 0, 3));
  if (req) {
    auto* ex = exchange_of(req);
    c->services->log.log(lvl, c->name, sv(msg), ex->request_id(), ex->trace_id(), sv(fields_json));
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
  c->routes.emplace_back(std::move(info), HandlerEntry{plugin_handler(r.handler, r.user_data)});
  return KG_OK;
}
kg_status api_register_filter(kg_plugin_ctx* c, const kg_filter* filter) {
  if (!registering(c)) return KG_ERR_STATE;
  kg_filter f = copy_in(filter);
  if (!filter || !f.fn || f.scope > KG_FILTER_PATH_PREFIX) return KG_ERR_INVALID;
  std::string prefix(sv(f.path_prefix));
  if (f.scope == KG_FILTER_PATH_PREFIX && (prefix.empty() || prefix[0] != '/'))
    return KG_ERR_INVALID;
  c->filters.push_back(FilterEntry{std::string(sv(f.name)), c->name, f.order,
                                   plugin_filter(f.fn, f.user_data), filter_scope(f.scope),
                                   std::move(prefix)});
  return KG_OK;
}
kg_status api_register_observer(kg_plugin_ctx* c, kg_observer_fn fn, void* ud) {
  if (!registering(c)) return KG_ERR_STATE;
  if (!fn) return KG_ERR_INVALID;
  c->observers.push_back(ObserverEntry{c->name, plugin_observer(fn, ud)});
  return KG_OK;
}
kg_status api_register_stream_observer(kg_plugin_ctx* c, kg_observer_fn fn, void* ud) {
  if (!registering(c)) return KG_ERR_STATE;
  if (!fn) return KG_ERR_INVALID;
  c->stream_observers.push_back(ObserverEntry{c->name, plugin_observer(fn, ud)});
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
>>>>>>> 07507d3 (http: per-thread reference to the served table (no shared cache line per request); chunked size line in its own function; docs: architecture tour, layout table)
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
