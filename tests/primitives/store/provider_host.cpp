#include "provider_host.hpp"

#include <stdexcept>
#include <thread>

#include "config/config.hpp"
#include "http/route_table.hpp"
#include "plugins/generation.hpp"
#include "runtime/event_bus.hpp"
#include "runtime/worker_pool.hpp"
#include "store/provider_store.hpp"
#include "telemetry/health_board.hpp"
#include "telemetry/metrics.hpp"

namespace kghost::test {
namespace {

// Everything a plugin can reach, owned together; stop() stops it in kghost's order.
class ProviderHost final : public Store {
 public:
  ProviderHost(const std::filesystem::path& path, const std::string& name, nlohmann::json config,
               prometheus::Registry& registry, Logger& log)
      : store_(name, registry, log),
        pool_(2),
        bus_(pool_, metrics_.registry(), log),
        health_([this] {
          return HealthReport{store_.health().status, {}};
        }),
        services_{log,     metrics_, store_, bus_,  pool_,
                  queues_, health_,  "dev",  data_, data_.string()},
        plugins_(Generation::make(services_, 1, [](Generation* g) { delete g; })) {
    HostConfig cfg;
    cfg.source = "<store test>";
    cfg.store.backend = name;
    cfg.store.origin = "<store test>";
    PluginEntry entry;
    entry.name = name;
    entry.path = path;
    entry.config = std::move(config);
    entry.origin = "<store test>";
    cfg.plugins.push_back(std::move(entry));
    try {
      RouteTable::Builder table;
      plugins_->build(cfg, table);
      plugins_->start(table);
      plugins_->go_live();
    } catch (const PluginError& e) {
      throw std::invalid_argument(e.what());
    }
    if (!store_.attached()) throw std::invalid_argument(name + " registered no store provider");
  }
  ~ProviderHost() override { stop(); }

  std::optional<StoreReply> check_and_set(std::string_view key, std::chrono::milliseconds ttl,
                                          StoreDone done) override {
    return store_.check_and_set(key, ttl, std::move(done));
  }
  std::optional<StoreReply> incr(std::string_view key, int64_t delta, std::chrono::milliseconds ttl,
                                 StoreDone done) override {
    return store_.incr(key, delta, ttl, std::move(done));
  }
  std::optional<StoreReply> get(std::string_view key, StoreDone done) override {
    return store_.get(key, std::move(done));
  }
  std::optional<StoreReply> put(std::string_view key, std::string_view value,
                                std::chrono::milliseconds ttl, StoreDone done) override {
    return store_.put(key, value, ttl, std::move(done));
  }
  std::optional<StoreReply> del(std::string_view key, StoreDone done) override {
    return store_.del(key, std::move(done));
  }
  StoreHealth health() const override { return store_.health(); }
  void stop() override {
    plugins_->stop();  // the provider completes what is pending
    store_.stop();
    bus_.stop();
    pool_.stop();
  }

 private:
  Metrics metrics_;
  ProviderStore store_;
  WorkerPool pool_;
  EventBus bus_;
  QueueShelf queues_;
  std::filesystem::path data_ = std::filesystem::temp_directory_path();
  HealthBoard health_;
  HostServices services_;
  std::shared_ptr<Generation> plugins_;
};

}  // namespace

std::unique_ptr<Store> make_provider_store(const std::filesystem::path& path,
                                           const std::string& name, nlohmann::json config,
                                           prometheus::Registry& registry, Logger& log) {
  return std::make_unique<ProviderHost>(path, name, std::move(config), registry, log);
}

std::unique_ptr<Store> make_redis_store(const RedisOptions& options, prometheus::Registry& registry,
                                        Logger& log) {
  nlohmann::json config = {{"url", options.url},
                           {"pool", options.pool_size},
                           {"timeout_ms", options.timeout.count()},
                           {"reconnect_ms", options.reconnect_interval.count()}};
  return make_provider_store(KGHOST_PLUGIN_DIR "/kg_store_redis.so", "store_redis",
                             std::move(config), registry, log);
}

}  // namespace kghost::test
