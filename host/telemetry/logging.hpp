// JSON-lines logging: one object per line with ts, level, plugin, msg, and request_id /
// trace_id where there is one, plus a plugin's own fields. Backed by one spdlog logger owned by the
// host.
#pragma once

#include <spdlog/common.h>
#include <spdlog/logger.h>

#include <memory>
#include <string_view>

namespace kghost {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };

class Logger {
 public:
  // Writes to stderr (the host's log stream) at `min_level` and above.
  explicit Logger(LogLevel min_level = LogLevel::info);
  // Writes to `sink` instead (tests capture the lines this way).
  explicit Logger(spdlog::sink_ptr sink, LogLevel min_level = LogLevel::info);
  void set_level(LogLevel level);
  bool enabled(LogLevel level) const;
  // `fields_json`: a JSON object whose members join the line; never one of the fields above
  // (dropped), ignored when it is not an object.
  void log(LogLevel level, std::string_view plugin, std::string_view msg,
           std::string_view request_id = {}, std::string_view trace_id = {},
           std::string_view fields_json = {});
  void info(std::string_view msg) { log(LogLevel::info, "host", msg); }
  void warn(std::string_view msg) { log(LogLevel::warn, "host", msg); }
  void error(std::string_view msg) { log(LogLevel::error, "host", msg); }
  void flush();

 private:
  std::shared_ptr<spdlog::logger> logger_;
};

// Parses "debug|info|warn|error"; nullopt-like false when unknown.
bool parse_log_level(std::string_view text, LogLevel& out);

}  // namespace kghost
