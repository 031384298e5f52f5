// The routes the host itself serves: /health, /health/live, /health/ready, /admin/plugins,
// /openapi.json (owner "host").
#pragma once

#include <atomic>
#include <string>

#include "http/pipeline.hpp"
#include "plugins/generation.hpp"
#include "runtime/worker_pool.hpp"
#include "telemetry/health_board.hpp"

namespace kghost {

struct HostState {
  std::atomic<bool> ready{false};  // started and not draining
};

// What the host routes read. All outlive the pipeline's traffic.
struct HostRouteSources {
  const HealthBoard& health;  // /health
  const Generation& plugins;  // /admin/plugins
  const HostState& state;     // /health/ready
  WorkerPool& pool;           // /health runs the plugins' reporters here, never on I/O threads
};

// Registers the host routes on `pipeline`. Returns an error text on a route conflict, else "".
std::string register_host_routes(Pipeline& pipeline, const HostRouteSources& sources);

}  // namespace kghost
