// The memory backend of the shared store. Also the fallback of every store provider.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "store/store.hpp"

namespace prometheus {
class Counter;
class Gauge;
}  // namespace prometheus

namespace kghost {

enum class StoreOp { check_and_set = 0, incr, get, put, del };
inline constexpr std::size_t kStoreOpCount = 5;
std::string_view to_string(StoreOp op);

// Registers (or finds: the registry merges same-named families) the store's metric families.
struct StoreMetrics {
  explicit StoreMetrics(prometheus::Registry& registry, std::string_view backend);
  std::array<prometheus::Counter*, kStoreOpCount> operations{};  // kgents_store_operations_total
  prometheus::Counter* errors = nullptr;                         // kgents_store_errors_total
  prometheus::Counter* fallback = nullptr;                       // kgents_store_fallback_total
  prometheus::Gauge* up = nullptr;                               // kgents_store_backend_up
  prometheus::Gauge* keys = nullptr;  // kgents_store_keys, memory backend only
};

// Sharded hash maps, one mutex per shard; keys are looked up without allocating.
// Expired entries are dropped lazily when touched, by a small sweep every few thousand
// operations on a shard, and by a background thread that visits one shard at a time.
// Every call answers at once: the Store methods never return std::nullopt.
class MemoryStore final : public Store {
 public:
  MemoryStore(prometheus::Registry& registry, std::size_t shards, StoreClock clock);
  ~MemoryStore() override;
  MemoryStore(const MemoryStore&) = delete;
  MemoryStore& operator=(const MemoryStore&) = delete;

  // Synchronous forms. [any]
  StoreReply do_check_and_set(std::string_view key, std::chrono::milliseconds ttl);
  StoreReply do_incr(std::string_view key, int64_t delta, std::chrono::milliseconds ttl);
  StoreReply do_get(std::string_view key);
  StoreReply do_put(std::string_view key, std::string_view value, std::chrono::milliseconds ttl);
  StoreReply do_del(std::string_view key);

  std::optional<StoreReply> check_and_set(std::string_view key, std::chrono::milliseconds ttl,
                                          StoreDone) override {
    return do_check_and_set(key, ttl);
  }
  std::optional<StoreReply> incr(std::string_view key, int64_t delta, std::chrono::milliseconds ttl,
                                 StoreDone) override {
    return do_incr(key, delta, ttl);
  }
  std::optional<StoreReply> get(std::string_view key, StoreDone) override { return do_get(key); }
  std::optional<StoreReply> put(std::string_view key, std::string_view value,
                                std::chrono::milliseconds ttl, StoreDone) override {
    return do_put(key, value, ttl);
  }
  std::optional<StoreReply> del(std::string_view key, StoreDone) override { return do_del(key); }
  StoreHealth health() const override;
  void stop() override;

  // Entries held, expired ones not yet swept included. [any]
  std::size_t size() const;
  // Sweeps every shard completely and publishes the metrics. [any]
  void sweep_all();

 private:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;

  struct Entry {
    std::string data;  // the value when !is_int
    int64_t num = 0;   // the value when is_int
    bool is_int = false;
    TimePoint expires = TimePoint::max();
  };
  // A key with its hash, computed once per operation for both the shard and the map lookup.
  struct Hashed {
    explicit Hashed(std::string_view k) : key(k), hash(std::hash<std::string_view>{}(k)) {}
    std::string_view key;
    std::size_t hash;
  };
  struct Hash {
    using is_transparent = void;
    // Deliberately not noexcept: libstdc++ then keeps each node's hash in the node, so bucket
    // walks (lookups, rehashing, the sweep) never rehash the keys they pass.
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    std::size_t operator()(const Hashed& k) const noexcept { return k.hash; }
  };
  struct Equal {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const noexcept { return a == b; }
    bool operator()(std::string_view a, const Hashed& b) const noexcept { return a == b.key; }
    bool operator()(const Hashed& a, std::string_view b) const noexcept { return a.key == b; }
  };
  using Map = std::unordered_map<std::string, Entry, Hash, Equal>;

  struct alignas(64) Shard {
    mutable std::mutex mutex;  // guards everything below
    Map map;
    std::size_t sweep_cursor = 0;  // next bucket to sweep
    uint32_t ops_until_sweep = 0;
    std::array<uint64_t, kStoreOpCount> ops{};      // operations done
    std::array<uint64_t, kStoreOpCount> flushed{};  // operations already added to the metrics
  };

  TimePoint now() const { return clock_ ? clock_() : Clock::now(); }
  Shard& shard_for(std::size_t hash);
  // Caller holds shard.mutex. Counts the op and runs the small sweep when it is due.
  void account(Shard& shard, StoreOp op, TimePoint now);
  // Caller holds shard.mutex. Erases expired entries in up to `buckets` buckets.
  static void sweep(Shard& shard, TimePoint now, std::size_t buckets);
  static int64_t remaining_ms(const Entry& e, TimePoint now);
  void flush_metrics();
  void sweeper_loop();

  std::vector<Shard> shards_;
  std::size_t shard_mask_;  // shards_.size() is a power of two
  StoreClock clock_;
  StoreMetrics metrics_;

  std::mutex sweeper_mutex_;  // guards stopping_
  std::condition_variable sweeper_cv_;
  bool stopping_ = false;
  std::thread sweeper_;
};

}  // namespace kghost
