#include "telemetry/health_board.hpp"

#include "version.hpp"

namespace kghost {

HealthBoard::HealthBoard(StoreProbe store) : store_(std::move(store)) {}

void HealthBoard::attach(std::weak_ptr<const HealthSource> plugins) {
  std::lock_guard lock(mutex_);
  plugins_ = std::move(plugins);
}

std::shared_ptr<const HealthSource> HealthBoard::source() const {
  std::lock_guard lock(mutex_);
  return plugins_.lock();
}

NamedReports HealthBoard::plugins() const {
  auto held = source();
  return held ? held->health() : NamedReports{};
}

nlohmann::json HealthBoard::document() const {
  HealthStatus overall = HealthStatus::healthy;
  nlohmann::json list = nlohmann::json::object();
  auto held = source();
  for (auto& [name, report] : held ? held->health() : NamedReports{}) {
    overall = worst(overall, report.status);
    nlohmann::json entry = report.details.is_object() ? report.details : nlohmann::json::object();
    entry["status"] = to_string(report.status);
    list[name] = std::move(entry);
  }
  HealthReport store = store_();
  overall = worst(overall,
                  store.status == HealthStatus::unhealthy ? HealthStatus::degraded : store.status);
  nlohmann::json store_json = store.details.is_object() ? store.details : nlohmann::json::object();
  store_json["status"] = to_string(store.status);
  auto uptime =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_)
          .count();
  nlohmann::json doc = {{"status", to_string(overall)},
                        {"version", KGHOST_VERSION},
                        {"uptime_s", uptime},
                        {"store", store_json},
                        {"plugins", list}};
  if (auto about = held ? held->about() : nullptr; !about.is_null()) doc["generation"] = about;
  return doc;
}

}  // namespace kghost
