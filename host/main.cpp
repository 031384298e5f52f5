// kghost: flags, signals and wiring. Everything else lives in the folders beside this file.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

#include "config/config.hpp"
#include "http/server.hpp"
#include "plugins/host_routes.hpp"
#include "plugins/plugin_host.hpp"
#include "version.hpp"

namespace {

constexpr const char* kUsage = R"(usage: kghost [--config FILE.toml] [--listen HOST:PORT] [--check]
              [--ready-file PATH]
       kghost --version | --help

  --config FILE   the TOML config (default: the embedded config/dev.toml)
  --listen ADDR   listen address, overrides the config and KG_LISTEN (port 0: any free port)
  --ready-file P  once the listener is up and the host ready, write its bound address
                  ("127.0.0.1:PORT" and a newline) to P atomically; removed on a clean stop
  --check         parse the config, load and initialise every enabled plugin, print what was
                  found, and exit 0 (or 2 on a problem), like nginx -t
Environment: KG_LISTEN, KG_MODE (dev|production), REDIS_URL, KG_DATA_DIR and any ${NAME} the
config uses. Exit codes: 0 clean stop, 2 bad config or plugin, 1 anything else.
)";

struct Options {
  std::optional<std::string> config;
  std::optional<std::string> listen;
  std::optional<std::filesystem::path> ready_file;
  bool check = false;
};

std::filesystem::path default_plugin_dir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec).parent_path();
  if (std::filesystem::exists(exe / "plugins", ec)) return exe / "plugins";
  return exe.parent_path() / "lib" / "kghost" / "plugins";  // installed layout
}

void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

// Writes a temporary file beside `path` and renames it, so a reader never sees half a line.
// Returns what went wrong, or "".
std::string write_ready_file(const std::filesystem::path& path, const std::string& address) {
  auto tmp = path;
  tmp += ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << address << "\n";
    out.flush();
    if (!out) return "cannot write the ready file " + tmp.string();
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return "cannot write the ready file " + path.string() + ": " + ec.message();
  }
  return "";
}

int run(kghost::HostConfig& cfg, const Options& opts, const sigset_t& signals) {
  const bool check_only = opts.check;
  using namespace kghost;
  Logger log(cfg.log_level);
  Metrics metrics;
  WorkerPool pool(std::max(2u, std::thread::hardware_concurrency()));
  std::unique_ptr<Store> store =
      cfg.store.backend == "redis"
          ? make_redis_store(RedisOptions{cfg.store.redis_url, cfg.store.redis_pool,
                                          cfg.store.redis_timeout, std::chrono::milliseconds(1000)},
                             metrics.registry(), log)
          : make_memory_store(metrics.registry());
  EventBus bus(pool, metrics.registry(), log);
  TaskRunner tasks(pool);
  Pipeline pipeline(log);
  HostState state;
  PluginHost* plugins_ptr = nullptr;
  HostServices services{log,
                        metrics,
                        pipeline,
                        *store,
                        bus,
                        pool,
                        tasks,
                        cfg.mode,
                        cfg.data_dir,
                        cfg.data_dir.string(),
                        [&] { return health_document(*plugins_ptr, *store, state).dump(); }};
  PluginHost plugins(services);
  plugins_ptr = &plugins;
  if (auto err = register_host_routes(pipeline, plugins, *store, state, pool); !err.empty())
    throw std::runtime_error(err);

  plugins.load(cfg);
  if (check_only) {
    nlohmann::json routes = nlohmann::json::array();
    for (auto* r : pipeline.router().routes())
      routes.push_back(r->method + " " + r->path + " (" + r->owner + ")");
    nlohmann::json report = {{"config", cfg.source},          {"mode", cfg.mode},
                             {"listen", cfg.server.listen},   {"store", cfg.store.backend},
                             {"plugins", plugins.describe()}, {"routes", routes}};
    std::cout << report.dump(2) << "\nconfiguration ok\n";
    plugins.stop();
    return 0;
  }
  plugins.start();

  HttpServer server(cfg.server, pipeline, log);
  server.start();
  tasks.start();
  state.ready = true;
  log.info("listening on " + server.local_address() + " (mode " + cfg.mode + ", config " +
           cfg.source + ", " + std::to_string(plugins.plugins().size()) + " plugins)");
  int exit_code = 0;
  if (auto err = opts.ready_file ? write_ready_file(*opts.ready_file, server.local_address()) : "";
      !err.empty()) {
    // Whoever waits for the file would wait forever: stop the usual way and say why.
    log.error(err + "; stopping");
    exit_code = 1;
  } else {
    int sig = 0;
    sigwait(&signals, &sig);
    log.info(std::string("received ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") +
             ": draining (up to " + std::to_string(cfg.server.drain_timeout.count()) + " s)");
  }
  state.ready = false;
  pipeline.begin_shutdown();  // streams ended from here on are reported as ended by the host
  bool drained = server.drain(cfg.server.drain_timeout);
  pipeline.end_streams();
  if (!drained)
    log.warn(std::to_string(server.in_flight()) +
             " requests were still in flight at the drain timeout");
  tasks.stop();
  plugins.stop();
  server.stop();
  bus.stop();
  store->stop();
  pool.stop();
  plugins.destroy();
  if (opts.ready_file) {
    std::error_code ec;
    std::filesystem::remove(*opts.ready_file, ec);
  }
  log.info("stopped");
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  Options opts;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* flag) -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "kghost: " << flag << " needs a value\n" << kUsage;
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    } else if (a == "--version") {
      std::cout << "kghost " << KGHOST_VERSION << " (plugin ABI " << KG_ABI_MAJOR << "."
                << KG_ABI_MINOR << ")\n";
      return 0;
    } else if (a == "--config") {
      opts.config = value("--config");
    } else if (a == "--listen") {
      opts.listen = value("--listen");
    } else if (a == "--ready-file") {
      opts.ready_file = value("--ready-file");
    } else if (a == "--check") {
      opts.check = true;
    } else {
      std::cerr << "kghost: unknown argument '" << a << "'\n" << kUsage;
      return 2;
    }
  }

  // Signals are taken by sigwait in main; every thread started later inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();

  try {
    auto env = kghost::process_env();
    kghost::HostConfig cfg =
        opts.config
            ? kghost::load_config_file(*opts.config, env)
            : kghost::parse_config(kghost::embedded_dev_config(), "<embedded config/dev.toml>",
                                   std::filesystem::current_path(), env);
    if (opts.listen) {
      if (!kghost::parse_listen(*opts.listen))
        throw kghost::ConfigError("--listen \"" + *opts.listen +
                                  "\" is not HOST:PORT with an IP address and a port 0-65535");
      cfg.server.listen = *opts.listen;
    }
    if (cfg.plugin_dir.empty()) cfg.plugin_dir = default_plugin_dir();
    return run(cfg, opts, signals);
  } catch (const kghost::ConfigError& e) {
    std::cerr << "kghost: config error: " << e.what() << "\n";
    return 2;
  } catch (const kghost::PluginError& e) {
    std::cerr << "kghost: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "kghost: " << e.what() << "\n";
    return 1;
  }
}
