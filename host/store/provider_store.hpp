// The store behind a store provider plugin (kg_store_provider, ABI 1.2), with the failover
// every provider gets for free: an operation the provider cannot take, or completes as
// unavailable (backend lost, timed out), is answered by a per-process memory store; health is
// degraded while the provider says so, and it recovers by itself when the provider does.
#pragma once

#include <kghost/plugin.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "store/memory_store.hpp"
#include "store/store.hpp"
#include "telemetry/logging.hpp"

namespace kghost {

class ProviderStore final : public Store {
 public:
  // `plugin` is the provider plugin's name ([store] backend); until it registers its table,
  // every call is answered by the fallback. `log` and `registry` outlive the store.
  ProviderStore(std::string plugin, prometheus::Registry& registry, Logger& log);
  ~ProviderStore() override;
  ProviderStore(const ProviderStore&) = delete;
  ProviderStore& operator=(const ProviderStore&) = delete;

  const std::string& plugin() const { return plugin_; }
  // Takes the plugin's table (copied; every slot must be set). [main] during its create.
  // Returns "" or why the table is refused.
  std::string attach(const kg_store_provider& table, void* provider);
  bool attached() const { return attached_.load(std::memory_order_acquire); }
  // The provider's status changed: read it, log an outage or a recovery, update the gauge. [any]
  void provider_changed();
  // kg_host_api.store_complete. [any]
  static void complete(kg_store_op* op, const kg_store_result* result);

  std::optional<StoreReply> check_and_set(std::string_view key, std::chrono::milliseconds ttl,
                                          StoreDone done) override;
  std::optional<StoreReply> incr(std::string_view key, int64_t delta, std::chrono::milliseconds ttl,
                                 StoreDone done) override;
  std::optional<StoreReply> get(std::string_view key, StoreDone done) override;
  std::optional<StoreReply> put(std::string_view key, std::string_view value,
                                std::chrono::milliseconds ttl, StoreDone done) override;
  std::optional<StoreReply> del(std::string_view key, StoreDone done) override;
  StoreHealth health() const override;
  // From here on the provider is never called again (every call goes to the fallback). The
  // host calls it after every plugin's stop (the provider's stop completes what is pending)
  // and before any destroy.
  void stop() override;

 private:
  struct Call {
    StoreOp op;
    std::string_view key;
    std::string_view value;
    int64_t delta;
    int64_t ttl_ms;
  };
  std::optional<StoreReply> submit(const Call& call, StoreDone&& done);
  StoreReply answer_from_fallback(const Call& call);
  StoreReply to_reply(StoreOp op, const kg_store_result& r);
  void count(StoreOp op);
  void call_done(const StoreDone& done, const StoreReply& reply) const;

  std::string plugin_;
  prometheus::Registry& registry_;
  Logger& log_;
  MemoryStore fallback_;
  kg_store_provider table_{};
  void* provider_ = nullptr;
  std::string backend_;                    // the provider's backend name, e.g. "redis"
  std::unique_ptr<StoreMetrics> metrics_;  // labelled with backend_, made at attach
  std::atomic<bool> attached_{false};
  std::atomic<bool> stopped_{false};
  std::atomic<kg_health_status> status_{KG_UNHEALTHY};
  std::mutex change_mutex_;  // serialises provider_changed's logging
  bool was_up_ = false;      // guarded by change_mutex_: the backend has been healthy once
};

}  // namespace kghost
