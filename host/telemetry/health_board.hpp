// The host's health in one place: the store's state and every plugin's report, gathered into
// the /health document (also what plugins read through kg_host_api.health_render).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "telemetry/health.hpp"

namespace kghost {

struct HealthReport {
  HealthStatus status = HealthStatus::healthy;
  nlohmann::json details = nlohmann::json::object();
};
using NamedReports = std::vector<std::pair<std::string, HealthReport>>;

// Whatever has parts that report health: the running generation of plugins.
class HealthSource {
 public:
  virtual ~HealthSource() = default;
  // [any] Each part's report, by name, in order. Runs plugin code: never on an I/O thread.
  virtual NamedReports health() const = 0;
  // [any] What the /health document shows of the source itself ("generation"), or null.
  virtual nlohmann::json about() const { return nullptr; }
};

class HealthBoard {
 public:
  // The store's report: its status, details {"backend", "detail"} (detail may be absent).
  using StoreProbe = std::function<HealthReport()>;
  explicit HealthBoard(StoreProbe store);

  // [main] The plugins whose reports the document lists from now on (before the first
  // attach, or once they are gone: none). Not owned: their owner decides when they go; a
  // report being made holds them until it is done. A reload attaches the new generation.
  void attach(std::weak_ptr<const HealthSource> plugins);
  // [any] The attached plugins' reports (runs their reporters).
  NamedReports plugins() const;
  // [any] {"status", "version", "uptime_s", "store", "plugins"}: the overall status is the
  // worst plugin's, or degraded when the store is (an unhealthy store degrades the host); plus
  // "generation" when the plugins say which one they are.
  nlohmann::json document() const;

 private:
  std::shared_ptr<const HealthSource> source() const;

  StoreProbe store_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  mutable std::mutex mutex_;  // guards plugins_ (never held while a reporter runs)
  std::weak_ptr<const HealthSource> plugins_;
};

}  // namespace kghost
