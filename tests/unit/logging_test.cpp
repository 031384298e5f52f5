// The host's JSON-lines logger: one object per line, a plugin's fields beside the host's own
// and never in place of them.
#include "telemetry/logging.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>

using nlohmann::json;

namespace {

json one_line(const std::function<void(kghost::Logger&)>& write) {
  kghost::Logger log;
  testing::internal::CaptureStderr();
  write(log);
  log.flush();
  std::string out = testing::internal::GetCapturedStderr();
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  return json::parse(out, nullptr, false);
}

}  // namespace

TEST(Logger, PluginFieldsJoinTheLineButNeverReplaceTheHostsOwn) {
  auto j = one_line([](kghost::Logger& log) {
    log.log(kghost::LogLevel::info, "obs", "access", "rid1", "trace1",
            R"({"status":200,"route":"/x","nested":{"a":[1,2]},"ts":"forged","level":"error",)"
            R"("plugin":"auth","msg":"forged","request_id":"forged","trace_id":"forged"})");
  });
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j["status"], 200);
  EXPECT_EQ(j["route"], "/x");
  EXPECT_EQ(j["nested"], json({{"a", {1, 2}}}));
  EXPECT_NE(j["ts"], "forged");
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["plugin"], "obs");
  EXPECT_EQ(j["msg"], "access");
  EXPECT_EQ(j["request_id"], "rid1");
  EXPECT_EQ(j["trace_id"], "trace1");
}

TEST(Logger, ReservedFieldsStayAbsentWithoutARequest) {
  auto j = one_line([](kghost::Logger& log) {
    log.log(kghost::LogLevel::warn, "obs", "m", {}, {}, R"({"request_id":"forged","n":1})");
  });
  EXPECT_FALSE(j.contains("request_id")) << j.dump();
  EXPECT_EQ(j["n"], 1);
}

TEST(Logger, FieldsThatAreNotAnObjectAreIgnoredAndTheLineStillWritten) {
  for (std::string bad : {"[1,2]", "\"text\"", "{\"unterminated\":", "not json", "42"}) {
    auto j = one_line([&](kghost::Logger& log) {
      log.log(kghost::LogLevel::info, "obs", "still here", {}, {}, bad);
    });
    ASSERT_TRUE(j.is_object()) << bad;
    EXPECT_EQ(j["msg"], "still here") << bad;
    EXPECT_EQ(j.size(), 4u) << bad << " " << j.dump();  // ts, level, plugin, msg
  }
}
