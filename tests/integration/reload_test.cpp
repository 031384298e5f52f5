// Reload without a restart (SIGHUP, POST /admin/reload) against a real host: plugins enabled,
// disabled and re-configured take effect for new requests; a kept plugin keeps its instance;
// a held deferred answer and an open SSE stream finish on the generation they started with;
// a bad config or a failing plugin leaves the running generation serving.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "host.hpp"

namespace kghost::test {
namespace {

using json = nlohmann::json;

json body_json(const HttpResult& r) { return json::parse(r.body, nullptr, false); }

struct Entry {
  std::string name;
  bool enabled = true;
  std::string value = "one";
  bool fail_create = false;
};

class Reload : public ::testing::Test {
 protected:
  void SetUp() override { marker_ = (dir_.path() / "marker.log").string(); }

  // auth + devkeys (for /admin/reload) and the fixture plugins as given.
  std::string config(const std::vector<Entry>& entries, const std::string& extra = "") const {
    std::string s = "mode = \"dev\"\nlog_level = \"info\"\n" + extra +
                    "[server]\nthreads = 2\n"
                    "[[plugins]]\nname = \"auth\"\npath = \"${KG_PLUGIN_DIR}/kg_auth.so\"\n"
                    "[[plugins]]\nname = \"devkeys\"\npath = \"${KG_PLUGIN_DIR}/kg_devkeys.so\"\n"
                    "[[plugins]]\nname = \"observability\"\n"
                    "path = \"${KG_PLUGIN_DIR}/kg_observability.so\"\n";
    for (auto& e : entries) {
      s += "[[plugins]]\nname = \"" + e.name + "\"\npath = \"${KG_TEST_PLUGIN_DIR}/kg_" + e.name +
           ".so\"\nenabled = " + (e.enabled ? "true" : "false") + "\n[plugins.config]\nvalue = \"" +
           e.value + "\"\nmarker_file = \"" + marker_ + "\"\n";
      if (e.fail_create) s += "fail_create = \"true\"\n";
    }
    return s;
  }
  void start(const std::vector<Entry>& entries) {
    host_ = std::make_unique<KgHost>(config(entries));
    ASSERT_TRUE(host_->wait_ready()) << host_->log();
  }
  HttpResult admin_reload() const {
    return http(host_->port(), "POST", "/admin/reload", {"X-API-Key: kg_dev_carol"}, "",
                std::chrono::seconds(30));
  }
  std::string markers() const {
    std::ifstream in(marker_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  int count_lines(const std::string& line) const {
    std::istringstream in(markers());
    int n = 0;
    for (std::string l; std::getline(in, l);) n += l == line;
    return n;
  }
  json value(const std::string& name) const { return body_json(host_->get("/" + name + "/value")); }
  double metric(const std::string& series) const {
    auto text = host_->get("/metrics").body;
    auto at = text.find("\n" + series + " ");
    return at == std::string::npos ? -1 : std::stod(text.substr(at + series.size() + 2));
  }

  TempDir dir_;
  std::string marker_;
  std::unique_ptr<KgHost> host_;
};

TEST_F(Reload, SighupEnablesAPluginAndKeepsTheOthersInstance) {
  start({{"reload_a"}, {"reload_b", false}});
  EXPECT_EQ(host_->get("/reload_b/value").status, 404);
  auto before = value("reload_a");
  EXPECT_EQ(value("reload_a")["count"], 2);

  host_->rewrite_config(config({{"reload_a"}, {"reload_b", true, "bee"}}));
  host_->process().signal(SIGHUP);
  ASSERT_TRUE(wait_until([&] { return host_->get("/reload_b/value").status == 200; }, 20s))
      << host_->log();
  EXPECT_EQ(value("reload_b")["value"], "bee");
  auto after = value("reload_a");
  EXPECT_EQ(after["instance"], before["instance"]);  // the same instance: not re-created
  EXPECT_EQ(after["count"], 3);                      // its in-memory state survived
  EXPECT_EQ(count_lines("stop reload_a " + std::to_string(before["instance"].get<int>()) + " one"),
            0);
  EXPECT_TRUE(host_->process().running());
  EXPECT_TRUE(wait_until([&] { return metric("kgents_config_generation") == 2; }));
  EXPECT_EQ(metric("kgents_config_reloads_total{result=\"ok\"}"), 1);
  auto health = body_json(host_->get("/health"));
  EXPECT_EQ(health["generation"]["number"], 2);
  EXPECT_TRUE(health["generation"]["loaded_at"].is_string());
}

TEST_F(Reload, AdminReloadDisablesAPluginWhoseStopRunsOnce) {
  start({{"reload_a"}, {"reload_b"}});
  int b = value("reload_b")["instance"];
  host_->rewrite_config(config({{"reload_a"}, {"reload_b", false}}));
  auto r = admin_reload();
  ASSERT_EQ(r.status, 200) << r.body << host_->log();
  auto j = body_json(r);
  EXPECT_EQ(j["result"], "ok");
  EXPECT_EQ(j["changes"]["removed"], json::array({"reload_b"}));
  EXPECT_EQ(host_->get("/reload_b/value").status, 404);
  std::string stop = "stop reload_b " + std::to_string(b) + " one";
  ASSERT_TRUE(wait_until([&] {
    return count_lines("destroy reload_b " + std::to_string(b) + " one") == 1;
  })) << markers();
  EXPECT_EQ(count_lines(stop), 1);
  EXPECT_EQ(value("reload_a")["value"], "one");
}

TEST_F(Reload, ReconfiguredPluginIsRecreatedAndTheOldOneGoesAfterItsLastRequest) {
  start({{"reload_a"}});
  int old_id = value("reload_a")["instance"];
  // A request held by the old instance across the reload.
  HttpResult slow;
  std::thread client([&] { slow = host_->get("/reload_a/slow"); });
  ASSERT_TRUE(wait_until([&] { return body_json(host_->get("/reload_a/held"))["held"] == 1; }));

  host_->rewrite_config(config({{"reload_a", true, "two"}}));
  auto r = admin_reload();
  ASSERT_EQ(r.status, 200) << r.body << host_->log();
  EXPECT_EQ(body_json(r)["changes"]["reconfigured"], json::array({"reload_a"}));
  auto now = value("reload_a");
  EXPECT_EQ(now["value"], "two");
  EXPECT_NE(now["instance"], old_id);
  // The old instance still has a request in flight: not stopped, not destroyed.
  std::string old = " reload_a " + std::to_string(old_id) + " one";
  EXPECT_EQ(count_lines("stop" + old), 0);

  // The new instance releases the held answer: it reaches its client from the old generation.
  EXPECT_EQ(body_json(host_->post("/reload_a/release", ""))["released"], 1);
  client.join();
  EXPECT_EQ(slow.status, 200);
  EXPECT_EQ(body_json(slow)["late"], "one");
  ASSERT_TRUE(wait_until([&] { return count_lines("destroy" + old) == 1; })) << markers();
  EXPECT_EQ(count_lines("stop" + old), 1);
  auto lines = markers();
  EXPECT_LT(lines.find("stop" + old), lines.find("destroy" + old));
}

TEST_F(Reload, BadConfigKeepsTheRunningGenerationAndSaysWhere) {
  start({{"reload_a"}});
  int id = value("reload_a")["instance"];
  host_->rewrite_config(config({{"reload_a", true, "two"}}) + "[server\nthreads = 3\n");
  auto r = admin_reload();
  EXPECT_EQ(r.status, 422) << r.body;
  auto j = body_json(r);
  EXPECT_EQ(j["error"]["code"], "reload_failed");
  std::string reason = j["reload"]["reason"];
  EXPECT_NE(reason.find(host_->config_path() + ":"), std::string::npos) << reason;  // file:line
  EXPECT_EQ(value("reload_a")["instance"], id);
  EXPECT_EQ(value("reload_a")["value"], "one");
  EXPECT_NE(host_->log().find("reload failed"), std::string::npos);
  EXPECT_EQ(metric("kgents_config_reloads_total{result=\"failed\"}"), 1);
  EXPECT_EQ(metric("kgents_config_generation"), 1);
}

TEST_F(Reload, FailingCreateKeepsTheRunningGenerationAndNamesThePlugin) {
  start({{"reload_a"}});
  int id = value("reload_a")["instance"];
  host_->rewrite_config(config({{"reload_a", true, "two"}, {"reload_b", true, "x", true}}));
  host_->process().signal(SIGHUP);
  ASSERT_TRUE(wait_until([&] { return host_->log().find("reload failed") != std::string::npos; }));
  auto log = host_->log();
  EXPECT_NE(log.find("reload_b"), std::string::npos);
  EXPECT_NE(log.find("fail_create is set"), std::string::npos);
  EXPECT_EQ(value("reload_a")["instance"], id);
  EXPECT_EQ(value("reload_a")["value"], "one");
  EXPECT_EQ(host_->get("/reload_b/value").status, 404);
  auto r = admin_reload();
  EXPECT_EQ(r.status, 422);
  EXPECT_NE(body_json(r)["reload"]["reason"].get<std::string>().find("plugin reload_b"),
            std::string::npos);
  // The re-created reload_a of the failed attempt was destroyed; the serving one never stopped.
  EXPECT_TRUE(wait_until([&] {
    return count_lines("destroy reload_a " + std::to_string(id + 1) + " two") == 1;
  })) << markers();
  EXPECT_EQ(count_lines("stop reload_a " + std::to_string(id) + " one"), 0);
}

TEST_F(Reload, StreamOpenAcrossAReloadKeepsReceiving) {
  start({{"reload_a"}});
  RawClient stream(host_->port());
  ASSERT_TRUE(stream.send("GET /reload_a/stream HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string got = stream.read_some(std::chrono::milliseconds(500));
  ASSERT_NE(got.find("\"value\":\"one\""), std::string::npos) << got;

  host_->rewrite_config(config({{"reload_a", true, "two"}}));
  ASSERT_EQ(admin_reload().status, 200);
  ASSERT_EQ(value("reload_a")["value"], "two");
  // Still fed by the old instance, after the new one serves.
  std::string later;
  ASSERT_TRUE(wait_until([&] {
    later += stream.read_some(std::chrono::milliseconds(100));
    return later.find("\"value\":\"one\"") != std::string::npos;
  }));
  EXPECT_EQ(later.find("\"value\":\"two\""), std::string::npos);
}

TEST_F(Reload, KeepAliveConnectionPicksUpTheNewGenerationOnItsNextRequest) {
  start({{"reload_a"}});
  RawClient c(host_->port());
  auto ask = [&] {
    c.send("GET /reload_a/value HTTP/1.1\r\nHost: x\r\n\r\n");
    return body_json(c.read_response());
  };
  EXPECT_EQ(ask()["value"], "one");
  host_->rewrite_config(config({{"reload_a", true, "two"}}));
  ASSERT_EQ(admin_reload().status, 200);
  EXPECT_EQ(ask()["value"], "two");  // same connection
}

TEST_F(Reload, RestartOnlySettingsAreReportedNotApplied) {
  start({{"reload_a"}});
  host_->rewrite_config(config({{"reload_a"}}, "data_dir = \"/elsewhere\"\n"));
  auto r = admin_reload();
  ASSERT_EQ(r.status, 200) << r.body;
  auto restart = body_json(r)["changes"]["needs_restart"];
  ASSERT_EQ(restart.size(), 1u) << r.body;
  EXPECT_NE(restart[0].get<std::string>().find("data_dir"), std::string::npos);
  EXPECT_NE(host_->log().find("needs a restart"), std::string::npos);
}

TEST_F(Reload, APluginFileRebuiltInPlaceIsReportedNotSilentlyKept) {
  // The plugin loaded from a copy we can overwrite, as an operator copying a new build over it.
  auto copy = (dir_.path() / "kg_reload_a.so").string();
  std::filesystem::copy_file(test_plugin_dir() + "/kg_reload_a.so", copy);
  auto cfg = [&](const std::string& value) {
    auto s = config({{"reload_a", true, value}});
    auto at = s.find("${KG_TEST_PLUGIN_DIR}/kg_reload_a.so");
    return s.replace(at, std::string("${KG_TEST_PLUGIN_DIR}/kg_reload_a.so").size(), copy);
  };
  host_ = std::make_unique<KgHost>(cfg("one"));
  ASSERT_TRUE(host_->wait_ready()) << host_->log();
  {  // a "new build": other bytes at the same path
    std::ofstream out(copy, std::ios::app | std::ios::binary);
    out << "rebuilt";
  }
  host_->rewrite_config(cfg("two"));
  auto r = admin_reload();
  ASSERT_EQ(r.status, 200) << r.body;
  auto warnings = body_json(r)["warnings"];
  ASSERT_EQ(warnings.size(), 1u) << r.body;
  EXPECT_NE(warnings[0].get<std::string>().find("new file name"), std::string::npos);
  EXPECT_NE(host_->log().find("changed since it was loaded"), std::string::npos);
}

}  // namespace
}  // namespace kghost::test
