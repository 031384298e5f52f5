#include "health_view.hpp"

#include "text_format.hpp"

namespace kghost::observability {
namespace {

using nlohmann::json;

constexpr const char* kDisabled = "disabled";

std::string string_at(const json& j, const char* key, const std::string& fallback) {
  if (j.is_object()) {
    auto it = j.find(key);
    if (it != j.end() && it->is_string()) return it->get<std::string>();
  }
  return fallback;
}

const json* plugin(const json& health, const char* name) {
  if (!health.is_object()) return nullptr;
  auto plugins = health.find("plugins");
  if (plugins == health.end() || !plugins->is_object()) return nullptr;
  auto it = plugins->find(name);
  return it == plugins->end() ? nullptr : &*it;
}

// Whether a part makes the whole unhealthy, degraded, or neither.
int severity(const std::string& status) {
  if (status == "healthy" || status == kDisabled) return 0;
  if (status == "unhealthy") return 2;
  return 1;  // degraded, circuit_open, and anything unknown
}

json nats_part(const json* p) {
  if (!p) return {{"status", kDisabled}, {"mode", "fallback"}};
  // The streaming plugin reports its NATS state as "state"; without one it failed to start.
  std::string plugin_status = string_at(*p, "status", "unhealthy");
  std::string state = string_at(*p, "state", plugin_status == "healthy" ? "healthy" : "unhealthy");
  return {{"status", state}, {"mode", string_at(*p, "mode", "fallback")}};
}

json store_part(const json& health) {
  const json empty = json::object();
  const json& s = health.is_object() && health.contains("store") ? health["store"] : empty;
  return {{"status", string_at(s, "status", "unhealthy")},
          {"backend", string_at(s, "backend", "memory")}};
}

json openmeter_part(const json* p) {
  if (!p) return {{"status", kDisabled}, {"buffered", 0}};
  std::string plugin_status = string_at(*p, "status", "unhealthy");
  // An unhealthy billing plugin (e.g. OpenMeter refusing our key) is unhealthy here too,
  // whatever its openmeter detail says.
  std::string status =
      plugin_status == "unhealthy" ? plugin_status : string_at(*p, "openmeter", plugin_status);
  json buffered = 0;
  if (auto it = p->find("buffered"); it != p->end() && it->is_number()) buffered = *it;
  return {{"status", status}, {"buffered", buffered}};
}

json stripe_part(const json* p) {
  if (!p) return {{"status", kDisabled}};
  return {{"status", string_at(*p, "status", "unhealthy")}};
}

}  // namespace

SaasHealth saas_health(const json& health) {
  json body = {{"status", "healthy"},
               {"nats", nats_part(plugin(health, kStreamingPlugin))},
               {"store", store_part(health)},
               {"openmeter", openmeter_part(plugin(health, kBillingPlugin))},
               {"stripe", stripe_part(plugin(health, kWebhooksPlugin))}};
  int worst = 0;
  for (const char* part : {"nats", "store", "openmeter", "stripe"})
    worst = std::max(worst, severity(body[part]["status"].get<std::string>()));
  static constexpr const char* kOverall[] = {"healthy", "degraded", "unhealthy"};
  body["status"] = kOverall[worst];
  return {worst == 2 ? 503 : 200, std::move(body)};
}

void render_plugin_up(const json& health, std::string& out) {
  family_header(out, "kgents_plugin_up", "gauge",
                "1 while a loaded plugin reports healthy or degraded, 0 when unhealthy or failed.");
  const json* plugins = nullptr;
  if (health.is_object())
    if (auto it = health.find("plugins"); it != health.end() && it->is_object()) plugins = &*it;
  if (!plugins) return;
  for (auto& [name, entry] : plugins->items()) {
    bool up = string_at(entry, "status", "unhealthy") != "unhealthy";
    out.append("kgents_plugin_up{plugin=\"").append(escape_label(name)).append("\"} ");
    out.append(up ? "1" : "0").append("\n");
  }
}

}  // namespace kghost::observability
