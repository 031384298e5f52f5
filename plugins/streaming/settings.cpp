#include "settings.hpp"

#include <kghost/sdk/config.hpp>

namespace kghost::streaming {

using sdk::Config;

Settings parse_settings(std::string_view json_text, std::string_view env_servers) {
  Config cfg(json_text);
  cfg.allow_only({"servers", "stream", "duplicate_window_s", "max_age_s", "bridge_topics",
                  "breaker_failures", "breaker_open_ms", "ack_timeout_ms", "fallback_capacity",
                  "max_in_flight", "reconnect_wait_ms", "heartbeat_ms", "max_sse_clients",
                  "token_ttl_s", "token_secret"});
  Settings s;
  s.servers = sdk::split_list(env_servers);
  for (auto& [key, v] : cfg.table().items()) {
    if (key == "servers") {
      s.servers = Config::list_value(v, key);
    } else if (key == "stream") {
      s.stream = Config::string_value(v, key);
      if (s.stream.empty() || s.stream.find_first_of(" \t.*>/\\") != std::string::npos)
        Config::fail(key, "expected a stream name without spaces, '.', '*', '>', '/' or '\\'");
    } else if (key == "duplicate_window_s") {
      s.duplicate_window_s = Config::integer_value(v, key, 1, int64_t{365} * 24 * 3600);
    } else if (key == "max_age_s") {
      s.max_age_s = Config::integer_value(v, key, 0, int64_t{100} * 365 * 24 * 3600);
    } else if (key == "bridge_topics") {
      if (!v.is_array()) Config::fail(key, "expected an array of bus topic patterns");
      s.bridge_topics.clear();
      for (auto& e : v) {
        auto t = Config::string_value(e, key);
        if (t.empty() || t.find_first_of(" \t\r\n") != std::string::npos)
          Config::fail(key, "a topic pattern must be non-empty and without whitespace");
        s.bridge_topics.push_back(std::move(t));
      }
    } else if (key == "breaker_failures") {
      s.breaker_failures = static_cast<int>(Config::integer_value(v, key, 1, 1000000));
    } else if (key == "breaker_open_ms") {
      s.breaker_open = std::chrono::milliseconds(Config::integer_value(v, key, 10, 3600000));
    } else if (key == "ack_timeout_ms") {
      s.ack_timeout = std::chrono::milliseconds(Config::integer_value(v, key, 10, 600000));
    } else if (key == "fallback_capacity") {
      s.fallback_capacity = static_cast<std::size_t>(Config::integer_value(v, key, 1, 10000000));
    } else if (key == "max_in_flight") {
      s.max_in_flight = static_cast<std::size_t>(Config::integer_value(v, key, 1, 1000000));
    } else if (key == "reconnect_wait_ms") {
      s.reconnect_wait = std::chrono::milliseconds(Config::integer_value(v, key, 10, 600000));
    } else if (key == "heartbeat_ms") {
      s.heartbeat = std::chrono::milliseconds(Config::integer_value(v, key, 10, 3600000));
    } else if (key == "max_sse_clients") {
      s.max_sse_clients = static_cast<std::size_t>(Config::integer_value(v, key, 1, 1000000));
    } else if (key == "token_ttl_s") {
      s.token_ttl = std::chrono::seconds(Config::integer_value(v, key, 1, 86400));
    } else if (key == "token_secret") {
      s.token_secret = Config::string_value(v, key);
      if (!s.token_secret.empty() && s.token_secret.size() < 32)
        Config::fail(
            key,
            "expected at least 32 characters (or leave it out for a random per-process secret)");
    }
  }
  if (s.max_age_s > 0 && s.duplicate_window_s > s.max_age_s)
    Config::fail("duplicate_window_s",
                 "must not exceed max_age_s (JetStream rejects such a stream)");
  return s;
}

}  // namespace kghost::streaming
