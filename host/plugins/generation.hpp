// A generation: the plugin instances built from one config, and what they put into the route
// table served for it. It is built (every enabled plugin loaded and created in declared order,
// its registrations added to the table being built), started in order, and goes live once its
// table is published. A reload builds the next generation beside the running one, taking over
// the instances whose entry did not change. A generation is owned by shared_ptr: the route
// table's callbacks hold it, so it lives while any request may still reach it; when the last
// reference goes it is handed to `retire`, which deletes it on a thread of its own (never an
// I/O thread or a plugin callback), stopping and then destroying in reverse order the instances
// no newer generation holds. Bus subscriptions are made when a plugin's create succeeds (as
// they always were), so a new instance hears the bus from then on even if its reload fails
// later; retiring it unsubscribes it.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "http/route_table.hpp"
#include "plugins/instance.hpp"
#include "plugins/services.hpp"
#include "telemetry/health_board.hpp"

namespace kghost {

// A plugin cannot be loaded or started; what() names the plugin, its path and the reason.
class PluginError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Generation : public HealthSource, public std::enable_shared_from_this<Generation> {
 public:
  // Deletes the generation it is given (later, elsewhere).
  using Retire = std::function<void(Generation*)>;
  static std::shared_ptr<Generation> make(const HostServices& services, uint64_t number,
                                          Retire retire);
  ~Generation() override;
  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;

  // Loads and creates every enabled plugin of `config` and adds its routes, filters and
  // observers to `table`. The instances of `previous` named in `keep` are taken over as they
  // are (already running). A required plugin that fails throws PluginError; an optional one is
  // kept as failed (unhealthy) and logged — unless `strict` (a reload), where any failure
  // throws and the running generation stays.
  void build(const HostConfig& config, RouteTable::Builder& table,
             const Generation* previous = nullptr, const std::vector<std::string>& keep = {},
             bool strict = false);
  // Starts the instances it created, in order (same failure rule); an optional one that fails
  // is taken out of service in `table`.
  void start(RouteTable::Builder& table, bool strict = false);
  // Its table is served: tasks run and queue consumers take over. Idempotent.
  void go_live();
  // Host shutdown: stops every instance, also those it shares, in reverse. Idempotent.
  void stop();

  // [any] Each plugin's health, by name, in order.
  NamedReports health() const override;
  // [any] {"number", "loaded_at"}: which generation /health shows.
  nlohmann::json about() const override;
  // name, version, ABI, path, status for /admin/plugins and --check.
  nlohmann::json describe() const;
  std::size_t size() const { return instances_.size(); }
  uint64_t number() const { return number_; }
  const std::vector<std::shared_ptr<kg_plugin_ctx>>& instances() const { return instances_; }

 private:
  Generation(const HostServices& services, uint64_t number);
  void build_one(const PluginEntry& entry, const HostConfig& config, RouteTable::Builder& table,
                 bool strict);
  void fail(kg_plugin_ctx& p, const std::string& stage, const std::string& reason, bool strict);

  const HostServices& services_;
  const uint64_t number_;
  const std::chrono::system_clock::time_point loaded_at_ = std::chrono::system_clock::now();
  std::vector<std::shared_ptr<kg_plugin_ctx>> instances_;
  std::vector<kg_plugin_ctx*> created_;  // by this generation (the others are taken over)
};

}  // namespace kghost
