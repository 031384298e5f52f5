#include "reload/reload_plan.hpp"

#include <algorithm>
#include <chrono>
#include <string_view>

namespace kghost {
namespace {

const PluginEntry* enabled_entry(const HostConfig& cfg, const std::string& name) {
  for (const auto& p : cfg.plugins)
    if (p.enabled && p.name == name) return &p;
  return nullptr;
}

std::string text(const std::string& v) { return "\"" + v + "\""; }
std::string text(const std::filesystem::path& v) { return text(v.string()); }
template <class Rep, class Period>
std::string text(std::chrono::duration<Rep, Period> v) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(v).count()) + " ms";
}
template <class T>
std::string text(T v) {
  return std::to_string(v);
}

// Every setting below is read once at start-up by something that lives as long as the process
// (the listener, the I/O threads, the store, the data directory).
class RestartOnly {
 public:
  explicit RestartOnly(std::vector<std::string>& out) : out_(out) {}
  template <class T>
  void compare(std::string_view key, const T& before, const T& after) {
    if (before == after) return;
    out_.push_back(std::string(key) + ": " + text(before) + " → " + text(after));
  }

 private:
  std::vector<std::string>& out_;
};

void compare_host_settings(const HostConfig& a, const HostConfig& b, ReloadPlan& plan) {
  RestartOnly r(plan.needs_restart);
  r.compare("mode", a.mode, b.mode);
  r.compare("data_dir", a.data_dir, b.data_dir);
  r.compare("plugin_dir", a.plugin_dir, b.plugin_dir);
  r.compare("server.listen", a.server.listen, b.server.listen);
  r.compare("server.threads", a.server.threads, b.server.threads);
  r.compare("server.max_body_bytes", a.server.max_body_bytes, b.server.max_body_bytes);
  r.compare("server.max_header_bytes", a.server.max_header_bytes, b.server.max_header_bytes);
  r.compare("server.header_timeout_s", a.server.header_timeout, b.server.header_timeout);
  r.compare("server.body_timeout_s", a.server.body_timeout, b.server.body_timeout);
  r.compare("server.idle_timeout_s", a.server.idle_timeout, b.server.idle_timeout);
  r.compare("server.drain_timeout_s", a.server.drain_timeout, b.server.drain_timeout);
  r.compare("server.handler_timeout_s", a.server.handler_timeout, b.server.handler_timeout);
  r.compare("server.lingering_timeout_s", a.server.lingering_timeout, b.server.lingering_timeout);
  r.compare("server.lingering_bytes", a.server.lingering_bytes, b.server.lingering_bytes);
  r.compare("server.stream_buffer_bytes", a.server.stream_buffer_bytes,
            b.server.stream_buffer_bytes);
  r.compare("store.backend", a.store.backend, b.store.backend);
  // The store provider plugin serves the store the whole process shares: never swapped live.
  auto provider = [](const HostConfig& c) {
    const PluginEntry* e =
        c.store.backend == "memory" ? nullptr : enabled_entry(c, c.store.backend);
    return e ? e->path.string() + " " + e->config.dump() : std::string();
  };
  r.compare("store provider plugin " + b.store.backend, provider(a), provider(b));
}

}  // namespace

ReloadPlan plan_reload(const HostConfig& running, const HostConfig& next) {
  ReloadPlan plan;
  for (const auto& p : next.plugins) {
    if (!p.enabled) continue;
    const PluginEntry* before = enabled_entry(running, p.name);
    if (!before)
      plan.added.push_back(p.name);
    else if (before->path != p.path || before->required != p.required || before->config != p.config)
      plan.reconfigured.push_back(p.name);
    else
      plan.kept.push_back(p.name);
  }
  for (const auto& p : running.plugins)
    if (p.enabled && !enabled_entry(next, p.name)) plan.removed.push_back(p.name);
  plan.log_level_changed = running.log_level != next.log_level;
  compare_host_settings(running, next, plan);
  return plan;
}

nlohmann::json ReloadPlan::to_json() const {
  return {{"kept", kept},
          {"added", added},
          {"removed", removed},
          {"reconfigured", reconfigured},
          {"needs_restart", needs_restart},
          {"log_level_changed", log_level_changed}};
}

}  // namespace kghost
