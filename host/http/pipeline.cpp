#include "http/pipeline.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <random>

#include "common/text.hpp"

namespace kghost {

// What a stream carried so far; shared by the plugin's handle and the transport's on_closed.
struct StreamMeter {
  std::shared_ptr<Exchange> ex;  // keeps the request readable for the observers
  uint16_t status = 0;
  std::atomic<uint64_t> bytes{0};
  std::atomic<bool> plugin_closing{false}, ended{false};
  void end(kg_stream_end_reason reason) {
    if (!ended.exchange(true)) ex->pipeline->observe_stream_end(*ex, status, bytes, reason);
  }
};

namespace {

kg_request* as_request(Exchange* ex) { return reinterpret_cast<kg_request*>(ex); }

std::string random_hex(std::size_t chars) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string out;
  out.reserve(chars + 16);
  while (out.size() < chars) out += to_hex(rng());
  out.resize(chars);
  return out;
}

bool is_lower_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// What observers are told; views borrow from the exchange.
kg_observation observation(const Exchange& ex, uint16_t status, uint64_t response_bytes) {
  kg_observation obs{};
  obs.struct_size = sizeof obs;
  auto m = ex.method();
  obs.method = {m.data(), m.size()};
  if (ex.match.route) obs.route = {ex.match.route->path.data(), ex.match.route->path.size()};
  obs.status = status;
  obs.duration_ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                              std::chrono::steady_clock::now() - ex.started)
                                              .count());
  obs.request_bytes = ex.request_bytes;
  obs.response_bytes = response_bytes;
  return obs;
}

// Whether a filter's scope covers this (matched) request.
bool runs_on(const FilterEntry& f, const Exchange& ex) {
  switch (f.scope) {
    case KG_FILTER_OWN_ROUTES:
      return ex.match.route->owner == f.owner;
    case KG_FILTER_PATH_PREFIX: {
      std::string_view path = ex.path, prefix = f.path_prefix;
      return path.substr(0, prefix.size()) == prefix &&
             (path.size() == prefix.size() || prefix.back() == '/' || path[prefix.size()] == '/');
    }
    default:
      return true;
  }
}

// A stream as the plugin sees it: counts the body bytes it accepts and reports its end to the
// stream observers exactly once, whoever ends it (client, plugin, host shutdown).
class ObservedStream final : public StreamState {
 public:
  ObservedStream(std::shared_ptr<StreamMeter> meter, std::shared_ptr<StreamState> inner)
      : meter_(std::move(meter)), inner_(std::move(inner)) {}
  int32_t write(std::string_view data) override {
    int32_t st = inner_->write(data);
    if (st == KG_OK) meter_->bytes += data.size();
    return st;
  }
  void close() override {
    meter_->plugin_closing = true;
    inner_->close();  // runs on_closed (and so StreamMeter::end) unless the client left first
    meter_->end(KG_STREAM_CLOSED_BY_PLUGIN);
  }
  void abort() override { inner_->abort(); }

 private:
  std::shared_ptr<StreamMeter> meter_;
  std::shared_ptr<StreamState> inner_;
};

}  // namespace

HttpResponse error_response(uint16_t status, std::string_view code, std::string_view message,
                            std::string_view request_id) {
  nlohmann::json body = {
      {"error", {{"code", code}, {"message", message}, {"request_id", request_id}}}};
  HttpResponse r;
  r.status = status;
  r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

bool unsafe_target(std::string_view target) {
  if (target.find('\0') != std::string_view::npos) return true;
  std::string_view path = target.substr(0, target.find('?'));
  std::string decoded;
  if (!percent_decode(target, decoded)) return true;  // malformed escape
  if (decoded.find('\0') != std::string::npos) return true;
  if (!percent_decode(path, decoded)) return true;
  std::size_t i = 0;
  while (i <= decoded.size()) {
    std::size_t j = decoded.find('/', i);
    if (j == std::string::npos) j = decoded.size();
    if (std::string_view(decoded).substr(i, j - i) == "..") return true;
    i = j + 1;
  }
  return false;
}

bool valid_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
  });
}

std::string new_request_id() { return random_hex(32); }

std::string continue_traceparent(std::optional<std::string_view> in) {
  // 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>
  if (in && in->size() == 55 && in->substr(0, 3) == "00-" && (*in)[35] == '-' && (*in)[52] == '-') {
    auto trace = in->substr(3, 32), parent = in->substr(36, 16), flags = in->substr(53, 2);
    if (is_lower_hex(trace) && is_lower_hex(parent) && is_lower_hex(flags) &&
        trace != std::string(32, '0') && parent != std::string(16, '0')) {
      return "00-" + std::string(trace) + "-" + random_hex(16) + "-" + std::string(flags);
    }
  }
  return "00-" + random_hex(32) + "-" + random_hex(16) + "-01";
}

const std::string& Exchange::traceparent() const {
  if (traceparent_.empty()) traceparent_ = continue_traceparent(header("traceparent", 0));
  return traceparent_;
}

std::string Pipeline::add_route(RouteInfo info, HandlerEntry handler) {
  info.handler = handlers_.size();
  std::string err = router_.add(std::move(info));
  if (err.empty()) handlers_.push_back(std::move(handler));
  return err;
}

void Pipeline::add_filter(FilterEntry filter) {
  auto pos = std::upper_bound(filters_.begin(), filters_.end(), filter.order,
                              [](int32_t o, const FilterEntry& f) { return o < f.order; });
  filters_.insert(pos, std::move(filter));
}

void Pipeline::add_observer(ObserverEntry observer) { observers_.push_back(std::move(observer)); }

void Pipeline::add_stream_observer(ObserverEntry observer) {
  stream_observers_.push_back(std::move(observer));
}

void Pipeline::take_out_of_service(const std::string& owner) {
  for (const RouteInfo* r : router_.routes()) {
    if (r->owner == owner) handlers_[r->handler].unavailable = true;
  }
  auto owned = [&](const auto& e) { return e.owner == owner; };
  std::erase_if(filters_, owned);
  std::erase_if(observers_, owned);
  std::erase_if(stream_observers_, owned);
}

void Pipeline::handle(const std::shared_ptr<Exchange>& ex) {
  ex->pipeline = this;
  auto incoming_id = ex->header("x-request-id", 0);
  ex->request_id =
      incoming_id && valid_request_id(*incoming_id) ? std::string(*incoming_id) : new_request_id();
  std::string_view target = ex->target();
  auto q = target.find('?');
  ex->path = target.substr(0, q);
  ex->query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);

  if (ex->path.empty() || ex->path[0] != '/' || unsafe_target(target)) {
    finish(*ex,
           error_response(400, "bad_request",
                          "the request target is not a valid path (no '..' segments or NUL bytes)",
                          ex->request_id));
    return;
  }
  ex->match = router_.match(ex->method(), ex->path);
  if (ex->match.kind == RouteMatch::not_found) {
    finish(*ex, error_response(404, "not_found", "no route for this path", ex->request_id));
    return;
  }
  if (ex->match.kind == RouteMatch::method_not_allowed) {
    auto r =
        error_response(405, "method_not_allowed",
                       "this path does not accept " + std::string(ex->method()), ex->request_id);
    r.headers.emplace_back("Allow", ex->match.allow);
    finish(*ex, std::move(r));
    return;
  }
  if (handlers_[ex->match.route->handler].unavailable) {
    finish(*ex, error_response(503, "unavailable",
                               "the plugin serving this route (" + ex->match.route->owner +
                                   ") failed to start",
                               ex->request_id));
    return;
  }
  run_filters(ex);
}

void Pipeline::run_filters(const std::shared_ptr<Exchange>& ex) {
  while (ex->next_filter < filters_.size()) {
    const FilterEntry& f = filters_[ex->next_filter++];
    if (!runs_on(f, *ex)) continue;
    kg_status st = f.fn(f.user_data, as_request(ex.get()));
    if (!settle(ex, st, true, f.owner)) return;
  }
  // Fail closed: a non-public route needs a principal, whoever the authenticators were.
  const RouteInfo& route = *ex->match.route;
  if (!route.is_public) {
    if (!ex->principal) {
      finish(*ex, error_response(401, "missing_api_key",
                                 "this route needs an API key (X-API-Key or Authorization: Bearer)",
                                 ex->request_id));
      return;
    }
    std::string_view missing;
    for_each_scope(route.scopes, [&](std::string_view scope) {
      if (!has_scope(ex->principal->scopes, scope)) missing = scope;
      return missing.empty();
    });
    if (!missing.empty()) {
      finish(*ex, error_response(403, "insufficient_scope",
                                 "this route needs the scope '" + std::string(missing) + "'",
                                 ex->request_id));
      return;
    }
  }
  run_handler(ex);
}

void Pipeline::run_handler(const std::shared_ptr<Exchange>& ex) {
  ex->phase = Exchange::Phase::handler;
  const HandlerEntry& h = handlers_[ex->match.route->handler];
  if (h.internal) {
    h.internal(*ex);  // answers now (staged) or later (deferred, completed through complete())
    settle(ex, ex->staged || ex->deferred ? KG_OK : KG_ERR_INTERNAL, false, "host");
    return;
  }
  kg_status st = h.fn(h.user_data, as_request(ex.get()));
  settle(ex, st, false, ex->match.route->owner);
}

bool Pipeline::settle(const std::shared_ptr<Exchange>& ex, kg_status st, bool is_filter,
                      const std::string& who) {
  if (is_filter && st == KG_CONTINUE && !ex->deferred && !ex->staged) return true;
  if (st == KG_OK && ex->staged && !ex->deferred) {
    HttpResponse r = std::move(*ex->staged);
    ex->staged.reset();
    finish(*ex, std::move(r));
    return false;
  }
  // KG_OK after defer/stream_begin also means "answered later": nothing else is meant by it.
  if ((st == KG_PENDING || st == KG_OK) && (ex->deferred || ex->streaming)) return false;
  if (ex->streaming) return false;  // already answering; nothing more to send

  std::string why = st < 0 ? "failed with status " + std::to_string(st)
                           : "returned status " + std::to_string(st) +
                                 " without answering consistently (respond, defer or continue)";
  log_.log(LogLevel::error, who,
           std::string(is_filter ? "filter " : "handler for ") +
               (is_filter ? "" : std::string(ex->method()) + " " + ex->match.route->path + " ") +
               why,
           ex->request_id, ex->trace_id());
  ex->deferred = false;  // a responder completed later is now a no-op
  ex->staged.reset();
  finish(*ex, error_response(500, "internal_error", "a plugin failed while handling the request",
                             ex->request_id));
  return false;
}

void Pipeline::complete(kg_responder* responder, HttpResponse&& response) {
  std::shared_ptr<Exchange> ex = std::move(responder->exchange);
  delete responder;
  auto* transport = ex->transport.get();
  transport->post([this, ex = std::move(ex), r = std::move(response)]() mutable {
    if (!ex->deferred || ex->phase == Exchange::Phase::responded) return;  // late: a safe no-op
    ex->deferred = false;
    if (ex->phase == Exchange::Phase::filters && r.status == 0) {
      for (auto& h : r.headers) ex->extra_headers.push_back(std::move(h));
      run_filters(ex);
      return;
    }
    if (r.status < 100 || r.status > 599) {
      log_.log(LogLevel::error, ex->match.route ? ex->match.route->owner : "host",
               "deferred answer has invalid HTTP status " + std::to_string(r.status),
               ex->request_id, ex->trace_id());
      r = error_response(500, "internal_error", "a plugin failed while handling the request",
                         ex->request_id);
    }
    finish(*ex, std::move(r));
  });
}

void Pipeline::finish(Exchange& ex, HttpResponse&& response) {
  if (ex.phase == Exchange::Phase::responded) return;
  ex.phase = Exchange::Phase::responded;
  // The transport writes X-Request-Id (ex.request_id) itself, once.
  response.headers.reserve(response.headers.size() + ex.extra_headers.size());
  for (auto& h : ex.extra_headers) response.headers.push_back(std::move(h));
  ex.extra_headers.clear();
  uint16_t status = response.status;
  uint64_t bytes = response.body.size();
  ex.transport->send(std::move(response));
  observe(ex, status, bytes);
}

std::shared_ptr<StreamState> Pipeline::begin_stream(Exchange& ex, HttpResponse&& head,
                                                    std::function<void()> on_closed) {
  if (ex.phase == Exchange::Phase::responded || ex.deferred) return nullptr;
  ex.phase = Exchange::Phase::responded;
  ex.streaming = true;
  for (auto& h : ex.extra_headers) head.headers.push_back(h);
  auto meter = std::make_shared<StreamMeter>();
  meter->ex = ex.shared_from_this();
  meter->status = head.status;
  auto inner =
      ex.transport->begin_stream(std::move(head), [this, meter, on_closed = std::move(on_closed)] {
        meter->end(meter->plugin_closing ? KG_STREAM_CLOSED_BY_PLUGIN
                   : shutting_down_      ? KG_STREAM_HOST_SHUTDOWN
                                         : KG_STREAM_CLIENT_GONE);
        if (on_closed) on_closed();
      });
  observe(ex, meter->status, 0);
  if (!inner) return nullptr;
  {
    std::lock_guard lock(streams_mutex_);
    if (streams_.size() >= 2 * streams_pruned_at_ + 64) {  // amortised: drop ended streams
      std::erase_if(streams_, [](const auto& w) { return w.expired(); });
      streams_pruned_at_ = streams_.size();
    }
    streams_.push_back(meter);
  }
  return std::make_shared<ObservedStream>(std::move(meter), std::move(inner));
}

void Pipeline::end_streams() {
  std::vector<std::weak_ptr<StreamMeter>> open;
  {
    std::lock_guard lock(streams_mutex_);
    open.swap(streams_);
  }
  for (auto& w : open)
    if (auto m = w.lock()) m->end(KG_STREAM_HOST_SHUTDOWN);
}

void Pipeline::observe(Exchange& ex, uint16_t status, uint64_t response_bytes) {
  if (observers_.empty()) return;
  kg_observation obs = observation(ex, status, response_bytes);
  obs.kind = ex.streaming ? KG_OBSERVED_STREAM_START : KG_OBSERVED_RESPONSE;
  for (auto& o : observers_) o.fn(o.user_data, as_request(&ex), &obs);
}

void Pipeline::observe_stream_end(Exchange& ex, uint16_t status, uint64_t bytes,
                                  kg_stream_end_reason reason) {
  if (stream_observers_.empty()) return;
  kg_observation obs = observation(ex, status, bytes);
  obs.kind = KG_OBSERVED_STREAM_END;
  obs.end_reason = reason;
  for (auto& o : stream_observers_) o.fn(o.user_data, as_request(&ex), &obs);
}

}  // namespace kghost
