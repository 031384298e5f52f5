// The request path's shared parts: the route table being served (swapped whole, atomically),
// the set-up of the next one, the streams still open, and the shutdown flag. The path of one
// request itself (route → filters in order → scope enforcement → handler → write → observers)
// is the Exchange's state machine (exchange.cpp).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "http/exchange.hpp"
#include "http/protocol.hpp"
#include "http/route_table.hpp"
#include "http/router.hpp"
#include "telemetry/logging.hpp"

namespace kghost {

struct StreamMeter;

class Pipeline {
 public:
  explicit Pipeline(Logger& log);

  // --- set-up of the next table (what publish() serves) ---
  // add_route returns an error text (conflict, bad template) or "".
  std::string add_route(RouteInfo info, HandlerEntry handler) {
    return draft_.add_route(std::move(info), std::move(handler));
  }
  void add_filter(FilterEntry filter) { draft_.add_filter(std::move(filter)); }
  void add_observer(ObserverEntry observer) { draft_.add_observer(std::move(observer)); }
  void add_stream_observer(ObserverEntry observer) {
    draft_.add_stream_observer(std::move(observer));
  }
  // A plugin that failed to start: its routes answer 503 unavailable; its filters and
  // observers are dropped.
  void take_out_of_service(const std::string& owner) { draft_.take_out_of_service(owner); }
  // The routes set up so far (not yet published).
  const Router& router() const { return draft_.router(); }
  // Serves the table set up so far: requests from now on use it, the ones under way keep
  // theirs until they complete. The set-up starts over empty.
  void publish() { publish(draft_.build()); }
  // [any] Swaps a whole table in, atomically.
  void publish(std::shared_ptr<const RouteTable> table);
  // [request] The table being served. Per I/O thread it is a reference with its own count,
  // refreshed when a table is published: taking it per request writes no cache line that
  // other threads write.
  std::shared_ptr<const RouteTable> table() const;

  // [any] Streams ended from now on end because the host shuts down.
  void begin_shutdown() { shutting_down_ = true; }
  bool shutting_down() const { return shutting_down_; }
  // [any] A stream began; it is ended by end_streams if still open then.
  void track(const std::shared_ptr<StreamMeter>& stream);
  // After the drain: reports every stream still open as ended by the host shutdown (the
  // transport closes them when it stops).
  void end_streams();
  Logger& log() { return log_; }

 private:
  Logger& log_;
  RouteTable::Builder draft_;
  std::atomic<std::shared_ptr<const RouteTable>> live_;
  std::atomic<uint64_t> generation_{0};  // of live_, unique across pipelines; 0: none yet
  std::atomic<bool> shutting_down_{false};
  std::mutex streams_mutex_;  // guards the two below
  std::vector<std::weak_ptr<StreamMeter>> streams_;
  std::size_t streams_pruned_at_ = 0;
};

}  // namespace kghost
