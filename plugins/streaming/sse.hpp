// streaming: Server-Sent Events for tenant channels. A client with Last-Event-ID gets its own
// JetStream ordered consumer (ephemeral, no acks, flow control) starting after that sequence.
// Live clients (no Last-Event-ID: new messages only) of one subject share one ordered consumer:
// each event is delivered by NATS and framed once, then written to every one of them.
//
// Threads:
//   [request] open(): starts the chunked response, queues the subscription for the hub thread.
//   hub loop (host task "sse-hub"): creates consumers (a JetStream API round trip, so never on an
//     I/O thread), writes heartbeats, tears down finished clients.
//   cnats delivery pool: on_msg writes `id/event/data` frames.
// A write the host refuses with KG_ERR_FULL (the client does not read fast enough) closes that
// client; it never blocks anyone else.
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <kghost/plugin.hpp>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "publisher.hpp"
#include "settings.hpp"

namespace kghost::streaming {

struct SseMetrics {
  sdk::Metric::Series clients, slow_disconnects, delivered;
};

class SseHub {
 public:
  using Log = std::function<void(kg_log_level, const std::string&)>;
  SseHub(const Settings& settings, Publisher& publisher, SseMetrics metrics, Log log);
  ~SseHub();

  // [request] false when the client limit is reached (answer 503 then).
  bool open(sdk::Request& req, std::string subject, std::optional<uint64_t> start_seq);
  void run(const std::function<bool()>& stopping);  // [task]
  void close_all();                                 // [main] at stop
  std::size_t clients();

  // One SSE event frame; multi-line data becomes several data: lines.
  static std::string frame(uint64_t seq, std::string_view data);
  static std::string frame(natsMsg* msg);  // with the JetStream stream sequence as id

 private:
  struct Group;
  struct Client {
    std::mutex mu;  // serialises writes (events, heartbeats) and close
    sdk::Stream stream;
    natsSubscription* sub = nullptr;  // its own consumer (Last-Event-ID), or
    std::shared_ptr<Group> group;     // the shared live one (set and read on the hub thread)
    std::string subject;
    std::optional<uint64_t> start_seq;
    std::atomic<bool> closed{false};
    std::atomic<bool> torn_down{false};
    std::atomic<int64_t> last_write_ms{0};
    SseHub* hub = nullptr;
  };
  using ClientPtr = std::shared_ptr<Client>;
  // The live clients of one subject and their shared consumer. Members change on the hub thread
  // only; the delivery thread reads them under `mu`.
  struct Group {
    std::mutex mu;
    std::vector<ClientPtr> members;
    natsSubscription* sub = nullptr;
    std::string subject;
    SseHub* hub = nullptr;
  };
  using GroupPtr = std::shared_ptr<Group>;

  static void on_msg(natsConnection* nc, natsSubscription* sub, natsMsg* msg, void* closure);
  static void on_complete(void* closure);
  static void on_group_msg(natsConnection* nc, natsSubscription* sub, natsMsg* msg, void* closure);
  static void on_group_complete(void* closure);
  // A consumer on `subject` (from start_seq, or new messages only) delivering to `cb`.
  natsSubscription* consumer(const std::string& subject, std::optional<uint64_t> start_seq,
                             natsMsgHandler cb, void* closure);
  void subscribe(const ClientPtr& c);
  void join_group(const ClientPtr& c);
  void leave_group(const ClientPtr& c);
  void finish(Client* c, bool slow);  // [any] marks closed, queues teardown
  void teardown(const ClientPtr& c);  // hub thread
  kg_status write(Client& c, std::string_view bytes);

  Settings settings_;
  Publisher& publisher_;
  SseMetrics metrics_;
  Log log_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<Client*, ClientPtr> clients_;    // alive until the subscription completes
  std::unordered_map<std::string, GroupPtr> groups_;  // live groups by subject (hub thread)
  std::unordered_map<Group*, GroupPtr> ending_;       // unsubscribed, until their completion
  std::deque<ClientPtr> to_subscribe_, to_teardown_;
  std::atomic<std::size_t> open_{0};
};

}  // namespace kghost::streaming
