// observability end to end: real kghost processes with every shipped plugin, real redis-server
// and nats-server. /metrics after real traffic must pass `promtool check metrics` and export
// every metric the alert rules and the dashboard name; /health/saas must follow NATS and Redis
// going away; the access log must carry the request's fields and never a key or a query.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "host.hpp"
#include "stripe_signature.hpp"

using namespace kghost::test;
using nlohmann::json;

namespace {

const std::string kSecret = "whsec_observability_test";
const std::vector<std::string> kBob = {"X-API-Key: kg_dev_bob"};

struct Options {
  std::string redis_url{};  // empty: memory store
  std::string nats_url{};   // empty: no streaming plugin
  bool webhooks = false;
  bool faulty = false;
  bool scope_a = false;  // the fixture with an SSE stream it closes and one left open
  bool billing = false;  // loaded (optional) only where the build has it
  std::string observability_config{};
  std::string streaming_extra{};
};

bool have_plugin(const std::string& name) {
  return std::filesystem::exists(plugin_dir() + "/kg_" + name + ".so");
}

std::string config(const Options& o) {
  std::string c =
      "plugin_dir = \"${KG_PLUGIN_DIR}\"\ndata_dir = \"${KG_DATA_DIR}\"\n"
      "[server]\nthreads = 2\n";
  if (o.redis_url.empty()) {
    c += "[store]\nbackend = \"memory\"\n";
  } else {
    c += "[store]\nbackend = \"redis\"\nredis_url = \"" + o.redis_url +
         "\"\nredis_timeout_ms = 200\n";
  }
  c += "[[plugins]]\nname = \"hello\"\n[[plugins]]\nname = \"auth\"\n"
       "[[plugins]]\nname = \"devkeys\"\n";
  if (!o.nats_url.empty())
    c += "[[plugins]]\nname = \"streaming\"\nrequired = false\n[plugins.config]\nservers = \"" +
         o.nats_url + "\"\nheartbeat_ms = 200\nack_timeout_ms = 500\nbreaker_failures = 2\n" +
         o.streaming_extra;
  if (o.webhooks)
    c += "[[plugins]]\nname = \"webhooks\"\n[plugins.config]\nsecrets = \"" + kSecret + "\"\n";
  if (o.billing && have_plugin("billing"))
    c += "[[plugins]]\nname = \"billing\"\nrequired = false\n";
  if (o.faulty)
    c += "[[plugins]]\nname = \"faulty\"\npath = \"${KG_TEST_PLUGIN_DIR}/kg_faulty.so\"\n";
  if (o.scope_a)
    c += "[[plugins]]\nname = \"scope_a\"\npath = \"${KG_TEST_PLUGIN_DIR}/kg_scope_a.so\"\n";
  c += "[[plugins]]\nname = \"observability\"\n[plugins.config]\n" + o.observability_config;
  return c;
}

json body(const HttpResult& r) { return json::parse(r.body, nullptr, false); }

int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

HttpResult post_webhook(const KgHost& h, const std::string& id) {
  std::string event = json{{"id", id},
                           {"object", "event"},
                           {"type", "invoice.paid"},
                           {"created", now_s()},
                           {"data", {{"object", {{"id", "in_1"}}}}}}
                          .dump();
  int64_t t = now_s();
  return h.post(
      "/webhooks/stripe", event,
      {"Content-Type: application/json", "Stripe-Signature: t=" + std::to_string(t) +
                                             ",v1=" + kghost::webhooks::sign(kSecret, t, event)});
}

// Runs a shell command; returns its exit code and output.
std::pair<int, std::string> run(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return {-1, "popen failed"};
  char buf[4096];
  while (std::size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

// The value of the sample whose name and labels are exactly `series`; -1 when absent.
double value(const std::string& text, const std::string& series) {
  auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

}  // namespace

TEST(ObservabilityMetrics, RealTrafficScrapePassesPromtoolAndExportsEveryAlertedMetric) {
  if (std::string(KG_PROMTOOL).empty()) GTEST_SKIP() << "promtool is not installed";
  RedisServer redis;
  NatsServer nats;
  KgHost h(config({.redis_url = redis.url(),
                   .nats_url = nats.url(),
                   .webhooks = true,
                   .faulty = true,
                   .billing = true}));
  ASSERT_TRUE(h.wait_ready()) << h.log();
  ASSERT_TRUE(wait_until(
      [&] {
        return body(h.get("/health")).value("/plugins/streaming/mode"_json_pointer, "") ==
               "jetstream";
      },
      20s))
      << h.get("/health").body;

  // Mixed traffic: public, authenticated, refused, unmatched, failing, webhook, stream, SSE.
  ASSERT_EQ(h.get("/hello").status, 200);
  ASSERT_EQ(h.get("/hello/bob").status, 200);
  ASSERT_EQ(h.get("/hello/alice").status, 200);
  ASSERT_EQ(h.get("/api/v1/health", kBob).status, 200);
  ASSERT_EQ(h.get("/api/v1/health").status, 401);
  ASSERT_EQ(h.get("/no/such/route/42").status, 404);
  ASSERT_EQ(h.get("/faulty/throw").status, 500);
  ASSERT_EQ(post_webhook(h, "evt_obs_1").status, 200);
  ASSERT_EQ(h.post("/api/v1/streams/orders/events", R"({"n":1})", kBob).status, 202);
  {
    RawClient sse(h.port());
    ASSERT_TRUE(sse.send(
        "GET /api/v1/streams/orders/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
        "X-API-Key: kg_dev_bob\r\n\r\n"));
    std::string got;
    ASSERT_TRUE(wait_until([&] {
      got += sse.read_some(20ms);
      return got.find("text/event-stream") != std::string::npos;
    }));
  }

  auto m = h.get("/metrics");
  ASSERT_EQ(m.status, 200);
  EXPECT_NE(m.header("content-type").find("text/plain; version=0.0.4"), std::string::npos);
  const std::string& text = m.body;

  TempDir dir;
  auto scrape = write_file(dir, "metrics.txt", text);
  auto [rc, out] = run(std::string(KG_PROMTOOL) + " check metrics < " + scrape);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "") << "promtool lint findings:\n" << out;

  auto [crc, cout] = run(std::string(KG_PYTHON) + " " + KG_SOURCE_DIR +
                         "/deploy/prometheus/tests/check_monitoring.py --repo " + KG_SOURCE_DIR +
                         " --promtool " + KG_PROMTOOL + " --scrape " + scrape);
  EXPECT_EQ(crc, 0) << cout;

  // Route templates, never raw paths; one label for whatever matched no route.
  EXPECT_EQ(
      value(text, R"(kgents_api_requests_total{route="/hello/{name}",method="GET",status="200"})"),
      2)
      << text;
  EXPECT_EQ(text.find("/hello/bob"), std::string::npos);
  EXPECT_EQ(text.find("/no/such/route"), std::string::npos);
  EXPECT_EQ(
      value(text, R"(kgents_api_requests_total{route="unmatched",method="GET",status="404"})"), 1);
  EXPECT_EQ(
      value(text, R"(kgents_api_requests_total{route="/api/v1/health",method="GET",status="401"})"),
      1);
  EXPECT_EQ(
      value(text, R"(kgents_api_requests_total{route="/faulty/throw",method="GET",status="500"})"),
      1);
  EXPECT_EQ(
      value(
          text,
          R"(kgents_api_request_latency_seconds_count{route="/webhooks/stripe",method="POST",status="200"})"),
      1);
  // The plugins' own metrics come through the host's registry.
  EXPECT_EQ(value(text, R"(kgents_stripe_webhooks_total{result="ok"})"), 1);
  EXPECT_EQ(value(text, "kgents_nats_circuit_state"), 0);
  EXPECT_EQ(value(text, R"(kgents_store_backend_up{backend="redis"})"), 1);
  for (auto p : {"hello", "auth", "devkeys", "streaming", "webhooks", "faulty", "observability"})
    EXPECT_EQ(value(text, std::string("kgents_plugin_up{plugin=\"") + p + "\"}"), 1) << p;
  EXPECT_GT(value(text, "process_resident_memory_bytes"), 1 << 20);
  EXPECT_GT(value(text, "process_open_fds"), 5);
  EXPECT_GT(value(text, "process_start_time_seconds"), now_s() - 600);
  EXPECT_GE(value(text, "process_cpu_seconds_total"), 0);
}

TEST(ObservabilityMetrics, SseStreamsOpenBytesDurationAndWhyTheyEnded) {
  KgHost h(config({.scope_a = true}));
  ASSERT_TRUE(h.wait_ready()) << h.log();
  auto scrape = [&] { return h.get("/metrics").body; };
  const std::string ended = "kgents_sse_streams_ended_total{reason=";
  auto text = scrape();
  EXPECT_EQ(value(text, "kgents_sse_streams_open"), 0) << text;
  EXPECT_EQ(value(text, ended + R"("client_gone"})"), 0) << text;
  EXPECT_EQ(value(text, "kgents_sse_stream_duration_seconds_count"), 0) << text;

  // A stream the plugin closes after 3 × 6 bytes.
  auto closed = h.get("/scope_a/stream");
  ASSERT_EQ(closed.status, 200);
  ASSERT_TRUE(wait_until([&] { return value(scrape(), ended + R"("closed_by_plugin"})") == 1; }))
      << scrape();

  {
    // A stream left open until its client goes.
    RawClient sse(h.port());
    ASSERT_TRUE(sse.send("GET /scope_a/stream-open HTTP/1.1\r\nHost: x\r\n\r\n"));
    std::string got;
    ASSERT_TRUE(wait_until([&] {
      got += sse.read_some(20ms);
      return got.find("data: hello") != std::string::npos;
    })) << got;
    text = scrape();
    EXPECT_EQ(value(text, "kgents_sse_streams_open"), 1) << text;
    EXPECT_EQ(value(text, ended + R"("client_gone"})"), 0) << text;
  }
  ASSERT_TRUE(wait_until([&] { return value(scrape(), ended + R"("client_gone"})") == 1; }))
      << scrape();
  text = scrape();
  EXPECT_EQ(value(text, "kgents_sse_streams_open"), 0) << text;
  EXPECT_EQ(value(text, ended + R"("closed_by_plugin"})"), 1) << text;
  EXPECT_EQ(value(text, ended + R"("host_shutdown"})"), 0) << text;
  EXPECT_EQ(value(text, "kgents_sse_stream_bytes_total"), 18 + 13) << text;  // "data: hello\n\n"
  EXPECT_EQ(value(text, "kgents_sse_stream_duration_seconds_count"), 2) << text;
  EXPECT_EQ(value(text, R"(kgents_sse_stream_duration_seconds_bucket{le="+Inf"})"), 2) << text;
  EXPECT_GT(value(text, "kgents_sse_stream_duration_seconds_sum"), 0) << text;
  // Stream heads still count as requests of their route.
  EXPECT_EQ(
      value(text,
            R"(kgents_api_requests_total{route="/scope_a/stream-open",method="GET",status="200"})"),
      1)
      << text;
}

TEST(ObservabilityAccessLog, OneJsonLinePerRequestWithTemplateTenantAndIdsButNoSecrets) {
  KgHost h(config({.faulty = true}));
  ASSERT_TRUE(h.wait_ready()) << h.log();
  auto r = h.get("/api/v1/health?api_key=kg_dev_bob&access_token=SECRET_TOKEN_123",
                 {"X-API-Key: kg_dev_bob",
                  "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"});
  ASSERT_EQ(r.status, 200);
  const std::string rid = r.header("x-request-id");
  ASSERT_FALSE(rid.empty());
  ASSERT_EQ(h.get("/hello/someone").status, 200);
  ASSERT_EQ(h.get("/no/such/route").status, 404);
  ASSERT_EQ(h.post("/faulty/echo", "12345").status, 200);

  // Every access line, parsed: all of them must be JSON objects with the fields at top level.
  auto lines = [&] {
    std::vector<json> out;
    std::istringstream in(h.log());
    for (std::string l; std::getline(in, l);) {
      auto j = json::parse(l, nullptr, false);
      if (j.is_object() && j.value("plugin", "") == "observability" &&
          j.value("msg", "") == "access")
        out.push_back(j);
      else
        EXPECT_EQ(l.find("\"plugin\":\"observability\""), std::string::npos)
            << "not an access line: " << l;
    }
    return out;
  };
  // An access line is written after its response, on that connection's I/O thread, so lines
  // of requests on different connections may come in any order: wait for every one.
  ASSERT_TRUE(wait_until([&] {
    std::set<std::string> seen;
    for (auto& j : lines()) seen.insert(j.value("route", ""));
    return seen.count("/api/v1/health") && seen.count("/hello/{name}") && seen.count("unmatched") &&
           seen.count("/faulty/echo");
  })) << h.log();
  json health, hello, unmatched, echo;
  for (auto& j : lines()) {
    for (auto key : {"ts", "level", "request_id", "method", "route", "status", "duration_ms",
                     "bytes_in", "bytes_out"})
      EXPECT_TRUE(j.contains(key)) << key << " missing: " << j.dump();
    EXPECT_TRUE(j["status"].is_number_integer()) << j.dump();
    EXPECT_TRUE(j["duration_ms"].is_number() && j["duration_ms"] >= 0) << j.dump();
    EXPECT_TRUE(j["bytes_in"].is_number_unsigned() && j["bytes_out"].is_number_unsigned());
    if (j.value("request_id", "") == rid) health = j;
    if (j["route"] == "/hello/{name}") hello = j;
    if (j["route"] == "unmatched") unmatched = j;
    if (j["route"] == "/faulty/echo") echo = j;
  }
  ASSERT_TRUE(health.is_object()) << h.log();
  EXPECT_EQ(health["level"], "info");
  EXPECT_EQ(health["trace_id"], "0af7651916cd43dd8448eb211c80319c");
  EXPECT_EQ(health["method"], "GET");
  EXPECT_EQ(health["route"], "/api/v1/health");
  EXPECT_EQ(health["status"], 200);
  EXPECT_EQ(health["tenant"], "user_bob");
  EXPECT_GT(health["bytes_in"], 0);
  EXPECT_GT(health["bytes_out"], 0);
  EXPECT_EQ(hello["status"], 200) << h.log();
  EXPECT_FALSE(hello.contains("tenant")) << hello.dump();  // public, no principal
  EXPECT_EQ(unmatched["status"], 404) << h.log();
  EXPECT_EQ(echo["method"], "POST") << h.log();
  EXPECT_GE(echo["bytes_in"], 5) << echo.dump();
  // Never the query string, a key or a token, anywhere in the log.
  auto log = h.log();
  EXPECT_EQ(log.find("kg_dev_bob"), std::string::npos);
  EXPECT_EQ(log.find("SECRET_TOKEN_123"), std::string::npos);
  EXPECT_EQ(log.find("/hello/someone"), std::string::npos);
  EXPECT_EQ(log.find("/no/such/route"), std::string::npos);
}

TEST(ObservabilityAccessLog, SampleRateZeroStillLogsServerErrors) {
  KgHost h(config({.faulty = true, .observability_config = "access_log_sample_rate = 0.0\n"}));
  ASSERT_TRUE(h.wait_ready()) << h.log();
  for (int i = 0; i < 20; ++i) ASSERT_EQ(h.get("/hello").status, 200);
  ASSERT_EQ(h.get("/faulty/throw").status, 500);
  ASSERT_TRUE(wait_until([&] {
    return h.log().find(R"("route":"/faulty/throw","status":500)") != std::string::npos;
  })) << h.log();
  EXPECT_EQ(h.log().find(R"("route":"/hello")"), std::string::npos);
  // Counting does not depend on sampling.
  EXPECT_EQ(value(h.get("/metrics").body,
                  R"(kgents_api_requests_total{route="/hello",method="GET",status="200"})"),
            20);
}

TEST(ObservabilityConfig, ABadKeyStopsTheHostNamingIt) {
  TempDir dir;
  auto path = write_file(dir, "bad.toml",
                         config({.observability_config = "access_log_sample_rate = 2.0\n"}));
  auto r = run_kghost({"--config", path, "--check"}, {{"KG_DATA_DIR", dir.path().string()},
                                                      {"KG_PLUGIN_DIR", plugin_dir()},
                                                      {"KG_TEST_PLUGIN_DIR", test_plugin_dir()}});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("observability"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("access_log_sample_rate"), std::string::npos) << r.output;
}

// --- /health/saas -------------------------------------------------------------------------

class SaasHealth : public ::testing::Test {
 protected:
  void SetUp() override {
    host_ = std::make_unique<KgHost>(
        config({.redis_url = redis_.url(), .nats_url = nats_.url(), .webhooks = true}));
    ASSERT_TRUE(host_->wait_ready()) << host_->log();
    ASSERT_TRUE(wait_until([&] { return saas()["nats"].value("mode", "") == "jetstream"; }, 20s))
        << host_->get("/health").body;
  }
  json saas(int* status = nullptr) {
    auto r = host_->get("/health/saas");
    if (status) *status = r.status;
    return body(r);
  }
  RedisServer redis_;
  NatsServer nats_;
  std::unique_ptr<KgHost> host_;
};

TEST_F(SaasHealth, HealthyWithStreamingAndWebhooks) {
  int status = 0;
  auto j = saas(&status);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(j, json({{"status", "healthy"},
                     {"nats", {{"status", "healthy"}, {"mode", "jetstream"}}},
                     {"store", {{"status", "healthy"}, {"backend", "redis"}}},
                     {"openmeter", {{"status", "disabled"}, {"buffered", 0}}},
                     {"stripe", {{"status", "healthy"}}}}))
      << j.dump();
}

TEST_F(SaasHealth, NatsKilledShowsFallbackAndDegraded) {
  nats_.kill();
  // Posts make the breaker count failed acks; the connection loss alone already degrades.
  ASSERT_TRUE(wait_until(
      [&] {
        host_->post("/api/v1/streams/orders/events", R"({"n":1})", kBob);
        auto n = saas()["nats"];
        auto st = n.value("status", "");
        return (st == "circuit_open" || st == "degraded") && n.value("mode", "") == "fallback";
      },
      20s, 100ms))
      << saas().dump();
  int status = 0;
  auto j = saas(&status);
  EXPECT_EQ(status, 200) << j.dump();  // degraded is still serving
  EXPECT_EQ(j["status"], "degraded");
  EXPECT_EQ(j["store"]["status"], "healthy");
  // A queued post answers 202 {"queued":true} while NATS is away.
  auto r = host_->post("/api/v1/streams/orders/events", R"({"n":2})", kBob);
  EXPECT_EQ(r.status, 202) << r.body;
  EXPECT_EQ(body(r).value("queued", false), true) << r.body;
}

TEST_F(SaasHealth, RedisKilledShowsStoreDegraded) {
  redis_.kill();
  // Store traffic (the auth plugin's rate-limit counter) notices the loss.
  ASSERT_TRUE(wait_until(
      [&] {
        host_->get("/api/v1/health", kBob);
        return saas()["store"].value("status", "") == "degraded";
      },
      20s, 100ms))
      << saas().dump();
  int status = 0;
  auto j = saas(&status);
  EXPECT_EQ(status, 200) << j.dump();
  EXPECT_EQ(j["status"], "degraded");
  EXPECT_EQ(j["store"], json({{"status", "degraded"}, {"backend", "redis"}}));
  EXPECT_EQ(j["nats"]["status"], "healthy");
  // And it recovers by itself.
  redis_.start();
  EXPECT_TRUE(wait_until(
      [&] {
        host_->get("/api/v1/health", kBob);
        return saas()["store"].value("status", "") == "healthy";
      },
      30s, 100ms))
      << saas().dump();
}

TEST(SaasHealthAbsent, PluginsNotLoadedShowDisabled) {
  KgHost h(config({}));
  ASSERT_TRUE(h.wait_ready()) << h.log();
  auto r = h.get("/health/saas");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(body(r), json({{"status", "healthy"},
                           {"nats", {{"status", "disabled"}, {"mode", "fallback"}}},
                           {"store", {{"status", "healthy"}, {"backend", "memory"}}},
                           {"openmeter", {{"status", "disabled"}, {"buffered", 0}}},
                           {"stripe", {{"status", "disabled"}}}}))
      << r.body;
}

TEST(SaasHealthAbsent, AStreamingPluginThatFailedToStartIs503) {
  // An optional streaming plugin with a bad config: loaded, failed, unhealthy.
  KgHost h(config({.nats_url = "nats://127.0.0.1:1", .streaming_extra = "stream = \"a.b\"\n"}));
  ASSERT_TRUE(h.wait_ready()) << h.log();
  auto r = h.get("/health/saas");
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(body(r)["status"], "unhealthy");
  EXPECT_EQ(body(r)["nats"], json({{"status", "unhealthy"}, {"mode", "fallback"}})) << r.body;
  EXPECT_EQ(value(h.get("/metrics").body, R"(kgents_plugin_up{plugin="streaming"})"), 0);
}
