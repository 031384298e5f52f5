// The request path: route → filters in order → scope enforcement → handler → write →
// observers. Runs on the request's I/O thread; async steps come back through Transport::post.
#pragma once

#include <kghost/plugin.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "http/exchange.hpp"
#include "http/router.hpp"
#include "telemetry/logging.hpp"

namespace kghost {
class Pipeline;
struct StreamMeter;
}  // namespace kghost

// A deferred answer handed to a plugin (see kg_host_api.defer).
struct kg_responder {
  std::shared_ptr<kghost::Exchange> exchange;
  kghost::Pipeline* pipeline;
};

namespace kghost {

struct HandlerEntry {
  kg_handler_fn fn = nullptr;  // plugin handler, or
  void* user_data = nullptr;
  std::function<void(Exchange&)> internal;  // a host route
  bool unavailable = false;                 // its plugin failed to start: answer 503
};

struct FilterEntry {
  std::string name;
  std::string owner;
  int32_t order = 0;
  kg_filter_fn fn = nullptr;
  void* user_data = nullptr;
  kg_filter_scope scope = KG_FILTER_ALL_ROUTES;
  std::string path_prefix;  // KG_FILTER_PATH_PREFIX
};

struct ObserverEntry {
  std::string owner;
  kg_observer_fn fn = nullptr;
  void* user_data = nullptr;
};

class Pipeline {
 public:
  explicit Pipeline(Logger& log) : log_(log) {}

  // Set-up, before traffic. add_route returns an error text (conflict, bad template) or "".
  std::string add_route(RouteInfo info, HandlerEntry handler);
  void add_filter(FilterEntry filter);  // kept sorted by order, stable
  void add_observer(ObserverEntry observer);
  void add_stream_observer(ObserverEntry observer);  // called when a stream ends
  // A plugin that failed to start: its routes answer 503 unavailable; its filters and
  // observers are dropped. Set-up only.
  void take_out_of_service(const std::string& owner);
  const Router& router() const { return router_; }
  // [any] Streams ended from now on end because the host shuts down.
  void begin_shutdown() { shutting_down_ = true; }
  // After the drain: reports every stream still open as ended by the host shutdown (the
  // transport closes them when it stops).
  void end_streams();

  // [request] Entry point for a parsed request.
  void handle(const std::shared_ptr<Exchange>& ex);
  // [any] A deferred step finished. From a filter, status 0 continues the chain.
  void complete(kg_responder* responder, HttpResponse&& response);

  // Sends `response` (with request id and filter headers) and runs the observers.
  void finish(Exchange& ex, HttpResponse&& response);
  // [request] Starts a chunked response instead; nullptr if the exchange already answered.
  std::shared_ptr<StreamState> begin_stream(Exchange& ex, HttpResponse&& head,
                                            std::function<void()> on_closed);
  // [any] A stream ended: tells the stream observers (once per stream).
  void observe_stream_end(Exchange& ex, uint16_t status, uint64_t bytes,
                          kg_stream_end_reason reason);
  bool shutting_down() const { return shutting_down_; }

 private:
  void run_filters(const std::shared_ptr<Exchange>& ex);
  void run_handler(const std::shared_ptr<Exchange>& ex);
  // After a plugin callback returned `st`: answer, wait, continue, or fail with 500.
  bool settle(const std::shared_ptr<Exchange>& ex, kg_status st, bool is_filter,
              const std::string& who);
  void observe(Exchange& ex, uint16_t status, uint64_t response_bytes);

  Logger& log_;
  Router router_;
  std::vector<HandlerEntry> handlers_;
  std::vector<FilterEntry> filters_;
  std::vector<ObserverEntry> observers_;
  std::vector<ObserverEntry> stream_observers_;
  std::atomic<bool> shutting_down_{false};
  std::mutex streams_mutex_;  // guards the two below
  std::vector<std::weak_ptr<StreamMeter>> streams_;
  std::size_t streams_pruned_at_ = 0;
};

// True when `target` has a ".." segment or a NUL (raw or %00), raw or percent-encoded.
bool unsafe_target(std::string_view target);
// True when `id` is a usable request id ([A-Za-z0-9._-], 1..128).
bool valid_request_id(std::string_view id);
// A fresh random id: 32 lowercase hex characters.
std::string new_request_id();
// Validates a W3C traceparent (version 00) and returns it, or a new one with a fresh trace id.
std::string continue_traceparent(std::optional<std::string_view> incoming);

}  // namespace kghost
