// streaming: the plugin's [plugins.config] table, parsed once at create into a typed struct.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kghost::streaming {

struct Settings {
  // NATS servers; empty: the plugin is disabled (routes answer 503 unavailable, health "disabled").
  std::vector<std::string> servers;
  std::string stream = "KGENT_EVENTS";
  int64_t duplicate_window_s = 1800;  // JetStream de-duplication window (Nats-Msg-Id)
  int64_t max_age_s = 0;              // 0: no max_age on the stream
  // Bus patterns use NATS semantics (`*` one token, `>` the rest): stripe.invoice.paid needs
  // `stripe.>`, which `stripe.*` would miss.
  std::vector<std::string> bridge_topics{"stripe.>", "billing.>"};

  // Circuit breaker: open after `breaker_failures` consecutive failed acks, half-open after.
  int breaker_failures = 5;
  std::chrono::milliseconds breaker_open{30000};
  std::chrono::milliseconds ack_timeout{5000};
  std::size_t fallback_capacity = 1000;  // events held while NATS is away
  std::size_t max_in_flight = 4096;      // async publishes awaiting their ack
  std::chrono::milliseconds reconnect_wait{1000};

  // SSE
  std::chrono::milliseconds heartbeat{15000};
  std::size_t max_sse_clients = 10000;

  // Browser tokens
  std::chrono::seconds token_ttl{60};
  std::string token_secret;  // empty: a random per-process secret (single replica only)
};

// Parses the plugin's config JSON (the [plugins.config] table). Throws sdk::ConfigError (an
// std::invalid_argument) naming the key on a bad or unknown key. `env_servers` is NATS_SERVERS,
// used when the table has no `servers` key.
Settings parse_settings(std::string_view json_text, std::string_view env_servers);

}  // namespace kghost::streaming
