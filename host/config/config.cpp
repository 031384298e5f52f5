#include "config/config.hpp"

#include <arpa/inet.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

namespace kghost {
namespace {

std::string where(const std::string& source, const toml::source_region& r) {
  return source + ":" + std::to_string(r.begin.line) + ":" + std::to_string(r.begin.column);
}

// Reads one table's keys into typed fields, rejecting unknown keys with the list of known ones.
class TableReader {
 public:
  TableReader(const toml::table& t, std::string path, const std::string& source,
              const EnvLookup& env)
      : t_(t), path_(std::move(path)), source_(source), env_(env) {}

  [[noreturn]] void fail(const toml::node& n, const std::string& key,
                         const std::string& msg) const {
    throw ConfigError(where(source_, n.source()) + ": " + qualified(key) + ": " + msg);
  }

  std::optional<std::string> string(const std::string& key) {
    const toml::node* n = take(key);
    if (!n) return std::nullopt;
    if (!n->is_string()) fail(*n, key, "expected a string");
    try {
      return expand_env(n->as_string()->get(), env_);
    } catch (const std::invalid_argument& e) {
      fail(*n, key, e.what());
    }
  }
  std::optional<int64_t> integer(const std::string& key, int64_t min, int64_t max) {
    const toml::node* n = take(key);
    if (!n) return std::nullopt;
    int64_t v = 0;
    if (n->is_integer()) {
      v = n->as_integer()->get();
    } else if (n->is_string()) {  // "${ENV:-8}" style values
      std::string s;
      try {
        s = expand_env(n->as_string()->get(), env_);
        std::size_t used = 0;
        v = std::stoll(s, &used);
        if (used != s.size()) throw std::invalid_argument("trailing text");
      } catch (const std::exception&) {
        fail(*n, key, "expected an integer, got \"" + s + "\"");
      }
    } else {
      fail(*n, key, "expected an integer");
    }
    if (v < min || v > max)
      fail(*n, key,
           "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " +
               std::to_string(v));
    return v;
  }
  std::optional<bool> boolean(const std::string& key) {
    const toml::node* n = take(key);
    if (!n) return std::nullopt;
    if (n->is_boolean()) return n->as_boolean()->get();
    if (n->is_string()) {
      std::string s = expand_env(n->as_string()->get(), env_);
      if (s == "true") return true;
      if (s == "false") return false;
    }
    fail(*n, key, "expected true or false");
  }
  const toml::node* raw(const std::string& key) { return take(key); }

  // Call last: any key not read is a mistake (typo or unsupported setting).
  void reject_unknown() const {
    for (auto&& [k, v] : t_) {
      std::string key(k.str());
      if (!seen_.count(key)) {
        std::string known;
        for (auto& s : seen_all_) known += (known.empty() ? "" : ", ") + s;
        throw ConfigError(where(source_, k.source()) + ": unknown key " + qualified(key) +
                          (known.empty() ? "" : " (known keys here: " + known + ")"));
      }
    }
  }

 private:
  const toml::node* take(const std::string& key) {
    seen_all_.insert(key);
    const toml::node* n = t_.get(key);
    if (n) seen_.insert(key);
    return n;
  }
  std::string qualified(const std::string& key) const {
    return "'" + (path_.empty() ? key : path_ + "." + key) + "'";
  }

  const toml::table& t_;
  std::string path_;
  const std::string& source_;
  const EnvLookup& env_;
  std::set<std::string> seen_, seen_all_;
};

nlohmann::json to_json(const toml::node& n, const std::string& source, const EnvLookup& env,
                       const std::string& path) {
  if (auto* t = n.as_table()) {
    nlohmann::json o = nlohmann::json::object();
    for (auto&& [k, v] : *t)
      o[std::string(k.str())] = to_json(v, source, env, path + "." + std::string(k.str()));
    return o;
  }
  if (auto* a = n.as_array()) {
    nlohmann::json arr = nlohmann::json::array();
    for (std::size_t i = 0; i < a->size(); ++i)
      arr.push_back(to_json(*a->get(i), source, env, path + "[" + std::to_string(i) + "]"));
    return arr;
  }
  if (auto* s = n.as_string()) {
    try {
      return expand_env(s->get(), env);
    } catch (const std::invalid_argument& e) {
      throw ConfigError(where(source, n.source()) + ": '" + path + "': " + e.what());
    }
  }
  if (auto* i = n.as_integer()) return i->get();
  if (auto* f = n.as_floating_point()) return f->get();
  if (auto* b = n.as_boolean()) return b->get();
  // Dates and times are passed on as their TOML text.
  std::ostringstream os;
  n.visit([&](auto&& v) { os << v; });
  return os.str();
}

std::filesystem::path resolve(const std::filesystem::path& base, const std::string& p) {
  std::filesystem::path path(p);
  return path.is_relative() && !base.empty() ? base / path : path;
}

bool valid_plugin_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

constexpr const char* kListenHelp =
    "is not HOST:PORT with an IP address and a port 0-65535 (e.g. \"127.0.0.1:8080\", "
    "\"[::1]:8080\" or \":8080\" for every address)";

// [server]
void read_server(const toml::node* n, TableReader& top, const std::string& source,
                 const EnvLookup& env, ServerConfig& sc) {
  if (!n->is_table()) top.fail(*n, "server", "expected a table [server]");
  TableReader s(*n->as_table(), "server", source, env);
  if (auto v = s.string("listen")) {
    if (!parse_listen(*v))
      s.fail(*n->as_table()->get("listen"), "listen", "\"" + *v + "\" " + kListenHelp);
    sc.listen = *v;
  }
  if (auto v = s.integer("threads", 0, 256)) sc.threads = static_cast<unsigned>(*v);
  if (auto v = s.integer("max_body_bytes", 1, int64_t{1} << 34)) sc.max_body_bytes = *v;
  if (auto v = s.integer("max_header_bytes", 1024, 1 << 20)) sc.max_header_bytes = *v;
  if (auto v = s.integer("header_timeout_s", 1, 3600)) sc.header_timeout = std::chrono::seconds(*v);
  if (auto v = s.integer("body_timeout_s", 1, 3600)) sc.body_timeout = std::chrono::seconds(*v);
  if (auto v = s.integer("idle_timeout_s", 1, 86400)) sc.idle_timeout = std::chrono::seconds(*v);
  if (auto v = s.integer("drain_timeout_s", 0, 3600)) sc.drain_timeout = std::chrono::seconds(*v);
  if (auto v = s.integer("handler_timeout_s", 1, 86400))
    sc.handler_timeout = std::chrono::seconds(*v);
  if (auto v = s.integer("lingering_timeout_s", 0, 3600))
    sc.lingering_timeout = std::chrono::seconds(*v);
  if (auto v = s.integer("lingering_bytes", 0, int64_t{1} << 34)) sc.lingering_bytes = *v;
  if (auto v = s.integer("stream_buffer_bytes", 1024, int64_t{1} << 30))
    sc.stream_buffer_bytes = *v;
  s.reject_unknown();
}

// [store]
void read_store(const toml::node* n, TableReader& top, const std::string& source,
                const EnvLookup& env, StoreConfig& store) {
  if (!n->is_table()) top.fail(*n, "store", "expected a table [store]");
  TableReader s(*n->as_table(), "store", source, env);
  if (auto v = s.string("backend")) {
    const toml::node& b = *n->as_table()->get("backend");
    if (*v != "memory" && !valid_plugin_name(*v))
      s.fail(b, "backend",
             "expected \"memory\" or the name of a store provider plugin listed in [[plugins]] "
             "(e.g. \"store_redis\"), got \"" +
                 *v + "\"");
    store.backend = *v == "redis" ? "store_redis" : *v;
    store.origin = where(source, b.source());
  }
  // The old Redis keys, kept working: they configure the store_redis plugin.
  if (auto v = s.string("redis_url")) store.redis_keys["url"] = *v;
  if (auto v = s.integer("redis_pool", 1, 64)) store.redis_keys["pool"] = *v;
  if (auto v = s.integer("redis_timeout_ms", 1, 60000)) store.redis_keys["timeout_ms"] = *v;
  s.reject_unknown();
}

// [[plugins]]
void read_plugins(const toml::node* n, TableReader& top, const std::string& source,
                  const std::filesystem::path& base_dir, const EnvLookup& env,
                  std::vector<PluginEntry>& plugins) {
  if (!n->is_array_of_tables()) top.fail(*n, "plugins", "expected [[plugins]] entries");
  std::set<std::string> names;
  for (auto& el : *n->as_array()) {
    auto& t = *el.as_table();
    TableReader p(t, "plugins", source, env);
    PluginEntry e;
    e.origin = where(source, t.source());
    auto name = p.string("name");
    if (!name) throw ConfigError(e.origin + ": a [[plugins]] entry needs name = \"...\"");
    if (!valid_plugin_name(*name))
      p.fail(*t.get("name"), "name", "\"" + *name + "\" is not a plugin name ([a-z0-9_]{1,64})");
    if (!names.insert(*name).second)
      p.fail(*t.get("name"), "name", "plugin \"" + *name + "\" is listed twice; keep one entry");
    e.name = *name;
    if (auto v = p.string("path")) e.path = resolve(base_dir, *v);
    if (auto v = p.boolean("enabled")) e.enabled = *v;
    if (auto v = p.boolean("required")) e.required = *v;
    if (const toml::node* c = p.raw("config")) {
      if (!c->is_table()) p.fail(*c, "config", "expected a table [plugins.config]");
      e.config = to_json(*c, source, env, "plugins." + e.name + ".config");
    }
    p.reject_unknown();
    plugins.push_back(std::move(e));
  }
}

// Environment overrides (CONTRACT §1): they win over the file. Then the checks that need both.
void apply_env(const std::string& source, const EnvLookup& env, HostConfig& cfg) {
  if (auto v = env("KG_LISTEN"); v && !v->empty()) {
    if (!parse_listen(*v)) throw ConfigError("KG_LISTEN: \"" + *v + "\" " + kListenHelp);
    cfg.server.listen = *v;
  }
  if (auto v = env("KG_MODE"); v && !v->empty()) cfg.mode = *v;
  if (auto v = env("REDIS_URL"); v && !v->empty()) {
    cfg.store.redis_keys["url"] = *v;
    cfg.store.redis_url_from_env = true;
    if (cfg.store.backend != "store_redis") cfg.store.origin = "REDIS_URL";
    cfg.store.backend = "store_redis";
  }
  if (cfg.mode != "dev" && cfg.mode != "production")
    throw ConfigError(
        source + ": mode must be \"dev\" or \"production\" (from the file or KG_MODE), got \"" +
        cfg.mode + "\"");
}

// The [[plugins]] entry of the store provider [store] backend names (store_redis's is added
// when only the old keys or REDIS_URL name it), checked and made required.
PluginEntry& store_provider_entry(HostConfig& cfg, const std::string& at) {
  const std::string& name = cfg.store.backend;
  auto it = std::find_if(cfg.plugins.begin(), cfg.plugins.end(),
                         [&](const PluginEntry& e) { return e.name == name; });
  if (it == cfg.plugins.end()) {
    if (name != "store_redis")
      throw ConfigError(at + ": store.backend \"" + name +
                        "\" names no plugin in [[plugins]]; add a [[plugins]] entry with name = "
                        "\"" +
                        name + "\" (the provider's .so), or use backend = \"memory\"");
    PluginEntry e;
    e.name = name;
    e.origin = at;
    return cfg.plugins.emplace_back(std::move(e));
  }
  const std::string why = "plugin " + name + " is the store backend (store.backend at " + at + ")";
  if (!it->enabled)
    throw ConfigError(it->origin + ": " + why +
                      " but enabled = false; enable it, or use backend = \"memory\"");
  if (!it->required)
    throw ConfigError(it->origin + ": " + why + " and cannot be optional; remove required = false");
  return *it;
}

// Puts the store provider's entry first: it is created and started before the plugins that
// use the store, stopped and destroyed after them.
void select_store_provider(HostConfig& cfg) {
  if (cfg.store.backend == "memory") return;
  const std::string at = cfg.store.origin.empty() ? cfg.source : cfg.store.origin;
  PluginEntry& entry = store_provider_entry(cfg, at);
  if (entry.name == "store_redis") {
    for (auto& [key, value] : cfg.store.redis_keys.items())
      if (!entry.config.contains(key) || (key == "url" && cfg.store.redis_url_from_env))
        entry.config[key] = value;
    if (!entry.config.contains("url"))
      throw ConfigError(at +
                        ": store.backend is store_redis but no Redis URL is set; set url in its "
                        "[plugins.config], store.redis_url, or REDIS_URL");
  }
  auto it = cfg.plugins.begin() + (&entry - cfg.plugins.data());
  std::rotate(cfg.plugins.begin(), it, std::next(it));
}

}  // namespace

std::optional<ListenAddress> parse_listen(std::string_view listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  ListenAddress out;
  std::string host(listen.substr(0, colon));
  std::string_view port = listen.substr(colon + 1);
  if (port.empty() || port.size() > 5) return std::nullopt;
  unsigned value = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > 65535) return std::nullopt;
  out.port = static_cast<uint16_t>(value);
  unsigned char addr[16];
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    if (inet_pton(AF_INET6, host.c_str(), addr) != 1) return std::nullopt;
  } else if (!host.empty() && inet_pton(AF_INET, host.c_str(), addr) != 1) {
    return std::nullopt;
  }
  out.host = std::move(host);
  return out;
}

EnvLookup process_env() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* v = std::getenv(std::string(name).c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  };
}

std::string expand_env(std::string_view text, const EnvLookup& env) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    if (text[i] != '$' || i + 1 >= text.size() || text[i + 1] != '{') {
      out += text[i++];
      continue;
    }
    std::size_t close = text.find('}', i + 2);
    if (close == std::string_view::npos)
      throw std::invalid_argument("unterminated ${ in \"" + std::string(text) +
                                  "\"; close it with }");
    std::string_view ref = text.substr(i + 2, close - i - 2);
    std::optional<std::string_view> fallback;
    if (auto d = ref.find(":-"); d != std::string_view::npos) {
      fallback = ref.substr(d + 2);
      ref = ref.substr(0, d);
    }
    bool ok = !ref.empty() && !(ref[0] >= '0' && ref[0] <= '9');
    for (char c : ref) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
    if (!ok)
      throw std::invalid_argument("bad variable name \"${" + std::string(ref) +
                                  "}\"; use ${NAME} or ${NAME:-default} with NAME in [A-Za-z0-9_]");
    auto value = env(ref);
    if (value && !(value->empty() && fallback)) {
      out += *value;
    } else if (fallback) {
      out += *fallback;
    } else {
      throw std::invalid_argument("environment variable " + std::string(ref) +
                                  " is not set; set it or give a default: ${" + std::string(ref) +
                                  ":-value}");
    }
    i = close + 1;
  }
  return out;
}

HostConfig parse_config(std::string_view text, const std::string& source,
                        const std::filesystem::path& base_dir, const EnvLookup& env) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    throw ConfigError(where(source, e.source()) + ": " + std::string(e.description()));
  }
  HostConfig cfg;
  cfg.source = source;
  TableReader top(root, "", source, env);
  if (auto m = top.string("mode")) cfg.mode = *m;
  if (auto l = top.string("log_level")) {
    if (!parse_log_level(*l, cfg.log_level))
      top.fail(*root.get("log_level"), "log_level", "expected debug, info, warn or error");
  }
  if (auto d = top.string("data_dir")) cfg.data_dir = resolve(base_dir, *d);
  if (auto d = top.string("plugin_dir")) cfg.plugin_dir = resolve(base_dir, *d);

  if (const toml::node* n = top.raw("server")) read_server(n, top, source, env, cfg.server);
  if (const toml::node* n = top.raw("store")) read_store(n, top, source, env, cfg.store);
  if (const toml::node* n = top.raw("plugins"))
    read_plugins(n, top, source, base_dir, env, cfg.plugins);
  top.reject_unknown();

  apply_env(source, env, cfg);
  select_store_provider(cfg);
  return cfg;
}

HostConfig load_config_file(const std::filesystem::path& file, const EnvLookup& env) {
  std::ifstream in(file, std::ios::binary);
  if (!in)
    throw ConfigError(file.string() +
                      ": cannot read the config file (does it exist? check --config)");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config(ss.str(), file.string(), file.parent_path(), env);
}

}  // namespace kghost
