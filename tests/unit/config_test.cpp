#include "config/config.hpp"

#include <gtest/gtest.h>

#include <map>

using namespace kghost;

namespace {

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

HostConfig parse(const std::string& text, std::map<std::string, std::string> vars = {}) {
  return parse_config(text, "test.toml", "/base", env_of(std::move(vars)));
}

std::string error_of(const std::string& text, std::map<std::string, std::string> vars = {}) {
  try {
    parse(text, std::move(vars));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ExpandEnv, SubstitutesVariablesAndDefaults) {
  auto env = env_of({{"A", "1"}, {"EMPTY", ""}});
  EXPECT_EQ(expand_env("x${A}y", env), "x1y");
  EXPECT_EQ(expand_env("${B:-two}", env), "two");
  EXPECT_EQ(expand_env("${EMPTY:-d}", env), "d");
  EXPECT_EQ(expand_env("${EMPTY}", env), "");
  EXPECT_EQ(expand_env("${A:-}", env), "1");
  EXPECT_EQ(expand_env("$A and $", env), "$A and $");
}

TEST(ExpandEnv, ExplainsMistakes) {
  auto env = env_of({});
  EXPECT_THROW(expand_env("${UNSET}", env), std::invalid_argument);
  EXPECT_THROW(expand_env("${A", env), std::invalid_argument);
  EXPECT_THROW(expand_env("${}", env), std::invalid_argument);
  EXPECT_THROW(expand_env("${1A}", env), std::invalid_argument);
  try {
    expand_env("${UNSET}", env);
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("UNSET is not set"), std::string::npos);
  }
}

TEST(Config, DefaultsMatchTheContract) {
  auto c = parse("");
  EXPECT_EQ(c.mode, "dev");
  EXPECT_EQ(c.server.max_body_bytes, 1u << 20);
  EXPECT_EQ(c.server.max_header_bytes, 16u << 10);
  EXPECT_EQ(c.server.header_timeout.count(), 10);
  EXPECT_EQ(c.server.idle_timeout.count(), 60);
  EXPECT_EQ(c.store.backend, "memory");
}

TEST(Config, ReadsPluginsWithEnvExpandedConfigAsJson) {
  auto c = parse(R"(
[[plugins]]
name = "billing"
path = "lib/kg_billing.so"
required = false
[plugins.config]
url = "${OM:-http://localhost}"
batch = 100
nested = { on = true, list = ["a", "${X}"] }
)",
                 {{"X", "ex"}});
  ASSERT_EQ(c.plugins.size(), 1u);
  auto& p = c.plugins[0];
  EXPECT_EQ(p.name, "billing");
  EXPECT_EQ(p.path, "/base/lib/kg_billing.so");
  EXPECT_FALSE(p.required);
  EXPECT_EQ(p.config["url"], "http://localhost");
  EXPECT_EQ(p.config["batch"], 100);
  EXPECT_EQ(p.config["nested"]["list"][1], "ex");
  EXPECT_EQ(p.origin, "test.toml:2:1");  // the raw string starts with a newline
}

TEST(Config, EnvOverridesWin) {
  auto c = parse(
      "mode = \"dev\"\n[server]\nlisten = \"1.2.3.4:1\"\n",
      {{"KG_LISTEN", "127.0.0.1:9"}, {"KG_MODE", "production"}, {"REDIS_URL", "redis://r:1"}});
  EXPECT_EQ(c.server.listen, "127.0.0.1:9");
  EXPECT_EQ(c.mode, "production");
  // REDIS_URL selects the Redis store provider plugin, created first, with that URL.
  EXPECT_EQ(c.store.backend, "store_redis");
  ASSERT_FALSE(c.plugins.empty());
  EXPECT_EQ(c.plugins.front().name, "store_redis");
  EXPECT_EQ(c.plugins.front().config["url"], "redis://r:1");
}

TEST(Config, StoreBackendNamesAProviderPluginWhichComesFirst) {
  auto c = parse(
      "[store]\nbackend = \"kv\"\n[[plugins]]\nname = \"auth\"\n[[plugins]]\nname = \"kv\"\n", {});
  EXPECT_EQ(c.store.backend, "kv");
  EXPECT_EQ(c.store.origin, "test.toml:2:11");
  ASSERT_EQ(c.plugins.size(), 2u);
  EXPECT_EQ(c.plugins[0].name, "kv");  // created and started before the store's users
  EXPECT_EQ(c.plugins[1].name, "auth");
  // The old keys configure store_redis, which needs no [[plugins]] entry of its own.
  c = parse("[store]\nbackend = \"redis\"\nredis_url = \"redis://h:1\"\nredis_pool = 2\n", {});
  EXPECT_EQ(c.store.backend, "store_redis");
  ASSERT_EQ(c.plugins.size(), 1u);
  EXPECT_EQ(c.plugins[0].config["url"], "redis://h:1");
  EXPECT_EQ(c.plugins[0].config["pool"], 2);
  // A backend no [[plugins]] entry provides is an error at the backend line.
  auto e = error_of("[store]\nbackend = \"nope\"\n");
  EXPECT_NE(e.find("test.toml:2:11: store.backend \"nope\" names no plugin"), std::string::npos)
      << e;
  e = error_of("[store]\nbackend = \"kv\"\n[[plugins]]\nname = \"kv\"\nrequired = false\n");
  EXPECT_NE(e.find("cannot be optional"), std::string::npos) << e;
}

TEST(Config, ErrorsNameFileLineAndKey) {
  EXPECT_EQ(error_of("[server]\nlisten = 5\n"),
            "test.toml:2:10: 'server.listen': expected a string");
  auto e = error_of("[server]\nlisen = \"x\"\n");
  EXPECT_NE(e.find("test.toml:2:1: unknown key 'server.lisen'"), std::string::npos) << e;
  EXPECT_NE(e.find("listen"), std::string::npos) << e;  // lists the known keys
  e = error_of("[server]\nthreads = 1000\n");
  EXPECT_NE(e.find("test.toml:2:11: 'server.threads': must be between 0 and 256"),
            std::string::npos)
      << e;
  e = error_of("x = [1,\n");
  EXPECT_NE(e.find("test.toml:"), std::string::npos) << e;
  e = error_of("[[plugins]]\nname = \"a\"\n[[plugins]]\nname = \"a\"\n");
  EXPECT_NE(e.find("test.toml:4:8"), std::string::npos) << e;
  EXPECT_NE(e.find("listed twice"), std::string::npos) << e;
  e = error_of("[[plugins]]\nname = \"Bad-Name\"\n");
  EXPECT_NE(e.find("not a plugin name"), std::string::npos) << e;
  e = error_of("[[plugins]]\nname = \"a\"\n[plugins.config]\nk = \"${NOPE}\"\n");
  EXPECT_NE(e.find("test.toml:4:5: 'plugins.a.config.k': environment variable NOPE is not set"),
            std::string::npos)
      << e;
  e = error_of("mode = \"staging\"\n");
  EXPECT_NE(e.find("mode must be"), std::string::npos) << e;
  e = error_of("[store]\nbackend = \"redis\"\n");
  EXPECT_NE(e.find("redis_url"), std::string::npos) << e;
}

TEST(Config, MissingFileIsAClearError) {
  try {
    load_config_file("/nonexistent/kghost.toml", env_of({}));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/kghost.toml: cannot read"),
              std::string::npos);
  }
}

TEST(Config, EmbeddedDevConfigParses) {
  auto c = parse_config(embedded_dev_config(), "<dev>", "/", env_of({}));
  EXPECT_EQ(c.mode, "dev");
  EXPECT_FALSE(c.plugins.empty());
}

TEST(Config, ListenMustBeAnIpAddressAndAPort) {
  for (std::string ok : {"127.0.0.1:8080", "[::1]:0", ":65535", "0.0.0.0:1"})
    EXPECT_TRUE(parse_listen(ok)) << ok;
  for (std::string bad : {"127.0.0.1:70000", "localhost:80", "1.2.3.4", "1.2.3.4:", "1.2.3.4:x",
                          "::1:80", "[::1]:-1", "1.2.3:80", "1.2.3.4:+80"})
    EXPECT_FALSE(parse_listen(bad)) << bad;
  auto l = parse_listen("[::1]:8443");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->host, "::1");
  EXPECT_EQ(l->port, 8443);
  EXPECT_NE(error_of("[server]\nlisten = \"1.2.3.4:99999\"\n")
                .find("test.toml:2:10: 'server.listen': \"1.2.3.4:99999\" is not HOST:PORT"),
            std::string::npos);
  EXPECT_NE(error_of("", {{"KG_LISTEN", "nope"}}).find("KG_LISTEN"), std::string::npos);
}

TEST(Config, ServerTimeoutsAndLingering) {
  auto c =
      parse("[server]\nhandler_timeout_s = 3\nlingering_timeout_s = 0\nlingering_bytes = 1024\n");
  EXPECT_EQ(c.server.handler_timeout, std::chrono::seconds(3));
  EXPECT_EQ(c.server.lingering_timeout, std::chrono::seconds(0));
  EXPECT_EQ(c.server.lingering_bytes, 1024u);
  auto d = parse("");
  EXPECT_EQ(d.server.handler_timeout, std::chrono::seconds(30));
  EXPECT_EQ(d.server.lingering_timeout, std::chrono::seconds(5));
}
