#include "store/redis_store.hpp"

#include <fmt/format.h>
#include <hiredis/hiredis.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <stdexcept>

namespace kghost {
namespace {

// Above this many queued requests on one connection, calls are answered by the fallback
// rather than growing the queue without bound.
constexpr std::size_t kMaxQueue = 100000;
// Commands written before the replies are read.
constexpr std::size_t kMaxBatch = 1024;

// INCRBY and, only when the key did not exist, PEXPIRE; then the remaining TTL. One atomic
// script: concurrent replicas never read-then-write. (Lua numbers are doubles: values beyond
// 2^53 lose precision, far above any counter the host keeps.)
constexpr std::string_view kIncrScript = R"lua(
local existed = redis.call('EXISTS', KEYS[1])
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[2])
if existed == 0 and ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
return {v, redis.call('PTTL', KEYS[1])}
)lua";

// GET and PTTL together.
constexpr std::string_view kGetScript = R"lua(
local v = redis.call('GET', KEYS[1])
if not v then return false end
return {v, redis.call('PTTL', KEYS[1])}
)lua";

constexpr std::string_view kUrlForm = "redis://[[user]:password@]host[:port][/db]";

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

bool parse_int(std::string_view s, int& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

// The URL with any password replaced, safe for messages and logs.
std::string mask_url(std::string_view url) {
  const auto scheme = url.find("://");
  const auto start = scheme == std::string_view::npos ? 0 : scheme + 3;
  const auto slash = url.find('/', start);
  const auto at = url.rfind('@', slash == std::string_view::npos ? url.size() : slash);
  if (at == std::string_view::npos || at < start) return std::string(url);
  const auto colon = url.find(':', start);
  if (colon == std::string_view::npos || colon > at) return std::string(url);
  return std::string(url.substr(0, colon + 1)) + "***" + std::string(url.substr(at));
}

[[noreturn]] void bad_url(std::string_view url, std::string_view why) {
  throw std::invalid_argument("invalid Redis URL '" + mask_url(url) + "': " + std::string(why) +
                              "; expected " + std::string(kUrlForm));
}

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

RedisEndpoint parse_redis_url(std::string_view url) {
  constexpr std::string_view scheme = "redis://";
  if (url.substr(0, scheme.size()) != scheme) {
    if (url.substr(0, 9) == "rediss://") bad_url(url, "TLS (rediss://) is not supported");
    bad_url(url, "the scheme must be redis://");
  }
  std::string_view rest = url.substr(scheme.size());
  if (rest.find_first_of("?#") != std::string_view::npos)
    bad_url(url, "query strings and fragments are not supported");
  RedisEndpoint ep;
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view db = rest.substr(slash + 1);
    if (!db.empty() && (!parse_int(db, ep.db) || ep.db < 0))
      bad_url(url, "the database must be a non-negative number");
  }
  const auto at = authority.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    const auto colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
      ep.password = std::string(userinfo);  // redis://password@host, as some clients allow
    } else {
      ep.user = std::string(userinfo.substr(0, colon));
      ep.password = std::string(userinfo.substr(colon + 1));
    }
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) bad_url(url, "unterminated IPv6 address");
    ep.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') bad_url(url, "unexpected text after the IPv6 address");
      port = after.substr(1);
      if (port.empty()) bad_url(url, "empty port");
    }
  } else {
    const auto colon = authority.rfind(':');
    ep.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) bad_url(url, "empty port");
    }
  }
  if (ep.host.empty()) bad_url(url, "missing host");
  if (ep.host.find_first_of(" \t/:@") != std::string::npos && authority.front() != '[')
    bad_url(url, "malformed host");
  if (!port.empty() && (!parse_int(port, ep.port) || ep.port < 1 || ep.port > 65535))
    bad_url(url, "the port must be a number from 1 to 65535");
  return ep;
}

RedisStore::RedisStore(const RedisOptions& options, prometheus::Registry& registry, Logger& log)
    : log_(log),
      options_(options),
      endpoint_(parse_redis_url(options.url)),
      fallback_(registry, 16, {}),
      metrics_(registry, "redis") {
  if (options_.pool_size == 0) options_.pool_size = 1;
  if (options_.timeout.count() <= 0) options_.timeout = std::chrono::milliseconds(500);
  if (options_.reconnect_interval.count() <= 0)
    options_.reconnect_interval = std::chrono::milliseconds(1000);
  metrics_.up->Set(0);
  for (std::size_t i = 0; i < options_.pool_size; ++i)
    connections_.push_back(std::make_unique<Connection>());
  for (auto& c : connections_) {
    Connection* conn = c.get();
    conn->last_error = "not connected yet";
    conn->thread = std::thread([this, conn] { run(*conn); });
  }
  // Give the pool one connect timeout to come up, so the first calls go to Redis rather than
  // the fallback. Redis down at start-up costs one timeout, then the store runs degraded.
  std::unique_lock lock(startup_mutex_);
  startup_cv_.wait_for(lock, options_.timeout + std::chrono::milliseconds(100),
                       [&] { return first_attempts_ == connections_.size(); });
  if (connected_count_.load() < connections_.size())
    log_.warn(fmt::format("store: not reachable at start-up: {}", health().detail));
}

RedisStore::~RedisStore() { stop(); }

void RedisStore::stop() {
  std::lock_guard stop_lock(stop_mutex_);
  if (stopped_) return;
  stopping_.store(true);
  for (auto& c : connections_) {
    std::lock_guard lock(c->mutex);  // no lost wake-up: the thread checks stopping_ under it
    c->cv.notify_all();
  }
  for (auto& c : connections_)
    if (c->thread.joinable()) c->thread.join();
  fallback_.stop();
  metrics_.up->Set(0);
  stopped_ = true;
}

// --- caller side ---------------------------------------------------------------------------

std::optional<StoreReply> RedisStore::submit(Request&& req) {
  Connection& c = *connections_[std::hash<std::string_view>{}(req.key) % connections_.size()];
  if (c.connected.load(std::memory_order_acquire)) {
    bool queued = false;
    {
      std::lock_guard lock(c.mutex);
      if (!c.closed && c.queue.size() < kMaxQueue) {
        req.enqueued = Clock::now();
        c.queue.push_back(std::move(req));
        queued = true;
      }
    }
    if (queued) {
      c.cv.notify_one();
      return std::nullopt;
    }
  }
  return answer_from_fallback(req);
}

std::optional<StoreReply> RedisStore::check_and_set(std::string_view key,
                                                    std::chrono::milliseconds ttl, StoreDone done) {
  return submit(
      Request{StoreOp::check_and_set, std::string(key), {}, 0, ttl.count(), std::move(done), {}});
}

std::optional<StoreReply> RedisStore::incr(std::string_view key, int64_t delta,
                                           std::chrono::milliseconds ttl, StoreDone done) {
  return submit(
      Request{StoreOp::incr, std::string(key), {}, delta, ttl.count(), std::move(done), {}});
}

std::optional<StoreReply> RedisStore::get(std::string_view key, StoreDone done) {
  return submit(Request{StoreOp::get, std::string(key), {}, 0, 0, std::move(done), {}});
}

std::optional<StoreReply> RedisStore::put(std::string_view key, std::string_view value,
                                          std::chrono::milliseconds ttl, StoreDone done) {
  return submit(Request{
      StoreOp::put, std::string(key), std::string(value), 0, ttl.count(), std::move(done), {}});
}

std::optional<StoreReply> RedisStore::del(std::string_view key, StoreDone done) {
  return submit(Request{StoreOp::del, std::string(key), {}, 0, 0, std::move(done), {}});
}

StoreHealth RedisStore::health() const {
  const std::size_t up = connected_count_.load();
  if (up == connections_.size() && !stopping_.load()) return {HealthStatus::healthy, "redis", ""};
  std::string why;
  for (auto& c : connections_) {
    if (c->connected.load()) continue;
    std::lock_guard lock(c->mutex);
    why = c->last_error;
    break;
  }
  if (stopping_.load()) why = "store stopped";
  return {HealthStatus::degraded, "redis",
          "redis at " + endpoint_.host + ":" + std::to_string(endpoint_.port) + ": " +
              std::to_string(up) + "/" + std::to_string(connections_.size()) + " connections up (" +
              why + "); answering from the memory fallback, reconnecting " + "every " +
              std::to_string(options_.reconnect_interval.count()) + " ms"};
}

StoreReply RedisStore::answer_from_fallback(const Request& req) {
  metrics_.fallback->Increment();
  const std::chrono::milliseconds ttl(req.ttl_ms);
  switch (req.op) {
    case StoreOp::check_and_set:
      return fallback_.do_check_and_set(req.key, ttl);
    case StoreOp::incr:
      return fallback_.do_incr(req.key, req.delta, ttl);
    case StoreOp::get:
      return fallback_.do_get(req.key);
    case StoreOp::put:
      return fallback_.do_put(req.key, req.value, ttl);
    case StoreOp::del:
      return fallback_.do_del(req.key);
  }
  return StoreReply::error("unknown operation");
}

void RedisStore::call_done(const Request& req, const StoreReply& reply) const {
  if (!req.done) return;
  try {
    req.done(reply);
  } catch (const std::exception& e) {
    log_.error(fmt::format("store: a completion callback threw ({}); ignored", e.what()));
  } catch (...) {
    log_.error("store: a completion callback threw; ignored");
  }
}

void RedisStore::fallback_all(std::vector<Request>& reqs) {
  for (auto& r : reqs) call_done(r, answer_from_fallback(r));
  reqs.clear();
}

// --- connection thread ---------------------------------------------------------------------

void RedisStore::set_connected(Connection& c, bool up) {
  if (c.connected.exchange(up) == up) return;
  const std::size_t n = up ? connected_count_.fetch_add(1) + 1 : connected_count_.fetch_sub(1) - 1;
  metrics_.up->Set(n == connections_.size() ? 1 : 0);
  if (stopping_.load()) return;  // shutting down: not an outage
  if (up && n == connections_.size()) {
    if (was_up_.exchange(true))
      log_.info(
          fmt::format("store: redis at {}:{} reachable again, all {} connections up; the memory "
                      "fallback is no longer used",
                      endpoint_.host, endpoint_.port, n));
    else
      log_.info(fmt::format("store: connected to redis at {}:{} ({} connections)", endpoint_.host,
                            endpoint_.port, n));
  } else if (!up && n + 1 == connections_.size()) {
    std::string why;
    {
      std::lock_guard lock(c.mutex);
      why = c.last_error;
    }
    log_.warn(
        fmt::format("store: redis at {}:{} unreachable ({}); answering from the memory fallback, "
                    "reconnecting every {} ms",
                    endpoint_.host, endpoint_.port, why, options_.reconnect_interval.count()));
  }
}

bool RedisStore::connect(Connection& c) {
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
  ReplyPtr incr = setup({"SCRIPT", "LOAD", kIncrScript}, "SCRIPT LOAD");
  if (!incr) return false;
  ReplyPtr get = setup({"SCRIPT", "LOAD", kGetScript}, "SCRIPT LOAD");
  if (!get) return false;
  if (incr->type != REDIS_REPLY_STRING || get->type != REDIS_REPLY_STRING)
    return fail("SCRIPT LOAD: unexpected reply");
  c.incr_sha.assign(incr->str, incr->len);
  c.get_sha.assign(get->str, get->len);
  {
    std::lock_guard lock(c.mutex);
    c.last_error.clear();
  }
  set_connected(c, true);
  return true;
}

void RedisStore::disconnect(Connection& c, const std::string& reason) {
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

bool RedisStore::ping(Connection& c) {
  ReplyPtr r = command(c.ctx, {"PING"});
  if (!r) {
    disconnect(c, std::string("PING: ") + c.ctx->errstr);
    return false;
  }
  return true;
}

void RedisStore::run(Connection& c) {
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
      // Down: whatever was queued before callers noticed goes to the fallback, then wait.
      const auto next_attempt = Clock::now() + options_.reconnect_interval;
      std::unique_lock lock(c.mutex);
      while (!stopping_.load() && Clock::now() < next_attempt) {
        if (!c.queue.empty()) {
          batch.swap(c.queue);
          lock.unlock();
          fallback_all(batch);
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
  fallback_all(rest);
  if (c.ctx) {
    redisFree(c.ctx);
    c.ctx = nullptr;
  }
  set_connected(c, false);
}

void RedisStore::append_command(Connection& c, const Request& req) {
  const char* argv[7];
  size_t lens[7];
  int argc = 0;
  auto add = [&](std::string_view s) {
    argv[argc] = s.data();
    lens[argc] = s.size();
    ++argc;
  };
  char num1[24];
  char num2[24];
  auto num = [](char* buf, int64_t v) {
    auto [p, ec] = std::to_chars(buf, buf + 24, v);
    (void)ec;
    return std::string_view(buf, static_cast<std::size_t>(p - buf));
  };
  switch (req.op) {
    case StoreOp::check_and_set:
      add("SET"), add(req.key), add("1"), add("NX");
      if (req.ttl_ms > 0) add("PX"), add(num(num1, req.ttl_ms));
      break;
    case StoreOp::incr:
      add("EVALSHA"), add(c.incr_sha), add("1"), add(req.key), add(num(num1, req.delta)),
          add(num(num2, req.ttl_ms));
      break;
    case StoreOp::get:
      add("EVALSHA"), add(c.get_sha), add("1"), add(req.key);
      break;
    case StoreOp::put:
      add("SET"), add(req.key), add(req.value);
      if (req.ttl_ms > 0) add("PX"), add(num(num1, req.ttl_ms));
      break;
    case StoreOp::del:
      add("DEL"), add(req.key);
      break;
  }
  redisAppendCommandArgv(c.ctx, argc, argv, lens);
}

StoreReply RedisStore::to_reply(const Request& req, const redisReply* r, bool& noscript) const {
  if (r->type == REDIS_REPLY_ERROR) {
    std::string_view msg(r->str, r->len);
    if (msg.substr(0, 8) == "NOSCRIPT") noscript = true;
    // Redis error texts name the problem, never the stored value.
    return StoreReply::error(std::string(msg));
  }
  StoreReply out;
  auto unexpected = [&] { return StoreReply::error("unexpected reply from redis"); };
  switch (req.op) {
    case StoreOp::check_and_set:
      if (r->type == REDIS_REPLY_STATUS)
        out.created = true;
      else if (r->type == REDIS_REPLY_NIL)
        out.created = false;
      else
        return unexpected();
      return out;
    case StoreOp::incr:
      if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
          r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_INTEGER)
        return unexpected();
      out.value = r->element[0]->integer;
      out.ttl_ms = r->element[1]->integer < 0 ? -1 : r->element[1]->integer;
      return out;
    case StoreOp::get:
      if (r->type == REDIS_REPLY_NIL) {
        out.code = StoreCode::not_found;
        return out;
      }
      if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
          r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_INTEGER)
        return unexpected();
      out.data.assign(r->element[0]->str, r->element[0]->len);
      out.ttl_ms = r->element[1]->integer < 0 ? -1 : r->element[1]->integer;
      return out;
    case StoreOp::put:
      if (r->type != REDIS_REPLY_STATUS) return unexpected();
      return out;
    case StoreOp::del:
      if (r->type != REDIS_REPLY_INTEGER) return unexpected();
      if (r->integer == 0) out.code = StoreCode::not_found;
      return out;
  }
  return unexpected();
}

void RedisStore::process(Connection& c, std::vector<Request>& batch) {
  // Requests that already waited a whole timeout (a slow server) are not sent at all.
  const auto stale_before = Clock::now() - options_.timeout;
  std::vector<Request> sendable;
  sendable.reserve(std::min(batch.size(), kMaxBatch));
  std::array<uint64_t, kStoreOpCount> ops{};
  uint64_t errors = 0;
  std::vector<Request> retry;  // NOSCRIPT: the server lost its scripts (SCRIPT FLUSH)

  std::size_t i = 0;
  while (i < batch.size()) {
    sendable.clear();
    for (; i < batch.size() && sendable.size() < kMaxBatch; ++i) {
      if (c.ctx == nullptr || batch[i].enqueued < stale_before)
        call_done(batch[i], answer_from_fallback(batch[i]));
      else
        sendable.push_back(std::move(batch[i]));
    }
    if (sendable.empty()) continue;
    for (const Request& req : sendable) append_command(c, req);
    for (std::size_t k = 0; k < sendable.size(); ++k) {
      void* raw = nullptr;
      if (redisGetReply(c.ctx, &raw) != REDIS_OK) {
        // Lost or timed out: the outcome of the unanswered commands is unknown; answer them
        // from the fallback (callers never see a Redis outage as an error).
        disconnect(c, std::string("command: ") + c.ctx->errstr);
        for (; k < sendable.size(); ++k) call_done(sendable[k], answer_from_fallback(sendable[k]));
        break;
      }
      ReplyPtr reply(static_cast<redisReply*>(raw));
      bool noscript = false;
      StoreReply out = to_reply(sendable[k], reply.get(), noscript);
      if (noscript) {
        retry.push_back(std::move(sendable[k]));
        continue;
      }
      ++ops[static_cast<std::size_t>(sendable[k].op)];
      if (out.code == StoreCode::error) ++errors;
      call_done(sendable[k], out);
    }
  }
  for (std::size_t op = 0; op < kStoreOpCount; ++op)
    if (ops[op]) metrics_.operations[op]->Increment(static_cast<double>(ops[op]));
  if (errors) metrics_.errors->Increment(static_cast<double>(errors));
  if (!retry.empty()) {
    // Reconnecting reloads the scripts; the retried requests then go through normally.
    if (c.ctx) disconnect(c, "redis lost its scripts (NOSCRIPT); reloading");
    if (connect(c)) {
      process(c, retry);
    } else {
      fallback_all(retry);
    }
  }
}

std::unique_ptr<Store> make_redis_store(const RedisOptions& options, prometheus::Registry& registry,
                                        Logger& log) {
  return std::make_unique<RedisStore>(options, registry, log);
}

}  // namespace kghost
