// The host's configuration: parsed once at start-up from TOML into typed structs with defaults.
// Every error names the file, line and key, and says what would fix it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "telemetry/logging.hpp"

namespace kghost {

// A configuration error; what() is "file:line:col: message".
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reads an environment variable; nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;
EnvLookup process_env();

// Expands ${NAME} and ${NAME:-default} in `text`. Throws std::invalid_argument naming the
// problem (unset variable without default, unterminated or empty reference).
std::string expand_env(std::string_view text, const EnvLookup& env);

struct ServerConfig {
  std::string listen = "127.0.0.1:8080";  // checked by parse_listen
  unsigned threads = 0;                   // 0: one per core
  std::size_t max_body_bytes = 1 << 20;
  std::size_t max_header_bytes = 16 << 10;
  std::chrono::seconds header_timeout{10};
  std::chrono::seconds body_timeout{10};
  std::chrono::seconds idle_timeout{60};
  std::chrono::seconds drain_timeout{30};
  std::chrono::seconds handler_timeout{30};  // a route's timeout_ms overrides it
  // After an answer given before the whole request was read: how long and how much input is
  // read and discarded before the close, so the client is not reset before it reads the answer.
  std::chrono::seconds lingering_timeout{5};
  std::size_t lingering_bytes = 8 << 20;
  std::size_t stream_buffer_bytes = 1 << 20;
};

// A listen address split into an IP address (brackets removed; "" when HOST was empty) and port.
struct ListenAddress {
  std::string host;
  uint16_t port = 0;
};
// Parses "HOST:PORT" (IPv4, [IPv6] or empty HOST, port 0-65535); nullopt when it is not one.
std::optional<ListenAddress> parse_listen(std::string_view listen);

// [store] backend: "memory" (embedded) or the name of a store provider plugin in [[plugins]]
// ("store_redis"; "redis" is its old alias). The provider's entry is moved to the front of
// `plugins` (created and started first, stopped and destroyed last) and made required. The
// old keys store.redis_url / redis_pool / redis_timeout_ms and REDIS_URL fill store_redis's
// url / pool / timeout_ms (REDIS_URL selects store_redis and wins over the file, as before).
struct StoreConfig {
  std::string backend = "memory";
  std::string origin;  // "file:line:col" of backend (or "REDIS_URL"), for errors
  // The old keys and REDIS_URL as store_redis config ({"url","pool","timeout_ms"}), moved
  // into its [[plugins]] entry once the whole file is read.
  nlohmann::json redis_keys = nlohmann::json::object();
  bool redis_url_from_env = false;
};

struct PluginEntry {
  std::string name;
  std::filesystem::path path;  // empty: <plugin_dir>/kg_<name>.so
  bool enabled = true;
  bool required = true;
  nlohmann::json config = nlohmann::json::object();
  std::string origin;  // "file:line" of the [[plugins]] entry
};

struct HostConfig {
  std::string source;        // file name, or "<embedded dev.toml>"
  std::string mode = "dev";  // dev | production
  LogLevel log_level = LogLevel::info;
  ServerConfig server;
  StoreConfig store;
  std::filesystem::path data_dir = "./data";
  std::filesystem::path plugin_dir;  // empty: next to the executable
  std::vector<PluginEntry> plugins;
};

// Parses TOML text. `source` names it in errors; relative paths resolve against `base_dir`.
// Env overrides (KG_LISTEN, KG_MODE, REDIS_URL) are applied after parsing.
HostConfig parse_config(std::string_view text, const std::string& source,
                        const std::filesystem::path& base_dir, const EnvLookup& env);
// Reads and parses a file; a missing or unreadable file is a ConfigError too.
HostConfig load_config_file(const std::filesystem::path& file, const EnvLookup& env);

// The config compiled into the binary (config/dev.toml).
std::string_view embedded_dev_config();

}  // namespace kghost
