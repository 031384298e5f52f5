#include "http/exchange.hpp"

#include "common/text.hpp"
#include "http/pipeline.hpp"
#include "http/stream_meter.hpp"

namespace kghost {

const std::string& Exchange::traceparent() const {
  if (traceparent_.empty()) traceparent_ = continue_traceparent(header("traceparent", 0));
  return traceparent_;
}

std::string_view Exchange::keep(std::string value) {
  kept_.push_back(std::make_unique<std::string>(std::move(value)));
  return *kept_.back();
}

void Exchange::start(Pipeline& pipeline) {
  pipeline_ = &pipeline;
  table_ = pipeline.table();
  auto incoming_id = header("x-request-id", 0);
  request_id_ =
      incoming_id && valid_request_id(*incoming_id) ? std::string(*incoming_id) : new_request_id();
  std::string_view t = target();
  auto q = t.find('?');
  path_ = t.substr(0, q);
  query_ = q == std::string_view::npos ? std::string_view() : t.substr(q + 1);

  if (path_.empty() || path_[0] != '/' || unsafe_target(t)) {
    finish(error_response(400, "bad_request",
                          "the request target is not a valid path (no '..' segments or NUL bytes)",
                          request_id_));
    return;
  }
  match_ = table_->router().match(method(), path_);
  if (match_.kind == RouteMatch::not_found) {
    finish(error_response(404, "not_found", "no route for this path", request_id_));
    return;
  }
  if (match_.kind == RouteMatch::method_not_allowed) {
    auto r = error_response(405, "method_not_allowed",
                            "this path does not accept " + std::string(method()), request_id_);
    r.headers.emplace_back("Allow", match_.allow);
    finish(std::move(r));
    return;
  }
  if (table_->handler(*match_.route).unavailable) {
    finish(error_response(
        503, "unavailable",
        "the plugin serving this route (" + match_.route->owner + ") failed to start",
        request_id_));
    return;
  }
  run_filters();
}

void Exchange::run_filters() {
  const auto& filters = table_->filters();
  while (next_filter_ < filters.size()) {
    const FilterEntry& f = filters[next_filter_++];
    if (!f.runs_on(*match_.route, path_)) continue;
    if (!settle(f.filter->filter(*this), true, f.owner)) return;
  }
  // Fail closed: a non-public route needs a principal, whoever the authenticators were.
  const RouteInfo& route = *match_.route;
  if (!route.is_public) {
    if (!principal_) {
      finish(error_response(401, "missing_api_key",
                            "this route needs an API key (X-API-Key or Authorization: Bearer)",
                            request_id_));
      return;
    }
    std::string_view missing;
    for_each_scope(route.scopes, [&](std::string_view scope) {
      if (!has_scope(principal_->scopes, scope)) missing = scope;
      return missing.empty();
    });
    if (!missing.empty()) {
      finish(error_response(403, "insufficient_scope",
                            "this route needs the scope '" + std::string(missing) + "'",
                            request_id_));
      return;
    }
  }
  run_handler();
}

void Exchange::run_handler() {
  phase_ = Phase::handler;
  settle(table_->handler(*match_.route).handler->handle(*this), false, match_.route->owner);
}

bool Exchange::settle(Verdict v, bool is_filter, const std::string& who) {
  if (is_filter && v.kind == Verdict::next && !deferred_ && !staged_) return true;
  if (v.kind == Verdict::answered && staged_ && !deferred_) {
    HttpResponse r = std::move(*staged_);
    staged_.reset();
    finish(std::move(r));
    return false;
  }
  // "Answered" after defer or begin_stream also means "answered later": nothing else is meant.
  bool waits = v.kind == Verdict::later || v.kind == Verdict::answered;
  if (waits && (deferred_ || streaming_)) return false;
  if (streaming_) return false;  // already answering; nothing more to send

  std::string why = v.status < 0
                        ? "failed with status " + std::to_string(v.status)
                        : "returned status " + std::to_string(v.status) +
                              " without answering consistently (respond, defer or continue)";
  pipeline_->log().log(
      LogLevel::error, who,
      std::string(is_filter ? "filter " : "handler for ") +
          (is_filter ? "" : std::string(method()) + " " + match_.route->path + " ") + why,
      request_id_, trace_id());
  deferred_ = false;  // a responder completed later is now a no-op
  staged_.reset();
  finish(error_response(500, "internal_error", "a plugin failed while handling the request",
                        request_id_));
  return false;
}

bool Exchange::respond(HttpResponse&& response) {
  if (phase_ == Phase::responded || deferred_) return false;
  staged_ = std::move(response);
  return true;
}

std::optional<Responder> Exchange::defer() {
  if (phase_ == Phase::responded || deferred_ || staged_) return std::nullopt;
  deferred_ = true;
  answered_later_.store(false, std::memory_order_relaxed);  // the Responder's hand-off publishes it
  return Responder(shared_from_this());
}

void Exchange::complete(std::shared_ptr<Exchange> ex, HttpResponse&& response) {
  // The answer waits in the exchange, so the job posted is just the pointer (small enough for
  // std::function to hold without an allocation of its own). The deferral's first answer
  // writes it (a copied Responder answering again is dropped here), only the posted job reads
  // it: the post orders the two.
  if (ex->answered_later_.exchange(true, std::memory_order_acq_rel)) return;
  ex->completed_ = std::move(response);
  auto* transport = ex->transport_.get();
  transport->post([ex = std::move(ex)] { ex->resume(std::move(ex->completed_)); });
}

void Exchange::resume(HttpResponse&& r) {
  if (!deferred_ || phase_ == Phase::responded) return;  // late: a safe no-op
  deferred_ = false;
  if (phase_ == Phase::filters && r.status == 0) {
    extra_headers_.append(std::move(r.headers));
    run_filters();
    return;
  }
  if (r.status < 100 || r.status > 599) {
    pipeline_->log().log(LogLevel::error, match_.route ? match_.route->owner : "host",
                         "deferred answer has invalid HTTP status " + std::to_string(r.status),
                         request_id_, trace_id());
    r = error_response(500, "internal_error", "a plugin failed while handling the request",
                       request_id_);
  }
  finish(std::move(r));
}

void Exchange::time_out() {
  if (phase_ == Phase::responded) return;
  pipeline_->log().log(LogLevel::warn, match_.route ? match_.route->owner : "host",
                       std::string(method()) + " " +
                           (match_.route ? match_.route->path : std::string(path_)) +
                           " did not answer in time: 504",
                       request_id_, trace_id());
  finish(error_response(504, "gateway_timeout", "the handler did not answer in time", request_id_));
}

void Exchange::host_failed(std::string_view what) {
  pipeline_->log().log(LogLevel::error, "host", "request failed: " + std::string(what),
                       request_id_);
  finish(error_response(500, "internal_error", "the host failed", request_id_));
}

void Exchange::finish(HttpResponse&& response) {
  if (phase_ == Phase::responded) return;
  phase_ = Phase::responded;
  // The transport writes X-Request-Id (request_id_) itself, once.
  response.headers.append(std::move(extra_headers_));
  extra_headers_.clear();
  uint16_t status = response.status;
  uint64_t bytes = response.body.size();
  transport_->send(std::move(response));
  observe(Observation::Kind::response, status, bytes);
}

std::shared_ptr<StreamState> Exchange::begin_stream(HttpResponse&& head,
                                                    std::function<void()> on_closed) {
  if (phase_ == Phase::responded || deferred_ || staged_) return nullptr;
  phase_ = Phase::responded;
  streaming_ = true;
  head.headers.append(extra_headers_);
  auto meter = std::make_shared<StreamMeter>(shared_from_this(), head.status);
  Pipeline& pipeline = *pipeline_;
  auto inner = transport_->begin_stream(
      std::move(head), [&pipeline, meter, on_closed = std::move(on_closed)] {
        meter->end(meter->plugin_closing      ? StreamEnd::closed_by_plugin
                   : pipeline.shutting_down() ? StreamEnd::host_shutdown
                                              : StreamEnd::client_gone);
        if (on_closed) on_closed();
      });
  observe(Observation::Kind::stream_start, meter->status, 0);
  if (!inner) return nullptr;
  pipeline.track(meter);
  return std::make_shared<ObservedStream>(std::move(meter), std::move(inner));
}

Observation Exchange::observation(Observation::Kind kind, uint16_t status,
                                  uint64_t response_bytes) const {
  Observation obs{};
  obs.kind = kind;
  obs.method = method();
  if (match_.route) obs.route = match_.route->path;
  obs.status = status;
  obs.duration_ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                              std::chrono::steady_clock::now() - started_)
                                              .count());
  obs.request_bytes = request_bytes_;
  obs.response_bytes = response_bytes;
  return obs;
}

void Exchange::observe(Observation::Kind kind, uint16_t status, uint64_t response_bytes) {
  const auto& observers = table_->observers();
  if (observers.empty()) return;
  Observation obs = observation(kind, status, response_bytes);
  for (auto& o : observers) o.observer->observe(*this, obs);
}

void Exchange::observe_stream_end(uint16_t status, uint64_t bytes, StreamEnd reason) {
  const auto& observers = table_->stream_observers();
  if (observers.empty()) return;
  Observation obs = observation(Observation::Kind::stream_end, status, bytes);
  obs.end_reason = reason;
  for (auto& o : observers) o.observer->observe(*this, obs);
}

}  // namespace kghost
