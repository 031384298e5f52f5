// The host's primitives, as plugin instances reach them through the host API table. Made by
// main before any plugin and outliving every generation; each instance holds a reference.
#pragma once

#include <filesystem>
#include <string>

#include "plugins/shared_queues.hpp"
#include "runtime/event_bus.hpp"
#include "runtime/worker_pool.hpp"
#include "store/store.hpp"
#include "telemetry/health_board.hpp"
#include "telemetry/logging.hpp"
#include "telemetry/metrics.hpp"

namespace kghost {

struct HostServices {
  Logger& log;
  Metrics& metrics;
  Store& store;
  EventBus& bus;
  WorkerPool& pool;           // runs the durable queues' consumers
  QueueShelf& queues;         // durable queues by plugin and name, across a plugin's instances
  const HealthBoard& health;  // the /health document (health_render)
  std::string mode;
  std::filesystem::path data_dir;
  std::string data_dir_text;  // data_dir as handed to plugins
};

}  // namespace kghost
