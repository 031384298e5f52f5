// streaming: the JetStream publisher. One NATS connection (reconnecting forever), one publisher
// thread (a host long-running task) that owns the order of events, a circuit breaker and a
// bounded fallback queue.
//
// Threads:
//   [request]/[task] publish(): admits an event into the FIFO (never blocks, never does I/O).
//   publisher loop (host task "nats-publisher"): ensures the stream, sends events with
//     js_PublishMsgAsync (at most max_in_flight awaiting acks), times acks out, resyncs.
//   cnats threads: ack handler (positive/negative acks), connection callbacks.
//
// Ordering: events leave the FIFO in admission order. After any failure (negative ack, ack
// timeout, disconnect) every un-acked event goes back to the head of the FIFO, in order, and is
// sent again with the same Nats-Msg-Id, so JetStream stores each exactly once and in order. To
// keep that true, cnats' own reconnect buffer is made tiny: a publish during a reconnect fails
// at once (and the event stays in our FIFO) instead of being replayed by the library ahead of
// an earlier event that was lost with the old connection.
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <kghost/plugin.hpp>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "breaker.hpp"
#include "settings.hpp"

namespace kghost::streaming {

// How a deferred publish ended.
struct Outcome {
  enum Kind { acked, queued, rejected, unavailable } kind = acked;
  uint64_t sequence = 0;   // acked: the JetStream stream sequence
  bool duplicate = false;  // acked: JetStream had it already (same Nats-Msg-Id)
  std::string reason;      // rejected / unavailable
};
using Done = std::function<void(const Outcome&)>;

// What publish() decided at once.
enum class Admission {
  pending,      // sent on; `done` runs once with the ack (or `queued` if NATS goes away first)
  queued,       // held in the fallback queue (breaker open / NATS away); `done` will not run
  overloaded,   // fallback queue full: dropped and counted; `done` will not run
  unavailable,  // disabled (no servers) or shutting down; `done` will not run
};

struct PublisherMetrics {
  sdk::Metric::Series circuit_state, published, queue_depth, dropped;
};

struct PublisherStatus {
  bool enabled = false, connected = false, stream_ready = false;
  Breaker::State circuit = Breaker::State::closed;
  std::size_t queue_depth = 0, in_flight = 0;
  uint64_t published = 0, dropped = 0, failures = 0;
};

class Publisher {
 public:
  using Log = std::function<void(kg_log_level, const std::string&)>;
  Publisher(const Settings& settings, PublisherMetrics metrics, Log log);
  ~Publisher();
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  // [main] Creates the connection; returns at once even when no server answers (cnats keeps
  // trying in the background). No-op when disabled.
  void connect();
  // The publisher loop; returns once `stopping()` is true and the queue is drained or the
  // drain deadline passed. [task]
  void run(const std::function<bool()>& stopping);
  // [main] Answers whatever still waits and closes the connection.
  void close();

  Admission publish(std::string subject, std::string data, std::string msg_id,
                    std::string traceparent, Done done);

  PublisherStatus status();
  bool enabled() const { return enabled_; }
  // True while NATS is connected and the stream exists (SSE subscriptions can be made).
  bool ready();
  // The JetStream context for subscriptions; valid from connect() until close().
  jsCtx* js() const { return js_; }

 private:
  struct Event {
    std::string subject, data, msg_id, traceparent;
    Done done;  // empty once answered (or for bridged events)
    Breaker::Clock::time_point sent_at{};
    bool acked = false;
  };
  using EventPtr = std::shared_ptr<Event>;

  static void on_ack(jsCtx* js, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure);
  static void on_disconnected(natsConnection* nc, void* closure);
  static void on_connected(natsConnection* nc, void* closure);
  static void on_closed(natsConnection* nc, void* closure);
  void set_connected(bool up);

  bool ensure_stream();
  // Moves every un-acked in-flight event back to the head of the FIFO (publisher thread).
  void resync(std::unique_lock<std::mutex>& lock, std::size_t failures, const char* why);
  void send_batch(std::unique_lock<std::mutex>& lock, std::size_t max);
  void answer_queued_locked(std::vector<Done>& out);
  void update_gauges_locked();
  bool healthy_locked(Breaker::Clock::time_point now);

  Settings settings_;
  PublisherMetrics metrics_;
  Log log_;
  bool enabled_ = false;

  natsOptions* opts_ = nullptr;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<EventPtr> waiting_;    // the fallback queue / send FIFO
  std::deque<EventPtr> in_flight_;  // sent, in send order (acked ones popped from the front)
  std::unordered_map<natsMsg*, EventPtr> by_msg_;
  Breaker breaker_;
  bool connected_ = false;
  bool stream_ready_ = false;
  bool need_resync_ = false;
  std::size_t pending_failures_ = 0;  // counted by the ack handler, applied by resync
  bool closing_ = false;
  bool was_healthy_ = false;
  Breaker::Clock::time_point next_ensure_{};
  Breaker::State last_state_ = Breaker::State::closed;
  uint64_t published_ = 0, dropped_ = 0, failures_ = 0;
};

}  // namespace kghost::streaming
