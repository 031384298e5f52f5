// Reloads without a restart (SIGHUP, POST /admin/reload): reads the config again and checks it
// as --check does, builds and starts the next generation beside the running one (plugins whose
// entry did not change keep their instance), and only if every step succeeded publishes its
// route table, so new requests use it while requests under way finish on the generation they
// started with. Any failure leaves the running generation as it was, and says why. Reloads run
// one at a time, in the order asked, on a thread of their own.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "config/config.hpp"
#include "http/pipeline.hpp"
#include "plugins/generation.hpp"
#include "reload/plugin_file.hpp"
#include "reload/reload_plan.hpp"
#include "reload/retirer.hpp"

namespace kghost {

struct ReloadOutcome {
  bool ok = false;
  uint64_t generation = 0;            // the one serving afterwards
  std::string reason;                 // why not (file, line, plugin), when !ok
  ReloadPlan plan;                    // what changed (or would have)
  std::vector<std::string> warnings;  // e.g. a plugin file rebuilt in place
  nlohmann::json to_json() const;
};

class Reloader {
 public:
  struct Parts {
    const HostServices& services;
    Pipeline& pipeline;
    HealthBoard& health;
    Retirer& retirer;
    // Reads the config again (env overrides, --listen and the default plugin_dir applied);
    // throws ConfigError.
    std::function<HostConfig()> read_config;
    // Adds the host's own routes to a table being built; returns a conflict's text or "".
    std::function<std::string(RouteTable::Builder&)> host_routes;
    // Called after a new table is published (the server lets go of the old one).
    std::function<void()> published;
  };
  // Takes the first generation, built from `config` and already serving.
  Reloader(Parts parts, HostConfig config, std::shared_ptr<Generation> first);
  ~Reloader();  // stop()
  Reloader(const Reloader&) = delete;
  Reloader& operator=(const Reloader&) = delete;

  // [any] Queues a reload; `done` (may be empty) runs on the reload thread when it ended (at
  // once, failed, when the reloader is stopping).
  void request(std::function<void(const ReloadOutcome&)> done = {});
  // [any] The serving generation's plugins (for /admin/plugins).
  nlohmann::json describe() const;
  // [any] The serving generation (null once stopped).
  std::shared_ptr<Generation> current() const;
  // Ends the reload thread (a reload under way finishes first; queued ones are answered as
  // failed) and lets go of the serving generation. Idempotent.
  void stop();

 private:
  void run();
  ReloadOutcome reload();
  ReloadOutcome stopping() const;
  // Warnings for plugin files changed since this host first loaded their path.
  std::vector<std::string> check_files(const Generation& next);
  void count(bool ok);

  Parts parts_;
  HostConfig config_;  // as running: restart-only settings stay as they were at start
  mutable std::mutex current_mutex_;  // guards current_
  std::shared_ptr<Generation> current_;
  std::map<std::filesystem::path, PluginFileIdentity> loaded_files_;  // reload thread only
  MetricSeries* reloads_ok_ = nullptr;
  MetricSeries* reloads_failed_ = nullptr;
  MetricSeries* generation_gauge_ = nullptr;

  std::mutex mutex_;  // guards the three below
  std::condition_variable wake_;
  std::deque<std::function<void(const ReloadOutcome&)>> requests_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace kghost
