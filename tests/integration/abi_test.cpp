// ABI 1.0 compatibility and the 1.1 additions end to end: a plain-C plugin built against the
// kept 1.0 header, short out-structs, filter scopes, store key spaces, error answers with
// headers, stream-end observations, a failed optional start, /openapi.json.
#include <gtest/gtest.h>
#include <kghost/plugin.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "host.hpp"

using namespace kghost::test;
using nlohmann::json;

namespace {

json body_json(const HttpResult& r) { return json::parse(r.body, nullptr, false); }

std::string plugins(const std::vector<std::string>& names, const std::string& extra = "") {
  std::string cfg = "plugin_dir = \"${KG_TEST_PLUGIN_DIR}\"\n" + extra + "\n";
  for (auto& n : names) cfg += "[[plugins]]\nname = \"" + n + "\"\n";
  return cfg;
}

// scope_a and scope_b (the same 1.1 source), and c_plugin (built against the 1.0 header).
const std::string kTwoScoped = plugins({"scope_a", "scope_b", "c_plugin"});

}  // namespace

// --- a 1.0 plugin on the 1.1 host ------------------------------------------------------------

TEST(Abi10Plugin, ServesRoutesFiltersStoreDeferredBusTasksAndHealth) {
  KgHost host(plugins({"c_plugin"}) + "[plugins.config]\ntick_ms = 10\n");
  ASSERT_TRUE(host.wait_ready()) << host.log();
  auto hello = host.get("/c/hello");
  EXPECT_EQ(hello.status, 200);
  EXPECT_EQ(hello.header("x-c-filter"), "seen");  // its 1.0 filter runs (on every route)
  EXPECT_EQ(host.get("/c/hello", {"X-C-Deny: 1"}).status, 403);
  EXPECT_EQ(body_json(host.get("/c/slow?ms=20"))["slow"], true);  // deferred, another thread
  ASSERT_EQ(host.post("/c/store/k1", "stored by C").status, 200);
  auto got = host.get("/c/store/k1");
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(got.body, "stored by C");
  EXPECT_EQ(host.get("/c/store/absent").status, 404);
  ASSERT_EQ(host.post("/c/publish", "{}").status, 202);
  EXPECT_TRUE(wait_until([&] { return body_json(host.get("/c/ticks"))["events"] == 1; }));
  EXPECT_TRUE(wait_until([&] { return body_json(host.get("/c/ticks"))["ticks"] >= 3; }));
  auto health = body_json(host.get("/health"));
  EXPECT_EQ(health["plugins"]["c_plugin"]["status"], "healthy");
}

TEST(Abi10Plugin, HostNeverWritesPastTheStructSizeOfOutStructs) {
  KgHost host(plugins({"c_plugin"}));
  ASSERT_TRUE(host.wait_ready()) << host.log();
  auto r = host.get("/c/short-structs");
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = body_json(r);
  EXPECT_EQ(j["principal_ok"], true) << r.body;
  EXPECT_EQ(j["principal_full_ok"], true) << r.body;
  EXPECT_EQ(j["store_ok"], true) << r.body;
}

// --- 1.1 -----------------------------------------------------------------------------------

TEST(FilterScope, EveryOwnAndPrefixFiltersRunOnlyWhereDeclared) {
  KgHost host(kTwoScoped);
  ASSERT_TRUE(host.wait_ready()) << host.log();
  auto own = host.get("/scope_a/own/k");
  EXPECT_EQ(own.header("x-every-scope_a"), "1");
  EXPECT_EQ(own.header("x-every-scope_b"), "1");  // every route, another plugin's included
  EXPECT_EQ(own.header("x-own-scope_a"), "1");
  EXPECT_EQ(own.header("x-own-scope_b"), "");  // scope_b's own-routes filter stays out
  EXPECT_EQ(own.header("x-prefix-scope_a"), "");
  auto shared = host.get("/scope_a/shared/k");
  EXPECT_EQ(shared.header("x-prefix-scope_a"), "1");
  EXPECT_EQ(shared.header("x-prefix-scope_b"), "");
  auto c = host.get("/c/hello");  // a 1.0 plugin's route
  EXPECT_EQ(c.header("x-every-scope_a"), "1");
  EXPECT_EQ(c.header("x-own-scope_a"), "");
  EXPECT_EQ(c.header("x-own-scope_b"), "");
  EXPECT_EQ(c.header("x-c-filter"), "seen");
}

TEST(StoreSpaces, PluginsDoNotSeeEachOthersKeysButShareANamedSpace) {
  KgHost host(kTwoScoped);
  ASSERT_TRUE(host.wait_ready()) << host.log();
  ASSERT_EQ(host.post("/scope_a/own/same-key", "from a").status, 200);
  ASSERT_EQ(host.post("/scope_b/own/same-key", "from b").status, 200);
  ASSERT_EQ(host.post("/c/store/same-key", "from c").status, 200);
  EXPECT_EQ(body_json(host.get("/scope_a/own/same-key"))["value"], "from a");
  EXPECT_EQ(body_json(host.get("/scope_b/own/same-key"))["value"], "from b");
  EXPECT_EQ(host.get("/c/store/same-key").body, "from c");
  ASSERT_EQ(host.post("/scope_a/own/only-a", "x").status, 200);
  EXPECT_EQ(host.get("/scope_b/own/only-a").status, 404);
  // The named shared space: one value for both, apart from their own keys.
  ASSERT_EQ(host.post("/scope_a/shared/same-key", "shared by a").status, 200);
  EXPECT_EQ(body_json(host.get("/scope_b/shared/same-key"))["value"], "shared by a");
  EXPECT_EQ(body_json(host.get("/scope_b/own/same-key"))["value"], "from b");
}

TEST(StoreSpaces, RedisKeysCarryThePluginsPrefix) {
  RedisServer redis;
  KgHost host(plugins({"scope_a", "scope_b"},
                      "[store]\nbackend = \"redis\"\nredis_url = \"" + redis.url() + "\"\n"));
  ASSERT_TRUE(host.wait_ready()) << host.log();
  auto put = [&](const std::string& path) {
    return wait_until([&] { return host.post(path, "v").status == 200; });
  };
  ASSERT_TRUE(put("/scope_a/own/k"));
  ASSERT_TRUE(put("/scope_b/shared/k"));
  auto keys = redis.cli({"--scan", "--pattern", "*"});
  EXPECT_NE(keys.find("plugin/scope_a/k"), std::string::npos) << keys;
  EXPECT_NE(keys.find("shared/fixtures/k"), std::string::npos) << keys;
  EXPECT_EQ(keys.find("plugin/scope_b/"), std::string::npos) << keys;
}

TEST(ErrorReply, CarriesHeadersAnsweredNowAndLater) {
  KgHost host(kTwoScoped);
  ASSERT_TRUE(host.wait_ready()) << host.log();
  auto now = host.get("/scope_a/error-now", {"X-Request-Id: err-now"});
  EXPECT_EQ(now.status, 429);
  EXPECT_EQ(now.header("retry-after"), "3");
  EXPECT_EQ(body_json(now)["error"]["code"], "slow_down");
  EXPECT_EQ(body_json(now)["error"]["request_id"], "err-now");
  EXPECT_EQ(now.header("x-own-scope_a"), "1");  // filter headers still go with it
  auto later = host.get("/scope_a/error-later", {"X-Request-Id: err-later"});
  EXPECT_EQ(later.status, 503);
  EXPECT_EQ(later.header("retry-after"), "5");
  EXPECT_EQ(body_json(later)["error"]["code"], "overloaded");
  EXPECT_EQ(body_json(later)["error"]["request_id"], "err-later");
}

TEST(StreamEnd, ObserversSeeBytesDurationAndWhyItEnded) {
  KgHost host(kTwoScoped);
  ASSERT_TRUE(host.wait_ready()) << host.log();
  auto ends_of = [&](const std::string& route) {
    json out = json::array();
    for (auto& e : body_json(host.get("/scope_a/stream-ends")))
      if (e["route"] == route) out.push_back(e);
    return out;
  };
  {  // closed by the plugin after 3 writes of 6 bytes
    RawClient c(host.port());
    ASSERT_TRUE(c.send("GET /scope_a/stream HTTP/1.1\r\nHost: x\r\nX-Request-Id: s1\r\n\r\n"));
    EXPECT_EQ(c.read_response().status, 200);
  }
  json closed;
  ASSERT_TRUE(wait_until([&] { return (closed = ends_of("/scope_a/stream")).size() == 1; }));
  EXPECT_EQ(closed[0]["kind"], KG_OBSERVED_STREAM_END);
  EXPECT_EQ(closed[0]["reason"], KG_STREAM_CLOSED_BY_PLUGIN);
  EXPECT_EQ(closed[0]["bytes"], 18);
  EXPECT_EQ(closed[0]["status"], 200);
  EXPECT_EQ(closed[0]["request_id"], "s1");
  EXPECT_GT(closed[0]["duration_ns"].get<uint64_t>(), 0u);
  {  // left open by the plugin; the client goes away
    RawClient c(host.port());
    ASSERT_TRUE(c.send("GET /scope_a/stream-open HTTP/1.1\r\nHost: x\r\n\r\n"));
    EXPECT_NE(c.read_some(std::chrono::seconds(1)).find("data: hello"), std::string::npos);
    EXPECT_TRUE(ends_of("/scope_a/stream-open").empty());  // not over while the client stays
  }
  json gone;
  ASSERT_TRUE(wait_until([&] { return (gone = ends_of("/scope_a/stream-open")).size() == 1; }));
  EXPECT_EQ(gone[0]["reason"], KG_STREAM_CLIENT_GONE);
  EXPECT_EQ(gone[0]["bytes"], 13);
  // scope_b observes every stream too, once each: exactly two ends so far.
  EXPECT_EQ(body_json(host.get("/scope_b/stream-ends")).size(), 2u);
}

TEST(StreamEnd, ShutdownEndsOpenStreamsAsHostShutdown) {
  KgHost host(plugins({"scope_a"}));
  ASSERT_TRUE(host.wait_ready()) << host.log();
  RawClient c(host.port());
  ASSERT_TRUE(c.send("GET /scope_a/stream-open HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_NE(c.read_some(std::chrono::seconds(1)).find("data: hello"), std::string::npos);
  host.process().signal(SIGTERM);
  auto code = host.process().wait(std::chrono::seconds(20));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << host.log();
  // The fixture logs each end it observes.
  EXPECT_NE(host.log().find(R"(stream end: {\"route\":\"/scope_a/stream-open\",\"kind\":2,)"
                            R"(\"status\":200,\"bytes\":13,\"reason\":3)"),
            std::string::npos)
      << host.log();  // plugin.h: on_closed runs "when the host shuts the stream down", before the
                      // plugin stops.
  auto log = host.log();
  auto closed_at = log.find("stream-open: on_closed ran");
  EXPECT_NE(closed_at, std::string::npos) << log;
  EXPECT_LT(closed_at, log.find("\"msg\":\"stopped\"")) << log;
}

TEST(FailedStart, OptionalPluginsRoutesAnswer503AndItsFiltersNeverRun) {
  KgHost host(plugins({"scope_a"}) +
              "[[plugins]]\nname = \"scope_b\"\nrequired = false\n[plugins.config]\n"
              "fail_start = true\n");
  ASSERT_TRUE(host.wait_ready()) << host.log();
  auto r = host.get("/scope_b/own/k", {"X-Request-Id: down-1"});
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(body_json(r)["error"]["code"], "unavailable");
  EXPECT_EQ(body_json(r)["error"]["request_id"], "down-1");
  EXPECT_EQ(r.header("x-every-scope_b"), "");
  auto a = host.get("/scope_a/own/k");
  EXPECT_EQ(a.status, 404);  // served by scope_a: no such key
  EXPECT_EQ(a.header("x-every-scope_a"), "1");
  EXPECT_EQ(a.header("x-every-scope_b"), "");  // the failed plugin's filter does not run
  auto health = body_json(host.get("/health"));
  EXPECT_EQ(health["plugins"]["scope_b"]["status"], "unhealthy");
  EXPECT_NE(health["plugins"]["scope_b"]["error"].get<std::string>().find("unreachable"),
            std::string::npos);
}

// --- the shipped plugins ----------------------------------------------------------------------

std::string shipped_plugins() {
  return "plugin_dir = \"" + plugin_dir() +
         "\"\n"
         "data_dir = \"${KG_DATA_DIR}\"\n"  // each host its own: tests run in parallel
         "[[plugins]]\nname = \"hello\"\n"
         "[[plugins]]\nname = \"auth\"\n"
         "[[plugins]]\nname = \"devkeys\"\n"
         "[[plugins]]\nname = \"streaming\"\nrequired = false\n[plugins.config]\nservers = \"\"\n"
         "[[plugins]]\nname = \"webhooks\"\n[plugins.config]\nsecrets = \"whsec_test\"\n";
}

TEST(Hello, PathParameterIsEscapedIntoValidJson) {
  KgHost host(shipped_plugins());
  ASSERT_TRUE(host.wait_ready()) << host.log();
  for (auto [target, name] :
       std::vector<std::pair<std::string, std::string>>{{"/hello/%0A", "\n"},
                                                        {"/hello/%22", "\""},
                                                        {"/hello/a%5Cb", "a\\b"},
                                                        {"/hello/%01x", "\x01x"},
                                                        {"/hello/caf%C3%A9", "caf\xc3\xa9"}}) {
    auto r = host.get(target);
    EXPECT_EQ(r.status, 200) << target;
    auto j = body_json(r);
    ASSERT_FALSE(j.is_discarded()) << target << ": " << r.body;
    EXPECT_EQ(j["hello"], name) << target;
  }
}

TEST(Hello, GuardRunsOnlyOnHellosOwnRoutes) {
  KgHost host(shipped_plugins());
  ASSERT_TRUE(host.wait_ready()) << host.log();
  EXPECT_EQ(host.get("/hello", {"X-Hello-Refuse: 1"}).status, 403);
  EXPECT_EQ(host.get("/webhooks/stripe/health", {"X-Hello-Refuse: 1"}).status, 200);
}

TEST(OpenApi, ShippedPluginsDocumentIsValidOpenApi31) {
  KgHost host(shipped_plugins());
  ASSERT_TRUE(host.wait_ready()) << host.log();
  auto r = host.get("/openapi.json");
  ASSERT_EQ(r.status, 200);
  auto doc = body_json(r);
  ASSERT_TRUE(doc.is_object()) << r.body;
  EXPECT_EQ(doc["openapi"], "3.1.0");
  EXPECT_TRUE(doc["components"]["schemas"].contains("Error"));
  EXPECT_EQ(doc["components"]["securitySchemes"]["ApiKeyHeader"]["name"], "X-API-Key");
  EXPECT_EQ(doc["components"]["securitySchemes"]["BearerKey"]["scheme"], "bearer");
  auto& paths = doc["paths"];
  EXPECT_EQ(paths["/hello/{name}"]["get"]["security"], json::array());  // public
  EXPECT_EQ(paths["/hello/{name}"]["get"]["parameters"][0]["name"], "name");
  auto& events = paths["/api/v1/streams/{channel}/events"]["post"];
  EXPECT_EQ(events["x-required-scopes"], json::array({"write"}));
  EXPECT_TRUE(events.contains("requestBody"));
  auto& stripe = paths["/webhooks/stripe"]["post"];
  EXPECT_EQ(stripe["requestBody"]["content"]["application/json"]["schema"]["required"],
            json::array({"id", "type"}));
  EXPECT_FALSE(stripe["description"].get<std::string>().empty());
  EXPECT_EQ(stripe["responses"]["4XX"]["$ref"], "#/components/responses/Error");
  for (auto& [path, ops] : paths.items()) {
    for (auto& [method, op] : ops.items()) {
      bool documented = op["responses"]["2XX"].contains("content") || op["tags"][0] == "host" ||
                        path == "/api/v1/streams/{channel}/events";  // SSE, not JSON
      EXPECT_TRUE(documented) << method << " " << path << " has no response schema";
    }
  }

  std::string redocly = KGHOST_REDOCLY;
  if (!std::filesystem::exists(redocly) || std::system("command -v node >/dev/null") != 0)
    GTEST_SKIP() << "redocly is not installed (run scripts/install-deps.sh): " << redocly;
  TempDir dir;
  auto file = write_file(dir, "openapi.json", r.body);
  Process lint({redocly, "lint", "--config", KGHOST_REDOCLY_CONFIG, file});
  auto code = lint.wait(std::chrono::seconds(120));
  ASSERT_TRUE(code.has_value()) << "redocly lint did not finish";
  EXPECT_EQ(*code, 0) << lint.output();
}
