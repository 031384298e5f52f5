// A generation: the plugin instances built from one config, with their registrations. It is
// built (every enabled plugin loaded and created in declared order, its registrations
// committed to the generation's pipeline as it succeeds), then started in order, stopped in
// reverse and destroyed in reverse, as a whole. Everything it touches is handed to it, so a
// second generation can be built beside a running one (reload) into a table of its own.
// Not yet so for bus subscriptions: they reach the live bus when each plugin's create
// succeeds, as they always have; a reload would defer them to start.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "http/pipeline.hpp"
#include "plugins/instance.hpp"
#include "plugins/services.hpp"
#include "runtime/task_runner.hpp"
#include "telemetry/health_board.hpp"

namespace kghost {

// A plugin cannot be loaded or started; what() names the plugin, its path and the reason.
class PluginError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Generation : public HealthSource {
 public:
  // `routes`: where its routes, filters and observers go; `tasks`: where its tasks run.
  Generation(const HostServices& services, Pipeline& routes, TaskRunner& tasks);
  ~Generation() override;  // stop, then destroy
  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;

  // Loads and creates every enabled plugin of `config`. A required plugin that fails throws
  // PluginError; an optional one is kept as failed (unhealthy) and logged.
  void build(const HostConfig& config);
  // Starts every created plugin in order and schedules its tasks (same failure rule).
  void start();
  // Stops in reverse order (the task runner must already be stopped). Idempotent.
  void stop();
  // Destroys in reverse order. Idempotent.
  void destroy();

  // [any] Each plugin's health, by name, in order.
  NamedReports health() const override;
  // name, version, ABI, path, status for /admin/plugins and --check.
  nlohmann::json describe() const;
  std::size_t size() const { return instances_.size(); }

 private:
  void build_one(const PluginEntry& entry, const HostConfig& config);
  void fail(kg_plugin_ctx& p, const std::string& stage, const std::string& reason);

  const HostServices& services_;
  Pipeline& routes_;
  TaskRunner& tasks_;
  std::vector<std::unique_ptr<kg_plugin_ctx>> instances_;
  bool stopped_ = false, destroyed_ = false;
};

}  // namespace kghost
