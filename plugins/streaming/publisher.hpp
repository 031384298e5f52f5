// streaming: the JetStream publisher. One NATS connection (reconnecting forever), one publisher
// thread (a host long-running task) that owns the order of events, a circuit breaker and a
// bounded fallback queue that is durable (the host's queue "fallback").
//
// Threads:
//   [request]/[task] publish(): admits an event into the FIFO (never blocks; while NATS is
//     away it hands the event to the durable queue, which writes it on its own thread).
//   publisher loop (host task "nats-publisher"): ensures the stream, sends events with
//     js_PublishMsgAsync (at most max_in_flight awaiting acks), times acks out, resyncs.
//   cnats threads: ack handler (positive/negative acks), connection callbacks.
//   durable queue: append completions (committer thread), the consumer (a host worker).
//
// Ordering: events leave the FIFO in admission order. After any failure (negative ack, ack
// timeout, disconnect) every un-acked event goes back to the head of the FIFO, in order, and is
// sent again with the same Nats-Msg-Id, so JetStream stores each exactly once and in order. To
// keep that true, cnats' own reconnect buffer is turned off (size 0): a publish during a
// reconnect fails at once (and the event stays in our FIFO) instead of being replayed by the
// library ahead of an earlier event that was lost with the old connection; and a connection
// loss seen first by a failed publish resyncs as the disconnect callback does.
//
// Durability: the fast path (NATS healthy, nothing recovering) never touches the disk. Once
// NATS is not healthy, every event not yet acked (in flight, then waiting, in order) and every
// new event is appended to the durable queue, under the FIFO's lock, so the queue's ids follow
// the FIFO order; the client is answered 202 queued only from the append completion. The FIFO
// stays the only source of sends: the durable copy is for a crash. The queue's consumer acks a
// record once its event is acked by JetStream (a publish acked before a crash is resent after
// it with the same Nats-Msg-Id: JetStream drops the duplicate). After a restart the consumer
// first hands every stored record back into the FIFO, oldest first; until all are back, new
// events go to the queue behind them and nothing is sent.
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
#include <unordered_set>
#include <utility>
#include <vector>

#include "breaker.hpp"
#include "settings.hpp"

namespace kghost::streaming {

// How a deferred publish ended.
struct Outcome {
  enum Kind { acked, queued, rejected, overloaded, unavailable } kind = acked;
  uint64_t sequence = 0;   // acked: the JetStream stream sequence
  bool duplicate = false;  // acked: JetStream had it already (same Nats-Msg-Id)
  std::string reason;      // rejected / overloaded / unavailable
};
using Done = std::function<void(const Outcome&)>;

// What publish() decided at once.
enum class Admission {
  pending,      // `done` runs once: with the ack, or `queued` once the event is on disk (NATS
                // away), or `overloaded` / `unavailable` if the disk refuses it
  overloaded,   // fallback queue full: dropped and counted; `done` will not run
  unavailable,  // disabled (no servers) or shutting down; `done` will not run
};

struct PublisherMetrics {
  sdk::Metric::Series circuit_state, published, queue_depth, dropped;
};

struct PublisherStatus {
  bool enabled = false, connected = false, stream_ready = false;
  Breaker::State circuit = Breaker::State::closed;
  bool recovering = false;  // stored events are still being read back after a restart
  std::size_t queue_depth = 0, in_flight = 0, stored = 0;
  uint64_t published = 0, dropped = 0, failures = 0;
};

class Publisher {
 public:
  using Log = std::function<void(kg_log_level, const std::string&)>;
  Publisher(const Settings& settings, PublisherMetrics metrics, Log log);
  ~Publisher();
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  // [main] during create: the durable queue behind the fallback queue. Events it holds from an
  // earlier run are read back (consume) before anything new is sent.
  void attach_queue(sdk::Queue queue);
  // The durable queue's consumer. [task] KG_OK once the record's event is acked by JetStream
  // (waits briefly for that), KG_ERR_RETRY until then.
  kg_status consume(const sdk::QueueEntry& entry);

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
    bool acked = false;  // resolved by JetStream (acked, or refused for good): never resent
    enum class Disk : uint8_t { none, appending, stored } disk = Disk::none;
    bool dropped = false;  // its append failed: answered 503, never sent (again)
    uint64_t qid = 0;      // stored: the durable queue's id
  };
  using EventPtr = std::shared_ptr<Event>;

  static void on_ack(jsCtx* js, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure);
  static void on_disconnected(natsConnection* nc, void* closure);
  static void on_connected(natsConnection* nc, void* closure);
  static void on_closed(natsConnection* nc, void* closure);
  void set_connected(bool up, natsConnection* nc = nullptr);
  // The connection is gone (callback or a failed publish): stop sending, resync what was sent.
  void lost_connection_locked();
  static uint64_t reconnects(natsConnection* nc);  // cnats' count of reconnects

  bool ensure_stream();
  // Moves every un-acked in-flight event back to the head of the FIFO (publisher thread).
  void resync(std::unique_lock<std::mutex>& lock, std::size_t failures, const char* why);
  void send_batch(std::unique_lock<std::mutex>& lock, std::size_t max);
  using Answers = std::vector<std::pair<Done, Outcome>>;
  // Appends every un-acked event not on disk yet (in flight, then waiting, in order).
  void spill_locked(Answers& out);
  // Appends one event; KG_PENDING, or the queue's refusal (the event is not changed then).
  kg_status append_locked(const EventPtr& e);
  void on_appended(const EventPtr& e, kg_status status, uint64_t id);
  // JetStream resolved e (acked or refused): its stored record may go.
  void resolved_locked(Event& e);
  bool admit_direct_locked(Breaker::Clock::time_point now);
  // The fallback queue's depth: the FIFO plus stored events not read back yet.
  std::size_t depth_locked() const;
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
  // Durable queue: records whose event is in the FIFO, and records whose event JetStream
  // resolved (the consumer acks those).
  sdk::Queue queue_;
  std::unordered_map<uint64_t, EventPtr> stored_;
  std::unordered_set<uint64_t> resolved_;
  std::condition_variable resolved_cv_;
  bool all_stored_ = true;  // every un-acked event is on disk (or dropped): spill has no work
  bool recovering_ = false;
  uint64_t to_recover_ = 0, recovered_ = 0;  // records from an earlier run: all / handed out
  std::size_t recovered_front_ = 0;          // of those, back in front of the FIFO
  Breaker breaker_;
  bool connected_ = false;
  uint64_t reconnects_seen_ = 0;  // reconnects() when connected_ last became true
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
