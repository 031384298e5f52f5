// Health states shared by the host and its primitives.
#pragma once

#include <string>
#include <string_view>

namespace kghost {

enum class HealthStatus { healthy = 0, degraded = 1, unhealthy = 2 };

constexpr std::string_view to_string(HealthStatus s) {
  switch (s) {
    case HealthStatus::healthy:
      return "healthy";
    case HealthStatus::degraded:
      return "degraded";
    case HealthStatus::unhealthy:
      return "unhealthy";
  }
  return "unhealthy";
}

// The worse of two states.
constexpr HealthStatus worst(HealthStatus a, HealthStatus b) { return a > b ? a : b; }

}  // namespace kghost
