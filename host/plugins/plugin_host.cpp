#include "plugins/plugin_host.hpp"

#include <dlfcn.h>

#include <boost/dll/shared_library.hpp>
#include <cstring>

namespace kghost {
namespace {

std::string abi_text(uint16_t major, uint16_t minor) {
  return std::to_string(major) + "." + std::to_string(minor);
}

std::filesystem::path resolve_path(const PluginEntry& e, const HostConfig& cfg) {
  if (!e.path.empty()) return e.path;
  return cfg.plugin_dir / ("kg_" + e.name + ".so");
}

}  // namespace

PluginHost::PluginHost(HostServices& services) : services_(services) {}

PluginHost::~PluginHost() {
  stop();
  destroy();
}

void PluginHost::fail(kg_plugin_ctx& p, const std::string& stage, const std::string& reason) {
  p.state = kg_plugin_ctx::State::failed;
  p.error = stage + ": " + reason;
  std::string msg = "plugin " + p.name + " (" + p.path.string() + ") " + p.error;
  if (p.required) throw PluginError(msg);
  services_.log.log(LogLevel::warn, "host",
                    msg + "; it is optional, so the host goes on without it");
}

void PluginHost::load(const HostConfig& config) {
  for (auto& entry : config.plugins) {
    if (entry.enabled) load_one(entry, config);
  }
}

void PluginHost::load_one(const PluginEntry& entry, const HostConfig& config) {
  auto owned = std::make_unique<kg_plugin_ctx>();
  kg_plugin_ctx& p = *owned;
  plugins_.push_back(std::move(owned));
  p.services = &services_;
  p.name = entry.name;
  p.path = resolve_path(entry, config);
  p.required = entry.required;
  p.config = entry.config;
  p.config_text = entry.config.dump();
  p.store_prefix = "plugin/" + p.name + "/";

  std::error_code fec;
  if (!std::filesystem::exists(p.path, fec))
    return fail(
        p, "cannot load",
        "no such file; build it, fix [[plugins]] path at " + entry.origin + ", or set plugin_dir");
  // RTLD_LOCAL keeps plugins' symbols apart; RTLD_NODELETE because unloading code that may
  // still have threads or callbacks in flight is never worth the risk.
  boost::system::error_code ec;
  p.library.load(p.path.string(),
                 static_cast<boost::dll::load_mode::type>(RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE),
                 ec);
  if (ec) {
    const char* why = dlerror();
    return fail(p, "cannot load", why ? why : ec.message());
  }
  if (!p.library.has(KG_PLUGIN_ENTRY_SYMBOL))
    return fail(p, "cannot load",
                "no entry symbol " + std::string(KG_PLUGIN_ENTRY_SYMBOL) +
                    " (export it with KG_EXPORT, or use KGHOST_PLUGIN in C++)");
  auto entry_fn = p.library.get<const kg_plugin_descriptor*()>(KG_PLUGIN_ENTRY_SYMBOL);
  const kg_plugin_descriptor* d = entry_fn();
  if (!d || d->struct_size < offsetof(kg_plugin_descriptor, create) + sizeof(d->create))
    return fail(p, "cannot load", "its entry point returned no valid descriptor");
  if (d->abi_major != KG_ABI_MAJOR)
    return fail(
        p, "cannot load",
        "ABI mismatch: the plugin was built against ABI " + abi_text(d->abi_major, d->abi_minor) +
            ", this host speaks ABI " + abi_text(KG_ABI_MAJOR, KG_ABI_MINOR) +
            "; rebuild the plugin against kghost/plugin.h " + std::to_string(KG_ABI_MAJOR) + ".x");
  if (d->abi_minor > KG_ABI_MINOR)
    return fail(p, "cannot load",
                "the plugin needs ABI " + abi_text(d->abi_major, d->abi_minor) +
                    " but this host speaks ABI " + abi_text(KG_ABI_MAJOR, KG_ABI_MINOR) +
                    "; upgrade the host");
  // Copy what the plugin's (possibly older, smaller) descriptor has; the rest stays zero.
  std::memcpy(&p.desc, d, std::min<std::size_t>(d->struct_size, sizeof p.desc));
  p.desc.struct_size = sizeof p.desc;
  if (!p.desc.create) return fail(p, "cannot load", "its descriptor has no create function");
  if (!p.desc.name || p.name != p.desc.name)
    return fail(p, "cannot load",
                std::string("the file declares the plugin name \"") +
                    (p.desc.name ? p.desc.name : "") + "\" but the config calls it \"" + p.name +
                    "\"");
  if ((p.desc.flags & KG_PLUGIN_DEV_ONLY) && services_.mode == "production") {
    p.required =
        true;  // never silently skipped: production with a dev-only plugin is a config error
    return fail(p, "refused",
                "it is dev-only and the host runs in production mode; remove it from the config "
                "(or set enabled = false) for production");
  }

  p.state = kg_plugin_ctx::State::creating;
  void* instance = nullptr;
  kg_status st = p.desc.create(&api(), &p, &instance);
  if (st != KG_OK) {
    std::string why = p.error.empty() ? "create returned status " + std::to_string(st) : p.error;
    if (instance && p.desc.destroy) p.desc.destroy(instance);
    return fail(p, "failed to create", why);
  }
  p.instance = instance;
  commit(p);
  p.state = kg_plugin_ctx::State::created;
}

void PluginHost::commit(kg_plugin_ctx& p) {
  for (auto& [info, handler] : p.routes) {
    std::string err = services_.pipeline.add_route(info, handler);
    if (!err.empty()) {
      // A route conflict is a configuration error even for an optional plugin.
      p.required = true;
      fail(p, "has a route conflict", err);
    }
  }
  for (auto& f : p.filters) services_.pipeline.add_filter(f);
  for (auto& o : p.observers) services_.pipeline.add_observer(o);
  for (auto& o : p.stream_observers) services_.pipeline.add_stream_observer(o);
  for (auto& sub : p.subscriptions) subscribe(p, sub.pattern, sub.fn, sub.user_data);
  p.subscriptions.clear();
  p.routes.clear();
  p.filters.clear();
  p.observers.clear();
  p.stream_observers.clear();
}

void PluginHost::schedule_tasks(kg_plugin_ctx& p) {
  for (auto& t : p.tasks) {
    std::string name = p.name + "." + t.name;
    if (t.interval_ms > 0) {
      services_.tasks.every(name, std::chrono::milliseconds(t.interval_ms),
                            [fn = t.fn, ud = t.user_data] { fn(ud, nullptr); });
    } else {
      services_.tasks.run(name, [fn = t.fn, ud = t.user_data](StopToken& stop) {
        fn(ud, reinterpret_cast<kg_stop*>(&stop));
      });
    }
  }
  p.tasks.clear();
}

void PluginHost::start() {
  for (auto& p : plugins_) {
    if (p->state != kg_plugin_ctx::State::created) continue;
    kg_status st = p->desc.start ? p->desc.start(p->instance) : KG_OK;
    if (st != KG_OK) {
      fail(*p, "failed to start",
           p->error.empty() ? "start returned status " + std::to_string(st) : p->error);
      // Optional (a required one threw above): out of service, nothing of it runs.
      services_.pipeline.take_out_of_service(p->name);
      continue;
    }
    p->state = kg_plugin_ctx::State::started;
    schedule_tasks(*p);
  }
}

void PluginHost::stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto it = plugins_.rbegin(); it != plugins_.rend(); ++it) {
    auto& p = **it;
    if (p.state == kg_plugin_ctx::State::started && p.desc.stop) p.desc.stop(p.instance);
    for (auto& q : p.queues) q->stop();
    if (p.state == kg_plugin_ctx::State::started) p.state = kg_plugin_ctx::State::stopped;
  }
}

void PluginHost::destroy() {
  if (destroyed_) return;
  destroyed_ = true;
  for (auto it = plugins_.rbegin(); it != plugins_.rend(); ++it) {
    auto& p = **it;
    p.queues.clear();
    if (p.instance && p.desc.destroy) p.desc.destroy(p.instance);
    p.instance = nullptr;
  }
}

std::vector<std::pair<std::string, PluginHost::Report>> PluginHost::health() const {
  std::vector<std::pair<std::string, Report>> out;
  for (auto& p : plugins_) {
    Report r{HealthStatus::healthy, nlohmann::json::object()};
    if (p->state == kg_plugin_ctx::State::failed) {
      r.status = HealthStatus::unhealthy;
      r.details["error"] = p->error;
    } else if (p->health_fn) {
      kg_health h;
      p->health_fn(p->health_ud, &h);
      r.status = h.status;
      r.details = std::move(h.details);
    }
    out.emplace_back(p->name, std::move(r));
  }
  return out;
}

nlohmann::json PluginHost::describe() const {
  nlohmann::json list = nlohmann::json::array();
  auto health_list = health();
  for (std::size_t i = 0; i < plugins_.size(); ++i) {
    auto& p = *plugins_[i];
    nlohmann::json j = {{"name", p.name},
                        {"version", p.desc.version ? p.desc.version : ""},
                        {"abi_version", abi_text(p.desc.abi_major, p.desc.abi_minor)},
                        {"path", p.path.string()},
                        {"required", p.required},
                        {"dev_only", (p.desc.flags & KG_PLUGIN_DEV_ONLY) != 0},
                        {"status", to_string(health_list[i].second.status)}};
    if (!p.error.empty()) j["error"] = p.error;
    list.push_back(std::move(j));
  }
  return list;
}

}  // namespace kghost
