#include "plugins/instance.hpp"

#include "plugins/host_api.hpp"

using kghost::HealthReport;
using kghost::HealthStatus;

kg_plugin_ctx::kg_plugin_ctx(const kghost::HostServices& host, const kghost::PluginEntry& entry,
                             std::filesystem::path file)
    : services(host),
      name(entry.name),
      path(std::move(file)),
      required(entry.required),
      config(entry.config),
      config_text(entry.config.dump()),
      store_prefix("plugin/" + entry.name + "/"),
      tasks(host.pool) {}

kg_plugin_ctx::~kg_plugin_ctx() {
  stop();
  destroy();
}

std::string kg_plugin_ctx::create() {
  state = State::creating;
  void* made = nullptr;
  kg_status st = descriptor().create(&kghost::host_api(), this, &made);
  if (st != KG_OK) {
    if (made && descriptor().destroy) descriptor().destroy(made);
    return error.empty() ? "create returned status " + std::to_string(st) : error;
  }
  instance_ = made;
  state = State::created;
  return "";
}

std::string kg_plugin_ctx::start() {
  kg_status st = descriptor().start ? descriptor().start(instance_) : KG_OK;
  if (st != KG_OK) return error.empty() ? "start returned status " + std::to_string(st) : error;
  state = State::started;
  return "";
}

void kg_plugin_ctx::go_live() {
  if (live.exchange(true)) return;
  tasks.start();
  for (auto& q : queues) q->shared->activate(this);
}

void kg_plugin_ctx::stop() {
  tasks.stop();
  for (auto id : subscriptions) services.bus.unsubscribe(id);
  subscriptions.clear();
  if (state == State::started && descriptor().stop) descriptor().stop(instance_);
  for (auto& q : queues) q->shared->release(this);
  if (state == State::started) state = State::stopped;
}

void kg_plugin_ctx::destroy() {
  queues.clear();
  if (instance_ && descriptor().destroy) descriptor().destroy(instance_);
  instance_ = nullptr;
}

HealthReport kg_plugin_ctx::health() const {
  HealthReport r;
  if (state == State::failed) {
    r.status = HealthStatus::unhealthy;
    r.details["error"] = error;
  } else if (health_fn) {
    kg_health h;
    health_fn(health_ud, &h);
    r.status = h.status;
    r.details = std::move(h.details);
  }
  return r;
}
