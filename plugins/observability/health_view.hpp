// observability: views of the host's /health document (kg_host_api.health_render). Pure.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace kghost::observability {

// Plugin names the SaaS view reads, as they appear in /health's "plugins" object.
inline constexpr const char* kStreamingPlugin = "streaming";
inline constexpr const char* kBillingPlugin = "billing";
inline constexpr const char* kWebhooksPlugin = "webhooks";

struct SaasHealth {
  int http_status;  // 200, or 503 when any part is unhealthy
  nlohmann::json body;
};

// GET /health/saas from the /health document:
//   nats      the streaming plugin's details: state (healthy|degraded|circuit_open|disabled)
//             and mode (jetstream|fallback)
//   store     the host's store: status and backend
//   openmeter the billing plugin's details: openmeter (status) and buffered
//   stripe    the webhooks plugin's status
// A plugin that is not loaded shows "disabled"; one that failed to start, "unhealthy".
SaasHealth saas_health(const nlohmann::json& health);

// kgents_plugin_up{plugin}: 1 while a plugin reports healthy or degraded, 0 when unhealthy
// (including an optional plugin that failed to start). Appends a gauge family.
void render_plugin_up(const nlohmann::json& health, std::string& out);

}  // namespace kghost::observability
