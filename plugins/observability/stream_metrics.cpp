#include "stream_metrics.hpp"

#include <algorithm>
#include <cstdio>

#include "text_format.hpp"

namespace kghost::observability {

StreamEnd stream_end_of(uint32_t reason) {
  switch (reason) {
    case 1:
      return StreamEnd::client_gone;  // KG_STREAM_CLIENT_GONE
    case 2:
      return StreamEnd::closed_by_plugin;  // KG_STREAM_CLOSED_BY_PLUGIN
    case 3:
      return StreamEnd::host_shutdown;  // KG_STREAM_HOST_SHUTDOWN
    default:
      return StreamEnd::other;
  }
}

void StreamMetrics::ended(StreamEnd why, uint64_t duration_ns, uint64_t bytes) {
  double s = static_cast<double>(duration_ns) / 1e9;
  auto b = std::lower_bound(kStreamDurationBuckets.begin(), kStreamDurationBuckets.end(), s) -
           kStreamDurationBuckets.begin();
  buckets_[static_cast<std::size_t>(b)].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(duration_ns, std::memory_order_relaxed);
  bytes_.fetch_add(bytes, std::memory_order_relaxed);
  ended_[static_cast<std::size_t>(why)].fetch_add(1, std::memory_order_relaxed);
}

void StreamMetrics::render(std::string& out) const {
  std::array<uint64_t, kStreamEndLabels.size()> ended{};
  uint64_t total_ended = 0;
  for (std::size_t i = 0; i < ended.size(); ++i) total_ended += ended[i] = ended_[i].load();
  // Read after the ends, so a stream that ended meanwhile never makes the gauge negative.
  uint64_t started = started_.load();

  family_header(out, "kgents_sse_streams_open", "gauge", "SSE streams open now.");
  out += "kgents_sse_streams_open " +
         std::to_string(started > total_ended ? started - total_ended : 0) + "\n";
  family_header(out, "kgents_sse_stream_bytes_total", "counter",
                "Body bytes written to SSE streams that have ended.");
  out += "kgents_sse_stream_bytes_total " + std::to_string(bytes_.load()) + "\n";

  family_header(out, "kgents_sse_stream_duration_seconds", "histogram",
                "How long SSE streams lasted, from the request's first byte to the end.");
  uint64_t cumulative = 0;
  for (std::size_t b = 0; b < kStreamDurationBuckets.size(); ++b) {
    cumulative += buckets_[b].load(std::memory_order_relaxed);
    char le[32];
    std::snprintf(le, sizeof le, "%g", kStreamDurationBuckets[b]);
    out += std::string("kgents_sse_stream_duration_seconds_bucket{le=\"") + le + "\"} " +
           std::to_string(cumulative) + "\n";
  }
  cumulative += buckets_.back().load(std::memory_order_relaxed);
  out +=
      "kgents_sse_stream_duration_seconds_bucket{le=\"+Inf\"} " + std::to_string(cumulative) + "\n";
  out += "kgents_sse_stream_duration_seconds_sum " +
         format_number(static_cast<double>(sum_ns_.load()) / 1e9) + "\n";
  out += "kgents_sse_stream_duration_seconds_count " + std::to_string(cumulative) + "\n";

  family_header(out, "kgents_sse_streams_ended_total", "counter",
                "SSE streams that ended, by why: client_gone, closed_by_plugin, host_shutdown.");
  for (std::size_t i = 0; i < ended.size(); ++i)
    if (ended[i] > 0 || static_cast<StreamEnd>(i) != StreamEnd::other)
      out += "kgents_sse_streams_ended_total{reason=\"" + std::string(kStreamEndLabels[i]) +
             "\"} " + std::to_string(ended[i]) + "\n";
}

}  // namespace kghost::observability
