// The routes the host itself serves: /health, /health/live, /health/ready, /admin/plugins,
// /openapi.json.
#pragma once

#include <atomic>
#include <chrono>
#include <string>

#include "plugins/plugin_host.hpp"

namespace kghost {

struct HostState {
  std::atomic<bool> ready{false};  // started and not draining
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
};

// The /health document: overall status, version, uptime, store, and every plugin's report.
nlohmann::json health_document(const PluginHost& plugins, const Store& store,
                               const HostState& state);

// Registers the host routes. Returns an error text on a route conflict, else "". /health runs
// the plugins' reporters on `pool`, never on the I/O thread.
std::string register_host_routes(Pipeline& pipeline, const PluginHost& plugins, const Store& store,
                                 const HostState& state, WorkerPool& pool);

}  // namespace kghost
