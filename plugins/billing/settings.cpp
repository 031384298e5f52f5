#include "settings.hpp"

#include <charconv>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <unordered_set>

namespace kghost::billing {
namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& key, const std::string& why) {
  throw std::runtime_error("billing config: '" + key + "' " + why);
}

// Integers may arrive as strings ("${ENV:-100}" expands to text).
int64_t get_int(const json& cfg, const char* key, int64_t def, int64_t min, int64_t max) {
  if (!cfg.contains(key)) return def;
  const json& v = cfg[key];
  int64_t out = 0;
  if (v.is_number_integer()) {
    out = v.get<int64_t>();
  } else if (v.is_string()) {
    const std::string s = v.get<std::string>();
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    if (ec != std::errc() || p != s.data() + s.size())
      bad(key, "must be an integer, got \"" + s + "\"");
  } else {
    bad(key, "must be an integer");
  }
  if (out < min || out > max)
    bad(key, "must be between " + std::to_string(min) + " and " + std::to_string(max));
  return out;
}

std::string get_string(const json& cfg, const char* key) {
  if (!cfg.contains(key)) return {};
  if (!cfg[key].is_string()) bad(key, "must be a string");
  return cfg[key].get<std::string>();
}

}  // namespace

Settings parse_settings(std::string_view text) {
  json cfg = json::parse(text, nullptr, false);
  if (!cfg.is_object()) throw std::runtime_error("billing config: not a table");
  static const std::unordered_set<std::string> known = {"sink",
                                                        "url",
                                                        "api_key",
                                                        "batch_size",
                                                        "flush_interval_ms",
                                                        "connect_timeout_ms",
                                                        "timeout_ms",
                                                        "backoff_initial_ms",
                                                        "backoff_max_ms",
                                                        "stop_flush_ms",
                                                        "max_spool_bytes",
                                                        "prices"};
  for (auto& [k, v] : cfg.items())
    if (!known.count(k)) bad(k, "is not a known key");
  Settings s;
  const std::string sink = cfg.contains("sink") ? get_string(cfg, "sink") : "openmeter";
  if (sink == "openmeter") {
    s.sink = Sink::openmeter;
  } else if (sink == "log") {
    s.sink = Sink::log;
  } else if (sink == "none") {
    s.sink = Sink::none;
  } else {
    bad("sink", "must be \"openmeter\", \"log\" or \"none\", got \"" + sink + "\"");
  }
  s.url = get_string(cfg, "url");
  while (!s.url.empty() && s.url.back() == '/') s.url.pop_back();
  s.api_key = get_string(cfg, "api_key");
  if (s.sink == Sink::openmeter) {
    if (s.url.empty()) bad("url", "is required with sink = \"openmeter\" (\"${OPENMETER_URL}\")");
    if (s.url.rfind("http://", 0) != 0 && s.url.rfind("https://", 0) != 0)
      bad("url", "must start with http:// or https://");
  }
  s.batch_size = static_cast<std::size_t>(get_int(cfg, "batch_size", 100, 1, 10000));
  s.flush_interval = std::chrono::milliseconds(get_int(cfg, "flush_interval_ms", 25, 1, 80));
  s.connect_timeout =
      std::chrono::milliseconds(get_int(cfg, "connect_timeout_ms", 2000, 10, 60000));
  s.timeout = std::chrono::milliseconds(get_int(cfg, "timeout_ms", 5000, 10, 120000));
  s.backoff_initial = std::chrono::milliseconds(get_int(cfg, "backoff_initial_ms", 200, 1, 600000));
  s.backoff_max = std::chrono::milliseconds(get_int(cfg, "backoff_max_ms", 30000, 1, 3600000));
  if (s.backoff_max < s.backoff_initial) bad("backoff_max_ms", "must be >= backoff_initial_ms");
  s.stop_flush = std::chrono::milliseconds(get_int(cfg, "stop_flush_ms", 3000, 0, 600000));
  s.max_spool_bytes =
      static_cast<uint64_t>(get_int(cfg, "max_spool_bytes", 64ll << 20, 4096, int64_t{1} << 40));
  if (cfg.contains("prices")) {
    if (!cfg["prices"].is_object())
      bad("prices", "must be a table of price lookup_key = \"TIER\" ([plugins.config.prices])");
    for (auto& [k, v] : cfg["prices"].items()) {
      if (!v.is_string() || v.get<std::string>().empty())
        bad("prices." + k, "must be a tier name such as \"PRO\"");
      s.prices[k] = v.get<std::string>();
    }
  }
  return s;
}

}  // namespace kghost::billing
