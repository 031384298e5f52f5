// The Redis store provider: a small pool of hiredis connections, each owned by its own thread,
// pipelining whatever its queue holds; the same key always goes to the same connection. What
// it cannot take or finish in time it hands back as unavailable, and the host answers that
// from its memory fallback.
#pragma once

#include <kghost/plugin.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "redis_pipeline.hpp"
#include "redis_url.hpp"

namespace store_redis {

struct RedisOptions {
  std::string url;  // redis://[[user]:password@]host[:port][/db]
  std::size_t pool_size = 4;
  std::chrono::milliseconds timeout{500};  // connect and per-command
  std::chrono::milliseconds reconnect_interval{1000};
};

// What the provider needs of the host: completing an operation, saying its status changed,
// and logging. Set once, before start.
struct ProviderHost {
  std::function<void(kg_store_op*, const kg_store_result*)> complete;
  std::function<void()> changed;
  std::function<void(kg_log_level, const std::string&)> log;
};

class RedisProvider {
 public:
  // Throws std::invalid_argument on a malformed URL (see parse_redis_url).
  RedisProvider(const RedisOptions& options, ProviderHost host);
  ~RedisProvider();
  RedisProvider(const RedisProvider&) = delete;
  RedisProvider& operator=(const RedisProvider&) = delete;

  // Starts the pool and gives it one connect timeout to come up. [main]
  void start();
  // Joins the pool; every queued operation is completed (as unavailable) before it returns,
  // later ones are refused. Idempotent. [main]
  void stop();

  // One operation (kg_store_provider semantics): KG_PENDING once queued, KG_ERR_UNAVAILABLE
  // when its connection is down or its queue full. The key and value stay valid until `op`
  // is completed. [any]
  kg_status submit(Op op, kg_str key, kg_str value, int64_t delta, int64_t ttl_ms,
                   kg_store_op* token);
  // KG_HEALTHY with every connection up, KG_UNHEALTHY with none, KG_DEGRADED between. [any]
  kg_health_status status(std::string* detail) const;

 private:
  using Clock = std::chrono::steady_clock;

  // One connection and the thread that owns it.
  struct Connection {
    explicit Connection(Complete complete) : pipeline(std::move(complete)) {}
    std::mutex mutex;  // guards queue, closed, last_error
    std::condition_variable cv;
    std::vector<Request> queue;
    bool closed = false;  // the thread has exited: refuse
    std::string last_error;
    std::atomic<bool> connected{false};
    std::thread thread;
    // Owned by the thread.
    redisContext* ctx = nullptr;
    Pipeline pipeline;
    std::vector<Request> sendable;
    std::vector<Request> unanswered;
  };

  void complete(const Request& req, const kg_store_result& result) const;
  void unavailable(const Request& req) const;
  void unavailable_all(std::vector<Request>& reqs) const;

  void run(Connection& c);
  bool connect(Connection& c);
  void disconnect(Connection& c, const std::string& reason);
  void process(Connection& c, std::vector<Request>& batch);
  bool ping(Connection& c);
  void set_connected(Connection& c, bool up);

  RedisOptions options_;
  RedisEndpoint endpoint_;
  ProviderHost host_;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::atomic<std::size_t> connected_count_{0};
  std::atomic<bool> started_{false};
  std::atomic<bool> stopping_{false};
  std::mutex startup_mutex_;  // guards first_attempts_
  std::condition_variable startup_cv_;
  std::size_t first_attempts_ = 0;  // connections that tried to connect once
  std::mutex stop_mutex_;           // serialises start() and stop()
  bool stopped_ = false;            // guarded by stop_mutex_
};

}  // namespace store_redis
