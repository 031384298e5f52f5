#include "plugins/store_selection.hpp"

#include "store/provider_store.hpp"

namespace kghost {

std::unique_ptr<Store> make_configured_store(const StoreConfig& config,
                                             prometheus::Registry& registry, Logger& log) {
  if (config.backend == "memory") return make_memory_store(registry);
  return std::make_unique<ProviderStore>(config.backend, registry, log);
}

void require_store_provider(const Store& store, const StoreConfig& config) {
  const auto* provider = dynamic_cast<const ProviderStore*>(&store);
  if (!provider || provider->attached()) return;
  throw ConfigError(config.origin + ": store.backend \"" + config.backend + "\": plugin " +
                    config.backend +
                    " loaded but provides no store (it never called register_store_provider); "
                    "name a store provider plugin, or use backend = \"memory\"");
}

}  // namespace kghost
