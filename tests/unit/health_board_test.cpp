// The health board: the /health document from the store's report and the attached plugins'.
#include "telemetry/health_board.hpp"

#include <gtest/gtest.h>

namespace kghost {
namespace {

struct FixedReports : HealthSource {
  NamedReports reports;
  NamedReports health() const override { return reports; }
};

HealthBoard::StoreProbe store_is(HealthStatus status) {
  return [status] { return HealthReport{status, {{"backend", "memory"}}}; };
}

TEST(HealthBoard, WithoutAttachedPluginsListsNoneAndReportsTheStore) {
  HealthBoard board(store_is(HealthStatus::healthy));
  auto doc = board.document();
  EXPECT_EQ(doc["status"], "healthy");
  EXPECT_TRUE(doc["plugins"].empty());
  EXPECT_EQ(doc["store"]["backend"], "memory");
  EXPECT_EQ(doc["store"]["status"], "healthy");
  EXPECT_TRUE(doc.contains("version") && doc.contains("uptime_s"));
}

TEST(HealthBoard, OverallIsTheWorstPluginAndAnUnhealthyStoreOnlyDegrades) {
  HealthBoard board(store_is(HealthStatus::unhealthy));
  auto plugins = std::make_shared<FixedReports>();
  plugins->reports = {{"a", {HealthStatus::healthy, {{"n", 1}}}}};
  board.attach(plugins);
  auto doc = board.document();
  EXPECT_EQ(doc["status"], "degraded");
  EXPECT_EQ(doc["plugins"]["a"]["status"], "healthy");
  EXPECT_EQ(doc["plugins"]["a"]["n"], 1);

  plugins->reports.push_back({"b", {HealthStatus::unhealthy, {{"error", "x"}}}});
  doc = board.document();
  EXPECT_EQ(doc["status"], "unhealthy");
  EXPECT_EQ(doc["plugins"]["b"]["error"], "x");
}

TEST(HealthBoard, PluginsThatAreGoneAreNoLongerListed) {
  HealthBoard board(store_is(HealthStatus::healthy));
  {
    auto plugins = std::make_shared<FixedReports>();
    plugins->reports = {{"a", {HealthStatus::unhealthy, {}}}};
    board.attach(plugins);
    EXPECT_EQ(board.plugins().size(), 1u);
  }
  EXPECT_TRUE(board.plugins().empty());
  EXPECT_EQ(board.document()["status"], "healthy");
}

}  // namespace
}  // namespace kghost
