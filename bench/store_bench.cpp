// Store incr throughput: memory backend with 1 and 2 threads, and the Redis backend with many
// calls in flight. Usage: store_bench [--redis redis://127.0.0.1:PORT] [--seconds S]
//                                     [--pool N] [--inflight N] [--keys N]
#include <prometheus/registry.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "provider_host.hpp"
#include "store/store.hpp"
#include "telemetry/logging.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Options {
  std::string redis_url;
  double seconds = 2.0;
  std::size_t pool = 4;
  int64_t inflight = 4096;
  std::size_t keys = 10000;
};

std::vector<std::string> make_keys(std::size_t n, int thread) {
  std::vector<std::string> keys;
  keys.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    keys.push_back("rl:t" + std::to_string(thread) + ":tenant_" + std::to_string(i));
  return keys;
}

double bench_memory(const Options& o, int threads) {
  prometheus::Registry registry;
  auto store = kghost::make_memory_store(registry);
  std::atomic<bool> go{false};
  std::atomic<bool> done{false};
  std::vector<uint64_t> counts(static_cast<std::size_t>(threads) * 8, 0);  // padded
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      const auto keys = make_keys(o.keys, t);
      uint64_t n = 0;
      std::size_t k = 0;
      while (!go.load(std::memory_order_acquire)) {
      }
      while (!done.load(std::memory_order_relaxed)) {
        for (int i = 0; i < 256; ++i) {
          auto r = store->incr(keys[k], 1, 60s, {});
          if (!r || r->code != kghost::StoreCode::ok) std::abort();
          if (++k == keys.size()) k = 0;
        }
        n += 256;
      }
      counts[static_cast<std::size_t>(t) * 8] = n;
    });
  }
  const auto start = Clock::now();
  go.store(true, std::memory_order_release);
  std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
  done.store(true);
  for (auto& w : workers) w.join();
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  uint64_t total = 0;
  for (int t = 0; t < threads; ++t) total += counts[static_cast<std::size_t>(t) * 8];
  store->stop();
  return static_cast<double>(total) / secs;
}

double metric(prometheus::Registry& registry, const std::string& name) {
  double sum = 0;
  for (const auto& f : registry.Collect())
    if (f.name == name)
      for (const auto& m : f.metric) sum += m.counter.value;
  return sum;
}

int bench_redis(const Options& o) {
  prometheus::Registry registry;
  kghost::Logger log;
  // The Redis provider plugin (plugins/store-redis) behind the host's failover wrapper.
  auto store = kghost::test::make_redis_store({o.redis_url, o.pool, 2000ms, 500ms}, registry, log);
  if (store->health().status != kghost::HealthStatus::healthy) {
    std::fprintf(stderr, "redis not reachable: %s\n", store->health().detail.c_str());
    return 1;
  }
  const auto keys = make_keys(o.keys, 0);
  std::atomic<int64_t> inflight{0};
  std::atomic<uint64_t> completed{0};
  std::atomic<uint64_t> errors{0};
  auto on_done = [&](const kghost::StoreReply& r) {
    if (r.code != kghost::StoreCode::ok) errors.fetch_add(1, std::memory_order_relaxed);
    completed.fetch_add(1, std::memory_order_relaxed);
    inflight.fetch_sub(1, std::memory_order_release);
  };
  const auto start = Clock::now();
  const auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
  uint64_t issued = 0;
  std::size_t k = 0;
  while (Clock::now() < end) {
    for (int i = 0; i < 64; ++i) {
      while (inflight.load(std::memory_order_acquire) >= o.inflight) std::this_thread::yield();
      inflight.fetch_add(1, std::memory_order_relaxed);
      if (auto r = store->incr(keys[k], 1, 60s, on_done)) on_done(*r);
      ++issued;
      if (++k == keys.size()) k = 0;
    }
  }
  while (completed.load() < issued) std::this_thread::yield();
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  const double fallback = metric(registry, "kgents_store_fallback_total");
  store->stop();
  std::printf(
      "redis store incr (async, pool %zu, %lld in flight, %zu keys): %.0f ops/s  (%llu ops, "
      "%llu errors, %.0f answered by fallback)\n",
      o.pool, static_cast<long long>(o.inflight), o.keys, static_cast<double>(issued) / secs,
      static_cast<unsigned long long>(issued), static_cast<unsigned long long>(errors.load()),
      fallback);
  return errors.load() == 0 && fallback == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const char* v = argv[i + 1];
    if (flag == "--redis")
      o.redis_url = v;
    else if (flag == "--seconds")
      o.seconds = std::atof(v);
    else if (flag == "--pool")
      o.pool = static_cast<std::size_t>(std::atoi(v));
    else if (flag == "--inflight")
      o.inflight = std::atoll(v);
    else if (flag == "--keys")
      o.keys = static_cast<std::size_t>(std::atoi(v));
    else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  std::printf("memory store incr, 1 thread:  %.0f ops/s\n", bench_memory(o, 1));
  std::printf("memory store incr, 2 threads: %.0f ops/s\n", bench_memory(o, 2));
  if (!o.redis_url.empty()) return bench_redis(o);
  return 0;
}
