// observability: SSE stream metrics from the ABI 1.1 stream observations — streams open now,
// body bytes written, stream durations and why streams ended. Relaxed atomics only: a stream
// start or end costs a few uncontended increments, no lock, no allocation.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace kghost::observability {

// Upper bounds (seconds) of kgents_sse_stream_duration_seconds: 1 s to 1 h (an SSE client
// stays for minutes; shorter streams are reconnect storms or plugin-closed answers).
inline constexpr std::array<double, 9> kStreamDurationBuckets{1,   5,    15,   60,   300,
                                                              900, 1800, 3600, 14400};

// Why a stream ended, as the `reason` label (kg_stream_end_reason 1..3; anything else "other").
enum class StreamEnd : std::size_t { client_gone, closed_by_plugin, host_shutdown, other };
inline constexpr std::array<std::string_view, 4> kStreamEndLabels{"client_gone", "closed_by_plugin",
                                                                  "host_shutdown", "other"};

// kg_stream_end_reason to StreamEnd.
StreamEnd stream_end_of(uint32_t reason);

class StreamMetrics {
 public:
  // A stream's head was sent. [request]
  void started() { started_.fetch_add(1, std::memory_order_relaxed); }
  // A stream ended after `duration_ns` with `bytes` of body accepted. [any]
  void ended(StreamEnd why, uint64_t duration_ns, uint64_t bytes);

  // Appends kgents_sse_streams_open, kgents_sse_stream_bytes_total,
  // kgents_sse_stream_duration_seconds and kgents_sse_streams_ended_total. [any]
  void render(std::string& out) const;

 private:
  std::atomic<uint64_t> started_{0};
  std::atomic<uint64_t> bytes_{0};
  std::atomic<uint64_t> sum_ns_{0};
  std::array<std::atomic<uint64_t>, kStreamDurationBuckets.size() + 1> buckets_{};  // last: +Inf
  std::array<std::atomic<uint64_t>, kStreamEndLabels.size()> ended_{};
};

}  // namespace kghost::observability
