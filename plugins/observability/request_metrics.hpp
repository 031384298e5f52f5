// observability: request counters and latency histograms, counted on the request path without
// a lock or an allocation, rendered at scrape time.
//
// Why not the host's registry for these two families: prometheus-cpp 1.0's Histogram::Observe
// takes a mutex per series, so two I/O threads answering the same route would serialise on it.
// Here a series is a block of relaxed atomics found through a fixed open-addressing table whose
// slots are published once (atomic pointer, acquire/release); only the first request of a new
// (route, method, status) takes `insert_mu_` to create its block. Each block is split in
// cache-line-aligned shards, one per thread (modulo kShards), so two I/O threads answering the
// same route do not bounce one cache line between cores; a scrape sums the shards.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace kghost::observability {

// Label value for a request that matched no route (404, 405): keeps `route` bounded.
inline constexpr std::string_view kUnmatchedRoute = "unmatched";
// Label value for a method outside RFC 9110's standard set: keeps `method` bounded.
inline constexpr std::string_view kOtherMethod = "other";
// Route label for requests past the table's capacity (never expected with templates); they
// keep their status class ("5xx") so error-rate queries stay right.
inline constexpr std::string_view kOverflowRoute = "overflow";

// Upper bounds (seconds) of kgents_api_request_latency_seconds: 0.5 ms to 10 s.
inline constexpr std::array<double, 14> kLatencyBuckets{
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

// The method label: a standard method as is, anything else "other".
std::string_view method_label(std::string_view method);

class RequestMetrics {
 public:
  static constexpr std::size_t kSlots = 4096;      // power of two
  static constexpr std::size_t kMaxSeries = 3072;  // 75 % load, then "overflow"

  RequestMetrics();
  ~RequestMetrics();
  RequestMetrics(const RequestMetrics&) = delete;
  RequestMetrics& operator=(const RequestMetrics&) = delete;

  // Counts one finished request. [request] Lock-free and allocation-free once the series exists.
  // `route` is the template (empty: unmatched), `method` the raw request method.
  void record(std::string_view route, std::string_view method, uint16_t status,
              uint64_t duration_ns);

  // Appends kgents_api_requests_total and kgents_api_request_latency_seconds in Prometheus
  // text format. [any]
  void render(std::string& out) const;

  // Number of distinct series created so far (tests).
  std::size_t series_count() const { return count_.load(std::memory_order_acquire); }

 private:
  static constexpr std::size_t kShards = 4;
  struct alignas(64) Shard {
    std::array<std::atomic<uint64_t>, kLatencyBuckets.size() + 1> buckets{};  // last: +Inf
    std::atomic<uint64_t> sum_ns{0};
  };
  struct Series {
    std::string route;
    std::string method;
    uint16_t status = 0;
    std::string status_label;  // "200"; the overflow series use "2xx" (still matches 2..)
    uint64_t hash = 0;
    std::array<Shard, kShards> shards{};
  };

  Series* find_or_insert(uint64_t hash, std::string_view route, std::string_view method,
                         uint16_t status);

  std::unique_ptr<std::atomic<Series*>[]> slots_;
  std::atomic<std::size_t> count_{0};
  std::mutex insert_mu_;               // guards creating a Series and publishing it into a slot
  std::array<Series*, 6> overflow_{};  // by status / 100 (0 for a status outside 100..599)
};

}  // namespace kghost::observability
