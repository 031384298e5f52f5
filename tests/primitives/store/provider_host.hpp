// Runs a store provider plugin the way kghost does: the real PluginHost loads the .so, creates
// and starts it, and the host's failover wrapper (ProviderStore) answers the Store calls. The
// shared store suite uses it to run unchanged against plugins/store-redis and the C fixture.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "store/store.hpp"
#include "telemetry/logging.hpp"

namespace kghost::test {

// Loads plugin `name` from `path` with `config` behind a ProviderStore that counts into
// `registry`. Throws std::invalid_argument with the plugin's message when it cannot start.
std::unique_ptr<Store> make_provider_store(const std::filesystem::path& path,
                                           const std::string& name, nlohmann::json config,
                                           prometheus::Registry& registry, Logger& log);

// What the Redis backend was configured with before it became a plugin.
struct RedisOptions {
  std::string url;
  std::size_t pool_size = 4;
  std::chrono::milliseconds timeout{500};
  std::chrono::milliseconds reconnect_interval{1000};
};

// plugins/store-redis through the host.
std::unique_ptr<Store> make_redis_store(const RedisOptions& options, prometheus::Registry& registry,
                                        Logger& log);

}  // namespace kghost::test
