// The host core end to end: a real kghost process, real sockets, fixture plugins.
#include "host.hpp"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <atomic>
#include <csignal>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

using namespace kghost::test;
using nlohmann::json;

namespace {

const std::string kCPlugin = R"(
plugin_dir = "${KG_TEST_PLUGIN_DIR}"
[server]
threads = 2
header_timeout_s = 1
body_timeout_s = 1
idle_timeout_s = 2
max_body_bytes = 1024
drain_timeout_s = 20
[[plugins]]
name = "c_plugin"
[plugins.config]
tick_ms = 10
)";

std::string plugin_config(const std::string& name, const std::string& extra = "") {
  return "plugin_dir = \"${KG_TEST_PLUGIN_DIR}\"\n" + extra + "\n[[plugins]]\nname = \"" + name +
         "\"\n";
}

json body_json(const HttpResult& r) { return json::parse(r.body, nullptr, false); }

class CPluginHost : public ::testing::Test {
 protected:
  void SetUp() override {
    host_ = std::make_unique<KgHost>(kCPlugin);
    ASSERT_TRUE(host_->wait_ready()) << host_->log();
  }
  std::unique_ptr<KgHost> host_;
};

}  // namespace

TEST_F(CPluginHost, PlainCPluginServesItsRouteThroughItsFilter) {
  auto r = host_->get("/c/hello");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(body_json(r)["hello"], "from C");
  EXPECT_EQ(r.header("x-c-filter"), "seen");
  EXPECT_EQ(r.header("content-type"), "application/json");
  auto denied = host_->get("/c/hello", {"X-C-Deny: 1"});
  EXPECT_EQ(denied.status, 403);
  EXPECT_EQ(body_json(denied)["error"]["code"], "denied");
}

TEST_F(CPluginHost, PeriodicTaskRunsAndHealthReportsIt) {
  ASSERT_TRUE(
      wait_until([&] { return body_json(host_->get("/c/ticks"))["ticks"].get<int>() >= 3; }));
  auto h = host_->get("/health");
  EXPECT_EQ(h.status, 200);
  auto j = body_json(h);
  EXPECT_EQ(j["status"], "healthy");
  EXPECT_EQ(j["plugins"]["c_plugin"]["status"], "healthy");
  EXPECT_GE(j["plugins"]["c_plugin"]["ticks"].get<int>(), 1);
  EXPECT_TRUE(j.contains("uptime_s"));
  EXPECT_TRUE(j.contains("version"));
  EXPECT_EQ(host_->get("/health/live").status, 200);
  EXPECT_EQ(host_->get("/health/ready").status, 200);
}

TEST_F(CPluginHost, DeferredAnswerCompletesFromAnotherThread) {
  auto r = host_->get("/c/slow?ms=50");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(body_json(r)["slow"], true);
  EXPECT_EQ(r.header("x-c-filter"), "seen");  // filter headers reach deferred answers too
}

TEST_F(CPluginHost, StreamsChunkedServerSentEvents) {
  RawClient c(host_->port());
  ASSERT_TRUE(c.send("GET /c/stream HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r = c.read_response();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "text/event-stream");
  EXPECT_EQ(r.header("transfer-encoding"), "chunked");
  EXPECT_FALSE(r.header("x-request-id").empty());
  EXPECT_NE(r.body.find("id: 1\nevent: message\ndata: {\"n\":1}\n\n"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("id: 3\n"), std::string::npos) << r.body;
}

TEST_F(CPluginHost, RequestIdIsEchoedWhenValidAndGeneratedOtherwise) {
  EXPECT_EQ(host_->get("/c/hello", {"X-Request-Id: abc-123"}).header("x-request-id"), "abc-123");
  auto generated =
      host_->get("/c/hello", {"X-Request-Id: bad id with spaces"}).header("x-request-id");
  EXPECT_EQ(generated.size(), 32u);
  auto err = host_->get("/nope", {"X-Request-Id: trace-me"});
  EXPECT_EQ(body_json(err)["error"]["request_id"], "trace-me");
}

TEST_F(CPluginHost, UnknownRoutesAre404AndWrongMethods405WithAllow) {
  auto r = host_->get("/does/not/exist");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(body_json(r)["error"]["code"], "not_found");
  auto m = http(host_->port(), "DELETE", "/c/hello");
  EXPECT_EQ(m.status, 405);
  EXPECT_EQ(m.header("allow"), "GET, HEAD");
  EXPECT_EQ(body_json(m)["error"]["code"], "method_not_allowed");
  EXPECT_EQ(http(host_->port(), "BREW", "/c/hello").status, 405);  // unknown method
  EXPECT_EQ(http(host_->port(), "BREW", "/nothing").status, 404);
}

TEST_F(CPluginHost, ProtectedRouteFailsClosedWithoutAnAuthenticator) {
  auto r = host_->get("/c/private");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(body_json(r)["error"]["code"], "missing_api_key");
  EXPECT_EQ(host_->get("/admin/plugins").status, 401);
}

TEST_F(CPluginHost, OpenApiListsRegisteredRoutes) {
  auto j = body_json(host_->get("/openapi.json"));
  EXPECT_EQ(j["openapi"], "3.1.0");
  EXPECT_TRUE(j["paths"].contains("/c/hello"));
  EXPECT_TRUE(j["paths"]["/c/private"]["get"].contains("security"));
  EXPECT_TRUE(j["components"]["securitySchemes"].contains("ApiKeyHeader"));
}

TEST_F(CPluginHost, KeepAliveServesManyRequestsOnOneConnection) {
  RawClient c(host_->port());
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(c.send("GET /c/hello HTTP/1.1\r\nHost: x\r\n\r\n"));
    EXPECT_EQ(c.read_response().status, 200) << i;
  }
}

// --- bad input ------------------------------------------------------------------------------

TEST_F(CPluginHost, MalformedRequestGets400AndTheHostKeepsServing) {
  for (std::string bad :
       {"GARBAGE\r\n\r\n", "GET / HTTP/9.9\r\n\r\n", "GET /c/hello HTTP/1.1\r\nNo colon\r\n\r\n",
        "GET /c/hello HTTP/1.1\r\nContent-Length: nope\r\n\r\n"}) {
    RawClient c(host_->port());
    ASSERT_TRUE(c.send(bad));
    auto r = c.read_response(std::chrono::seconds(3));
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_EQ(body_json(r)["error"]["code"], "bad_request") << bad;
    EXPECT_TRUE(c.closed_by_peer(std::chrono::seconds(3))) << bad;
  }
  EXPECT_EQ(host_->get("/c/hello").status, 200);
}

TEST_F(CPluginHost, DotDotAndNulTargetsAre400) {
  for (std::string target : {"/c/../c/hello", "/c/%2e%2e/x", "/c/hello%00", "/c/hello?x=%00"}) {
    RawClient c(host_->port());
    ASSERT_TRUE(c.send("GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n"));
    auto r = c.read_response(std::chrono::seconds(3));
    EXPECT_EQ(r.status, 400) << target;
    EXPECT_EQ(body_json(r)["error"]["code"], "bad_request") << target;
  }
}

TEST_F(CPluginHost, OversizedHeaderSectionGets431) {
  RawClient c(host_->port());
  ASSERT_TRUE(c.send("GET /c/hello HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(17 * 1024, 'a') +
                     "\r\n\r\n"));
  auto r = c.read_response(std::chrono::seconds(3));
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(body_json(r)["error"]["code"], "headers_too_large");
  EXPECT_EQ(host_->get("/c/hello").status, 200);
}

TEST_F(CPluginHost, OversizedBodyGets413BeforeTheBodyIsSent) {
  RawClient c(host_->port());
  // Only the head goes out: the answer must come without the server waiting for 2 KiB.
  ASSERT_TRUE(c.send("POST /c/hello HTTP/1.1\r\nHost: x\r\nContent-Length: 2048\r\n\r\n"));
  auto r = c.read_response(std::chrono::seconds(3));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(body_json(r)["error"]["code"], "payload_too_large");
  // A chunked body that grows past the limit is refused too.
  RawClient d(host_->port());
  ASSERT_TRUE(
      d.send("POST /c/hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n" +
             std::string(2048, 'x') + "\r\n0\r\n\r\n"));
  EXPECT_EQ(d.read_response(std::chrono::seconds(3)).status, 413);
}

TEST_F(CPluginHost, SlowHeadersAreCutOffAtTheHeaderTimeout) {
  RawClient c(host_->port());
  ASSERT_TRUE(c.send("GET /c/hel"));  // then nothing: one byte a second would never finish
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.closed_by_peer(std::chrono::seconds(5)));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(4));
  EXPECT_EQ(host_->get("/c/hello").status, 200);
}

TEST_F(CPluginHost, OneByteASecondClientIsClosedWhileOthersAreServed) {
  std::atomic<bool> closed{false};
  std::thread slow([&] {
    RawClient c(host_->port());
    std::string req = "GET /c/hello HTTP/1.1\r\nHost: x\r\n\r\n";
    for (char ch : req) {
      if (!c.send(std::string(1, ch)) || c.closed_by_peer(std::chrono::milliseconds(400))) {
        closed = true;
        return;
      }
    }
  });
  for (int i = 0; i < 20; ++i) EXPECT_EQ(host_->get("/c/hello").status, 200);
  slow.join();
  EXPECT_TRUE(closed);
}

TEST_F(CPluginHost, StalledBodyIsCutOffAtTheBodyTimeout) {
  RawClient c(host_->port());
  ASSERT_TRUE(c.send("POST /c/hello HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"));
  EXPECT_TRUE(c.closed_by_peer(std::chrono::seconds(5)));
}

TEST_F(CPluginHost, IdleKeepAliveConnectionIsClosedAfterTheIdleTimeout) {
  RawClient c(host_->port());
  ASSERT_TRUE(c.send("GET /c/hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(c.read_response().status, 200);
  EXPECT_TRUE(c.closed_by_peer(std::chrono::seconds(6)));
}

TEST(IdleConnections, TenThousandIdleConnectionsDoNotSlowOthersDown) {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  const std::size_t want = 10000;
  ASSERT_GE(rl.rlim_cur, want + 200) << "raise the open-file limit (ulimit -n) to run this test";
  KgHost host(plugin_config("c_plugin", "[server]\nidle_timeout_s = 120\nheader_timeout_s = 120"));
  ASSERT_TRUE(host.wait_ready()) << host.log();
  std::vector<std::unique_ptr<RawClient>> idle;
  idle.reserve(want);
  for (std::size_t i = 0; i < want; ++i) {
    idle.push_back(std::make_unique<RawClient>(host.port()));
    ASSERT_TRUE(idle.back()->connected()) << i;
  }
  // Half of them have sent a partial request, the rest nothing at all.
  for (std::size_t i = 0; i < want; i += 2) idle[i]->send("GET /c/hel");
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 50; ++i) ASSERT_EQ(host.get("/c/hello").status, 200);
  auto took = std::chrono::steady_clock::now() - start;
  // 50 sequential requests normally take a few ms; allow generous slack for slow CI machines.
  EXPECT_LT(took, std::chrono::seconds(2));
  EXPECT_TRUE(host.process().running());
}

// --- failing plugins --------------------------------------------------------------------------

TEST(FaultyPlugin, HandlerFailuresBecome500WithRequestIdAndTheHostKeepsServing) {
  KgHost host(plugin_config("faulty"));
  ASSERT_TRUE(host.wait_ready()) << host.log();
  for (std::string path :
       {"/faulty/throw", "/faulty/silent", "/faulty/bad-status", "/faulty/dropped"}) {
    auto r = host.get(path, {"X-Request-Id: req-" + path.substr(8)});
    EXPECT_EQ(r.status, 500) << path;
    auto j = body_json(r);
    EXPECT_EQ(j["error"]["code"], "internal_error") << path;
    EXPECT_EQ(j["error"]["request_id"], "req-" + path.substr(8)) << path;
    EXPECT_EQ(host.get("/faulty/ok").status, 200) << "after " << path;
  }
  auto log = host.log();
  EXPECT_NE(log.find("boom"), std::string::npos) << log;
  EXPECT_NE(log.find("\"request_id\":\"req-throw\""), std::string::npos) << log;
}

TEST(FaultyPlugin, SdkDeferredAnswersAndErrorsWithHeadersArrive) {
  KgHost host(plugin_config("faulty"));
  ASSERT_TRUE(host.wait_ready()) << host.log();
  auto later = host.get("/faulty/later");
  EXPECT_EQ(later.status, 200);
  EXPECT_EQ(body_json(later)["later"], true);
  auto err = host.get("/faulty/later-error", {"X-Request-Id: late-1"});
  EXPECT_EQ(err.status, 503);
  EXPECT_EQ(err.header("retry-after"), "7");
  EXPECT_EQ(body_json(err)["error"]["code"], "overloaded");
  EXPECT_EQ(body_json(err)["error"]["request_id"], "late-1");
}

TEST(FaultyPlugin, StreamOnClosedRunsOnceWhenThePluginClosesFirst) {
  KgHost host(plugin_config("faulty"));
  ASSERT_TRUE(host.wait_ready()) << host.log();
  RawClient c(host.port());
  ASSERT_TRUE(c.send("GET /faulty/stream-closed-by-plugin HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r = c.read_response();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "data: {}\n\n");
  EXPECT_TRUE(c.closed_by_peer(std::chrono::seconds(5)));
  // The client leaving afterwards must not call it a second time.
  auto calls = body_json(host.get("/faulty/closed-calls"));
  EXPECT_EQ(calls["closed_calls"], 1);
  EXPECT_EQ(calls["ran_inside_close"], true);
}

// /health runs plugin reporters on the worker pool: one that blocks for seconds does not stall
// the only I/O thread, which keeps answering other requests meanwhile.
TEST(FaultyPlugin, BlockingHealthReporterDoesNotStallTheIoThread) {
  KgHost host(plugin_config("faulty", "[server]\nthreads = 1\n"));
  ASSERT_TRUE(host.wait_ready()) << host.log();
  ASSERT_EQ(host.get("/faulty/slow-health?ms=3000").status, 200);
  HttpResult health;
  std::thread slow([&] { health = host.get("/health"); });
  auto slowest = std::chrono::milliseconds(0);
  EXPECT_TRUE(wait_until([&] {
    auto start = std::chrono::steady_clock::now();
    auto r = host.get("/faulty/health-state");
    slowest = std::max(slowest, std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::steady_clock::now() - start));
    return body_json(r).value("in_reporter", false);
  }));
  EXPECT_LT(slowest.count(), 1500) << "a request waited for the blocked reporter";
  EXPECT_EQ(host.get("/faulty/ok").status, 200);
  slow.join();
  EXPECT_EQ(health.status, 200) << health.body;
  EXPECT_EQ(body_json(health)["plugins"]["faulty"]["status"], "healthy") << health.body;
}

TEST(PluginLoading, WrongMajorExits2NamingPluginPathAndBothVersions) {
  TempDir dir;
  auto cfg = write_file(dir, "k.toml", plugin_config("wrong_major"));
  auto r = run_kghost({"--config", cfg});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("plugin wrong_major ("), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("kg_wrong_major.so"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("ABI 2.2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("ABI 1.2"), std::string::npos) << r.output;
}

TEST(PluginLoading, NewerMinorIsRefusedNamingBothVersions) {
  TempDir dir;
  auto cfg = write_file(dir, "k.toml", plugin_config("newer_minor"));
  auto r = run_kghost({"--config", cfg});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("needs ABI 1.3 but this host speaks ABI 1.2"), std::string::npos)
      << r.output;
}

TEST(PluginLoading, OlderDescriptorLoadsAndItsMissingFieldsAreNeverCalled) {
  // Its descriptor stops before `stop` and `destroy` (junk follows): a full start and a clean
  // SIGTERM must not call them.
  KgHost host(plugin_config("old_descriptor"));
  ASSERT_TRUE(host.wait_ready()) << host.log();
  auto plugins = body_json(host.get("/health"))["plugins"];
  EXPECT_EQ(plugins["old_descriptor"]["status"], "healthy");
  host.process().signal(SIGTERM);
  auto code = host.process().wait(std::chrono::seconds(20));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << host.log();
}

TEST(PluginLoading, MissingFileExits2) {
  TempDir dir;
  auto cfg = write_file(dir, "k.toml", plugin_config("not_there"));
  auto r = run_kghost({"--config", cfg});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("plugin not_there ("), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("no such file"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("k.toml:3:1"), std::string::npos) << r.output;  // the [[plugins]] entry
}

TEST(StoreBackend, APluginThatProvidesNoStoreIsAConfigErrorAtTheBackendLine) {
  TempDir dir;
  auto cfg = write_file(dir, "k.toml",
                        "plugin_dir = \"" + plugin_dir() + "\"\n[store]\nbackend = \"hello\"\n" +
                            "[[plugins]]\nname = \"hello\"\n");
  auto r = run_kghost({"--config", cfg, "--check"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("k.toml:3:11: store.backend \"hello\""), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("provides no store"), std::string::npos) << r.output;
  cfg = write_file(dir, "m.toml", "[store]\nbackend = \"kv\"\n");
  r = run_kghost({"--config", cfg, "--check"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("m.toml:2:11: store.backend \"kv\" names no plugin"), std::string::npos)
      << r.output;
}

TEST(PluginLoading, MissingEntrySymbolExits2) {
  TempDir dir;
  auto cfg = write_file(dir, "k.toml", plugin_config("no_entry"));
  auto r = run_kghost({"--config", cfg});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("no entry symbol kghost_plugin_entry"), std::string::npos) << r.output;
}

TEST(PluginLoading, FailingCreateExits2WithThePluginsReason) {
  TempDir dir;
  auto cfg = write_file(dir, "k.toml", plugin_config("failing_create"));
  auto r = run_kghost({"--config", cfg});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("failed to create: the database URL is missing"), std::string::npos)
      << r.output;
}

TEST(PluginLoading, OptionalPluginThatFailsIsSkippedAndReportedUnhealthy) {
  KgHost host(plugin_config("c_plugin") +
              "\n[[plugins]]\nname = \"failing_create\"\nrequired = false\n");
  ASSERT_TRUE(host.wait_ready()) << host.log();
  auto h = host.get("/health");
  EXPECT_EQ(h.status, 503);
  auto j = body_json(h);
  EXPECT_EQ(j["status"], "unhealthy");
  EXPECT_EQ(j["plugins"]["failing_create"]["status"], "unhealthy");
  EXPECT_EQ(j["plugins"]["c_plugin"]["status"], "healthy");
  EXPECT_EQ(host.get("/c/hello").status, 200);
}

TEST(PluginLoading, RouteConflictBetweenPluginsExits2NamingBoth) {
  TempDir dir;
  auto cfg = write_file(dir, "k.toml",
                        plugin_config("c_plugin") + "\n[[plugins]]\nname = \"route_conflict\"\n");
  auto r = run_kghost({"--config", cfg});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("plugin route_conflict"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("GET /c/hello is already registered by c_plugin"), std::string::npos)
      << r.output;
}

TEST(PluginLoading, PluginNameMustMatchTheConfig) {
  TempDir dir;
  auto cfg = write_file(dir, "k.toml",
                        plugin_config("c_plugin") + "\n[[plugins]]\nname = \"other\"\npath = \"" +
                            test_plugin_dir() + "/kg_c_plugin.so\"\n");
  auto r = run_kghost({"--config", cfg});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(
      r.output.find("declares the plugin name \"c_plugin\" but the config calls it \"other\""),
      std::string::npos)
      << r.output;
}

TEST(ProductionMode, DevOnlyPluginRefusesToStart) {
  TempDir dir;
  auto cfg = write_file(dir, "k.toml", plugin_config("dev_only"));
  auto r = run_kghost({"--config", cfg}, {{"KG_MODE", "production"}});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("plugin dev_only"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("dev-only"), std::string::npos) << r.output;
  // The same config in dev mode passes --check.
  EXPECT_EQ(run_kghost({"--config", cfg, "--check"}).exit_code, 0);
}

TEST(Cli, CheckPrintsWhatItFoundAndExits0) {
  TempDir dir;
  auto cfg = write_file(dir, "k.toml", plugin_config("c_plugin"));
  auto r = run_kghost({"--config", cfg, "--check"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("\"name\": \"c_plugin\""), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("GET /c/hello (c_plugin)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("configuration ok"), std::string::npos) << r.output;
}

TEST(Cli, BadConfigExits2NamingFileLineAndKey) {
  TempDir dir;
  auto cfg = write_file(dir, "k.toml", "[server]\nthreads = \"many\"\n");
  auto r = run_kghost({"--config", cfg, "--check"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("k.toml:2:11: 'server.threads'"), std::string::npos) << r.output;
  auto missing = run_kghost({"--config", (dir.path() / "absent.toml").string()});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.output.find("absent.toml: cannot read"), std::string::npos) << missing.output;
}

TEST(Cli, VersionHelpAndUnknownFlags) {
  auto v = run_kghost({"--version"});
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_NE(v.output.find("plugin ABI 1.2"), std::string::npos);
  EXPECT_EQ(run_kghost({"--help"}).exit_code, 0);
  EXPECT_EQ(run_kghost({"--frobnicate"}).exit_code, 2);
}

// --listen 127.0.0.1:0 --ready-file: the file appears once the host is ready and names the
// port it bound (the KgHost fixture relies on it); it is removed on a clean stop. A ready file
// that cannot be written stops the host with exit 1 instead of leaving a waiter hanging.
TEST(Cli, ReadyFileNamesTheBoundPortAndIsRemovedOnStop) {
  TempDir dir;
  auto cfg = write_file(dir, "k.toml", kCPlugin);
  const auto ready = dir.path() / "ready";
  Process p(
      {kghost_binary(), "--config", cfg, "--listen", "127.0.0.1:0", "--ready-file", ready.string()},
      {{"KG_TEST_PLUGIN_DIR", test_plugin_dir()}});
  std::string address;
  ASSERT_TRUE(wait_until(
      [&] {
        std::ifstream in(ready);
        return std::getline(in, address) && !address.empty();
      },
      20s))
      << p.output();
  ASSERT_EQ(address.rfind("127.0.0.1:", 0), 0u) << address;
  const auto port = static_cast<uint16_t>(std::stoi(address.substr(10)));
  ASSERT_NE(port, 0);
  EXPECT_EQ(http(port, "GET", "/c/hello").status, 200);
  EXPECT_NE(p.output().find("listening on " + address), std::string::npos) << p.output();
  p.signal(SIGTERM);
  ASSERT_EQ(p.wait(20s), 0) << p.output();
  EXPECT_FALSE(std::filesystem::exists(ready));

  auto bad = run_kghost({"--config", cfg, "--listen", "127.0.0.1:0", "--ready-file",
                         (dir.path() / "missing" / "ready").string()});
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_NE(bad.output.find("cannot write the ready file"), std::string::npos) << bad.output;
}

TEST(Cli, EmbeddedDefaultConfigStartsWithoutArguments) {
  auto r = run_kghost({"--check"}, {{"KG_PLUGIN_DIR", plugin_dir()}});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("<embedded config/dev.toml>"), std::string::npos) << r.output;
}

// --- drain ------------------------------------------------------------------------------------

TEST(Drain, SigtermFinishesFiftySlowRequestsTurnsNotReadyAndExits0) {
  KgHost host(kCPlugin);
  ASSERT_TRUE(host.wait_ready()) << host.log();
  RawClient probe(host.port());  // an open keep-alive connection, used during the drain
  ASSERT_TRUE(probe.send("GET /health/ready HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_EQ(probe.read_response().status, 200);

  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 50; ++i) {
    clients.emplace_back([&] {
      if (http(host.port(), "GET", "/c/slow?ms=1500").status == 200) ++ok;
    });
  }
  ASSERT_TRUE(wait_until([&] { return body_json(host.get("/c/ticks"))["pending"] == 50; }));
  // A request that has begun when the drain starts is finished; an idle keep-alive
  // connection would be closed. So the probe sends the first line now, the rest once the
  // host has turned not ready.
  ASSERT_TRUE(probe.send("GET /health/ready HTTP/1.1\r\n"));
  host.process().signal(SIGTERM);
  ASSERT_TRUE(wait_until([&] { return host.log().find("draining") != std::string::npos; }));
  ASSERT_TRUE(probe.send("Host: x\r\n\r\n"));
  HttpResult ready = probe.read_response();
  EXPECT_EQ(ready.status, 503);
  EXPECT_EQ(body_json(ready)["status"], "not_ready");
  EXPECT_EQ(ready.header("connection"), "close");

  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 50);
  auto code = host.process().wait(std::chrono::seconds(20));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << host.log();
  EXPECT_NE(host.log().find("draining"), std::string::npos);
}
