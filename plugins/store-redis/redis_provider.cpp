#include "redis_provider.hpp"

#include <hiredis/hiredis.h>
#include <pthread.h>

#include <stdexcept>

namespace store_redis {
namespace {

// Above this many queued requests on one connection, calls are answered by the fallback
// rather than growing the queue without bound.
constexpr std::size_t kMaxQueue = 100000;
// Requests handed to the pipeline at once (after dropping the stale ones); it writes at most
// 1024 commands per round trip, and a hot key's many increments make one command.
constexpr std::size_t kMaxBatch = 8192;

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

std::string_view sv(kg_str s) { return {s.ptr, s.len}; }

struct ReplyDeleter {
  void operator()(redisReply* r) const {
    if (r) freeReplyObject(r);
  }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

// A command on a connection the thread owns; nullptr (and ctx->err set) on an I/O error.
ReplyPtr command(redisContext* ctx, std::initializer_list<std::string_view> args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (auto a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  return ReplyPtr(static_cast<redisReply*>(
      redisCommandArgv(ctx, static_cast<int>(argv.size()), argv.data(), lens.data())));
}

}  // namespace

RedisProvider::RedisProvider(const RedisOptions& options, ProviderHost host)
    : options_(options), endpoint_(parse_redis_url(options.url)), host_(std::move(host)) {
  if (options_.pool_size == 0) options_.pool_size = 1;
  if (options_.timeout.count() <= 0) options_.timeout = std::chrono::milliseconds(500);
  if (options_.reconnect_interval.count() <= 0)
    options_.reconnect_interval = std::chrono::milliseconds(1000);
  for (std::size_t i = 0; i < options_.pool_size; ++i) {
    connections_.push_back(std::make_unique<Connection>(
        [this](const Request& req, const kg_store_result& result) { complete(req, result); }));
    connections_.back()->last_error = "not connected yet";
  }
}

RedisProvider::~RedisProvider() { stop(); }

void RedisProvider::start() {
  {
    std::lock_guard stop_lock(stop_mutex_);
    if (stopped_ || started_.exchange(true)) return;
    for (auto& c : connections_) {
      Connection* conn = c.get();
      conn->thread = std::thread([this, conn] {
        pthread_setname_np(pthread_self(), "kg-store-redis");
        run(*conn);
      });
    }
  }
  // Give the pool one connect timeout to come up, so the first calls go to Redis rather than
  // the fallback. Redis down at start-up costs one timeout, then the store runs degraded.
  std::unique_lock lock(startup_mutex_);
  startup_cv_.wait_for(lock, options_.timeout + std::chrono::milliseconds(100),
                       [&] { return first_attempts_ == connections_.size(); });
  if (connected_count_.load() < connections_.size()) {
    std::string detail;
    status(&detail);
    host_.log(KG_LOG_WARN, "store: not reachable at start-up: " + detail);
  }
}

void RedisProvider::stop() {
  std::lock_guard stop_lock(stop_mutex_);
  if (stopped_) return;
  stopping_.store(true);
  for (auto& c : connections_) {
    std::lock_guard lock(c->mutex);     // no lost wake-up: the thread checks stopping_ under it
    c->closed = !c->thread.joinable();  // never started: refuse from now on
    c->cv.notify_all();
  }
  for (auto& c : connections_)
    if (c->thread.joinable()) c->thread.join();
  stopped_ = true;
}

// --- caller side ---------------------------------------------------------------------------

kg_status RedisProvider::submit(Op op, kg_str key, kg_str value, int64_t delta, int64_t ttl_ms,
                                kg_store_op* token) {
  Connection& c = *connections_[std::hash<std::string_view>{}(sv(key)) % connections_.size()];
  if (!c.connected.load(std::memory_order_acquire)) return KG_ERR_UNAVAILABLE;
  bool was_empty = false;
  {
    std::lock_guard lock(c.mutex);
    if (c.closed || c.queue.size() >= kMaxQueue) return KG_ERR_UNAVAILABLE;
    was_empty = c.queue.empty();
    c.queue.push_back(Request{op, key, value, delta, ttl_ms, token, Clock::now()});
  }
  // A non-empty queue has had its wake-up already: the thread takes the whole queue at once.
  if (was_empty) c.cv.notify_one();
  return KG_PENDING;
}

kg_health_status RedisProvider::status(std::string* detail) const {
  const std::size_t up = connected_count_.load();
  if (up == connections_.size() && !stopping_.load()) return KG_HEALTHY;
  if (detail) {
    std::string why;
    for (auto& c : connections_) {
      if (c->connected.load()) continue;
      std::lock_guard lock(c->mutex);
      why = c->last_error;
      break;
    }
    if (stopping_.load()) why = "store stopped";
    *detail = "redis at " + endpoint_.host + ":" + std::to_string(endpoint_.port) + ": " +
              std::to_string(up) + "/" + std::to_string(connections_.size()) + " connections up (" +
              why + "), reconnecting every " + std::to_string(options_.reconnect_interval.count()) +
              " ms";
  }
  return up == 0 ? KG_UNHEALTHY : KG_DEGRADED;
}

void RedisProvider::complete(const Request& req, const kg_store_result& result) const {
  host_.complete(req.token, &result);
}

void RedisProvider::unavailable(const Request& req) const {
  kg_store_result r{};
  r.struct_size = sizeof r;
  r.status = KG_ERR_UNAVAILABLE;
  complete(req, r);
}

void RedisProvider::unavailable_all(std::vector<Request>& reqs) const {
  for (auto& r : reqs) unavailable(r);
  reqs.clear();
}

// --- connection thread ---------------------------------------------------------------------

void RedisProvider::set_connected(Connection& c, bool up) {
  if (c.connected.exchange(up) == up) return;
  if (up)
    connected_count_.fetch_add(1);
  else
    connected_count_.fetch_sub(1);
  if (!stopping_.load()) host_.changed();  // shutting down: not an outage
}

bool RedisProvider::connect(Connection& c) {
  const timeval tv = to_timeval(options_.timeout);
  c.ctx = redisConnectWithTimeout(endpoint_.host.c_str(), endpoint_.port, tv);
  auto fail = [&](const std::string& why) {
    disconnect(c, why);
    return false;
  };
  if (c.ctx == nullptr) return fail("cannot allocate a connection");
  if (c.ctx->err) return fail(std::string("connect: ") + c.ctx->errstr);
  if (redisSetTimeout(c.ctx, tv) != REDIS_OK) return fail("cannot set the socket timeout");
  redisEnableKeepAlive(c.ctx);
  auto setup = [&](std::initializer_list<std::string_view> args,
                   std::string_view what) -> ReplyPtr {
    ReplyPtr r = command(c.ctx, args);
    if (!r) {
      fail(std::string(what) + ": " + c.ctx->errstr);
      return nullptr;
    }
    if (r->type == REDIS_REPLY_ERROR) {
      fail(std::string(what) + ": " + std::string(r->str, r->len));
      return nullptr;
    }
    return r;
  };
  if (!endpoint_.password.empty()) {
    ReplyPtr r = endpoint_.user.empty()
                     ? setup({"AUTH", endpoint_.password}, "AUTH")
                     : setup({"AUTH", endpoint_.user, endpoint_.password}, "AUTH");
    if (!r) return false;
  }
  if (endpoint_.db != 0) {
    const std::string db = std::to_string(endpoint_.db);
    if (!setup({"SELECT", db}, "SELECT")) return false;
  }
  if (!setup({"PING"}, "PING")) return false;  // a server that answers, not just a socket
  {
    std::lock_guard lock(c.mutex);
    c.last_error.clear();
  }
  set_connected(c, true);
  return true;
}

void RedisProvider::disconnect(Connection& c, const std::string& reason) {
  if (c.ctx) {
    redisFree(c.ctx);
    c.ctx = nullptr;
  }
  {
    std::lock_guard lock(c.mutex);
    c.last_error = reason;
  }
  set_connected(c, false);
}

bool RedisProvider::ping(Connection& c) {
  ReplyPtr r = command(c.ctx, {"PING"});
  if (!r) {
    disconnect(c, std::string("PING: ") + c.ctx->errstr);
    return false;
  }
  return true;
}

void RedisProvider::run(Connection& c) {
  std::vector<Request> batch;
  bool first = true;
  while (!stopping_.load()) {
    const bool ok = c.ctx != nullptr || connect(c);
    if (first) {
      first = false;
      std::lock_guard lock(startup_mutex_);
      ++first_attempts_;
      startup_cv_.notify_all();
    }
    if (!ok) {
      // Down: whatever was queued before callers noticed goes back as unavailable, then wait.
      const auto next_attempt = Clock::now() + options_.reconnect_interval;
      std::unique_lock lock(c.mutex);
      while (!stopping_.load() && Clock::now() < next_attempt) {
        if (!c.queue.empty()) {
          batch.swap(c.queue);
          lock.unlock();
          unavailable_all(batch);
          lock.lock();
          continue;
        }
        c.cv.wait_until(lock, next_attempt);
      }
      continue;
    }
    {
      std::unique_lock lock(c.mutex);
      const bool woken = c.cv.wait_for(lock, options_.reconnect_interval,
                                       [&] { return stopping_.load() || !c.queue.empty(); });
      if (!woken) {
        lock.unlock();
        ping(c);  // idle: notice a dead server before a caller does
        continue;
      }
      if (stopping_.load()) break;
      batch.swap(c.queue);
    }
    process(c, batch);
    batch.clear();
  }
  std::vector<Request> rest;
  {
    std::lock_guard lock(c.mutex);
    c.closed = true;
    rest.swap(c.queue);
  }
  unavailable_all(rest);
  if (c.ctx) {
    redisFree(c.ctx);
    c.ctx = nullptr;
  }
  set_connected(c, false);
}

void RedisProvider::process(Connection& c, std::vector<Request>& batch) {
  // Requests that already waited a whole timeout (a slow server) are not sent at all.
  const auto stale_before = Clock::now() - options_.timeout;
  std::size_t i = 0;
  while (i < batch.size()) {
    c.sendable.clear();
    for (; i < batch.size() && c.sendable.size() < kMaxBatch; ++i) {
      if (c.ctx == nullptr || batch[i].enqueued < stale_before)
        unavailable(batch[i]);
      else
        c.sendable.push_back(batch[i]);
    }
    if (c.sendable.empty()) continue;
    c.unanswered.clear();
    if (!c.pipeline.send(c.ctx, c.sendable, c.unanswered)) {
      // Lost or timed out: the host answers what is left from its fallback (callers never see
      // a Redis outage as an error).
      disconnect(c, std::string("command: ") + c.ctx->errstr);
      unavailable_all(c.unanswered);
    }
  }
}

}  // namespace store_redis
