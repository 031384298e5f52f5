// Durable queue append throughput: N concurrent appenders, each waiting for its append to be
// durable (the callback) before the next one, for a few seconds each; and the fsyncs (group
// commits) behind them. Optionally a consumer acks concurrently (acks share the group commits).
//
// Usage: queue_bench [--seconds S] [--payload BYTES] [--dir DIR] [--consume] [--appenders 1,8,64]
// Prints one table row per appender count.
#include <prometheus/registry.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <semaphore>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "runtime/durable_queue.hpp"

namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

double counter_value(prometheus::Registry& registry, const std::string& name) {
  for (const auto& family : registry.Collect()) {
    if (family.name == name && !family.metric.empty()) return family.metric[0].counter.value;
  }
  return 0;
}

struct Row {
  int appenders;
  double appends_per_s, fsyncs_per_s, p50_us, p99_us, delivered_per_s;
};

Row run(int appenders, double seconds, std::size_t payload_size, const fs::path& base,
        bool consume) {
  fs::path dir = base / ("queue-" + std::to_string(appenders) + (consume ? "-c" : ""));
  fs::remove_all(dir);
  kghost::WorkerPool pool(2);
  prometheus::Registry registry;
  kghost::Logger log;
  kghost::QueueOptions options;
  options.dir = dir;
  options.name = "bench";
  options.max_bytes = 8ull << 30;
  auto queue = kghost::DurableQueue::open(options, pool, registry, log);
  std::atomic<uint64_t> delivered{0};
  if (consume) {
    queue->consume([&](const kghost::QueueEntry&, std::string&) {
      delivered.fetch_add(1, std::memory_order_relaxed);
      return kghost::DurableQueue::Outcome::ack;
    });
  }

  std::string payload(payload_size, 'p');
  std::atomic<bool> stop{false};
  std::vector<std::vector<float>> latencies(appenders);
  std::vector<std::thread> threads;
  auto start = Clock::now();
  for (int t = 0; t < appenders; ++t) {
    threads.emplace_back([&, t] {
      std::binary_semaphore done(0);
      auto& lat = latencies[t];
      lat.reserve(1 << 20);
      while (!stop.load(std::memory_order_relaxed)) {
        auto t0 = Clock::now();
        auto status = queue->append(payload, [&](kghost::AppendStatus s, uint64_t) {
          if (s != kghost::AppendStatus::ok) std::abort();
          done.release();
        });
        if (status != kghost::AppendStatus::ok) std::abort();
        done.acquire();
        lat.push_back(std::chrono::duration<float, std::micro>(Clock::now() - t0).count());
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  double fsyncs = counter_value(registry, "kgents_queue_fsyncs_total");
  uint64_t delivered_now = delivered.load();
  queue->stop();
  queue.reset();
  pool.stop();
  fs::remove_all(dir);

  std::vector<float> all;
  for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) {
    return all.empty() ? 0.0
                       : static_cast<double>(all[static_cast<std::size_t>(p * (all.size() - 1))]);
  };
  return Row{appenders, static_cast<double>(all.size()) / elapsed,   fsyncs / elapsed, pct(0.50),
             pct(0.99), static_cast<double>(delivered_now) / elapsed};
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 3;
  std::size_t payload = 128;
  fs::path dir = fs::temp_directory_path() / ("kghost-queue-bench-" + std::to_string(::getpid()));
  bool consume = false;
  std::vector<int> counts{1, 8, 64};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--seconds") {
      seconds = std::stod(next());
    } else if (a == "--payload") {
      payload = std::stoul(next());
    } else if (a == "--dir") {
      dir = next();
    } else if (a == "--consume") {
      consume = true;
    } else if (a == "--appenders") {
      counts.clear();
      std::stringstream ss(next());
      for (std::string n; std::getline(ss, n, ',');) counts.push_back(std::stoi(n));
    } else {
      std::fprintf(stderr,
                   "usage: %s [--seconds S] [--payload BYTES] [--dir DIR] [--consume] "
                   "[--appenders 1,8,64]\n",
                   argv[0]);
      return 2;
    }
  }
  fs::create_directories(dir);
  std::printf("# durable appends, %zu-byte payloads, %.1f s per run, dir %s%s\n", payload, seconds,
              dir.c_str(), consume ? ", consumer acking concurrently" : "");
  std::printf("%-10s %14s %12s %16s %10s %10s %14s\n", "appenders", "appends/s", "fsyncs/s",
              "appends/fsync", "p50 us", "p99 us", "delivered/s");
  for (int n : counts) {
    Row r = run(n, seconds, payload, dir, consume);
    std::printf("%-10d %14.0f %12.0f %16.1f %10.0f %10.0f %14.0f\n", r.appenders, r.appends_per_s,
                r.fsyncs_per_s, r.fsyncs_per_s > 0 ? r.appends_per_s / r.fsyncs_per_s : 0.0,
                r.p50_us, r.p99_us, r.delivered_per_s);
    std::fflush(stdout);
  }
  fs::remove_all(dir);
  return 0;
}
