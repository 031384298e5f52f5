// The shared store behind the plugin ABI's store_* slots: check-and-set with TTL, atomic
// counters with TTL, get/put/del. The memory backend (sharded, the default) is embedded; any
// other backend is a store provider plugin behind ProviderStore (store/provider_store.hpp),
// which adds the memory fallback while the provider is down or slow.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "telemetry/health.hpp"

namespace prometheus {
class Registry;
}

namespace kghost {

class Logger;

enum class StoreCode { ok, not_found, error };

struct StoreReply {
  StoreCode code = StoreCode::ok;
  bool created = false;  // check_and_set: this call set the key
  int64_t value = 0;     // incr: the new value
  int64_t ttl_ms = -1;   // incr/get: remaining time to live; -1 when the key has none
  std::string data;      // get: the stored bytes; error: a short reason (never a value)

  static StoreReply error(std::string reason) {
    StoreReply r;
    r.code = StoreCode::error;
    r.data = std::move(reason);
    return r;
  }
};

using StoreDone = std::function<void(const StoreReply&)>;

struct StoreHealth {
  HealthStatus status;
  std::string backend;  // "memory", or the provider's backend name ("redis")
  std::string detail;
};

// Contract shared by every backend. [any] thread.
// Each call either answers at once (returns the reply; `done` is NOT called) or returns
// std::nullopt and calls `done` exactly once later, from another thread. A call never blocks its
// caller for more than a lock acquisition: no network round trip happens on the caller's thread.
// `done` must not throw (an exception is caught, logged and dropped) and may call the store.
class Store {
 public:
  virtual ~Store() = default;
  // Sets key to "1" with `ttl` (<= 0: no expiry) only if it is absent; `created` tells.
  virtual std::optional<StoreReply> check_and_set(std::string_view key,
                                                  std::chrono::milliseconds ttl,
                                                  StoreDone done) = 0;
  // Atomically adds delta; when the key is new its TTL is set to `ttl` (<= 0: none) and never
  // reset by later calls. Returns the new value and the remaining ttl_ms. A key holding a
  // non-integer value answers error.
  virtual std::optional<StoreReply> incr(std::string_view key, int64_t delta,
                                         std::chrono::milliseconds ttl, StoreDone done) = 0;
  // not_found if absent; otherwise data and ttl_ms.
  virtual std::optional<StoreReply> get(std::string_view key, StoreDone done) = 0;
  // Stores value; ttl 0 (or less) means no expiry.
  virtual std::optional<StoreReply> put(std::string_view key, std::string_view value,
                                        std::chrono::milliseconds ttl, StoreDone done) = 0;
  // not_found if absent.
  virtual std::optional<StoreReply> del(std::string_view key, StoreDone done) = 0;
  virtual StoreHealth health() const = 0;
  // Stops background threads. Idempotent. Callbacks still pending are called exactly once
  // before it returns; calls made afterwards are answered at once.
  virtual void stop() {}
};

// Monotonic clock used for TTLs; injectable so tests need not sleep.
using StoreClock = std::function<std::chrono::steady_clock::time_point()>;

// Memory backend: `shards` mutex-guarded hash maps, lazy expiry on access plus a bounded
// per-shard sweep (no global lock). An empty clock means std::chrono::steady_clock::now.
std::unique_ptr<Store> make_memory_store(prometheus::Registry& registry, std::size_t shards = 64,
                                         StoreClock clock = {});

}  // namespace kghost
