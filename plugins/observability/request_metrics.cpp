#include "request_metrics.hpp"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "text_format.hpp"

namespace kghost::observability {
namespace {

constexpr std::array<std::string_view, 9> kMethods{"GET",   "HEAD",    "POST",    "PUT",  "DELETE",
                                                   "PATCH", "OPTIONS", "CONNECT", "TRACE"};

// FNV-1a over the three labels; good enough for a few hundred keys and cheap per request.
uint64_t hash_of(std::string_view route, std::string_view method, uint16_t status) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](std::string_view s) {
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;  // separator, so ("ab","c") != ("a","bc")
  };
  mix(route);
  mix(method);
  h = (h ^ status) * 1099511628211ull;
  return h;
}

std::size_t bucket_of(uint64_t duration_ns) {
  double s = static_cast<double>(duration_ns) / 1e9;
  auto it = std::lower_bound(kLatencyBuckets.begin(), kLatencyBuckets.end(), s);
  return static_cast<std::size_t>(it - kLatencyBuckets.begin());  // size(): +Inf
}

// "0.0005", not "5e-04": the `le` values Prometheus clients write and dashboards match on.
std::string bucket_label(std::size_t b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", kLatencyBuckets[b]);
  return buf;
}

}  // namespace

std::string_view method_label(std::string_view method) {
  for (auto m : kMethods)
    if (m == method) return m;
  return kOtherMethod;
}

RequestMetrics::RequestMetrics() : slots_(new std::atomic<Series*>[kSlots]) {
  for (std::size_t i = 0; i < kSlots; ++i) slots_[i].store(nullptr, std::memory_order_relaxed);
  for (std::size_t c = 0; c < overflow_.size(); ++c) {
    overflow_[c] = new Series();
    overflow_[c]->route = kOverflowRoute;
    overflow_[c]->method = kOtherMethod;
    overflow_[c]->status = static_cast<uint16_t>(c * 100);
    overflow_[c]->status_label = c == 0 ? "other" : std::to_string(c) + "xx";
  }
}

RequestMetrics::~RequestMetrics() {
  for (std::size_t i = 0; i < kSlots; ++i) delete slots_[i].load(std::memory_order_relaxed);
  for (Series* s : overflow_) delete s;
}

RequestMetrics::Series* RequestMetrics::find_or_insert(uint64_t hash, std::string_view route,
                                                       std::string_view method, uint16_t status) {
  auto matches = [&](const Series* s) {
    return s->hash == hash && s->status == status && s->method == method && s->route == route;
  };
  std::size_t i = hash & (kSlots - 1);
  for (std::size_t probes = 0; probes < kSlots; ++probes, i = (i + 1) & (kSlots - 1)) {
    Series* s = slots_[i].load(std::memory_order_acquire);
    if (!s) break;  // not there: insert below
    if (matches(s)) return s;
  }
  std::lock_guard lock(insert_mu_);
  i = hash & (kSlots - 1);
  for (std::size_t probes = 0; probes < kSlots; ++probes, i = (i + 1) & (kSlots - 1)) {
    Series* s = slots_[i].load(std::memory_order_acquire);
    if (s && matches(s)) return s;  // another thread inserted it meanwhile
    if (s) continue;
    if (count_.load(std::memory_order_relaxed) >= kMaxSeries)
      return overflow_[status >= 100 && status < 600 ? status / 100 : 0];
    auto* fresh = new Series();
    fresh->route = route;
    fresh->method = method;
    fresh->status = status;
    fresh->status_label = std::to_string(status);
    fresh->hash = hash;
    slots_[i].store(fresh, std::memory_order_release);
    count_.fetch_add(1, std::memory_order_release);
    return fresh;
  }
  return overflow_[0];  // unreachable: the table is never more than kMaxSeries full
}

void RequestMetrics::record(std::string_view route, std::string_view method, uint16_t status,
                            uint64_t duration_ns) {
  if (route.empty()) route = kUnmatchedRoute;
  method = method_label(method);
  Series* s = find_or_insert(hash_of(route, method, status), route, method, status);
  static std::atomic<std::size_t> next_shard{0};
  thread_local const std::size_t shard = next_shard.fetch_add(1) % kShards;
  Shard& sh = s->shards[shard];
  sh.buckets[bucket_of(duration_ns)].fetch_add(1, std::memory_order_relaxed);
  sh.sum_ns.fetch_add(duration_ns, std::memory_order_relaxed);
}

void RequestMetrics::render(std::string& out) const {
  // A consistent snapshot per series: +Inf and _count are the sum of the buckets read here.
  struct Snapshot {
    const Series* s;
    std::array<uint64_t, kLatencyBuckets.size() + 1> buckets;
    uint64_t total;
    uint64_t sum_ns;
  };
  std::vector<Snapshot> snaps;
  auto take = [&snaps](const Series* s) {
    Snapshot snap{s, {}, 0, 0};
    for (const Shard& sh : s->shards) {
      snap.sum_ns += sh.sum_ns.load(std::memory_order_relaxed);
      for (std::size_t b = 0; b < snap.buckets.size(); ++b)
        snap.buckets[b] += sh.buckets[b].load(std::memory_order_relaxed);
    }
    for (uint64_t n : snap.buckets) snap.total += n;
    if (snap.total > 0) snaps.push_back(snap);
  };
  for (std::size_t i = 0; i < kSlots; ++i)
    if (const Series* s = slots_[i].load(std::memory_order_acquire)) take(s);
  for (const Series* s : overflow_) take(s);
  std::sort(snaps.begin(), snaps.end(), [](const Snapshot& a, const Snapshot& b) {
    if (a.s->route != b.s->route) return a.s->route < b.s->route;
    if (a.s->method != b.s->method) return a.s->method < b.s->method;
    return a.s->status < b.s->status;
  });

  auto labels = [](const Series& s) {
    return "route=\"" + escape_label(s.route) + "\",method=\"" + escape_label(s.method) +
           "\",status=\"" + s.status_label + "\"";
  };
  out +=
      "# HELP kgents_api_requests_total HTTP requests answered, by route template, method "
      "and status.\n# TYPE kgents_api_requests_total counter\n";
  for (auto& snap : snaps)
    out +=
        "kgents_api_requests_total{" + labels(*snap.s) + "} " + std::to_string(snap.total) + "\n";
  out +=
      "# HELP kgents_api_request_latency_seconds Time from a request's first byte to its "
      "response being queued, by route template, method and status.\n"
      "# TYPE kgents_api_request_latency_seconds histogram\n";
  for (auto& snap : snaps) {
    std::string l = labels(*snap.s);
    uint64_t cumulative = 0;
    for (std::size_t b = 0; b < kLatencyBuckets.size(); ++b) {
      cumulative += snap.buckets[b];
      out += "kgents_api_request_latency_seconds_bucket{" + l + ",le=\"" + bucket_label(b) +
             "\"} " + std::to_string(cumulative) + "\n";
    }
    out += "kgents_api_request_latency_seconds_bucket{" + l + ",le=\"+Inf\"} " +
           std::to_string(snap.total) + "\n";
    out += "kgents_api_request_latency_seconds_sum{" + l + "} " +
           format_number(static_cast<double>(snap.sum_ns) / 1e9) + "\n";
    out +=
        "kgents_api_request_latency_seconds_count{" + l + "} " + std::to_string(snap.total) + "\n";
  }
}

}  // namespace kghost::observability
