// What a reload would change: the difference between the running config and a new one, worked
// out before anything is created, so the admin answer and the log can say it in advance.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace kghost {

struct ReloadPlan {
  // Plugin names (enabled entries only), in the new config's order where they are in it.
  std::vector<std::string> kept;          // same path, flags and [plugins.config]: same instance
  std::vector<std::string> added;         // enabled now, not before
  std::vector<std::string> removed;       // enabled before, not now (or gone)
  std::vector<std::string> reconfigured;  // config, path or `required` changed: a new instance
  // Host settings that differ but only take effect at a restart ("server.listen: a → b").
  std::vector<std::string> needs_restart;
  bool log_level_changed = false;  // applied live

  // True when plugins change (log level alone and restart-only settings do not count).
  bool changes_plugins() const {
    return !added.empty() || !removed.empty() || !reconfigured.empty();
  }
  nlohmann::json to_json() const;
};

// Compares two parsed configs (env overrides and --listen already applied to both).
ReloadPlan plan_reload(const HostConfig& running, const HostConfig& next);

}  // namespace kghost
