// Per-request cost of the observability plugin's hot path, in-process: counting a request in
// RequestMetrics (1 and 2 threads on the same series, as two I/O threads answering one route
// would) and formatting its access-log line. Run through bench/run_observability_bench.sh.
#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "access_log.hpp"
#include "request_metrics.hpp"

using namespace kghost::observability;
namespace {

// CPU time of the calling thread: steadier than wall time on a shared machine.
double thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

constexpr int kOps = 5'000'000;

double ns_per_op(int threads) {
  RequestMetrics m;
  const std::string routes[] = {"/hello", "/api/v1/health", "/api/v1/streams/{channel}/events"};
  std::vector<std::thread> pool;
  std::vector<double> cpu(threads);
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&m, &routes, &cpu, t] {
      double start = thread_cpu_ns();
      for (int i = 0; i < kOps; ++i) m.record(routes[i % 3], "GET", 200, 150'000 + i % 1000);
      cpu[t] = thread_cpu_ns() - start;
    });
  for (auto& th : pool) th.join();
  double total = 0;
  for (double c : cpu) total += c;
  return total / threads / kOps;  // CPU time per request on each thread
}

double format_ns() {
  std::string line;
  std::size_t total = 0;
  double start = thread_cpu_ns();
  for (int i = 0; i < kOps; ++i) {
    format_access_line({"GET", "/api/v1/health", 200, 150'000u + i % 1000, 80, 98, "user_bob"},
                       line);
    total += line.size();
  }
  double ns = thread_cpu_ns() - start;
  if (total == 0) std::puts("");
  return ns / kOps;
}

}  // namespace

int main() {
  std::printf("record, 1 thread:               %6.1f ns CPU/request\n", ns_per_op(1));
  std::printf("record, 2 threads, same series: %6.1f ns CPU/request (each thread)\n", ns_per_op(2));
  std::printf("format access line:             %6.1f ns CPU/request\n", format_ns());
}
