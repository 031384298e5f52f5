#include "reload/reloader.hpp"

#include <algorithm>

#include "common/thread_name.hpp"

namespace kghost {
namespace {

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "-" : out;
}

MetricSeries* series(Metrics& metrics, MetricKind kind, const std::string& name,
                     const std::string& help, const std::vector<std::string>& labels,
                     const std::vector<std::string>& values) {
  std::string error;
  MetricFamily* family = metrics.family(kind, name, help, labels, {}, error);
  return family ? Metrics::series(*family, values) : nullptr;
}

// The store provider plugin serves the store the whole process shares: it stays as it runs
// (the plan reports a change to it as needing a restart), so it is never re-created or removed.
void keep_store_provider(const HostConfig& running, HostConfig& applied, ReloadPlan& plan) {
  const std::string& name = running.store.backend;
  auto same = [&](const PluginEntry& e) { return e.enabled && e.name == name; };
  auto it = std::find_if(running.plugins.begin(), running.plugins.end(), same);
  if (it == running.plugins.end()) return;  // the memory store: no provider plugin
  std::erase_if(applied.plugins, [&](const PluginEntry& e) { return e.name == name; });
  applied.plugins.insert(applied.plugins.begin(), *it);  // providers come first
  std::erase(plan.reconfigured, name);
  std::erase(plan.removed, name);
  if (std::find(plan.kept.begin(), plan.kept.end(), name) == plan.kept.end())
    plan.kept.insert(plan.kept.begin(), name);
}

}  // namespace

nlohmann::json ReloadOutcome::to_json() const {
  nlohmann::json j = {{"result", ok ? "ok" : "failed"},
                      {"generation", generation},
                      {"changes", plan.to_json()},
                      {"warnings", warnings}};
  if (!ok) j["reason"] = reason;
  return j;
}

Reloader::Reloader(Parts parts, HostConfig config, std::shared_ptr<Generation> first)
    : parts_(std::move(parts)), config_(std::move(config)), current_(std::move(first)) {
  auto& metrics = parts_.services.metrics;
  const std::string help = "Config reloads (SIGHUP, POST /admin/reload), by result.";
  reloads_ok_ =
      series(metrics, MetricKind::counter, "kgents_config_reloads_total", help, {"result"}, {"ok"});
  reloads_failed_ = series(metrics, MetricKind::counter, "kgents_config_reloads_total", help,
                           {"result"}, {"failed"});
  generation_gauge_ =
      series(metrics, MetricKind::gauge, "kgents_config_generation",
             "The plugin generation serving (1 at start, +1 per good reload).", {}, {});
  if (generation_gauge_) generation_gauge_->set(static_cast<double>(current_->number()));
  for (auto& p : current_->instances())
    if (auto id = identify_plugin_file(p->path)) loaded_files_.emplace(p->path, *id);
  thread_ = std::thread([this] {
    name_this_thread("kg-reload");
    run();
  });
}

Reloader::~Reloader() { stop(); }

void Reloader::request(std::function<void(const ReloadOutcome&)> done) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      requests_.push_back(std::move(done));
      wake_.notify_one();
      return;
    }
  }
  if (done) done(stopping());
}

ReloadOutcome Reloader::stopping() const {
  ReloadOutcome out;
  out.reason = "the host is stopping; nothing was reloaded";
  return out;
}

nlohmann::json Reloader::describe() const {
  auto serving = current();
  return serving ? serving->describe() : nlohmann::json::array();
}

std::shared_ptr<Generation> Reloader::current() const {
  std::lock_guard lock(current_mutex_);
  return current_;
}

void Reloader::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
    wake_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
  for (auto& done : requests_)  // queued behind the one that ran: answered, never left hanging
    if (done) done(stopping());
  requests_.clear();
  std::lock_guard lock(current_mutex_);
  current_.reset();
}

void Reloader::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return !requests_.empty() || stopping_; });
    if (stopping_) return;
    auto done = std::move(requests_.front());
    requests_.pop_front();
    lock.unlock();
    ReloadOutcome outcome = reload();
    if (done) done(outcome);
    lock.lock();
  }
}

void Reloader::count(bool ok) {
  if (auto* s = ok ? reloads_ok_ : reloads_failed_) s->add(1);
}

std::vector<std::string> Reloader::check_files(const Generation& next) {
  std::vector<std::string> warnings;
  for (auto& p : next.instances()) {
    auto known = loaded_files_.find(p->path);
    if (known == loaded_files_.end()) {
      if (auto id = identify_plugin_file(p->path)) loaded_files_.emplace(p->path, *id);
    } else if (plugin_file_changed(p->path, known->second)) {
      warnings.push_back("plugin " + p->name + ": " + p->path.string() +
                         " changed since it was loaded, but a library is loaded once per path "
                         "and never unloaded, so the code loaded first keeps running; install "
                         "the new build under a new file name (a versioned path) and point the "
                         "[[plugins]] path at it, or restart the host");
    }
  }
  return warnings;
}

ReloadOutcome Reloader::reload() {
  auto& log = parts_.services.log;
  ReloadOutcome out;
  std::shared_ptr<Generation> running = current();
  out.generation = running->number();
  auto failed = [&](std::string reason) {
    out.reason = std::move(reason);
    count(false);
    log.error("reload failed: " + out.reason + "; generation " + std::to_string(out.generation) +
              " keeps serving");
    return out;
  };

  HostConfig next;
  try {
    next = parts_.read_config();
  } catch (const std::exception& e) {
    return failed("config error: " + std::string(e.what()));
  }
  out.plan = plan_reload(config_, next);
  // What runs next: the new plugins and log level; every restart-only setting as it runs now.
  HostConfig applied = config_;
  applied.source = next.source;
  applied.plugins = next.plugins;
  applied.log_level = next.log_level;
  keep_store_provider(config_, applied, out.plan);

  auto gen = Generation::make(parts_.services, running->number() + 1, parts_.retirer.retire());
  try {
    RouteTable::Builder table;
    if (auto err = parts_.host_routes(table); !err.empty()) throw PluginError(err);
    gen->build(applied, table, running.get(), out.plan.kept, /*strict=*/true);
    gen->start(table, /*strict=*/true);
    out.warnings = check_files(*gen);
    parts_.pipeline.publish(table.build());
  } catch (const std::exception& e) {
    return failed(e.what());  // gen goes to the retirer: it stops and destroys what it made
  }
  if (parts_.published) parts_.published();
  gen->go_live();
  parts_.health.attach(gen);
  {
    std::lock_guard lock(current_mutex_);
    current_ = gen;
  }
  running.reset();  // the old generation goes once its last request has finished
  config_ = std::move(applied);
  if (out.plan.log_level_changed) log.set_level(config_.log_level);
  out.ok = true;
  out.generation = gen->number();
  count(true);
  if (generation_gauge_) generation_gauge_->set(static_cast<double>(out.generation));
  log.info("reloaded " + next.source + ": generation " + std::to_string(out.generation) +
           " serves (kept " + join(out.plan.kept) + "; added " + join(out.plan.added) +
           "; removed " + join(out.plan.removed) + "; re-created " + join(out.plan.reconfigured) +
           ")");
  for (auto& w : out.warnings) log.warn("reload: " + w);
  for (auto& r : out.plan.needs_restart)
    log.warn("reload: " + r + " needs a restart; the running value stays");
  return out;
}

}  // namespace kghost
