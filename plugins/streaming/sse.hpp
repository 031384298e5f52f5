// streaming: Server-Sent Events for tenant channels. Each client gets a JetStream ordered
// consumer (ephemeral, no acks, flow control) on its own subject, starting after Last-Event-ID
// or at new messages.
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

 private:
  struct Client {
    std::mutex mu;  // serialises writes (events, heartbeats) and close
    sdk::Stream stream;
    natsSubscription* sub = nullptr;
    std::string subject;
    std::optional<uint64_t> start_seq;
    std::atomic<bool> closed{false};
    std::atomic<bool> torn_down{false};
    std::atomic<int64_t> last_write_ms{0};
    SseHub* hub = nullptr;
  };
  using ClientPtr = std::shared_ptr<Client>;

  static void on_msg(natsConnection* nc, natsSubscription* sub, natsMsg* msg, void* closure);
  static void on_complete(void* closure);
  void subscribe(const ClientPtr& c);
  void finish(Client* c, bool slow);  // [any] marks closed, queues teardown
  void teardown(const ClientPtr& c);  // hub thread
  kg_status write(Client& c, std::string_view bytes);

  Settings settings_;
  Publisher& publisher_;
  SseMetrics metrics_;
  Log log_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<Client*, ClientPtr> clients_;  // alive until the subscription completes
  std::deque<ClientPtr> to_subscribe_, to_teardown_;
  std::atomic<std::size_t> open_{0};
};

}  // namespace kghost::streaming
