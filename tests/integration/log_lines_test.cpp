// The host's log stream is JSON lines only (CONTRACT §3): also while the Redis store goes down,
// answers from its memory fallback and recovers — the lines the store, queue and bus write
// come from the host's logger, never from a global one.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "host.hpp"

using namespace kghost::test;
using nlohmann::json;

namespace {

// Every plugin of config/dev.toml, with the Redis store: auth counts in it, webhooks keeps its
// idempotency marks in it and its spool in the durable queue, streaming logs that it is off.
std::string config(const std::string& redis_url) {
  return "plugin_dir = \"${KG_PLUGIN_DIR}\"\nmode = \"dev\"\nlog_level = \"debug\"\n"
         "data_dir = \"${KG_DATA_DIR}\"\n[server]\nthreads = 2\n"
         "[store]\nbackend = \"redis\"\nredis_url = \"" +
         redis_url +
         "\"\nredis_timeout_ms = 200\n"
         "[[plugins]]\nname = \"hello\"\n[[plugins]]\nname = \"auth\"\n"
         "[[plugins]]\nname = \"devkeys\"\n"
         "[[plugins]]\nname = \"streaming\"\nrequired = false\n[plugins.config]\nservers = \"\"\n"
         "[[plugins]]\nname = \"webhooks\"\n[plugins.config]\nsecrets = \"whsec_test\"\n";
}

std::string store_status(const KgHost& host) {
  auto doc = json::parse(host.get("/health").body, nullptr, false);
  return doc.is_object() && doc.contains("store") ? doc["store"].value("status", "") : "";
}

void traffic(const KgHost& host) {
  EXPECT_EQ(host.get("/api/v1/health", {"X-API-Key: kg_dev_bob"}).status, 200);
  EXPECT_EQ(host.get("/api/v1/health", {"X-API-Key: kg_dev_nobody"}).status, 401);
  EXPECT_EQ(host.get("/hello/world").status, 200);
  EXPECT_EQ(
      host.post("/webhooks/stripe", R"({"id":"evt_1","type":"x"})", {"Stripe-Signature: t=1,v1=00"})
          .status,
      400);
  EXPECT_EQ(host.get("/nothing/here").status, 404);
}

TEST(HostLogs, EveryLineIsAJsonObjectWhileRedisGoesDownAndComesBack) {
  RedisServer redis;
  KgHost host(config(redis.url()));
  ASSERT_TRUE(host.wait_ready()) << host.log();
  ASSERT_TRUE(wait_until([&] { return store_status(host) == "healthy"; })) << host.log();
  traffic(host);

  redis.kill();
  ASSERT_TRUE(wait_until([&] {
    traffic(host);  // answered from the memory fallback
    return store_status(host) == "degraded";
  })) << host.log();
  traffic(host);

  redis.start();
  ASSERT_TRUE(wait_until([&] { return store_status(host) == "healthy"; }, 30s)) << host.log();
  traffic(host);

  host.process().signal(SIGTERM);
  ASSERT_EQ(host.process().wait(30s), 0) << host.log();

  const std::string log = host.log();
  std::istringstream in(log);
  int lines = 0;
  bool saw_outage = false, saw_recovery = false;
  for (std::string line; std::getline(in, line);) {
    ++lines;
    auto j = json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << "line " << lines << " is not a JSON object: " << line;
    for (auto key : {"ts", "level", "plugin", "msg"})
      ASSERT_TRUE(j.contains(key) && j[key].is_string())
          << "line " << lines << " has no string \"" << key << "\": " << line;
    const std::string msg = j["msg"];
    if (msg.find("store: redis") != std::string::npos &&
        msg.find("unreachable") != std::string::npos)
      saw_outage = true;
    if (msg.find("reachable again") != std::string::npos) saw_recovery = true;
  }
  EXPECT_GT(lines, 5) << log;
  // The store's own outage and recovery lines are among them (they used a global logger once).
  EXPECT_TRUE(saw_outage) << log;
  EXPECT_TRUE(saw_recovery) << log;
}

}  // namespace
