// Loads the plugins named in the config (Boost.DLL), negotiates the ABI, runs their
// lifecycle (create in order → start in order → stop in reverse → destroy in reverse) and
// hands each one the host API table.
#pragma once

#include <kghost/plugin.h>

#include <boost/dll/shared_library.hpp>
#include <chrono>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "http/pipeline.hpp"
#include "runtime/durable_queue.hpp"
#include "runtime/event_bus.hpp"
#include "runtime/task_runner.hpp"
#include "runtime/worker_pool.hpp"
#include "store/store.hpp"
#include "telemetry/health.hpp"
#include "telemetry/logging.hpp"
#include "telemetry/metrics.hpp"

namespace kghost {

// A plugin cannot be loaded or started; what() names the plugin, its path and the reason.
class PluginError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What the host API table reaches through a plugin context.
struct HostServices {
  Logger& log;
  Metrics& metrics;
  Pipeline& pipeline;
  Store& store;
  EventBus& bus;
  WorkerPool& pool;
  TaskRunner& tasks;
  std::string mode;
  std::filesystem::path data_dir;
  std::string data_dir_text;                   // data_dir as handed to plugins
  std::function<std::string()> render_health;  // the /health document
};

}  // namespace kghost

// A health report being filled in by a plugin's reporter.
struct kg_health {
  kghost::HealthStatus status = kghost::HealthStatus::healthy;
  nlohmann::json details = nlohmann::json::object();
};

// A named key space of the shared store (see kg_host_api.store_shared).
struct kg_store_space {
  struct kg_plugin_ctx* owner;  // the plugin that opened it (its store and services)
  std::string prefix;           // "shared/<name>/"
};

// One plugin instance as the host knows it (opaque to plugins as kg_plugin_ctx).
struct kg_plugin_ctx {
  kghost::HostServices* services = nullptr;
  std::string name;
  std::filesystem::path path;
  bool required = true;
  boost::dll::shared_library library;
  kg_plugin_descriptor desc{};  // copied from the plugin, zero-filled past its struct_size
  void* instance = nullptr;
  std::string config_text;
  nlohmann::json config;
  std::deque<std::string> kept;       // strings handed out as borrowed views until destroy
  std::string error;                  // why it failed (shown at exit 2, and in /health)
  std::string store_prefix;           // "plugin/<name>/": the plugin's own store keys
  std::deque<kg_store_space> spaces;  // shared key spaces it opened (stable addresses)
  enum class State { loaded, creating, created, started, failed, stopped } state = State::loaded;
  kg_health_fn health_fn = nullptr;
  void* health_ud = nullptr;
  // Registrations made during create, committed only when create succeeds.
  std::vector<std::pair<kghost::RouteInfo, kghost::HandlerEntry>> routes;
  std::vector<kghost::FilterEntry> filters;
  std::vector<kghost::ObserverEntry> observers;
  std::vector<kghost::ObserverEntry> stream_observers;
  struct PendingTask {
    std::string name;
    uint32_t interval_ms;
    kg_task_fn fn;
    void* user_data;
  };
  std::vector<PendingTask> tasks;  // scheduled only once the plugin has started
  struct PendingSubscription {
    std::string pattern;
    kg_bus_fn fn;
    void* user_data;
  };
  std::vector<PendingSubscription> subscriptions;
  std::vector<std::unique_ptr<kghost::DurableQueue>> queues;
};

namespace kghost {

class PluginHost {
 public:
  explicit PluginHost(HostServices& services);
  ~PluginHost();

  // Loads and creates every enabled plugin in declared order. A required plugin that fails
  // throws PluginError; an optional one is kept as failed (unhealthy) and logged.
  void load(const HostConfig& config);
  // Starts every created plugin in order (same failure rule).
  void start();
  // Stops in reverse order (tasks must already be stopped). Idempotent.
  void stop();
  // Destroys in reverse order. Idempotent.
  void destroy();

  struct Report {
    HealthStatus status;
    nlohmann::json details;
  };
  // Each plugin's health, by name.
  std::vector<std::pair<std::string, Report>> health() const;
  // name, version, ABI, path, status for /admin/plugins and --check.
  nlohmann::json describe() const;
  const std::vector<std::unique_ptr<kg_plugin_ctx>>& plugins() const { return plugins_; }

  static const kg_host_api& api();
  // Subscribes a plugin's bus callback (at commit, or directly during start).
  static bool subscribe(kg_plugin_ctx& c, std::string_view pattern, kg_bus_fn fn, void* ud);

 private:
  void load_one(const PluginEntry& entry, const HostConfig& config);
  void fail(kg_plugin_ctx& p, const std::string& stage, const std::string& reason);
  void commit(kg_plugin_ctx& p);
  void schedule_tasks(kg_plugin_ctx& p);

  HostServices& services_;
  std::vector<std::unique_ptr<kg_plugin_ctx>> plugins_;
  bool stopped_ = false, destroyed_ = false;
};

}  // namespace kghost
