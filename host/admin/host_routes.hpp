// The routes the host itself serves: /health, /health/live, /health/ready, /admin/plugins,
// /admin/reload, /openapi.json (owner "host"). Every generation's route table has them.
#pragma once

#include <atomic>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "http/exchange.hpp"
#include "http/route_table.hpp"
#include "runtime/worker_pool.hpp"
#include "telemetry/health_board.hpp"

namespace kghost {

struct HostState {
  std::atomic<bool> ready{false};  // started and not draining
};

// What the host routes read. All outlive the pipeline's traffic (and this struct is kept
// alive as long as them: the routes refer to its members).
struct HostRouteSources {
  const HealthBoard& health;  // /health
  const HostState& state;     // /health/ready
  WorkerPool& pool;           // /health runs the plugins' reporters here, never on I/O threads
  std::function<nlohmann::json()> plugins;  // /admin/plugins: the serving generation's list
  // Called back once with whether it worked and what it did (ReloadOutcome's JSON).
  using ReloadDone = std::function<void(bool ok, const nlohmann::json& outcome)>;
  std::function<void(ReloadDone)> reload;  // /admin/reload: queues a reload
};

// Adds the host routes to `table`. Returns an error text on a route conflict, else "".
std::string register_host_routes(RouteTable::Builder& table, const HostRouteSources& sources);

}  // namespace kghost
