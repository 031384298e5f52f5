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
#include "reload/reloader.hpp"
#include "reload/retirer.hpp"
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
Signals: SIGTERM/SIGINT drain and stop; SIGHUP reloads the config (as POST /admin/reload).
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
void print_check(const kghost::HostConfig& cfg, const kghost::Router& router,
                 const kghost::Generation& plugins, const kghost::Store& store) {
  nlohmann::json routes = nlohmann::json::array();
  for (auto* r : router.routes())
    routes.push_back(r->method + " " + r->path + " (" + r->owner + ")");
  nlohmann::json report = {{"config", cfg.source},          {"mode", cfg.mode},
                           {"listen", cfg.server.listen},   {"store", store.health().backend},
                           {"plugins", plugins.describe()}, {"routes", routes}};
  std::cout << report.dump(2) << "\nconfiguration ok\n";
}

// Serves until SIGTERM/SIGINT; each SIGHUP queues a reload (one runs at a time, so a SIGHUP
// during a reload runs after it). Stops at once when the ready file cannot be written (whoever
// waits for it would wait forever). Returns the exit code.
int serve_until_stopped(const kghost::HostConfig& cfg, const Options& opts, const sigset_t& signals,
                        const std::string& address, kghost::Reloader& reloader,
                        kghost::Logger& log) {
  if (auto err = opts.ready_file ? write_ready_file(*opts.ready_file, address) : ""; !err.empty()) {
    log.error(err + "; stopping");
    return 1;
  }
  for (;;) {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == SIGHUP) {
      log.info("received SIGHUP: reloading " + cfg.source);
      reloader.request();
      continue;
    }
    log.info(std::string("received ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") +
             ": draining (up to " + std::to_string(cfg.server.drain_timeout.count()) + " s)");
    return 0;
  }
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

// The config as the command line and the environment make it; read again by each reload.
kghost::HostConfig read_config(const Options& opts) {
  auto env = kghost::process_env();
  kghost::HostConfig cfg = opts.config ? kghost::load_config_file(*opts.config, env)
                                       : kghost::parse_config(kghost::embedded_dev_config(),
                                                              "<embedded config/dev.toml>",
                                                              std::filesystem::current_path(), env);
  if (opts.listen) {
    if (!kghost::parse_listen(*opts.listen))
      throw kghost::ConfigError("--listen \"" + *opts.listen +
                                "\" is not HOST:PORT with an IP address and a port 0-65535");
    cfg.server.listen = *opts.listen;
  }
  if (cfg.plugin_dir.empty()) cfg.plugin_dir = default_plugin_dir();
  return cfg;
}

// Wires the host's parts in dependency order, serves until told to stop, and stops them in
// reverse. The store, the health board, the generations and the reloader are made here and
// nowhere else.
int run(kghost::HostConfig& cfg, const Options& opts, const sigset_t& signals) {
  using namespace kghost;
  Logger log(cfg.log_level);
  Metrics metrics;
  WorkerPool pool(std::max(2u, std::thread::hardware_concurrency()));
  std::unique_ptr<Store> store = make_configured_store(cfg.store, metrics.registry(), log);
  EventBus bus(pool, metrics.registry(), log);
  Pipeline pipeline(log);
  HealthBoard health([&store] { return store_report(*store); });
  QueueShelf queues;
  HostServices services{log,    metrics, *store,   bus,          pool,
                        queues, health,  cfg.mode, cfg.data_dir, cfg.data_dir.string()};
  Retirer retirer;  // generations no request reaches any more are stopped and destroyed there
  HostState state;
  std::unique_ptr<Reloader> reloader;
  HostRouteSources sources{health, state, pool, [&reloader] { return reloader->describe(); },
                           [&reloader](HostRouteSources::ReloadDone done) {
                             reloader->request([done = std::move(done)](const ReloadOutcome& o) {
                               done(o.ok, o.to_json());
                             });
                           }};
  auto host_routes = [&sources](RouteTable::Builder& table) {
    return register_host_routes(table, sources);
  };

  auto plugins = Generation::make(services, 1, retirer.retire());
  RouteTable::Builder table;
  if (auto err = host_routes(table); !err.empty()) throw std::runtime_error(err);
  plugins->build(cfg, table);  // a store provider plugin comes first (config.hpp, StoreConfig)
  require_store_provider(*store, cfg.store);
  if (opts.check) {
    print_check(cfg, table.router(), *plugins, *store);
    plugins->stop();
    return 0;
  }
  plugins->start(table);
  pipeline.publish(table.build());  // serve the routes, filters and observers set up above
  health.attach(plugins);
  HttpServer server(cfg.server, pipeline, log);
  reloader = std::make_unique<Reloader>(
      Reloader::Parts{services, pipeline, health, retirer, [&opts] { return read_config(opts); },
                      host_routes, [&server] { server.release_old_tables(); }},
      cfg, plugins);
  server.start();
  plugins->go_live();
  state.ready = true;
  log.info("listening on " + server.local_address() + " (mode " + cfg.mode + ", config " +
           cfg.source + ", " + std::to_string(plugins->size()) + " plugins)");
  plugins.reset();  // the reloader holds the serving generation; a reload may replace it
  int exit_code = serve_until_stopped(cfg, opts, signals, server.local_address(), *reloader, log);
  drain(cfg, state, pipeline, server, log);
  plugins = reloader->current();
  reloader->stop();  // no reload starts from here on
  plugins->stop();
  server.stop();
  bus.stop();
  store->stop();
  pool.stop();
  pipeline.publish(RouteTable::Builder().build());
  plugins.reset();
  retirer.finish();  // every generation is destroyed, in the order they went
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
  sigaddset(&signals, SIGHUP);  // reload (by default it would end the process)
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();

  try {
    kghost::HostConfig cfg = read_config(opts);
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
