// The Redis backend of the shared store: a small pool of hiredis connections, each owned by
// its own thread, pipelining whatever its queue holds; a memory store answers while Redis is
// unreachable or too slow.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "store/memory_store.hpp"
#include "store/store.hpp"
#include "telemetry/logging.hpp"

struct redisContext;
struct redisReply;

namespace kghost {

class RedisStore final : public Store {
 public:
  RedisStore(const RedisOptions& options, prometheus::Registry& registry, Logger& log);
  ~RedisStore() override;
  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;

  std::optional<StoreReply> check_and_set(std::string_view key, std::chrono::milliseconds ttl,
                                          StoreDone done) override;
  std::optional<StoreReply> incr(std::string_view key, int64_t delta, std::chrono::milliseconds ttl,
                                 StoreDone done) override;
  std::optional<StoreReply> get(std::string_view key, StoreDone done) override;
  std::optional<StoreReply> put(std::string_view key, std::string_view value,
                                std::chrono::milliseconds ttl, StoreDone done) override;
  std::optional<StoreReply> del(std::string_view key, StoreDone done) override;
  StoreHealth health() const override;
  void stop() override;

 private:
  using Clock = std::chrono::steady_clock;

  struct Request {
    StoreOp op;
    std::string key;
    std::string value;
    int64_t delta = 0;
    int64_t ttl_ms = 0;
    StoreDone done;
    Clock::time_point enqueued;
  };

  // One connection and the thread that owns it.
  struct Connection {
    std::mutex mutex;  // guards queue, closed, last_error
    std::condition_variable cv;
    std::vector<Request> queue;
    bool closed = false;  // the thread has exited: answer from the fallback
    std::string last_error;
    std::atomic<bool> connected{false};
    std::thread thread;
    // Owned by the thread.
    redisContext* ctx = nullptr;
    std::string incr_sha;
    std::string get_sha;
  };

  std::optional<StoreReply> submit(Request&& req);
  StoreReply answer_from_fallback(const Request& req);
  void fallback_all(std::vector<Request>& reqs);
  void call_done(const Request& req, const StoreReply& reply) const;

  void run(Connection& c);
  bool connect(Connection& c);
  void disconnect(Connection& c, const std::string& reason);
  void process(Connection& c, std::vector<Request>& batch);
  bool ping(Connection& c);
  void append_command(Connection& c, const Request& req);
  StoreReply to_reply(const Request& req, const redisReply* r, bool& noscript) const;
  void set_connected(Connection& c, bool up);

  Logger& log_;
  RedisOptions options_;
  RedisEndpoint endpoint_;
  MemoryStore fallback_;
  StoreMetrics metrics_;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::atomic<std::size_t> connected_count_{0};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> was_up_{false};  // all connections were up once: later ups are recoveries
  std::mutex startup_mutex_;         // guards first_attempts_
  std::condition_variable startup_cv_;
  std::size_t first_attempts_ = 0;  // connections that tried to connect once
  std::mutex stop_mutex_;           // serialises stop()
  bool stopped_ = false;            // guarded by stop_mutex_
};

}  // namespace kghost
