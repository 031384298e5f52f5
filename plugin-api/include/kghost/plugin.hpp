// kghost plugin SDK: a header-only C++20 layer over the C ABI in plugin.h.
//
//   class Hello : public kghost::sdk::Plugin {
//    public:
//     explicit Hello(kghost::sdk::Host host) : Plugin(host) {
//       route({.method = "GET", .path = "/hello/{name}", .is_public = true},
//             [](kghost::sdk::Request& req) {
//               req.respond(200, R"({"hello":")" + kghost::sdk::json_escape(*req.param("name")) +
//                                    "\"}");
//             });
//     }
//   };
//   KGHOST_PLUGIN(Hello, "hello", "1.0.0", "Says hello", 0)
//
// Every callback the SDK hands to the host is wrapped: an exception becomes an error status
// (a 500 for a request) and a log line naming the plugin; nothing C++ crosses the boundary.
// Threading and ownership are those of the C function each method wraps (see plugin.h).
// Built with this SDK a plugin declares ABI 1.1, so the host it loads into has every 1.1 slot.
#pragma once

#include <kghost/plugin.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <kghost/sdk/text.hpp>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kghost::sdk {

inline kg_str str(std::string_view s) { return kg_str{s.data(), s.size()}; }
inline std::string_view view(kg_str s) {
  return s.len ? std::string_view(s.ptr, s.len) : std::string_view();
}

// Appends `s` as the inside of a JSON string literal (RFC 8259): quotes, backslashes and
// control characters escaped; other bytes (UTF-8 included) copied as they are. Small on
// purpose, so that a plugin writing a little JSON needs no JSON library.
inline void append_json_escaped(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xf];
        } else {
          out += ch;
        }
    }
  }
}
// The same as a new string.
inline std::string json_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  append_json_escaped(out, s);
  return out;
}

struct Principal {
  std::string_view user_id, tenant_id, tier, scopes;
  bool has_scope(std::string_view scope) const { return sdk::has_scope(scopes, scope); }
};

struct Header {
  std::string name, value;
};
// A header borrowed from the caller's buffers (nothing copied until the host takes it).
struct HeaderRef {
  std::string_view name, value;
};

// A response to send: status, body, content type (default application/json), extra headers.
struct Response {
  uint16_t status = 200;
  std::string body{};
  std::string content_type{};
  std::vector<Header> headers{};
};

namespace detail {
struct CResponse {  // keeps kg_header views alive while the C struct is in use
  explicit CResponse(const Response& r) {
    hs.reserve(r.headers.size());
    for (auto& h : r.headers) hs.push_back(kg_header{str(h.name), str(h.value)});
    c.struct_size = sizeof(kg_response);
    c.status = r.status;
    c.content_type = str(r.content_type);
    c.body = str(r.body);
    c.headers = hs.data();
    c.header_count = hs.size();
  }
  std::vector<kg_header> hs;
  kg_response c{};
};
struct CError {  // the same for an error answer
  CError(uint16_t status, std::string_view code, std::string_view message,
         const std::vector<Header>& headers) {
    hs.reserve(headers.size());
    for (auto& h : headers) hs.push_back(kg_header{str(h.name), str(h.value)});
    c = kg_error{sizeof(kg_error), status, str(code), str(message), hs.data(), hs.size()};
  }
  std::vector<kg_header> hs;
  kg_error c{};
};
// Borrowed headers as the C ABI's kg_header array: inline for a few, allocated beyond.
class CHeaderRefs {
 public:
  explicit CHeaderRefs(std::span<const HeaderRef> hs) : n_(hs.size()) {
    kg_header* out = inline_;
    if (n_ > kInline) {
      heap_.resize(n_);
      out = heap_.data();
    }
    for (std::size_t i = 0; i < n_; ++i) out[i] = kg_header{str(hs[i].name), str(hs[i].value)};
  }
  const kg_header* data() const { return n_ > kInline ? heap_.data() : inline_; }
  std::size_t size() const { return n_; }

 private:
  static constexpr std::size_t kInline = 8;
  std::size_t n_;
  kg_header inline_[kInline]{};
  std::vector<kg_header> heap_;
};
inline void log_error(const kg_host_api* api, kg_plugin_ctx* ctx, std::string_view msg) {
  if (api && ctx) api->log(ctx, nullptr, KG_LOG_ERROR, str(msg));
}
// Runs a plugin callback that must not throw across the boundary; logs (naming the plugin)
// what it swallows.
template <class Fn>
void guarded(const kg_host_api* api, kg_plugin_ctx* ctx, std::string_view what, Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    log_error(api, ctx, std::string(what) + " failed: " + e.what());
  } catch (...) {
    log_error(api, ctx, std::string(what) + " failed with an unknown exception");
  }
}
}  // namespace detail

// A deferred answer. Complete it exactly once, from any thread. If it is destroyed without
// being completed, it answers 500 so that no request is left hanging.
class Responder {
 public:
  Responder() = default;
  Responder(const kg_host_api* api, kg_responder* r) : api_(api), r_(r) {}
  Responder(Responder&& o) noexcept : api_(o.api_), r_(std::exchange(o.r_, nullptr)) {}
  Responder& operator=(Responder&& o) noexcept {
    if (this != &o) {
      abandon();
      api_ = o.api_;
      r_ = std::exchange(o.r_, nullptr);
    }
    return *this;
  }
  ~Responder() { abandon(); }

  explicit operator bool() const { return r_ != nullptr; }
  void complete(const Response& response) {
    if (!r_) return;
    detail::CResponse c(response);
    api_->complete(std::exchange(r_, nullptr), &c.c);
  }
  // From a filter: pass the request on, adding these headers to the eventual response.
  void proceed(const std::vector<Header>& headers = {}) {
    Response r;
    r.status = 0;
    r.headers = headers;
    complete(r);
  }
  // The same with headers borrowed from the caller's buffers: nothing is copied on the way.
  void proceed(std::span<const HeaderRef> headers) {
    if (!r_) return;
    detail::CHeaderRefs hs(headers);
    kg_response c{};
    c.struct_size = sizeof c;
    c.status = 0;
    c.headers = hs.data();
    c.header_count = hs.size();
    api_->complete(std::exchange(r_, nullptr), &c);
  }
  // The contract's error JSON; `headers` (e.g. Retry-After) go with it.
  void error(uint16_t status, std::string_view code, std::string_view message,
             const std::vector<Header>& headers = {}) {
    if (!r_) return;
    detail::CError e(status, code, message, headers);
    api_->reply_error(nullptr, std::exchange(r_, nullptr), &e.c);
  }
  void error(uint16_t status, std::string_view code, std::string_view message,
             std::span<const HeaderRef> headers) {
    if (!r_) return;
    detail::CHeaderRefs hs(headers);
    kg_error e{sizeof(kg_error), status, str(code), str(message), hs.data(), hs.size()};
    api_->reply_error(nullptr, std::exchange(r_, nullptr), &e);
  }

 private:
  void abandon() {
    if (r_) error(500, "internal_error", "the plugin dropped the request without answering");
  }
  const kg_host_api* api_ = nullptr;
  kg_responder* r_ = nullptr;
};

// A streamed response (e.g. SSE). Closed by its destructor if not closed before.
class Stream {
 public:
  Stream() = default;
  Stream(const kg_host_api* api, kg_stream* s) : api_(api), s_(s) {}
  Stream(Stream&& o) noexcept : api_(o.api_), s_(std::exchange(o.s_, nullptr)) {}
  Stream& operator=(Stream&& o) noexcept {
    if (this != &o) {
      close();
      api_ = o.api_;
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  ~Stream() { close(); }
  explicit operator bool() const { return s_ != nullptr; }
  // KG_OK, KG_ERR_FULL (slow client) or KG_ERR_CLOSED (client left).
  kg_status write(std::string_view data) {
    return s_ ? api_->stream_write(s_, str(data)) : KG_ERR_CLOSED;
  }
  void close() {
    if (s_) api_->stream_close(std::exchange(s_, nullptr));
  }

 private:
  const kg_host_api* api_ = nullptr;
  kg_stream* s_ = nullptr;
};

// The request being handled. Valid only inside the callback that received it.
class Request {
 public:
  Request(const kg_host_api* api, kg_request* req, kg_plugin_ctx* ctx = nullptr)
      : api_(api), req_(req), ctx_(ctx) {}

  std::string_view method() const { return view(api_->request_method(req_)); }
  std::string_view path() const { return view(api_->request_path(req_)); }
  std::string_view query() const { return view(api_->request_query(req_)); }
  std::string_view route() const { return view(api_->request_route(req_)); }
  std::string_view route_scopes() const { return view(api_->request_route_scopes(req_)); }
  bool route_is_public() const { return api_->request_route_public(req_) != 0; }
  std::string_view body() const { return view(api_->request_body(req_)); }
  std::string_view id() const { return view(api_->request_id(req_)); }
  std::string_view remote_addr() const { return view(api_->request_remote_addr(req_)); }
  std::string_view traceparent() const { return view(api_->request_traceparent(req_)); }

  std::optional<std::string_view> header(std::string_view name, size_t index = 0) const {
    kg_str out{};
    if (api_->request_header(req_, str(name), index, &out) != KG_OK) return std::nullopt;
    return view(out);
  }
  std::optional<std::string_view> param(std::string_view name) const {
    kg_str out{};
    if (api_->request_param(req_, str(name), &out) != KG_OK) return std::nullopt;
    return view(out);
  }
  std::optional<std::string_view> query_param(std::string_view name) const {
    kg_str out{};
    if (api_->request_query_param(req_, str(name), &out) != KG_OK) return std::nullopt;
    return view(out);
  }

  std::optional<Principal> principal() const {
    kg_principal p{};
    p.struct_size = sizeof p;
    if (api_->get_principal(req_, &p) != KG_OK) return std::nullopt;
    return Principal{view(p.user_id), view(p.tenant_id), view(p.tier), view(p.scopes)};
  }
  void set_principal(const Principal& p) {
    kg_principal c{sizeof(kg_principal), str(p.user_id), str(p.tenant_id), str(p.tier),
                   str(p.scopes)};
    api_->set_principal(req_, &c);
  }
  void add_header(std::string_view name, std::string_view value) {
    api_->add_response_header(req_, str(name), str(value));
  }

  void respond(const Response& response) {
    detail::CResponse c(response);
    api_->respond(req_, &c.c);
  }
  void respond(uint16_t status, std::string body, std::string content_type = {}) {
    respond(Response{status, std::move(body), std::move(content_type), {}});
  }
  // The contract's error JSON, with this request's id; `headers` (e.g. Retry-After) go with it.
  void error(uint16_t status, std::string_view code, std::string_view message,
             const std::vector<Header>& headers = {}) {
    detail::CError e(status, code, message, headers);
    api_->reply_error(req_, nullptr, &e.c);
  }
  // Tenant isolation: true when the caller's tenant owns the resource. Otherwise answers
  // 404 not_found (never 403, so nobody can probe which resources exist) and returns false.
  bool owns_or_404(std::string_view resource_tenant) {
    auto p = principal();
    if (p && p->tenant_id == resource_tenant) return true;
    error(404, "not_found", "no such resource");
    return false;
  }

  Responder defer() {
    kg_responder* r = api_->defer(req_);
    later_ = later_ || r != nullptr;
    return Responder(api_, r);
  }
  // Starts a chunked response; on_closed runs once when the client leaves (any thread).
  Stream stream(const Response& head, std::function<void()> on_closed = {}) {
    detail::CResponse c(head);
    struct Closed {
      const kg_host_api* api;
      kg_plugin_ctx* ctx;
      std::function<void()> fn;
    };
    auto* cb = on_closed ? new Closed{api_, ctx_, std::move(on_closed)} : nullptr;
    kg_stream* s = api_->stream_begin(
        req_, &c.c,
        cb ? +[](void* ud) {
          auto* f = static_cast<Closed*>(ud);
          detail::guarded(f->api, f->ctx, "stream on_closed callback", f->fn);
          delete f;
        }
           : nullptr,
        cb);
    if (!s) delete cb;
    later_ = later_ || s != nullptr;
    return Stream(api_, s);
  }

  kg_request* raw() const { return req_; }
  // True once defer() or stream() handed the answer to later.
  bool answered_later() const { return later_; }

 private:
  const kg_host_api* api_;
  kg_request* req_;
  kg_plugin_ctx* ctx_;  // for log lines; may be NULL
  bool later_ = false;
};

// What a handler or filter returns.
enum class Flow : kg_status { done = KG_OK, pending = KG_PENDING, next = KG_CONTINUE };

struct RouteSpec {
  std::string_view method{};
  std::string_view path{};
  std::string_view scopes{};  // space-separated, all required
  bool is_public = false;
  std::string_view summary{};
  // For /openapi.json: longer text, and JSON Schemas (JSON text) of the request body and of
  // the success response body. Empty: not documented.
  std::string_view description{};
  std::string_view request_schema{};
  std::string_view response_schema{};
  // A deferred answer not completed in time gets 504 gateway_timeout. 0: the host's default.
  std::chrono::milliseconds timeout{0};
};

// Which requests a filter runs on (see kg_filter_scope).
struct FilterScope {
  kg_filter_scope scope = KG_FILTER_ALL_ROUTES;
  std::string_view path_prefix{};
  static FilterScope all_routes() { return {}; }
  static FilterScope own_routes() { return {KG_FILTER_OWN_ROUTES, {}}; }
  static FilterScope under(std::string_view prefix) { return {KG_FILTER_PATH_PREFIX, prefix}; }
};

struct StoreResult {
  kg_status status = KG_OK;
  bool created = false;
  int64_t value = 0;
  int64_t ttl_ms = -1;
  std::string data;
};

struct QueueEntry {
  uint64_t id;
  uint32_t attempt;
  std::string_view data;
  std::string_view last_error;
};

class Host;

class Metric {
 public:
  Metric() = default;
  Metric(const kg_host_api* api, kg_metric* m) : api_(api), m_(m) {}
  class Series {
   public:
    Series() = default;
    Series(const kg_host_api* api, kg_series* s) : api_(api), s_(s) {}
    void add(double v = 1) const {
      if (s_) api_->series_add(s_, v);
    }
    void set(double v) const {
      if (s_) api_->series_set(s_, v);
    }
    void observe(double v) const {
      if (s_) api_->series_observe(s_, v);
    }

   private:
    const kg_host_api* api_ = nullptr;
    kg_series* s_ = nullptr;
  };
  // Look a series up once and keep it.
  Series series(std::initializer_list<std::string_view> values = {}) const {
    if (!m_) return {};
    std::vector<kg_str> v;
    for (auto s : values) v.push_back(str(s));
    return Series(api_, api_->metric_series(m_, v.data(), v.size()));
  }

 private:
  const kg_host_api* api_ = nullptr;
  kg_metric* m_ = nullptr;
};

class Queue {
 public:
  Queue() = default;
  Queue(const kg_host_api* api, kg_queue* q, kg_plugin_ctx* ctx = nullptr)
      : api_(api), q_(q), ctx_(ctx) {}
  explicit operator bool() const { return q_ != nullptr; }
  // KG_PENDING: done(status, id) follows once durable; KG_ERR_FULL: over the bound, answer 503.
  kg_status append(std::string_view data, std::function<void(kg_status, uint64_t)> done) {
    struct Done {
      const kg_host_api* api;
      kg_plugin_ctx* ctx;
      std::function<void(kg_status, uint64_t)> fn;
    };
    auto* f = new Done{api_, ctx_, std::move(done)};
    kg_status st = api_->queue_append(
        q_, str(data),
        [](void* ud, kg_status s, uint64_t id) {
          auto* d = static_cast<Done*>(ud);
          detail::guarded(d->api, d->ctx, "queue append callback", [&] { d->fn(s, id); });
          delete d;
        },
        f);
    if (st != KG_PENDING) delete f;
    return st;
  }
  uint64_t depth() const { return q_ ? api_->queue_depth(q_) : 0; }
  // Inside a consumer call: why this attempt fails (kept with the entry if it dead-letters).
  void fail_reason(std::string_view why) const {
    if (KG_HOST_HAS(api_, queue_fail_reason)) api_->queue_fail_reason(str(why));
  }
  kg_status replay(uint64_t id) { return api_->queue_replay(q_, id); }
  // Stops at the first entry `visit` returns false for (or throws on: logged).
  void list_dead(const std::function<bool(const QueueEntry&)>& visit) const {
    struct Visit {
      const Queue* self;
      const std::function<bool(const QueueEntry&)>& fn;
    } v{this, visit};
    api_->queue_list_dead(
        q_,
        [](void* ud, const kg_queue_entry* e) -> int32_t {
          auto& v = *static_cast<Visit*>(ud);
          bool go_on = false;
          detail::guarded(v.self->api_, v.self->ctx_, "dead-letter visitor", [&] {
            go_on = v.fn(QueueEntry{e->id, e->attempt, view(e->data), view(e->last_error)});
          });
          return go_on ? 0 : 1;
        },
        &v);
  }
  kg_queue* raw() const { return q_; }

 private:
  const kg_host_api* api_ = nullptr;
  kg_queue* q_ = nullptr;
  kg_plugin_ctx* ctx_ = nullptr;  // for log lines
};

namespace detail {
inline StoreResult to_result(const kg_store_result& r) {
  return StoreResult{r.status, r.created != 0, r.value, r.ttl_ms, std::string(view(r.data))};
}
// One store call through `call(now, fn, ud)`: answers now, or later through `later`.
template <class Call>
std::optional<StoreResult> store_call(const kg_host_api* api, kg_plugin_ctx* ctx,
                                      std::function<void(const StoreResult&)> later, Call&& call) {
  struct Later {
    const kg_host_api* api;
    kg_plugin_ctx* ctx;
    std::function<void(const StoreResult&)> fn;
  };
  auto* f = new Later{api, ctx, std::move(later)};
  kg_store_result now{};
  now.struct_size = sizeof now;
  kg_status st = call(
      &now,
      +[](void* ud, const kg_store_result* r) {
        auto* l = static_cast<Later*>(ud);
        guarded(l->api, l->ctx, "store callback", [&] { l->fn(to_result(*r)); });
        delete l;
      },
      f);
  if (st == KG_PENDING) return std::nullopt;
  delete f;
  if (st != KG_OK) return StoreResult{st, false, 0, -1, {}};
  return to_result(now);
}
}  // namespace detail

// A store key space shared with the other plugins that open the same name (Host::shared_store).
// The same calls as Host's own store; cheap to copy; valid until the plugin is destroyed.
class SharedStore {
 public:
  using StoreDone = std::function<void(const StoreResult&)>;
  SharedStore() = default;
  SharedStore(const kg_host_api* api, kg_plugin_ctx* ctx, kg_store_space* space)
      : api_(api), ctx_(ctx), space_(space) {}
  explicit operator bool() const { return space_ != nullptr; }
  std::optional<StoreResult> check_and_set(std::string_view key, std::chrono::milliseconds ttl,
                                           StoreDone later) const {
    return detail::store_call(api_, ctx_, std::move(later), [&](auto now, auto fn, auto ud) {
      return api_->shared_check_and_set(space_, str(key), ttl.count(), now, fn, ud);
    });
  }
  std::optional<StoreResult> incr(std::string_view key, int64_t delta,
                                  std::chrono::milliseconds ttl, StoreDone later) const {
    return detail::store_call(api_, ctx_, std::move(later), [&](auto now, auto fn, auto ud) {
      return api_->shared_incr(space_, str(key), delta, ttl.count(), now, fn, ud);
    });
  }
  std::optional<StoreResult> get(std::string_view key, StoreDone later) const {
    return detail::store_call(api_, ctx_, std::move(later), [&](auto now, auto fn, auto ud) {
      return api_->shared_get(space_, str(key), now, fn, ud);
    });
  }
  std::optional<StoreResult> put(std::string_view key, std::string_view value,
                                 std::chrono::milliseconds ttl, StoreDone later) const {
    return detail::store_call(api_, ctx_, std::move(later), [&](auto now, auto fn, auto ud) {
      return api_->shared_put(space_, str(key), str(value), ttl.count(), now, fn, ud);
    });
  }
  std::optional<StoreResult> del(std::string_view key, StoreDone later) const {
    return detail::store_call(api_, ctx_, std::move(later), [&](auto now, auto fn, auto ud) {
      return api_->shared_del(space_, str(key), now, fn, ud);
    });
  }

 private:
  const kg_host_api* api_ = nullptr;
  kg_plugin_ctx* ctx_ = nullptr;
  kg_store_space* space_ = nullptr;
};

// The plugin's view of the host. Cheap to copy. Registration methods: [main] during create.
class Host {
 public:
  Host(const kg_host_api* api, kg_plugin_ctx* ctx) : api_(api), ctx_(ctx) {}
  const kg_host_api* api() const { return api_; }
  kg_plugin_ctx* ctx() const { return ctx_; }

  void log(kg_log_level level, std::string_view msg, const Request* req = nullptr) const {
    api_->log(ctx_, req ? req->raw() : nullptr, level, str(msg));
  }
  // A line with `fields_json` (a JSON object) as fields beside msg (1.1); on an older host
  // the fields are appended to msg as text.
  void log(kg_log_level level, std::string_view msg, std::string_view fields_json,
           const Request* req = nullptr) const {
    if (KG_HOST_HAS(api_, log_fields)) {
      api_->log_fields(ctx_, req ? req->raw() : nullptr, level, str(msg), str(fields_json));
    } else {
      log(level, std::string(msg) + " " + std::string(fields_json), req);
    }
  }
  void info(std::string_view msg) const { log(KG_LOG_INFO, msg); }
  void warn(std::string_view msg) const { log(KG_LOG_WARN, msg); }
  void error(std::string_view msg) const { log(KG_LOG_ERROR, msg); }

  std::string_view mode() const { return view(api_->mode(ctx_)); }
  // The host's data directory (durable state lives under it); empty on an older host.
  std::string_view data_dir() const {
    return KG_HOST_HAS(api_, data_dir) ? view(api_->data_dir(ctx_)) : std::string_view();
  }
  // The shared store's state: KG_HEALTHY, or KG_DEGRADED while Redis is away (memory fallback).
  kg_health_status store_status() const {
    return KG_HOST_HAS(api_, store_status) ? api_->store_status(ctx_) : KG_HEALTHY;
  }
  bool production() const { return mode() == "production"; }
  std::string_view config_json() const { return view(api_->config_json(ctx_)); }
  std::optional<std::string_view> config(std::string_view path) const {
    kg_str out{};
    if (api_->config_get(ctx_, str(path), &out) != KG_OK) return std::nullopt;
    return view(out);
  }

  Metric metric(kg_metric_kind kind, std::string_view name, std::string_view help,
                std::initializer_list<std::string_view> labels = {},
                const std::vector<double>& buckets = {}) const {
    std::vector<kg_str> ls;
    for (auto l : labels) ls.push_back(str(l));
    kg_metric_desc d{sizeof(kg_metric_desc),
                     kind,
                     str(name),
                     str(help),
                     ls.data(),
                     ls.size(),
                     buckets.empty() ? nullptr : buckets.data(),
                     buckets.size()};
    return Metric(api_, api_->metric_new(ctx_, &d));
  }

  kg_status publish(std::string_view topic, std::string_view data, std::string_view id = {}) const {
    return api_->bus_publish(ctx_, str(topic), str(data), str(id));
  }

  Queue queue(std::string_view name, kg_queue_options options = {}) const {
    options.struct_size = sizeof options;
    return Queue(api_, api_->queue_open(ctx_, str(name), &options), ctx_);
  }

  // A store key space shared with other plugins under `name` ([a-z0-9_.-]+); the calls below
  // use this plugin's own key space, which no other plugin sees. [main] during create/start;
  // throws on a bad name.
  SharedStore shared_store(std::string_view name) const {
    kg_store_space* space = api_->store_shared(ctx_, str(name));
    if (!space)
      throw std::runtime_error("cannot open the shared store \"" + std::string(name) + "\"");
    return SharedStore(api_, ctx_, space);
  }

  // Store operations answer now (the result) or later (nullopt, then `later` runs once on
  // another thread). Errors come as a result with a negative status.
  using StoreDone = std::function<void(const StoreResult&)>;
  std::optional<StoreResult> check_and_set(std::string_view key, std::chrono::milliseconds ttl,
                                           StoreDone later) const {
    return detail::store_call(api_, ctx_, std::move(later), [&](auto now, auto fn, auto ud) {
      return api_->store_check_and_set(ctx_, str(key), ttl.count(), now, fn, ud);
    });
  }
  std::optional<StoreResult> incr(std::string_view key, int64_t delta,
                                  std::chrono::milliseconds ttl, StoreDone later) const {
    return detail::store_call(api_, ctx_, std::move(later), [&](auto now, auto fn, auto ud) {
      return api_->store_incr(ctx_, str(key), delta, ttl.count(), now, fn, ud);
    });
  }
  std::optional<StoreResult> get(std::string_view key, StoreDone later) const {
    return detail::store_call(api_, ctx_, std::move(later), [&](auto now, auto fn, auto ud) {
      return api_->store_get(ctx_, str(key), now, fn, ud);
    });
  }
  std::optional<StoreResult> put(std::string_view key, std::string_view value,
                                 std::chrono::milliseconds ttl, StoreDone later) const {
    return detail::store_call(api_, ctx_, std::move(later), [&](auto now, auto fn, auto ud) {
      return api_->store_put(ctx_, str(key), str(value), ttl.count(), now, fn, ud);
    });
  }
  std::optional<StoreResult> del(std::string_view key, StoreDone later) const {
    return detail::store_call(api_, ctx_, std::move(later), [&](auto now, auto fn, auto ud) {
      return api_->store_del(ctx_, str(key), now, fn, ud);
    });
  }

 private:
  const kg_host_api* api_;
  kg_plugin_ctx* ctx_;
};

// Calls the store from a request filter when the answer may come now (memory) or later
// (Redis, on another thread — possibly before the store call has even returned here).
// Deferring up front would cost a responder and a post on every request of the memory path,
// so the filter and the store callback meet in a small rendezvous; whoever comes second
// finishes, and exactly one of `now` / `later` runs, once:
//   call(later_fn)            performs one store operation (Host::incr etc.);
//   now(req, result) -> Flow  runs on the request's thread (answered now, or the callback
//                             raced ahead);
//   later(responder, result)  runs on the store's thread and must complete the responder
//                             (proceed(headers) to continue the chain, or error(...)).
// Completing before the filter returned Flow::pending is safe: the host posts completions to
// the request's I/O thread.
template <class Call, class Now, class Later>
Flow store_in_filter(Request& req, Call&& call, Now&& now, Later later) {
  struct Rendezvous {
    std::mutex mu;                      // guards everything below
    std::optional<StoreResult> result;  // the callback came first: its result
    Responder responder;                // the filter deferred first: its responder
    bool deferred = false;
  };
  auto rv = std::make_shared<Rendezvous>();
  std::optional<StoreResult> answer =
      call([rv, later = std::move(later)](const StoreResult& r) mutable {
        std::unique_lock lock(rv->mu);
        if (!rv->deferred) {
          rv->result = r;
          return;
        }
        Responder responder = std::move(rv->responder);
        lock.unlock();
        later(responder, r);
      });
  if (answer) return now(req, *answer);
  std::unique_lock lock(rv->mu);
  if (rv->result) {
    StoreResult r = std::move(*rv->result);
    lock.unlock();
    return now(req, r);
  }
  rv->responder = req.defer();
  rv->deferred = true;
  return Flow::pending;
}

// Base class for a plugin instance. Registration helpers keep the callables alive for the
// instance's lifetime and guard every call with try/catch.
class Plugin {
 public:
  explicit Plugin(Host host) : host_(host) {}
  virtual ~Plugin() = default;
  Plugin(const Plugin&) = delete;
  Plugin& operator=(const Plugin&) = delete;

  // Called after every plugin is created, before traffic. Throw to fail start-up.
  virtual void start() {}
  // Called on drain, in reverse order. Flush quickly.
  virtual void stop() {}

  Host& host() { return host_; }

  using Handler = std::function<void(Request&)>;  // answer, defer or stream
  using Filter = std::function<Flow(Request&)>;   // Flow::next, done or pending
  using Observer = std::function<void(Request&, const kg_observation&)>;
  using BusHandler =
      std::function<void(std::string_view topic, std::string_view data, std::string_view id)>;
  // Return KG_OK to acknowledge; anything else retries. Throwing (or calling
  // Queue::fail_reason before returning) records why, shown with the dead letter.
  using QueueConsumer = std::function<kg_status(const QueueEntry&)>;
  // 1.2: one entry of a batch handed to a QueueBatchConsumer; set status (KG_OK acknowledges)
  // and, for a failure, the reason shown with the dead letter.
  struct BatchItem {
    QueueEntry entry;
    kg_status status = KG_ERR_RETRY;
    std::string reason;
  };
  // Throwing retries every entry of the batch.
  using QueueBatchConsumer = std::function<void(std::vector<BatchItem>&)>;

  // A handler that neither answered nor deferred nor streamed gets a 500.
  void route(const RouteSpec& spec, Handler handler) {
    auto* h = keep(std::move(handler));
    kg_route r{sizeof(kg_route),
               str(spec.method),
               str(spec.path),
               str(spec.scopes),
               spec.is_public ? KG_ROUTE_PUBLIC : 0u,
               [](void* ud, kg_request* req) -> kg_status {
                 auto& self = *static_cast<Holder<Handler>*>(ud);
                 return self.plugin->guard(req, [&](Request& r) {
                   self.fn(r);
                   return r.answered_later() ? KG_PENDING : KG_OK;
                 });
               },
               h,
               str(spec.summary),
               str(spec.description),
               str(spec.request_schema),
               str(spec.response_schema),
               static_cast<uint32_t>(spec.timeout.count())};
    check(host_.api()->register_route(host_.ctx(), &r), "route", spec.path);
  }
  // Runs on every route unless `scope` narrows it to this plugin's routes or a path prefix.
  void filter(std::string_view name, int32_t order, Filter fn,
              FilterScope scope = FilterScope::all_routes()) {
    auto* h = keep(std::move(fn));
    kg_filter f{sizeof(kg_filter),
                str(name),
                order,
                [](void* ud, kg_request* req) -> kg_status {
                  auto& self = *static_cast<Holder<Filter>*>(ud);
                  return self.plugin->guard(
                      req, [&](Request& r) { return static_cast<kg_status>(self.fn(r)); });
                },
                h,
                scope.scope,
                str(scope.path_prefix)};
    check(host_.api()->register_filter(host_.ctx(), &f), "filter", name);
  }
  // Sees every response (and every stream's head, kind KG_OBSERVED_STREAM_START).
  void observer(Observer fn) { add_observer(std::move(fn), host_.api()->register_observer); }
  // Sees every stream's end (kind KG_OBSERVED_STREAM_END): duration, body bytes, end_reason.
  // Runs on any thread.
  void stream_end_observer(Observer fn) {
    add_observer(std::move(fn), host_.api()->register_stream_observer);
  }
  // Periodic task on the worker pool.
  void every(std::string_view name, std::chrono::milliseconds interval, std::function<void()> fn) {
    add_task(name, static_cast<uint32_t>(interval.count() > 0 ? interval.count() : 1),
             [fn = std::move(fn)](kg_stop*) { fn(); });
  }
  // Long-running task on its own thread; return soon after stop_requested() turns true.
  void run(std::string_view name, std::function<void(kg_stop*)> fn) {
    add_task(name, 0, std::move(fn));
  }
  bool stop_requested(kg_stop* s) const { return host_.api()->stop_requested(s) != 0; }
  bool stop_wait(kg_stop* s, std::chrono::milliseconds d) const {
    return host_.api()->stop_wait(s, static_cast<uint32_t>(d.count())) != 0;
  }

  // reporter returns (status, details JSON object text or empty).
  void health(std::function<std::pair<kg_health_status, std::string>()> reporter) {
    auto* h = keep(std::move(reporter));
    check(
        host_.api()->set_health_reporter(
            host_.ctx(),
            [](void* ud, kg_health* out) {
              auto& self =
                  *static_cast<Holder<std::function<std::pair<kg_health_status, std::string>()>>*>(
                      ud);
              const kg_host_api* api = self.plugin->host_.api();
              bool reported = false;
              detail::guarded(api, self.plugin->host_.ctx(), "health reporter", [&] {
                auto [st, details] = self.fn();
                api->health_set(out, st, str(details));
                reported = true;
              });
              if (!reported) api->health_set(out, KG_UNHEALTHY, str(""));
            },
            h),
        "health reporter", "");
  }
  void subscribe(std::string_view pattern, BusHandler fn) {
    auto* h = keep(std::move(fn));
    check(host_.api()->bus_subscribe(
              host_.ctx(), str(pattern),
              [](void* ud, const kg_bus_event* e) -> kg_status {
                auto& self = *static_cast<Holder<BusHandler>*>(ud);
                try {
                  self.fn(view(e->topic), view(e->data), view(e->id));
                  return KG_OK;
                } catch (const std::exception& ex) {
                  self.plugin->host_.error(std::string("bus handler failed: ") + ex.what());
                } catch (...) {
                  self.plugin->host_.error("bus handler failed with an unknown exception");
                }
                return KG_ERR_INTERNAL;
              },
              h),
          "subscription", pattern);
  }
  void consume(Queue& q, QueueConsumer fn) {
    auto* h = keep(std::move(fn));
    check(host_.api()->queue_consume(
              q.raw(),
              [](void* ud, const kg_queue_entry* e) -> kg_status {
                auto& self = *static_cast<Holder<QueueConsumer>*>(ud);
                try {
                  return self.fn(QueueEntry{e->id, e->attempt, view(e->data), view(e->last_error)});
                } catch (const std::exception& ex) {
                  self.plugin->host_.error(std::string("queue consumer failed: ") + ex.what());
                  self.plugin->host_.api()->queue_fail_reason(str(ex.what()));
                } catch (...) {
                  self.plugin->host_.error("queue consumer failed with an unknown exception");
                }
                return KG_ERR_RETRY;
              },
              h),
          "queue consumer", "");
  }
  // Up to max_batch entries per call (ABI 1.2). On a 1.1 host: batches of one.
  void consume_batch(Queue& q, uint32_t max_batch, QueueBatchConsumer fn) {
    if (!KG_HOST_HAS(host_.api(), queue_consume_batch)) {
      return consume(q, [fn = std::move(fn), q](const QueueEntry& e) {
        std::vector<BatchItem> items{BatchItem{e, KG_ERR_RETRY, {}}};
        fn(items);
        if (items[0].status != KG_OK && !items[0].reason.empty()) q.fail_reason(items[0].reason);
        return items[0].status;
      });
    }
    // The items outlive the call: the host reads the reasons after it returns, before the
    // next call (one call at a time per queue).
    struct Batch {
      QueueBatchConsumer fn;
      std::vector<BatchItem> items;
    };
    auto* h = keep(Batch{std::move(fn), {}});
    check(
        host_.api()->queue_consume_batch(
            q.raw(), max_batch,
            [](void* ud, const kg_queue_entry* e, size_t n, kg_status* statuses, kg_str* reasons) {
              auto& self = *static_cast<Holder<Batch>*>(ud);
              auto& items = self.fn.items;
              items.clear();
              for (size_t i = 0; i < n; ++i)
                items.push_back(BatchItem{
                    QueueEntry{e[i].id, e[i].attempt, view(e[i].data), view(e[i].last_error)},
                    KG_ERR_RETRY,
                    {}});
              try {
                self.fn.fn(items);
              } catch (const std::exception& ex) {
                self.plugin->host_.error(std::string("queue consumer failed: ") + ex.what());
                return;
              } catch (...) {
                self.plugin->host_.error("queue consumer failed with an unknown exception");
                return;
              }
              for (size_t i = 0; i < n; ++i) {
                statuses[i] = items[i].status;
                reasons[i] = str(items[i].reason);
              }
            },
            h),
        "queue consumer", "");
  }

 private:
  template <class F>
  struct Holder {
    Plugin* plugin;
    F fn;
  };
  void add_observer(Observer fn, kg_status (*reg)(kg_plugin_ctx*, kg_observer_fn, void*)) {
    auto* h = keep(std::move(fn));
    check(reg(
              host_.ctx(),
              [](void* ud, kg_request* req, const kg_observation* obs) {
                auto& self = *static_cast<Holder<Observer>*>(ud);
                Request r(self.plugin->host_.api(), req, self.plugin->host_.ctx());
                detail::guarded(self.plugin->host_.api(), self.plugin->host_.ctx(), "observer",
                                [&] { self.fn(r, *obs); });
              },
              h),
          "observer", "");
  }
  template <class F>
  Holder<F>* keep(F fn) {
    auto holder = std::make_shared<Holder<F>>(Holder<F>{this, std::move(fn)});
    kept_.push_back(holder);
    return holder.get();
  }
  void add_task(std::string_view name, uint32_t interval_ms, std::function<void(kg_stop*)> fn) {
    using Task = std::function<void(kg_stop*)>;
    auto* h = keep<Task>(std::move(fn));
    kg_task t{sizeof(kg_task), str(name), interval_ms,
              [](void* ud, kg_stop* stop) {
                auto& self = *static_cast<Holder<Task>*>(ud);
                try {
                  self.fn(stop);
                } catch (const std::exception& e) {
                  self.plugin->host_.error(std::string("task failed: ") + e.what());
                } catch (...) {
                  self.plugin->host_.error("task failed with an unknown exception");
                }
              },
              h};
    check(host_.api()->register_task(host_.ctx(), &t), "task", name);
  }
  void check(kg_status st, std::string_view what, std::string_view name) {
    if (st != KG_OK)
      throw std::runtime_error("cannot register " + std::string(what) + " '" + std::string(name) +
                               "' (status " + std::to_string(st) + ")");
  }
  template <class Fn>
  kg_status guard(kg_request* req, Fn&& fn) {
    Request r(host_.api(), req, host_.ctx());
    try {
      return fn(r);
    } catch (const std::exception& e) {
      host_.log(KG_LOG_ERROR, std::string("request callback failed: ") + e.what(), &r);
    } catch (...) {
      host_.log(KG_LOG_ERROR, "request callback failed with an unknown exception", &r);
    }
    return KG_ERR_INTERNAL;
  }

  Host host_;
  std::list<std::shared_ptr<void>> kept_;
};

namespace detail {
template <class T>
kg_status create(const kg_host_api* api, kg_plugin_ctx* ctx, void** instance) {
  try {
    *instance = static_cast<Plugin*>(new T(Host(api, ctx)));
    return KG_OK;
  } catch (const std::exception& e) {
    api->set_error(ctx, str(e.what()));
  } catch (...) {
    api->set_error(ctx, str("create failed with an unknown exception"));
  }
  return KG_ERR_INTERNAL;
}
inline kg_status start(void* instance) {
  auto* p = static_cast<Plugin*>(instance);
  try {
    p->start();
    return KG_OK;
  } catch (const std::exception& e) {
    p->host().api()->set_error(p->host().ctx(), str(e.what()));
  } catch (...) {
    p->host().api()->set_error(p->host().ctx(), str("start failed with an unknown exception"));
  }
  return KG_ERR_INTERNAL;
}
inline void stop(void* instance) {
  auto* p = static_cast<Plugin*>(instance);
  try {
    p->stop();
  } catch (const std::exception& e) {
    p->host().error(std::string("stop failed: ") + e.what());
  } catch (...) {
    p->host().error("stop failed with an unknown exception");
  }
}
inline void destroy(void* instance) { delete static_cast<Plugin*>(instance); }
}  // namespace detail

}  // namespace kghost::sdk

// Exports CLASS (derived from kghost::sdk::Plugin, constructible from kghost::sdk::Host) as a
// plugin. FLAGS: 0 or KG_PLUGIN_DEV_ONLY.
#define KGHOST_PLUGIN(CLASS, NAME, VERSION, DESCRIPTION, FLAGS)                            \
  extern "C" KG_EXPORT const kg_plugin_descriptor* kghost_plugin_entry(void) {             \
    static const kg_plugin_descriptor descriptor = {sizeof(kg_plugin_descriptor),          \
                                                    KG_ABI_MAJOR,                          \
                                                    KG_ABI_MINOR,                          \
                                                    NAME,                                  \
                                                    VERSION,                               \
                                                    DESCRIPTION,                           \
                                                    FLAGS,                                 \
                                                    &::kghost::sdk::detail::create<CLASS>, \
                                                    &::kghost::sdk::detail::start,         \
                                                    &::kghost::sdk::detail::stop,          \
                                                    &::kghost::sdk::detail::destroy};      \
    return &descriptor;                                                                    \
  }
