// What a reload would change, worked out from two configs; and the plugin-file identity that
// tells a new build at the same path from the loaded one.
#include "reload/reload_plan.hpp"

#include <gtest/gtest.h>

#include <fstream>

#include "reload/plugin_file.hpp"

namespace kghost {
namespace {

HostConfig parse(const std::string& toml) {
  return parse_config(toml, "test.toml", "/",
                      [](std::string_view) -> std::optional<std::string> { return std::nullopt; });
}

const char* kBase = R"(
[[plugins]]
name = "hello"
[plugins.config]
greeting = "hi"
[[plugins]]
name = "auth"
[[plugins]]
name = "streaming"
enabled = false
)";

TEST(ReloadPlan, SameConfigKeepsEveryEnabledPlugin) {
  auto plan = plan_reload(parse(kBase), parse(kBase));
  EXPECT_EQ(plan.kept, (std::vector<std::string>{"hello", "auth"}));
  EXPECT_FALSE(plan.changes_plugins());
  EXPECT_TRUE(plan.needs_restart.empty());
}

TEST(ReloadPlan, ToggledChangedAndRemovedPlugins) {
  auto next = parse(R"(
[[plugins]]
name = "hello"
[plugins.config]
greeting = "hello"
[[plugins]]
name = "streaming"
)");
  auto plan = plan_reload(parse(kBase), next);
  EXPECT_TRUE(plan.kept.empty());
  EXPECT_EQ(plan.reconfigured, std::vector<std::string>{"hello"});
  EXPECT_EQ(plan.added, std::vector<std::string>{"streaming"});
  EXPECT_EQ(plan.removed, std::vector<std::string>{"auth"});
  EXPECT_TRUE(plan.changes_plugins());
}

TEST(ReloadPlan, RequiredFlagOrPathChangeMakesANewInstance) {
  auto next = parse(R"(
[[plugins]]
name = "hello"
path = "/opt/kg_hello-2.so"
[plugins.config]
greeting = "hi"
[[plugins]]
name = "auth"
required = false
)");
  auto plan = plan_reload(parse(kBase), next);
  EXPECT_EQ(plan.reconfigured, (std::vector<std::string>{"hello", "auth"}));
}

TEST(ReloadPlan, HostSettingsAreReportedAsNeedingARestart) {
  auto next = parse(std::string(R"(
log_level = "debug"
[server]
listen = "127.0.0.1:9999"
threads = 3
)") + kBase);
  auto plan = plan_reload(parse(kBase), next);
  EXPECT_TRUE(plan.log_level_changed);
  ASSERT_EQ(plan.needs_restart.size(), 2u);
  EXPECT_NE(plan.needs_restart[0].find("server.listen"), std::string::npos);
  EXPECT_NE(plan.needs_restart[0].find("127.0.0.1:9999"), std::string::npos);
  EXPECT_NE(plan.needs_restart[1].find("server.threads"), std::string::npos);
  EXPECT_FALSE(plan.changes_plugins());
  EXPECT_EQ(plan.to_json()["needs_restart"].size(), 2u);
}

class PluginFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("kg_plugin_file_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path write(const std::string& content) {
    auto f = dir_ / "kg_x.so";
    std::ofstream(f, std::ios::binary | std::ios::trunc) << content;
    return f;
  }
  std::filesystem::path dir_;
};

TEST_F(PluginFile, TouchedButSameContentIsNotAChange) {
  auto f = write("build one");
  auto id = identify_plugin_file(f);
  ASSERT_TRUE(id);
  EXPECT_EQ(id->sha256.size(), 64u);
  EXPECT_FALSE(plugin_file_changed(f, *id));
  std::filesystem::last_write_time(f, std::filesystem::last_write_time(f) + std::chrono::hours(1));
  EXPECT_FALSE(plugin_file_changed(f, *id));
}

TEST_F(PluginFile, NewBuildAtTheSamePathOrAMissingFileIsAChange) {
  auto f = write("build one");
  auto id = identify_plugin_file(f);
  ASSERT_TRUE(id);
  write("build two");  // same size: only mtime and content tell
  std::filesystem::last_write_time(f, std::filesystem::last_write_time(f) + std::chrono::hours(1));
  EXPECT_TRUE(plugin_file_changed(f, *id));
  std::filesystem::remove(f);
  EXPECT_TRUE(plugin_file_changed(f, *id));
  EXPECT_FALSE(identify_plugin_file(f));
}

}  // namespace
}  // namespace kghost
