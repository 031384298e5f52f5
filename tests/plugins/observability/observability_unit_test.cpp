// observability: the pure pieces — request series, Prometheus text, /proc parsing, the SaaS
// health view, the access-log line and its sampling, and the config table.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <thread>
#include <vector>

#include "access_log.hpp"
#include "health_view.hpp"
#include "process_metrics.hpp"
#include "request_metrics.hpp"
#include "settings.hpp"
#include "stream_metrics.hpp"

using namespace kghost::observability;
using nlohmann::json;

namespace {

std::string render(const RequestMetrics& m) {
  std::string out;
  m.render(out);
  return out;
}

// The value of the first sample whose line starts with `prefix` (name and labels); -1 if none.
double sample(const std::string& text, const std::string& prefix) {
  auto at = text.find("\n" + prefix);
  if (at == std::string::npos) return -1;
  auto line_end = text.find('\n', at + 1);
  auto line = text.substr(at + 1, line_end - at - 1);
  return std::stod(line.substr(line.rfind(' ') + 1));
}

}  // namespace

TEST(RequestMetrics, CountsByTemplateMethodAndStatus) {
  RequestMetrics m;
  m.record("/hello/{name}", "GET", 200, 300'000);    // 0.3 ms
  m.record("/hello/{name}", "GET", 200, 3'000'000);  // 3 ms
  m.record("/hello/{name}", "GET", 400, 100'000);
  m.record("/hello/{name}", "POST", 200, 100'000);
  auto text = render(m);
  const std::string l = R"(route="/hello/{name}",method="GET",status="200")";
  EXPECT_EQ(sample(text, "kgents_api_requests_total{" + l + "}"), 2);
  EXPECT_EQ(sample(text, "kgents_api_request_latency_seconds_bucket{" + l + ",le=\"0.0005\"}"), 1);
  EXPECT_EQ(sample(text, "kgents_api_request_latency_seconds_bucket{" + l + ",le=\"0.0025\"}"), 1);
  EXPECT_EQ(sample(text, "kgents_api_request_latency_seconds_bucket{" + l + ",le=\"0.005\"}"), 2);
  EXPECT_EQ(sample(text, "kgents_api_request_latency_seconds_bucket{" + l + ",le=\"+Inf\"}"), 2);
  EXPECT_EQ(sample(text, "kgents_api_request_latency_seconds_count{" + l + "}"), 2);
  EXPECT_NEAR(sample(text, "kgents_api_request_latency_seconds_sum{" + l + "}"), 0.0033, 1e-9);
  EXPECT_EQ(
      sample(text, R"(kgents_api_requests_total{route="/hello/{name}",method="GET",status="400"})"),
      1);
  EXPECT_EQ(
      sample(text,
             R"(kgents_api_requests_total{route="/hello/{name}",method="POST",status="200"})"),
      1);
  EXPECT_EQ(m.series_count(), 3u);
}

TEST(RequestMetrics, BucketsSpanHalfAMillisecondToTenSeconds) {
  RequestMetrics m;
  m.record("/r", "GET", 200, 20'000'000'000);  // 20 s: only +Inf
  auto text = render(m);
  const std::string b =
      R"(kgents_api_request_latency_seconds_bucket{route="/r",method="GET",status="200",le=)";
  EXPECT_EQ(sample(text, b + "\"0.0005\"}"), 0);
  EXPECT_EQ(sample(text, b + "\"10\"}"), 0);
  EXPECT_EQ(sample(text, b + "\"+Inf\"}"), 1);
  std::regex le("le=\"([^\"]+)\"");
  int buckets = 0;
  for (std::sregex_iterator it(text.begin(), text.end(), le), end; it != end; ++it) ++buckets;
  EXPECT_EQ(buckets, 15);  // 14 bounds + +Inf
}

TEST(RequestMetrics, UnmatchedRoutesAndOddMethodsShareOneLabel) {
  RequestMetrics m;
  for (int i = 0; i < 50; ++i) m.record("", "GET", 404, 1000);
  m.record("", "BREW", 405, 1000);
  m.record("", "get", 404, 1000);  // methods are case-sensitive: not GET
  auto text = render(m);
  EXPECT_EQ(
      sample(text, R"(kgents_api_requests_total{route="unmatched",method="GET",status="404"})"),
      50);
  EXPECT_EQ(
      sample(text, R"(kgents_api_requests_total{route="unmatched",method="other",status="405"})"),
      1);
  EXPECT_EQ(
      sample(text, R"(kgents_api_requests_total{route="unmatched",method="other",status="404"})"),
      1);
  EXPECT_EQ(text.find("BREW"), std::string::npos);
}

TEST(RequestMetrics, LabelValuesAreEscaped) {
  RequestMetrics m;
  m.record("/a\"b\\c\nd", "GET", 200, 1);
  auto text = render(m);
  EXPECT_NE(text.find(R"(route="/a\"b\\c\nd")"), std::string::npos) << text;
}

TEST(RequestMetrics, CapacityIsBoundedByOverflowSeriesPerStatusClass) {
  RequestMetrics m;
  for (std::size_t i = 0; i < RequestMetrics::kMaxSeries + 100; ++i)
    m.record("/r" + std::to_string(i), "GET", i % 2 ? 200 : 503, 1);
  EXPECT_EQ(m.series_count(), RequestMetrics::kMaxSeries);
  auto text = render(m);
  // Past the bound: one series per status class, which status=~"5.." still matches.
  EXPECT_EQ(
      sample(text, R"(kgents_api_requests_total{route="overflow",method="other",status="2xx"})"),
      50);
  EXPECT_EQ(
      sample(text, R"(kgents_api_requests_total{route="overflow",method="other",status="5xx"})"),
      50);
  // An existing series still counts on its own.
  m.record("/r0", "GET", 503, 1);
  EXPECT_EQ(
      sample(render(m), R"(kgents_api_requests_total{route="/r0",method="GET",status="503"})"), 2);
}

TEST(RequestMetrics, ConcurrentRecordingLosesNothing) {
  RequestMetrics m;
  constexpr int kThreads = 4, kEach = 50'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&m, t] {
      for (int i = 0; i < kEach; ++i) {
        m.record("/shared", "GET", 200, 1000);
        m.record("/own/" + std::to_string(t % 2), "POST", static_cast<uint16_t>(200 + i % 3), 1000);
      }
    });
  std::string during;
  m.render(during);  // rendering while recording is safe
  for (auto& th : threads) th.join();
  auto text = render(m);
  EXPECT_EQ(sample(text, R"(kgents_api_requests_total{route="/shared",method="GET",status="200"})"),
            kThreads * kEach);
  double own = 0;
  for (int r = 0; r < 2; ++r)
    for (int s = 200; s < 203; ++s)
      own += sample(text, "kgents_api_requests_total{route=\"/own/" + std::to_string(r) +
                              "\",method=\"POST\",status=\"" + std::to_string(s) + "\"}");
  EXPECT_EQ(own, kThreads * kEach);
  EXPECT_EQ(m.series_count(), 7u);
}

TEST(StreamMetrics, OpenBytesDurationsAndReasons) {
  StreamMetrics m;
  std::string empty;
  m.render(empty);
  EXPECT_NE(empty.find("\nkgents_sse_streams_open 0\n"), std::string::npos) << empty;
  EXPECT_NE(empty.find("kgents_sse_streams_ended_total{reason=\"host_shutdown\"} 0\n"),
            std::string::npos);
  EXPECT_EQ(empty.find("reason=\"other\""), std::string::npos);  // only once one happens

  for (int i = 0; i < 3; ++i) m.started();
  m.ended(stream_end_of(1), 500'000'000, 100);        // 0.5 s, client gone
  m.ended(stream_end_of(2), 120'000'000'000, 20);     // 2 min, closed by the plugin
  m.ended(stream_end_of(9), 100'000'000'000'000, 0);  // 27 h: +Inf
  m.started();
  std::string out;
  m.render(out);
  for (const char* want : {
           "\nkgents_sse_streams_open 1\n",
           "\nkgents_sse_stream_bytes_total 120\n",
           "\nkgents_sse_stream_duration_seconds_bucket{le=\"1\"} 1\n",
           "\nkgents_sse_stream_duration_seconds_bucket{le=\"60\"} 1\n",
           "\nkgents_sse_stream_duration_seconds_bucket{le=\"300\"} 2\n",
           "\nkgents_sse_stream_duration_seconds_bucket{le=\"14400\"} 2\n",
           "\nkgents_sse_stream_duration_seconds_bucket{le=\"+Inf\"} 3\n",
           "\nkgents_sse_stream_duration_seconds_count 3\n",
           "\nkgents_sse_streams_ended_total{reason=\"client_gone\"} 1\n",
           "\nkgents_sse_streams_ended_total{reason=\"closed_by_plugin\"} 1\n",
           "\nkgents_sse_streams_ended_total{reason=\"host_shutdown\"} 0\n",
           "\nkgents_sse_streams_ended_total{reason=\"other\"} 1\n",
       })
    EXPECT_NE(out.find(want), std::string::npos) << want << "\n" << out;
  // More ends than starts (an end racing a scrape) never shows a negative gauge.
  m.ended(StreamEnd::client_gone, 1, 0);
  m.ended(StreamEnd::client_gone, 1, 0);
  out.clear();
  m.render(out);
  EXPECT_NE(out.find("\nkgents_sse_streams_open 0\n"), std::string::npos) << out;
}

TEST(ProcessMetrics, ParsesProcStatWithAWickedCommandName) {
  // pid (comm) state ppid ... utime(14)=250 stime(15)=50 ... starttime(22)=1000 vsize(23) rss(24)
  std::string stat =
      "4242 (kg host) (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 "
      "1000 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1";
  auto s = parse_proc_stat(stat, 100, 4096, 1'700'000'000);
  ASSERT_TRUE(s);
  EXPECT_DOUBLE_EQ(s->cpu_seconds, 3.0);
  EXPECT_DOUBLE_EQ(s->start_time_seconds, 1'700'000'010.0);
  EXPECT_DOUBLE_EQ(s->virtual_bytes, 104857600);
  EXPECT_DOUBLE_EQ(s->resident_bytes, 2560.0 * 4096);
  EXPECT_FALSE(parse_proc_stat("garbage", 100, 4096, 0));
  EXPECT_FALSE(parse_proc_stat("1 (x) S 1 2 3", 100, 4096, 0));
}

TEST(ProcessMetrics, SamplesThisProcess) {
  auto s = sample_self();
  ASSERT_TRUE(s);
  EXPECT_GT(s->resident_bytes, 1 << 20);
  EXPECT_GE(s->open_fds, 3);  // stdin, stdout, stderr
  EXPECT_GT(s->start_time_seconds, 1.5e9);
  EXPECT_LE(s->start_time_seconds, static_cast<double>(std::time(nullptr)) + 1);
  std::string out;
  render_process_metrics(*s, out);
  for (auto name : {"process_cpu_seconds_total", "process_resident_memory_bytes",
                    "process_open_fds", "process_start_time_seconds"})
    EXPECT_NE(out.find(std::string("# TYPE ") + name), std::string::npos) << name;
}

namespace {

json health_with(json plugins, json store = {{"status", "healthy"}, {"backend", "redis"}}) {
  return {{"status", "healthy"}, {"store", store}, {"plugins", plugins}};
}

}  // namespace

TEST(SaasHealth, AbsentPluginsAreDisabled) {
  auto v = saas_health(health_with(json::object(), {{"status", "healthy"}, {"backend", "memory"}}));
  EXPECT_EQ(v.http_status, 200);
  EXPECT_EQ(v.body["status"], "healthy");
  EXPECT_EQ(v.body["nats"], json({{"status", "disabled"}, {"mode", "fallback"}}));
  EXPECT_EQ(v.body["store"], json({{"status", "healthy"}, {"backend", "memory"}}));
  EXPECT_EQ(v.body["openmeter"], json({{"status", "disabled"}, {"buffered", 0}}));
  EXPECT_EQ(v.body["stripe"], json({{"status", "disabled"}}));
}

TEST(SaasHealth, ReadsEachPluginsReport) {
  auto v = saas_health(health_with(
      {{"streaming", {{"status", "healthy"}, {"state", "healthy"}, {"mode", "jetstream"}}},
       {"billing", {{"status", "healthy"}, {"openmeter", "healthy"}, {"buffered", 12}}},
       {"webhooks", {{"status", "healthy"}, {"queue_depth", 0}}}}));
  EXPECT_EQ(v.http_status, 200);
  EXPECT_EQ(v.body["status"], "healthy");
  EXPECT_EQ(v.body["nats"], json({{"status", "healthy"}, {"mode", "jetstream"}}));
  EXPECT_EQ(v.body["openmeter"], json({{"status", "healthy"}, {"buffered", 12}}));
  EXPECT_EQ(v.body["stripe"], json({{"status", "healthy"}}));
}

TEST(SaasHealth, CircuitOpenAndStoreFallbackAreDegradedNot503) {
  auto v = saas_health(health_with(
      {{"streaming", {{"status", "degraded"}, {"state", "circuit_open"}, {"mode", "fallback"}}}},
      {{"status", "degraded"}, {"backend", "redis"}}));
  EXPECT_EQ(v.http_status, 200);
  EXPECT_EQ(v.body["status"], "degraded");
  EXPECT_EQ(v.body["nats"], json({{"status", "circuit_open"}, {"mode", "fallback"}}));
  EXPECT_EQ(v.body["store"], json({{"status", "degraded"}, {"backend", "redis"}}));
}

TEST(SaasHealth, AnyUnhealthyPartIs503) {
  // OpenMeter refusing the key: billing unhealthy, whatever its openmeter detail says.
  auto v = saas_health(health_with(
      {{"billing", {{"status", "unhealthy"}, {"openmeter", "degraded"}, {"buffered", 5000}}}}));
  EXPECT_EQ(v.http_status, 503);
  EXPECT_EQ(v.body["status"], "unhealthy");
  EXPECT_EQ(v.body["openmeter"], json({{"status", "unhealthy"}, {"buffered", 5000}}));
  // An optional plugin that failed to start has only an error in /health.
  auto failed = saas_health(health_with(
      {{"streaming", {{"status", "unhealthy"}, {"error", "failed to start: bad servers"}}}}));
  EXPECT_EQ(failed.http_status, 503);
  EXPECT_EQ(failed.body["nats"], json({{"status", "unhealthy"}, {"mode", "fallback"}}));
  auto webhooks = saas_health(health_with({{"webhooks", {{"status", "unhealthy"}}}}));
  EXPECT_EQ(webhooks.http_status, 503);
  EXPECT_EQ(webhooks.body["stripe"]["status"], "unhealthy");
}

TEST(SaasHealth, GarbageInIsUnhealthyNotACrash) {
  for (auto doc : {json(), json::array(), json("x"), json({{"plugins", 3}, {"store", "x"}})}) {
    auto v = saas_health(doc);
    EXPECT_EQ(v.http_status, 503) << doc;
    EXPECT_EQ(v.body["store"]["status"], "unhealthy");
  }
}

TEST(PluginUp, OneGaugePerPluginZeroOnlyWhenUnhealthy) {
  std::string out;
  render_plugin_up(health_with({{"auth", {{"status", "healthy"}}},
                                {"streaming", {{"status", "degraded"}}},
                                {"billing", {{"status", "unhealthy"}, {"error", "x"}}}}),
                   out);
  EXPECT_NE(out.find("# TYPE kgents_plugin_up gauge\n"), std::string::npos);
  EXPECT_NE(out.find("kgents_plugin_up{plugin=\"auth\"} 1\n"), std::string::npos);
  EXPECT_NE(out.find("kgents_plugin_up{plugin=\"streaming\"} 1\n"), std::string::npos);
  EXPECT_NE(out.find("kgents_plugin_up{plugin=\"billing\"} 0\n"), std::string::npos);
}

TEST(AccessLog, LineHasTheRequestsFieldsAndNothingElse) {
  std::string line;
  format_access_line(
      {"GET", "/api/v1/streams/{channel}/events", 200, 1'234'567, 80, 512, "user_bob"}, line);
  EXPECT_EQ(line,
            "access method=GET route=/api/v1/streams/{channel}/events status=200 "
            "duration_ms=1.234 request_bytes=80 response_bytes=512 tenant=user_bob");
  format_access_line({"PURGE", "", 404, 999, 0, 10, ""}, line);
  EXPECT_EQ(line,
            "access method=other route=unmatched status=404 duration_ms=0.000 request_bytes=0 "
            "response_bytes=10");
}

TEST(AccessLog, FieldsAreOneJsonObject) {
  std::string out;
  format_access_fields(
      {"GET", "/api/v1/streams/{channel}/events", 200, 1'234'567, 80, 512, "user_bob"}, out);
  EXPECT_EQ(out, R"({"method":"GET","route":"/api/v1/streams/{channel}/events","status":200,)"
                 R"("duration_ms":1.234,"bytes_in":80,"bytes_out":512,"tenant":"user_bob"})");
  format_access_fields({"PURGE", "", 404, 999, 0, 10, ""}, out);
  EXPECT_EQ(out, R"({"method":"other","route":"unmatched","status":404,"duration_ms":0.000,)"
                 R"("bytes_in":0,"bytes_out":10})");
  // A hostile tenant stays one string value.
  format_access_fields({"GET", "/r", 200, 0, 0, 0, "evil\",\"status\":500,\n\\\x01"}, out);
  auto j = json::parse(out);
  EXPECT_EQ(j["status"], 200);
  EXPECT_EQ(j["tenant"], "evil\",\"status\":500,\n\\\x01");
  EXPECT_EQ(out.find('\n'), std::string::npos);
}

TEST(AccessLog, OddTenantValuesAreQuotedAndCannotForgeFields) {
  std::string line;
  format_access_line({"GET", "/r", 200, 0, 0, 0, "evil status=500\n\"x"}, line);
  EXPECT_NE(line.find(R"(tenant="evil status=500 \"x")"), std::string::npos) << line;
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

TEST(AccessLog, SamplesAtTheConfiguredRateAndAlwaysLogs5xx) {
  AccessSampler all(1.0), none(0.0), tenth(0.1);
  int logged = 0;
  for (int i = 0; i < 100'000; ++i) {
    EXPECT_TRUE(all.should_log(200));
    EXPECT_FALSE(none.should_log(200));
    logged += tenth.should_log(200);
  }
  EXPECT_NEAR(logged, 10'000, 1'000);
  EXPECT_TRUE(none.should_log(500));
  EXPECT_TRUE(none.should_log(503));
  EXPECT_FALSE(none.should_log(499));
}

TEST(Settings, DefaultsAndErrorsNameTheKey) {
  auto s = parse_settings("");
  EXPECT_TRUE(s.access_log);
  EXPECT_EQ(s.access_log_sample_rate, 1.0);
  s = parse_settings(R"({"access_log":false,"access_log_sample_rate":0.25})");
  EXPECT_FALSE(s.access_log);
  EXPECT_EQ(s.access_log_sample_rate, 0.25);
  auto fails_naming = [](const char* text, const char* key) {
    try {
      parse_settings(text);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what()).find(key) != std::string::npos;
    }
    return false;
  };
  EXPECT_TRUE(fails_naming(R"({"access_log_sample_rate":1.5})", "access_log_sample_rate"));
  EXPECT_TRUE(fails_naming(R"({"access_log_sample_rate":"all"})", "access_log_sample_rate"));
  EXPECT_TRUE(fails_naming(R"({"access_log":"yes"})", "access_log"));
  EXPECT_TRUE(fails_naming(R"({"sample_rate":1})", "sample_rate"));
}
