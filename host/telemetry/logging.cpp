#include "telemetry/logging.hpp"

#include <spdlog/sinks/stdout_sinks.h>

#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>

namespace kghost {
namespace {

spdlog::level::level_enum to_spd(LogLevel l) {
  switch (l) {
    case LogLevel::debug:
      return spdlog::level::debug;
    case LogLevel::info:
      return spdlog::level::info;
    case LogLevel::warn:
      return spdlog::level::warn;
    case LogLevel::error:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

constexpr std::string_view kLevelNames[] = {"debug", "info", "warn", "error"};

// The host's own fields: a plugin's fields never replace them (no forged request ids).
bool is_reserved(std::string_view key) {
  for (std::string_view k : {"ts", "level", "plugin", "msg", "request_id", "trace_id"})
    if (key == k) return true;
  return false;
}

std::string timestamp() {
  using namespace std::chrono;
  auto now = system_clock::now();
  auto secs = time_point_cast<seconds>(now);
  auto ms = duration_cast<milliseconds>(now - secs).count();
  std::time_t t = system_clock::to_time_t(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(ms));
  return buf;
}

}  // namespace

// stderr keeps stdout free for --check's report.
Logger::Logger(LogLevel min_level)
    : Logger(std::make_shared<spdlog::sinks::stderr_sink_mt>(), min_level) {}

Logger::Logger(spdlog::sink_ptr sink, LogLevel min_level) {
  // Not registered globally: every line goes through this object, never spdlog's default.
  logger_ = std::make_shared<spdlog::logger>("kghost", std::move(sink));
  logger_->set_pattern("%v");
  logger_->flush_on(spdlog::level::trace);
  set_level(min_level);
}

void Logger::set_level(LogLevel level) { logger_->set_level(to_spd(level)); }

bool Logger::enabled(LogLevel level) const { return logger_->should_log(to_spd(level)); }

void Logger::log(LogLevel level, std::string_view plugin, std::string_view msg,
                 std::string_view request_id, std::string_view trace_id,
                 std::string_view fields_json) {
  if (!enabled(level)) return;
  nlohmann::json line = {{"ts", timestamp()},
                         {"level", kLevelNames[static_cast<int>(level)]},
                         {"plugin", plugin},
                         {"msg", msg}};
  if (!request_id.empty()) line["request_id"] = request_id;
  if (!trace_id.empty()) line["trace_id"] = trace_id;
  if (!fields_json.empty()) {
    auto fields = nlohmann::json::parse(fields_json, nullptr, false);
    if (fields.is_object())
      for (auto& [key, value] : fields.items())
        if (!is_reserved(key)) line[key] = std::move(value);
  }
  // Invalid UTF-8 from a plugin is replaced rather than throwing.
  logger_->log(to_spd(level), line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void Logger::flush() { logger_->flush(); }

bool parse_log_level(std::string_view text, LogLevel& out) {
  for (int i = 0; i < 4; ++i) {
    if (text == kLevelNames[i]) {
      out = static_cast<LogLevel>(i);
      return true;
    }
  }
  return false;
}

}  // namespace kghost
