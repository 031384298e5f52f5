// Chooses the shared store from [store] backend: the embedded memory backend, or the failover
// wrapper around the named store provider plugin, which registers itself while it is created.
#pragma once

#include <memory>

#include "config/config.hpp"
#include "store/store.hpp"

namespace kghost {

std::unique_ptr<Store> make_configured_store(const StoreConfig& config,
                                             prometheus::Registry& registry, Logger& log);

// After the plugins are created: throws ConfigError (naming the [store] backend line) when the
// backend is a plugin that registered no store provider.
void require_store_provider(const Store& store, const StoreConfig& config);

}  // namespace kghost
