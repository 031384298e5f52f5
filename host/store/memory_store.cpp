#include "store/memory_store.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <charconv>
#include <limits>

#include "common/thread_name.hpp"

namespace kghost {
namespace {

// A shard runs the small sweep after this many operations, over this many buckets.
constexpr uint32_t kSweepEvery = 4096;
constexpr std::size_t kSweepBuckets = 8;
// The background thread visits every shard once per tick, this many buckets each.
constexpr std::chrono::milliseconds kSweeperTick{1000};
constexpr std::size_t kBackgroundSweepBuckets = 2048;

std::size_t round_up_pow2(std::size_t n) {
  std::size_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

}  // namespace

std::string_view to_string(StoreOp op) {
  switch (op) {
    case StoreOp::check_and_set:
      return "check_and_set";
    case StoreOp::incr:
      return "incr";
    case StoreOp::get:
      return "get";
    case StoreOp::put:
      return "put";
    case StoreOp::del:
      return "del";
  }
  return "unknown";
}

StoreMetrics::StoreMetrics(prometheus::Registry& registry, std::string_view backend) {
  const std::string b(backend);
  auto& ops = prometheus::BuildCounter()
                  .Name("kgents_store_operations_total")
                  .Help("Shared store operations answered, by operation and backend.")
                  .Register(registry);
  for (std::size_t i = 0; i < kStoreOpCount; ++i)
    operations[i] =
        &ops.Add({{"op", std::string(to_string(static_cast<StoreOp>(i)))}, {"backend", b}});
  errors = &prometheus::BuildCounter()
                .Name("kgents_store_errors_total")
                .Help("Shared store operations answered with an error, by backend.")
                .Register(registry)
                .Add({{"backend", b}});
  fallback = &prometheus::BuildCounter()
                  .Name("kgents_store_fallback_total")
                  .Help(
                      "Store operations answered by the memory fallback while Redis was "
                      "unreachable or slow.")
                  .Register(registry)
                  .Add({});
  up = &prometheus::BuildGauge()
            .Name("kgents_store_backend_up")
            .Help("1 while the store's backend answers, 0 while it is unreachable.")
            .Register(registry)
            .Add({{"backend", b}});
  if (backend != "memory") return;  // only the memory backend knows its key count
  keys = &prometheus::BuildGauge()
              .Name("kgents_store_keys")
              .Help("Keys held by the memory store (expired ones not yet swept included).")
              .Register(registry)
              .Add({{"backend", b}});
}

MemoryStore::MemoryStore(prometheus::Registry& registry, std::size_t shards, StoreClock clock)
    : shards_(round_up_pow2(shards == 0 ? 1 : shards)),
      shard_mask_(shards_.size() - 1),
      clock_(std::move(clock)),
      metrics_(registry, "memory") {
  for (std::size_t i = 0; i < shards_.size(); ++i)
    shards_[i].ops_until_sweep = kSweepEvery;  // single-threaded here: no lock needed
  metrics_.up->Set(1);
  sweeper_ = std::thread([this] {
    name_this_thread("kg-store-sweep");
    sweeper_loop();
  });
}

MemoryStore::~MemoryStore() { stop(); }

void MemoryStore::stop() {
  {
    std::lock_guard lock(sweeper_mutex_);
    if (stopping_ && !sweeper_.joinable()) return;
    stopping_ = true;
  }
  sweeper_cv_.notify_all();
  if (sweeper_.joinable() && sweeper_.get_id() != std::this_thread::get_id()) sweeper_.join();
  flush_metrics();
}

MemoryStore::Shard& MemoryStore::shard_for(std::size_t hash) {
  // Mix the hash so the shard index does not use the same bits as the map's bucket index.
  const uint64_t h = hash * 0x9E3779B97F4A7C15ull;
  return shards_[(h >> 32) & shard_mask_];
}

void MemoryStore::account(Shard& shard, StoreOp op, TimePoint now) {
  ++shard.ops[static_cast<std::size_t>(op)];
  if (--shard.ops_until_sweep == 0) {
    shard.ops_until_sweep = kSweepEvery;
    sweep(shard, now, kSweepBuckets);
  }
}

void MemoryStore::sweep(Shard& shard, TimePoint now, std::size_t buckets) {
  Map& map = shard.map;
  if (map.empty()) return;
  const std::size_t count = map.bucket_count();
  for (std::size_t i = 0; i < buckets && i < count; ++i) {
    const std::size_t b = shard.sweep_cursor++ % count;
    for (auto it = map.begin(b); it != map.end(b);) {
      auto next = std::next(it);
      // Erasing one node leaves the iterators to the others valid.
      if (it->second.expires <= now) map.erase(map.find(std::string_view(it->first)));
      it = next;
    }
  }
  if (shard.sweep_cursor >= count) shard.sweep_cursor = 0;
}

int64_t MemoryStore::remaining_ms(const Entry& e, TimePoint now) {
  if (e.expires == TimePoint::max()) return -1;
  auto left = std::chrono::ceil<std::chrono::milliseconds>(e.expires - now).count();
  return left < 0 ? 0 : left;
}

StoreReply MemoryStore::do_check_and_set(std::string_view key, std::chrono::milliseconds ttl) {
  const TimePoint t = now();
  const TimePoint expires = ttl.count() > 0 ? t + ttl : TimePoint::max();
  const Hashed hk(key);
  Shard& shard = shard_for(hk.hash);
  StoreReply r;
  std::lock_guard lock(shard.mutex);
  account(shard, StoreOp::check_and_set, t);
  auto it = shard.map.find(hk);
  if (it == shard.map.end()) {
    shard.map.emplace(std::string(key), Entry{"1", 0, false, expires});
    r.created = true;
  } else if (it->second.expires <= t) {
    it->second = Entry{"1", 0, false, expires};
    r.created = true;
  }
  return r;
}

StoreReply MemoryStore::do_incr(std::string_view key, int64_t delta,
                                std::chrono::milliseconds ttl) {
  const TimePoint t = now();
  const Hashed hk(key);
  Shard& shard = shard_for(hk.hash);
  StoreReply r;
  std::lock_guard lock(shard.mutex);
  account(shard, StoreOp::incr, t);
  auto it = shard.map.find(hk);
  if (it == shard.map.end() || it->second.expires <= t) {
    Entry fresh{{}, delta, true, ttl.count() > 0 ? t + ttl : TimePoint::max()};
    if (it == shard.map.end())
      it = shard.map.emplace(std::string(key), std::move(fresh)).first;
    else
      it->second = std::move(fresh);
  } else {
    Entry& e = it->second;
    if (!e.is_int) {
      int64_t parsed = 0;
      const char* end = e.data.data() + e.data.size();
      auto [p, ec] = std::from_chars(e.data.data(), end, parsed);
      if (ec != std::errc() || p != end || e.data.empty()) {
        metrics_.errors->Increment();
        return StoreReply::error("value is not an integer");
      }
      e.num = parsed;
      e.is_int = true;
      e.data.clear();
    }
    int64_t sum = 0;
    if (__builtin_add_overflow(e.num, delta, &sum)) {
      metrics_.errors->Increment();
      return StoreReply::error("increment would overflow");
    }
    e.num = sum;
  }
  r.value = it->second.num;
  r.ttl_ms = remaining_ms(it->second, t);
  return r;
}

StoreReply MemoryStore::do_get(std::string_view key) {
  const TimePoint t = now();
  const Hashed hk(key);
  Shard& shard = shard_for(hk.hash);
  StoreReply r;
  std::lock_guard lock(shard.mutex);
  account(shard, StoreOp::get, t);
  auto it = shard.map.find(hk);
  if (it == shard.map.end()) {
    r.code = StoreCode::not_found;
    return r;
  }
  if (it->second.expires <= t) {
    shard.map.erase(it);
    r.code = StoreCode::not_found;
    return r;
  }
  const Entry& e = it->second;
  r.data = e.is_int ? std::to_string(e.num) : e.data;
  r.ttl_ms = remaining_ms(e, t);
  return r;
}

StoreReply MemoryStore::do_put(std::string_view key, std::string_view value,
                               std::chrono::milliseconds ttl) {
  const TimePoint t = now();
  const TimePoint expires = ttl.count() > 0 ? t + ttl : TimePoint::max();
  const Hashed hk(key);
  Shard& shard = shard_for(hk.hash);
  StoreReply r;
  std::lock_guard lock(shard.mutex);
  account(shard, StoreOp::put, t);
  auto it = shard.map.find(hk);
  if (it == shard.map.end()) {
    shard.map.emplace(std::string(key), Entry{std::string(value), 0, false, expires});
  } else {
    Entry& e = it->second;
    e.data.assign(value);
    e.num = 0;
    e.is_int = false;
    e.expires = expires;
  }
  return r;
}

StoreReply MemoryStore::do_del(std::string_view key) {
  const TimePoint t = now();
  const Hashed hk(key);
  Shard& shard = shard_for(hk.hash);
  StoreReply r;
  std::lock_guard lock(shard.mutex);
  account(shard, StoreOp::del, t);
  auto it = shard.map.find(hk);
  if (it == shard.map.end()) {
    r.code = StoreCode::not_found;
    return r;
  }
  if (it->second.expires <= t) r.code = StoreCode::not_found;
  shard.map.erase(it);
  return r;
}

StoreHealth MemoryStore::health() const { return {HealthStatus::healthy, "memory", ""}; }

std::size_t MemoryStore::size() const {
  std::size_t n = 0;
  for (const Shard& s : shards_) {
    std::lock_guard lock(s.mutex);
    n += s.map.size();
  }
  return n;
}

void MemoryStore::sweep_all() {
  const TimePoint t = now();
  for (Shard& s : shards_) {
    std::lock_guard lock(s.mutex);
    sweep(s, t, s.map.bucket_count());
  }
  flush_metrics();
}

void MemoryStore::flush_metrics() {
  // Operations are counted under the shard locks (free: the lock is held anyway) and added
  // to the shared counters here, so hot paths never touch a contended atomic.
  std::array<uint64_t, kStoreOpCount> delta{};
  std::size_t keys = 0;
  for (Shard& s : shards_) {
    std::lock_guard lock(s.mutex);
    for (std::size_t i = 0; i < kStoreOpCount; ++i) {
      delta[i] += s.ops[i] - s.flushed[i];
      s.flushed[i] = s.ops[i];
    }
    keys += s.map.size();
  }
  for (std::size_t i = 0; i < kStoreOpCount; ++i)
    if (delta[i] != 0) metrics_.operations[i]->Increment(static_cast<double>(delta[i]));
  metrics_.keys->Set(static_cast<double>(keys));
}

void MemoryStore::sweeper_loop() {
  std::unique_lock lock(sweeper_mutex_);
  while (!stopping_) {
    sweeper_cv_.wait_for(lock, kSweeperTick, [&] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    // One shard at a time: callers on other shards never wait for the sweep.
    for (Shard& s : shards_) {
      std::lock_guard shard_lock(s.mutex);
      sweep(s, now(), kBackgroundSweepBuckets);
    }
    flush_metrics();
    lock.lock();
  }
}

std::unique_ptr<Store> make_memory_store(prometheus::Registry& registry, std::size_t shards,
                                         StoreClock clock) {
  return std::make_unique<MemoryStore>(registry, shards, std::move(clock));
}

}  // namespace kghost
