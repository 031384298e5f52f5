#include "plugins/generation.hpp"

namespace kghost {
namespace {

std::filesystem::path resolve_path(const PluginEntry& e, const HostConfig& cfg) {
  if (!e.path.empty()) return e.path;
  return cfg.plugin_dir / ("kg_" + e.name + ".so");
}

}  // namespace

Generation::Generation(const HostServices& services, Pipeline& routes, TaskRunner& tasks)
    : services_(services), routes_(routes), tasks_(tasks) {}

Generation::~Generation() {
  stop();
  destroy();
}

void Generation::fail(kg_plugin_ctx& p, const std::string& stage, const std::string& reason) {
  p.state = kg_plugin_ctx::State::failed;
  p.error = stage + ": " + reason;
  std::string msg = "plugin " + p.name + " (" + p.path.string() + ") " + p.error;
  if (p.required) throw PluginError(msg);
  services_.log.log(LogLevel::warn, "host",
                    msg + "; it is optional, so the host goes on without it");
}

void Generation::build(const HostConfig& config) {
  for (auto& entry : config.plugins) {
    if (entry.enabled) build_one(entry, config);
  }
}

void Generation::build_one(const PluginEntry& entry, const HostConfig& config) {
  auto& p = *instances_.emplace_back(
      std::make_unique<kg_plugin_ctx>(services_, entry, resolve_path(entry, config)));
  auto opened = PluginLibrary::open(p.path, p.name, entry.origin);
  p.library = std::move(opened.library);
  if (!opened.error.empty()) return fail(p, "cannot load", opened.error);
  if (p.library->dev_only() && services_.mode == "production") {
    p.required =
        true;  // never silently skipped: production with a dev-only plugin is a config error
    return fail(p, "refused",
                "it is dev-only and the host runs in production mode; remove it from the config "
                "(or set enabled = false) for production");
  }
  if (auto why = p.create(); !why.empty()) return fail(p, "failed to create", why);
  if (auto conflict = p.pending.commit(routes_, services_.bus, p.name); !conflict.empty()) {
    p.required = true;  // a route conflict is a configuration error even for an optional plugin
    fail(p, "has a route conflict", conflict);
  }
}

void Generation::start() {
  for (auto& p : instances_) {
    if (p->state != kg_plugin_ctx::State::created) continue;
    if (auto why = p->start(); !why.empty()) {
      fail(*p, "failed to start", why);
      // Optional (a required one threw above): out of service, nothing of it runs.
      routes_.take_out_of_service(p->name);
      continue;
    }
    p->pending.schedule(tasks_, p->name);
  }
}

void Generation::stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto it = instances_.rbegin(); it != instances_.rend(); ++it) (*it)->stop();
}

void Generation::destroy() {
  if (destroyed_) return;
  destroyed_ = true;
  for (auto it = instances_.rbegin(); it != instances_.rend(); ++it) (*it)->destroy();
}

NamedReports Generation::health() const {
  NamedReports out;
  for (auto& p : instances_) out.emplace_back(p->name, p->health());
  return out;
}

nlohmann::json Generation::describe() const {
  nlohmann::json list = nlohmann::json::array();
  for (auto& p : instances_) {
    const PluginLibrary& lib = *p->library;
    nlohmann::json j = {{"name", p->name},
                        {"version", lib.version()},
                        {"abi_version", lib.abi_version()},
                        {"path", p->path.string()},
                        {"required", p->required},
                        {"dev_only", lib.dev_only()},
                        {"status", to_string(p->health().status)}};
    if (!p->error.empty()) j["error"] = p->error;
    list.push_back(std::move(j));
  }
  return list;
}

}  // namespace kghost
