// kghost: flags, signals and wiring. Everything else lives in the folders beside this file.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

#include "admin/host_routes.hpp"
#include "config/config.hpp"
#include "http/server.hpp"
#include "plugins/generation.hpp"
#include "plugins/store_selection.hpp"
#include "telemetry/health_board.hpp"
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

// The store's part of /health: status, backend and (when there is one) the detail.
kghost::HealthReport store_report(const kghost::Store& store) {
  auto h = store.health();
  kghost::HealthReport r{h.status, {{"backend", h.backend}}};
  if (!h.detail.empty()) r.details["detail"] = h.detail;
  return r;
}

// --check: what the config and the plugins amount to, then "configuration ok".
void print_check(const kghost::HostConfig& cfg, const kghost::Pipeline& pipeline,
                 const kghost::Generation& plugins, const kghost::Store& store) {
  nlohmann::json routes = nlohmann::json::array();
  for (auto* r : pipeline.router().routes())
    routes.push_back(r->method + " " + r->path + " (" + r->owner + ")");
  nlohmann::json report = {{"config", cfg.source},          {"mode", cfg.mode},
                           {"listen", cfg.server.listen},   {"store", store.health().backend},
                           {"plugins", plugins.describe()}, {"routes", routes}};
  std::cout << report.dump(2) << "\nconfiguration ok\n";
}

// Waits for SIGTERM/SIGINT, or stops at once when the ready file cannot be written (whoever
// waits for it would wait forever). Returns the exit code.
int wait_for_stop(const kghost::HostConfig& cfg, const Options& opts, const sigset_t& signals,
                  const std::string& address, kghost::Logger& log) {
  if (auto err = opts.ready_file ? write_ready_file(*opts.ready_file, address) : ""; !err.empty()) {
    log.error(err + "; stopping");
    return 1;
  }
  int sig = 0;
  sigwait(&signals, &sig);
  log.info(std::string("received ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") +
           ": draining (up to " + std::to_string(cfg.server.drain_timeout.count()) + " s)");
  return 0;
}

// Turns not ready, lets in-flight requests finish (up to the drain timeout), ends the streams.
void drain(const kghost::HostConfig& cfg, kghost::HostState& state, kghost::Pipeline& pipeline,
           kghost::HttpServer& server, kghost::Logger& log) {
  state.ready = false;
  pipeline.begin_shutdown();  // streams ended from here on are reported as ended by the host
  bool drained = server.drain(cfg.server.drain_timeout);
  pipeline.end_streams();
  if (!drained)
    log.warn(std::to_string(server.in_flight()) +
             " requests were still in flight at the drain timeout");
}

// Wires the host's parts in dependency order, serves until told to stop, and stops them in
// reverse. The store, the health board and the plugin generation are made here and nowhere
// else.
int run(kghost::HostConfig& cfg, const Options& opts, const sigset_t& signals) {
  using namespace kghost;
  Logger log(cfg.log_level);
  Metrics metrics;
  WorkerPool pool(std::max(2u, std::thread::hardware_concurrency()));
  std::unique_ptr<Store> store = make_configured_store(cfg.store, metrics.registry(), log);
  EventBus bus(pool, metrics.registry(), log);
  TaskRunner tasks(pool);
  Pipeline pipeline(log);
  HealthBoard health([&store] { return store_report(*store); });
  HostServices services{
      log, metrics, *store, bus, pool, health, cfg.mode, cfg.data_dir, cfg.data_dir.string()};
  auto plugins = std::make_shared<Generation>(services, pipeline, tasks);
  health.attach(plugins);
  HostState state;
  if (auto err = register_host_routes(pipeline, {health, *plugins, state, pool}); !err.empty())
    throw std::runtime_error(err);

  plugins->build(cfg);  // a store provider plugin comes first (config.hpp, StoreConfig)
  require_store_provider(*store, cfg.store);
  if (opts.check) {
    print_check(cfg, pipeline, *plugins, *store);
    plugins->stop();
    return 0;
  }
  plugins->start();
  pipeline.publish();  // serve the routes, filters and observers set up above

  HttpServer server(cfg.server, pipeline, log);
  server.start();
  tasks.start();
  state.ready = true;
  log.info("listening on " + server.local_address() + " (mode " + cfg.mode + ", config " +
           cfg.source + ", " + std::to_string(plugins->size()) + " plugins)");
  int exit_code = wait_for_stop(cfg, opts, signals, server.local_address(), log);
  drain(cfg, state, pipeline, server, log);
  tasks.stop();
  plugins->stop();
  server.stop();
  bus.stop();
  store->stop();
  pool.stop();
  plugins->destroy();
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
