#include "plugins/generation.hpp"

#include <algorithm>
#include <ctime>

namespace kghost {
namespace {

std::filesystem::path resolve_path(const PluginEntry& e, const HostConfig& cfg) {
  if (!e.path.empty()) return e.path;
  return cfg.plugin_dir / ("kg_" + e.name + ".so");
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
  std::time_t s = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

std::shared_ptr<Generation> Generation::make(const HostServices& services, uint64_t number,
                                             Retire retire) {
  return std::shared_ptr<Generation>(new Generation(services, number), std::move(retire));
}

Generation::Generation(const HostServices& services, uint64_t number)
    : services_(services), number_(number) {}

// Generations die one at a time (on the retiring thread), so an instance's use count is 1
// exactly when no other generation holds it.
Generation::~Generation() {
  auto sole = [](const std::shared_ptr<kg_plugin_ctx>& p) { return p.use_count() == 1; };
  for (auto it = instances_.rbegin(); it != instances_.rend(); ++it)
    if (sole(*it)) (*it)->stop();
  for (auto it = instances_.rbegin(); it != instances_.rend(); ++it) it->reset();  // destroys
}

void Generation::fail(kg_plugin_ctx& p, const std::string& stage, const std::string& reason,
                      bool strict) {
  p.state = kg_plugin_ctx::State::failed;
  p.error = stage + ": " + reason;
  std::string msg = "plugin " + p.name + " (" + p.path.string() + ") " + p.error;
  if (p.required || strict) throw PluginError(msg);
  services_.log.log(LogLevel::warn, "host",
                    msg + "; it is optional, so the host goes on without it");
}

void Generation::build(const HostConfig& config, RouteTable::Builder& table,
                       const Generation* previous, const std::vector<std::string>& keep,
                       bool strict) {
  for (auto& entry : config.plugins) {
    if (!entry.enabled) continue;
    bool kept = previous && std::find(keep.begin(), keep.end(), entry.name) != keep.end();
    if (!kept) {
      build_one(entry, config, table, strict);
      continue;
    }
    for (auto& p : previous->instances_) {
      if (p->name != entry.name) continue;
      instances_.push_back(p);
      if (p->state != kg_plugin_ctx::State::failed) {
        auto conflict = p->pending.add_to(table, shared_from_this());
        if (!conflict.empty()) throw PluginError("plugin " + p->name + ": " + conflict);
      }
    }
  }
}

void Generation::build_one(const PluginEntry& entry, const HostConfig& config,
                           RouteTable::Builder& table, bool strict) {
  auto& p = *instances_.emplace_back(
      std::make_shared<kg_plugin_ctx>(services_, entry, resolve_path(entry, config)));
  created_.push_back(&p);
  auto opened = PluginLibrary::open(p.path, p.name, entry.origin);
  p.library = std::move(opened.library);
  if (!opened.error.empty()) return fail(p, "cannot load", opened.error, strict);
  if (p.library->dev_only() && services_.mode == "production") {
    p.required =
        true;  // never silently skipped: production with a dev-only plugin is a config error
    return fail(p, "refused",
                "it is dev-only and the host runs in production mode; remove it from the config "
                "(or set enabled = false) for production",
                strict);
  }
  if (auto why = p.create(); !why.empty()) return fail(p, "failed to create", why, strict);
  p.pending.subscribe_all(services_.bus, p.name, p.subscriptions);
  if (auto conflict = p.pending.add_to(table, shared_from_this()); !conflict.empty()) {
    p.required = true;  // a route conflict is a configuration error even for an optional plugin
    fail(p, "has a route conflict", conflict, strict);
  }
}

void Generation::start(RouteTable::Builder& table, bool strict) {
  for (auto* p : created_) {
    if (p->state != kg_plugin_ctx::State::created) continue;
    if (auto why = p->start(); !why.empty()) {
      fail(*p, "failed to start", why, strict);
      // Optional (a required one threw above): out of service, nothing of it runs.
      table.take_out_of_service(p->name);
      continue;
    }
    p->pending.schedule(p->tasks, p->name);
  }
}

void Generation::go_live() {
  for (auto& p : instances_)
    if (p->state == kg_plugin_ctx::State::started) p->go_live();
}

void Generation::stop() {
  for (auto it = instances_.rbegin(); it != instances_.rend(); ++it) (*it)->stop();
}

NamedReports Generation::health() const {
  NamedReports out;
  for (auto& p : instances_) out.emplace_back(p->name, p->health());
  return out;
}

nlohmann::json Generation::about() const {
  return {{"number", number_}, {"loaded_at", rfc3339(loaded_at_)}};
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
