#include "settings.hpp"

#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

namespace kghost::streaming {

using nlohmann::json;

std::vector<std::string> split_servers(std::string_view list) {
  std::vector<std::string> out;
  while (!list.empty()) {
    auto comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

namespace {

[[noreturn]] void bad(const std::string& key, const std::string& why) {
  throw std::invalid_argument("'" + key + "': " + why);
}

int64_t integer(const json& j, const std::string& key, int64_t lo, int64_t hi) {
  if (!j.is_number_integer()) bad(key, "expected an integer");
  int64_t v = j.get<int64_t>();
  if (v < lo || v > hi) bad(key, "expected " + std::to_string(lo) + ".." + std::to_string(hi));
  return v;
}

std::string text(const json& j, const std::string& key) {
  if (!j.is_string()) bad(key, "expected a string");
  return j.get<std::string>();
}

}  // namespace

Settings parse_settings(std::string_view json_text, std::string_view env_servers) {
  json cfg = json::parse(json_text.empty() ? std::string_view("{}") : json_text, nullptr, false);
  if (!cfg.is_object()) throw std::invalid_argument("the config is not a table");
  Settings s;
  s.servers = split_servers(env_servers);
  static const std::set<std::string> known{
      "servers",           "stream",           "duplicate_window_s", "max_age_s",
      "bridge_topics",     "breaker_failures", "breaker_open_ms",    "ack_timeout_ms",
      "fallback_capacity", "max_in_flight",    "reconnect_wait_ms",  "heartbeat_ms",
      "max_sse_clients",   "token_ttl_s",      "token_secret"};
  for (auto& [key, v] : cfg.items()) {
    if (!known.count(key)) bad(key, "unknown key");
    if (key == "servers") {
      if (v.is_string()) {
        s.servers = split_servers(v.get<std::string>());
      } else if (v.is_array()) {
        s.servers.clear();
        for (auto& e : v) {
          auto list = split_servers(text(e, key));
          s.servers.insert(s.servers.end(), list.begin(), list.end());
        }
      } else {
        bad(key, "expected a comma-separated string or an array of strings");
      }
    } else if (key == "stream") {
      s.stream = text(v, key);
      if (s.stream.empty() || s.stream.find_first_of(" \t.*>/\\") != std::string::npos)
        bad(key, "expected a stream name without spaces, '.', '*', '>', '/' or '\\'");
    } else if (key == "duplicate_window_s") {
      s.duplicate_window_s = integer(v, key, 1, int64_t{365} * 24 * 3600);
    } else if (key == "max_age_s") {
      s.max_age_s = integer(v, key, 0, int64_t{100} * 365 * 24 * 3600);
    } else if (key == "bridge_topics") {
      if (!v.is_array()) bad(key, "expected an array of bus topic patterns");
      s.bridge_topics.clear();
      for (auto& e : v) {
        auto t = text(e, key);
        if (t.empty() || t.find_first_of(" \t\r\n") != std::string::npos)
          bad(key, "a topic pattern must be non-empty and without whitespace");
        s.bridge_topics.push_back(std::move(t));
      }
    } else if (key == "breaker_failures") {
      s.breaker_failures = static_cast<int>(integer(v, key, 1, 1000000));
    } else if (key == "breaker_open_ms") {
      s.breaker_open = std::chrono::milliseconds(integer(v, key, 10, 3600000));
    } else if (key == "ack_timeout_ms") {
      s.ack_timeout = std::chrono::milliseconds(integer(v, key, 10, 600000));
    } else if (key == "fallback_capacity") {
      s.fallback_capacity = static_cast<std::size_t>(integer(v, key, 1, 10000000));
    } else if (key == "max_in_flight") {
      s.max_in_flight = static_cast<std::size_t>(integer(v, key, 1, 1000000));
    } else if (key == "reconnect_wait_ms") {
      s.reconnect_wait = std::chrono::milliseconds(integer(v, key, 10, 600000));
    } else if (key == "heartbeat_ms") {
      s.heartbeat = std::chrono::milliseconds(integer(v, key, 10, 3600000));
    } else if (key == "max_sse_clients") {
      s.max_sse_clients = static_cast<std::size_t>(integer(v, key, 1, 1000000));
    } else if (key == "token_ttl_s") {
      s.token_ttl = std::chrono::seconds(integer(v, key, 1, 86400));
    } else if (key == "token_secret") {
      s.token_secret = text(v, key);
      if (!s.token_secret.empty() && s.token_secret.size() < 32)
        bad(key,
            "expected at least 32 characters (or leave it out for a random per-process secret)");
    }
  }
  if (s.max_age_s > 0 && s.duplicate_window_s > s.max_age_s)
    bad("duplicate_window_s", "must not exceed max_age_s (JetStream rejects such a stream)");
  return s;
}

}  // namespace kghost::streaming
