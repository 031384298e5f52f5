// auth + devkeys end to end: real kghost processes, real redis-server, both key header forms.
// Every status and header of CONTRACT §4.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "host.hpp"

using namespace kghost::test;
using nlohmann::json;

namespace {

struct Cfg {
  std::string redis_url{};  // empty: memory store
  std::string mode = "dev";
  bool devkeys = true;
  std::string auth{};  // lines of auth's [plugins.config]
};

std::string make_config(const Cfg& c) {
  std::string s = "plugin_dir = \"${KG_PLUGIN_DIR}\"\nmode = \"" + c.mode +
                  "\"\nlog_level = \"debug\"\n[server]\nthreads = 2\n";
  if (c.redis_url.empty()) {
    s += "[store]\nbackend = \"memory\"\n";
  } else {
    s += "[store]\nbackend = \"redis\"\nredis_url = \"" + c.redis_url + "\"\n";
  }
  s += "[[plugins]]\nname = \"hello\"\n";
  s += "[[plugins]]\nname = \"auth\"\n[plugins.config]\n" + c.auth + "\n";
  s += "[[plugins]]\nname = \"devkeys\"\nenabled = " + std::string(c.devkeys ? "true" : "false") +
       "\n";
  s += "[[plugins]]\nname = \"tier_publisher\"\npath = "
       "\"${KG_TEST_PLUGIN_DIR}/kg_tier_publisher.so\"\n";
  return s;
}

std::unique_ptr<KgHost> start(const Cfg& c) {
  auto h = std::make_unique<KgHost>(make_config(c));
  EXPECT_TRUE(h->wait_ready()) << h->log();
  return h;
}

json body(const HttpResult& r) { return json::parse(r.body, nullptr, false); }
std::string code(const HttpResult& r) {
  auto j = body(r);
  return j.is_object() && j.contains("error") ? j["error"].value("code", "") : "";
}

// Both ways of presenting a key (CONTRACT §4).
std::vector<std::string> key_header(const std::string& form, const std::string& key) {
  return {form == "x-api-key" ? "X-API-Key: " + key : "Authorization: Bearer " + key};
}
const std::vector<std::string> kForms = {"x-api-key", "bearer"};

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
// Windows are epoch-aligned, so the test can compute them as the plugin does. Waits (polling
// the clock) until at least `margin` is left in the current window, so a burst of requests all
// lands in one window instead of straddling a reset.
void ensure_window_margin(int64_t window_s, std::chrono::milliseconds margin) {
  auto left = [&] { return window_s * 1000 - unix_ms() % (window_s * 1000); };
  ASSERT_TRUE(wait_until([&] { return left() >= margin.count(); },
                         std::chrono::milliseconds(window_s * 1000 + 1000), 20ms));
}

void expect_rate_headers(const HttpResult& r, const std::string& tier, int64_t limit,
                         int64_t window_s = 60) {
  ASSERT_FALSE(r.header("X-RateLimit-Limit").empty()) << r.status << " " << r.body;
  EXPECT_EQ(r.header("X-RateLimit-Limit"), std::to_string(limit));
  int64_t remaining = std::stoll(r.header("X-RateLimit-Remaining"));
  int64_t reset = std::stoll(r.header("X-RateLimit-Reset"));
  EXPECT_GE(remaining, 0);
  EXPECT_LE(remaining, limit);
  EXPECT_GE(reset, 1);  // a delta in seconds, never an epoch
  EXPECT_LE(reset, window_s);
  EXPECT_EQ(r.header("RateLimit-Policy"),
            "\"" + tier + "\";q=" + std::to_string(limit) + ";w=" + std::to_string(window_s));
  EXPECT_EQ(r.header("RateLimit"),
            "\"" + tier + "\";r=" + std::to_string(remaining) + ";t=" + std::to_string(reset));
}

// Runs kghost-keys; returns (exit code, output).
RunResult keys_tool(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {KGHOST_KEYS_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  Process p(argv);
  auto rc = p.wait(10s);
  return {rc.value_or(-1), p.output()};
}
std::string mint(const std::string& file, const std::string& tenant, const std::string& user,
                 const std::string& tier, const std::string& scopes = "") {
  std::vector<std::string> args = {"new",    "--tenant", tenant,   "--user", user,
                                   "--tier", tier,       "--file", file};
  if (!scopes.empty()) args.insert(args.end(), {"--scopes", scopes});
  auto r = keys_tool(args);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  auto pos = r.output.find("kg_live_");
  EXPECT_NE(pos, std::string::npos) << r.output;
  return pos == std::string::npos ? "" : r.output.substr(pos, 51);
}

// The key id on the `kghost-keys list` line that contains `needle`.
std::string id_of(const std::string& listing, const std::string& needle) {
  std::istringstream in(listing);
  for (std::string line; std::getline(in, line);)
    if (line.find(needle) != std::string::npos && line.rfind("key_", 0) == 0)
      return line.substr(0, line.find(' '));
  return "";
}

std::string read_file_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class DevAuth : public ::testing::Test {
 protected:
  void SetUp() override { host_ = start({}); }
  std::unique_ptr<KgHost> host_;
};

}  // namespace

TEST_F(DevAuth, HealthAnswersTheCallerWithRateLimitHeadersInBothForms) {
  for (auto& form : kForms) {
    auto r = host_->get("/api/v1/health", key_header(form, "kg_dev_bob"));
    ASSERT_EQ(r.status, 200) << form << " " << r.body;
    EXPECT_EQ(body(r), json::parse(R"({"status":"ok","user_id":"user_bob","tenant_id":"user_bob",
                                       "tier":"PRO","scopes":["read","write"]})"));
    expect_rate_headers(r, "PRO", 1000);
  }
  auto alice = host_->get("/api/v1/health", {"X-API-Key: kg_dev_alice"});
  EXPECT_EQ(body(alice)["tier"], "FREE");
  EXPECT_EQ(body(alice)["scopes"], json::parse(R"(["read"])"));
  expect_rate_headers(alice, "FREE", 100);
  auto carol = host_->get("/api/v1/health", {"Authorization: Bearer kg_dev_carol"});
  EXPECT_EQ(body(carol)["tenant_id"], "user_carol");
  EXPECT_EQ(body(carol)["scopes"], json::parse(R"(["read","write","admin"])"));
  expect_rate_headers(carol, "ENTERPRISE", 10000);
}

TEST_F(DevAuth, RemainingCountsDown) {
  ensure_window_margin(60, 3s);
  auto a = host_->get("/api/v1/health", {"X-API-Key: kg_dev_bob"});
  auto b = host_->get("/api/v1/health", {"Authorization: Bearer kg_dev_bob"});
  EXPECT_EQ(std::stoi(a.header("X-RateLimit-Remaining")), 999);
  EXPECT_EQ(std::stoi(b.header("X-RateLimit-Remaining")), 998);
}

TEST_F(DevAuth, MissingKeyIs401WithoutRateLimitHeaders) {
  auto r = host_->get("/api/v1/health");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(code(r), "missing_api_key");
  EXPECT_EQ(body(r)["error"]["request_id"], r.header("X-Request-Id"));
  EXPECT_TRUE(r.header("X-RateLimit-Limit").empty());
  // Another Authorization scheme is not a key.
  EXPECT_EQ(code(host_->get("/api/v1/health", {"Authorization: Basic dXNlcjpwYXNz"})),
            "missing_api_key");
  // Public routes need no key.
  EXPECT_EQ(host_->get("/hello").status, 200);
}

TEST_F(DevAuth, UnknownAndMalformedKeysAre401InvalidNever500) {
  for (auto& form : kForms) {
    for (std::string key : std::vector<std::string>{"kg_dev_mallory", "nope", std::string(257, 'a'),
                                                    "kg_dev_b\xc3\xb6", "kg_dev\tbob"}) {
      auto r = host_->get("/api/v1/health", key_header(form, key));
      EXPECT_EQ(r.status, 401) << form << " " << key.size();
      EXPECT_EQ(code(r), "invalid_api_key") << form;
      EXPECT_TRUE(r.header("X-RateLimit-Limit").empty());
    }
  }
  // A control character other than HTAB is malformed HTTP: the host answers 400 before any
  // filter runs. Either way never a 5xx, and never a principal.
  for (auto& form : kForms) {
    auto r = host_->get("/api/v1/health", key_header(form, std::string("kg_dev_\x01") + "bob"));
    EXPECT_TRUE(r.status == 400 || r.status == 401) << r.status;
  }
  // 256 characters is still a well-formed (unknown) key: 401, not 400 or 500.
  EXPECT_EQ(code(host_->get("/api/v1/health", {"X-API-Key: " + std::string(256, 'a')})),
            "invalid_api_key");
  // Empty values, sent raw so nothing drops them.
  for (std::string hdr :
       {"X-API-Key: \r\n", "Authorization: Bearer\r\n", "Authorization: Bearer  \r\n",
        "X-API-Key: kg_dev_bob\r\nX-API-Key: kg_dev_bob\r\n",
        "X-API-Key: kg_dev_bob\r\nAuthorization: Bearer kg_dev_alice\r\n",
        "Authorization: Bearer kg_dev_bob\r\nAuthorization: Bearer kg_dev_bob\r\n"}) {
    RawClient c(host_->port());
    ASSERT_TRUE(c.send("GET /api/v1/health HTTP/1.1\r\nHost: x\r\n" + hdr + "\r\n"));
    auto r = c.read_response();
    EXPECT_EQ(r.status, 401) << hdr;
    EXPECT_EQ(code(r), "invalid_api_key") << hdr;
  }
  // The same key in both headers is fine.
  auto same =
      host_->get("/api/v1/health", {"X-API-Key: kg_dev_bob", "Authorization: Bearer kg_dev_bob"});
  EXPECT_EQ(same.status, 200);
}

TEST_F(DevAuth, MissingScopeIs403AndStillCarriesRateLimitHeaders) {
  for (auto& form : kForms) {
    auto denied = host_->get("/test/write", key_header(form, "kg_dev_alice"));
    EXPECT_EQ(denied.status, 403);
    EXPECT_EQ(code(denied), "insufficient_scope");
    expect_rate_headers(denied, "FREE", 100);
    EXPECT_EQ(host_->get("/test/write", key_header(form, "kg_dev_bob")).status, 200);
    EXPECT_EQ(code(host_->get("/admin/plugins", key_header(form, "kg_dev_bob"))),
              "insufficient_scope");
    EXPECT_EQ(host_->get("/admin/plugins", key_header(form, "kg_dev_carol")).status, 200);
  }
}

TEST(AuthRateLimit, OverTheLimitIs429WithRetryAfterInBothForms) {
  auto host = start({.auth = "window_s = 3600\n[plugins.config.tiers.FREE]\nlimit = 4\n"});
  ensure_window_margin(3600, 5s);
  for (int i = 0; i < 4; ++i) {
    auto r = host->get("/api/v1/health", key_header(kForms[i % 2], "kg_dev_alice"));
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.header("X-RateLimit-Remaining"), std::to_string(3 - i));
  }
  for (auto& form : kForms) {
    auto r = host->get("/api/v1/health", key_header(form, "kg_dev_alice"));
    EXPECT_EQ(r.status, 429);
    EXPECT_EQ(code(r), "rate_limited");
    EXPECT_EQ(body(r)["error"]["request_id"], r.header("X-Request-Id"));
    expect_rate_headers(r, "FREE", 4, 3600);
    EXPECT_EQ(r.header("X-RateLimit-Remaining"), "0");
    EXPECT_EQ(r.header("Retry-After"), r.header("X-RateLimit-Reset"));
  }
  // Other tenants are counted separately.
  EXPECT_EQ(host->get("/api/v1/health", {"X-API-Key: kg_dev_bob"}).status, 200);
}

TEST(AuthRateLimit, ParallelRequestsOnTheMemoryStoreAreExact) {
  auto host = start({.auth = "window_s = 3600\n[plugins.config.tiers.FREE]\nlimit = 50\n"});
  ensure_window_margin(3600, 10s);
  std::atomic<int> ok{0}, limited{0}, other{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 10; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 12; ++i) {
        int s = host->get("/api/v1/health", {"X-API-Key: kg_dev_alice"}).status;
        (s == 200 ? ok : s == 429 ? limited : other)++;
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok, 50);
  EXPECT_EQ(limited, 70);
  EXPECT_EQ(other, 0);
}

TEST(AuthRedis, TwoReplicasShareOneLimitOf100PerMinute) {
  RedisServer redis;
  auto a = start({.redis_url = redis.url()});
  auto b = start({.redis_url = redis.url()});
  ensure_window_margin(60, 8s);
  for (int i = 0; i < 100; ++i) {
    auto& h = i % 2 ? a : b;
    auto r = h->get("/api/v1/health", key_header(kForms[i % 2], "kg_dev_alice"));
    ASSERT_EQ(r.status, 200) << "request " << i + 1 << ": " << r.body;
    ASSERT_EQ(r.header("X-RateLimit-Remaining"), std::to_string(99 - i));
  }
  for (auto* h : {a.get(), b.get()}) {
    auto r = h->get("/api/v1/health", {"X-API-Key: kg_dev_alice"});
    EXPECT_EQ(r.status, 429);
    EXPECT_EQ(code(r), "rate_limited");
    EXPECT_EQ(body(r)["error"]["request_id"], r.header("X-Request-Id"));
    EXPECT_FALSE(r.header("Retry-After").empty());
    expect_rate_headers(r, "FREE", 100);
  }
}

TEST(AuthRedis, TwoHundredParallelRequestsOverTwoReplicasLetExactly100Through) {
  RedisServer redis;
  auto a = start({.redis_url = redis.url()});
  auto b = start({.redis_url = redis.url()});
  ensure_window_margin(60, 8s);
  std::atomic<int> ok{0}, limited{0}, other{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 20; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        auto& h = (t + i) % 2 ? a : b;
        int s = h->get("/api/v1/health", {"Authorization: Bearer kg_dev_alice"}).status;
        (s == 200 ? ok : s == 429 ? limited : other)++;
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok, 100);
  EXPECT_EQ(limited, 100);
  EXPECT_EQ(other, 0);
}

TEST(AuthRedis, RedisDownMidRunKeepsServingAndHealthIsDegraded) {
  RedisServer redis;
  auto host = start({.redis_url = redis.url()});
  EXPECT_EQ(host->get("/api/v1/health", {"X-API-Key: kg_dev_bob"}).status, 200);
  redis.kill();
  for (int i = 0; i < 20; ++i) {
    auto r = host->get("/api/v1/health", key_header(kForms[i % 2], "kg_dev_bob"));
    ASSERT_EQ(r.status, 200) << r.body;
    expect_rate_headers(r, "PRO", 1000);
  }
  EXPECT_TRUE(wait_until([&] {
    auto j = body(host->get("/health"));
    return j.is_object() && j["status"] == "degraded" && j["store"]["status"] == "degraded";
  }));
  redis.start();
  EXPECT_TRUE(wait_until([&] { return body(host->get("/health"))["status"] == "healthy"; }, 15s));
  EXPECT_EQ(host->get("/api/v1/health", {"X-API-Key: kg_dev_bob"}).status, 200);
}

TEST(AuthTiers, TierChangedEventRaisesTheLimitWithinOneSecond) {
  auto host = start({.auth = "window_s = 3600\n[plugins.config.tiers.FREE]\nlimit = 3\n"});
  ensure_window_margin(3600, 5s);
  ASSERT_EQ(host->get("/test/write", {"X-API-Key: kg_dev_alice"}).status, 403);  // counts too
  for (int i = 0; i < 2; ++i)
    ASSERT_EQ(host->get("/api/v1/health", {"X-API-Key: kg_dev_alice"}).status, 200);
  ASSERT_EQ(host->get("/api/v1/health", {"X-API-Key: kg_dev_alice"}).status, 429);

  auto published = host->post("/test/publish/billing.tier_changed",
                              R"({"tenant_id":"user_alice","tier":"PRO"})");
  ASSERT_EQ(published.status, 202);
  auto t0 = std::chrono::steady_clock::now();
  HttpResult last;
  ASSERT_TRUE(wait_until(
      [&] {
        last = host->get("/api/v1/health", {"X-API-Key: kg_dev_alice"});
        return last.status == 200;
      },
      1s, 10ms))
      << last.status;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  EXPECT_EQ(body(last)["tier"], "PRO");
  EXPECT_EQ(body(last)["scopes"], json::parse(R"(["read","write"])"));
  expect_rate_headers(last, "PRO", 1000, 3600);
  EXPECT_EQ(host->get("/test/write", {"Authorization: Bearer kg_dev_alice"}).status, 200);
  // Bad events are ignored, not fatal.
  EXPECT_EQ(host->post("/test/publish/billing.tier_changed",
                       R"({"tenant_id":"user_alice","tier":"GOLD"})")
                .status,
            202);
  EXPECT_EQ(host->post("/test/publish/billing.tier_changed", "not json").status, 202);
  EXPECT_EQ(body(host->get("/api/v1/health", {"X-API-Key: kg_dev_alice"}))["tier"], "PRO");
}

TEST(AuthKeys, MintedProductionKeysWorkInBothFormsAndRevokedOnesDoNot) {
  TempDir dir;
  std::string file = (dir.path() / "keys.jsonl").string();
  std::string pro = mint(file, "acme", "user_1", "PRO");
  std::string narrow = mint(file, "acme", "user_2", "PRO", "read");
  std::string gone = mint(file, "acme", "user_3", "FREE");
  auto ids = keys_tool({"list", "--file", file});
  ASSERT_EQ(ids.exit_code, 0);
  std::string gone_id = id_of(ids.output, "user=user_3");
  ASSERT_EQ(gone_id.size(), 16u) << ids.output;
  ASSERT_EQ(keys_tool({"revoke", "--id", gone_id, "--file", file}).exit_code, 0);

  auto host =
      start({.mode = "production", .devkeys = false, .auth = "keys_file = \"" + file + "\"\n"});
  for (auto& form : kForms) {
    auto r = host->get("/api/v1/health", key_header(form, pro));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(body(r), json::parse(R"({"status":"ok","user_id":"user_1","tenant_id":"acme",
                                       "tier":"PRO","scopes":["read","write"]})"));
    expect_rate_headers(r, "PRO", 1000);
    EXPECT_EQ(host->get("/test/write", key_header(form, pro)).status, 200);
    auto n = host->get("/test/write", key_header(form, narrow));
    EXPECT_EQ(code(n), "insufficient_scope");
    EXPECT_EQ(body(host->get("/api/v1/health", key_header(form, narrow)))["scopes"],
              json::parse(R"(["read"])"));
    auto revoked = host->get("/api/v1/health", key_header(form, gone));
    EXPECT_EQ(revoked.status, 401);
    EXPECT_EQ(code(revoked), "invalid_api_key");
    auto dev = host->get("/api/v1/health", key_header(form, "kg_dev_bob"));
    EXPECT_EQ(dev.status, 401);
    EXPECT_EQ(code(dev), "invalid_api_key");
  }
  // The file holds hashes only.
  std::string stored = read_file_text(file);
  EXPECT_EQ(stored.find(pro), std::string::npos);
}

TEST(AuthKeys, KeysFileWithABadLineRefusesToStartNamingFileAndLine) {
  TempDir dir;
  std::string file = (dir.path() / "keys.jsonl").string();
  mint(file, "acme", "user_1", "PRO");
  {
    std::ofstream out(file, std::ios::app);
    out << "# a "
           "comment\n{\"sha256\":\"not-a-hash\",\"tenant_id\":\"t\",\"user_id\":\"u\",\"tier\":"
           "\"PRO\"}\n";
  }
  auto cfg =
      write_file(dir, "kghost.toml", make_config({.auth = "keys_file = \"" + file + "\"\n"}));
  for (auto args : {std::vector<std::string>{"--config", cfg, "--check"},
                    std::vector<std::string>{"--config", cfg, "--listen", "127.0.0.1:0"}}) {
    auto r = run_kghost(args);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find(file + ":3:"), std::string::npos) << r.output;
  }
  auto missing = write_file(dir, "missing.toml",
                            make_config({.auth = "keys_file = \"/nonexistent/keys.jsonl\"\n"}));
  auto r = run_kghost({"--config", missing, "--check"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("/nonexistent/keys.jsonl"), std::string::npos) << r.output;
}

TEST(AuthModes, ProductionWithDevkeysEnabledExits2) {
  TempDir dir;
  auto cfg = write_file(dir, "kghost.toml", make_config({.mode = "production", .devkeys = true}));
  auto check = run_kghost({"--config", cfg, "--check"});
  EXPECT_EQ(check.exit_code, 2) << check.output;
  EXPECT_NE(check.output.find("devkeys"), std::string::npos) << check.output;
  auto run = run_kghost({"--config", cfg, "--listen", "127.0.0.1:0"});
  EXPECT_EQ(run.exit_code, 2) << run.output;
  // KG_MODE wins over the file.
  auto dev_cfg = write_file(dir, "dev.toml", make_config({.mode = "dev", .devkeys = true}));
  EXPECT_EQ(run_kghost({"--config", dev_cfg, "--check"}, {{"KG_MODE", "production"}}).exit_code, 2);
  EXPECT_EQ(run_kghost({"--config", dev_cfg, "--check"}).exit_code, 0);
}

TEST(AuthModes, ProductionWithDevkeysDisabledRejectsDevKeys) {
  auto host = start({.mode = "production", .devkeys = false});
  for (auto& form : kForms) {
    for (auto key : {"kg_dev_alice", "kg_dev_bob", "kg_dev_carol"}) {
      auto r = host->get("/api/v1/health", key_header(form, key));
      EXPECT_EQ(r.status, 401) << key;
      EXPECT_EQ(code(r), "invalid_api_key");
    }
  }
}

TEST(AuthLogs, KeysNeverAppearInTheLog) {
  TempDir dir;
  std::string file = (dir.path() / "keys.jsonl").string();
  std::string live = mint(file, "acme", "user_1", "FREE");
  const std::string unknown = "kg_live_ThisKeyIsNotInTheFile0123456789abcdefghij";
  auto host = start({.auth = "keys_file = \"" + file +
                             "\"\nwindow_s = 3600\n[plugins.config.tiers.FREE]\nlimit = 2\n"});
  for (auto& form : kForms) {
    for (auto& key : {live, std::string("kg_dev_bob"), unknown, std::string("kg_dev_mallory")}) {
      host->get("/api/v1/health", key_header(form, key));
      host->get("/test/write", key_header(form, key));
    }
  }
  host->get("/api/v1/health", {"X-API-Key: " + live, "Authorization: Bearer " + unknown});
  auto log = host->log();
  // The log is not empty: debug lines about rejected keys were written (without the keys).
  EXPECT_NE(log.find("rejected an API key"), std::string::npos) << log;
  for (auto& key : {live, std::string("kg_dev_bob"), unknown, std::string("kg_dev_mallory")})
    EXPECT_EQ(log.find(key), std::string::npos) << "key found in the log: " << key.substr(0, 8);
  EXPECT_EQ(log.find(live.substr(0, 16)), std::string::npos);
}
