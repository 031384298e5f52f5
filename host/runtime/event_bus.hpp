// The in-process event bus behind the ABI's bus_publish/bus_subscribe: NATS-style subjects,
// a bounded queue per subscriber, deliveries on the worker pool.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "runtime/worker_pool.hpp"
#include "telemetry/logging.hpp"

namespace prometheus {
class Registry;
}

namespace kghost {

struct BusConfirmation;

// Completion of a confirmed publish: called once with true when every matching subscriber's
// handler returned success, false when one failed or the event was dropped for it.
using BusConfirm = std::function<void(bool ok)>;

struct BusEvent {
  std::string topic;
  std::string data;
  std::string id;
  std::shared_ptr<BusConfirmation> confirm;  // set for confirmed publishes only
};

// A topic: one or more non-empty '.'-separated tokens, no wildcards, no whitespace.
bool valid_topic(std::string_view topic);
// A pattern: like a topic, but a token may be '*' (exactly one token) and the last token may
// be '>' (one or more tokens). Wildcards only stand alone ("a*" is invalid).
bool valid_pattern(std::string_view pattern);
// NATS-style match. False when either side is invalid.
bool subject_matches(std::string_view pattern, std::string_view topic);

class EventBus {
 public:
  // The pool, registry and logger outlive the bus. A handler that throws is logged to `log`.
  EventBus(WorkerPool& pool, prometheus::Registry& registry, Logger& log,
           std::size_t per_subscriber_capacity = 10000);
  ~EventBus();  // stop()
  EventBus(const EventBus&) = delete;
  EventBus& operator=(const EventBus&) = delete;

  // Returns false when the event failed (the bus logs and counts it; no redelivery).
  // Called on a pool thread, one event at a time per subscription, in publish order.
  using Handler = std::function<bool(const BusEvent&)>;

  // [any] Returns a subscription id (> 0), or 0 for an invalid pattern, an empty handler or a
  // stopped bus. subscriber_name labels the metrics (the plugin's name).
  uint64_t subscribe(std::string_view pattern, std::string_view subscriber_name, Handler handler);
  // [any] Removes a subscription: no delivery starts after it returns, except from inside that
  // subscription's own handler. Returns false for an unknown id.
  bool unsubscribe(uint64_t id);

  // [any] Copies the event into every matching subscriber's bounded queue. Never blocks, never
  // runs a handler on the caller's thread. A full queue drops the event for that subscriber
  // (kgents_bus_dropped_total{subscriber}). An empty id gets a generated unique one. Returns the
  // id used, or nullopt for an invalid topic or a stopped bus.
  std::optional<std::string> publish(std::string_view topic, std::string_view data,
                                     std::string_view id = {});
  // [any] Like publish(), and `done` runs once after every matching subscriber's handler has
  // returned for this event (at once, on the caller's thread, when nothing matches). A drop
  // (full queue, unsubscribe, stop) counts as a failure. These deliveries run on the bus's own
  // thread, so a publisher that blocks a pool thread waiting for `done` cannot starve them.
  // On nullopt (invalid topic, stopped bus) `done` is not called.
  std::optional<std::string> publish_confirmed(std::string_view topic, std::string_view data,
                                               std::string_view id, BusConfirm done);

  // [any] No delivery starts after it returns; waits for running handlers (except the calling
  // one, when called from a handler). Queued events are discarded. Idempotent.
  void stop();

  // [any] Events waiting over all subscribers.
  std::size_t depth() const;

  struct Core;  // shared with the pool jobs, so a job that outlives the bus is harmless

 private:
  std::optional<std::string> publish_impl(std::string_view topic, std::string_view data,
                                          std::string_view id, BusConfirm done);
  std::shared_ptr<Core> core_;
};

}  // namespace kghost
