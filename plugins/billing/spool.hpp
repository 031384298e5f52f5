// The open batch: usage events collected in memory until batch_size or flush_interval, then
// handed to the host's durable queue as ONE entry (one group-committed record, never an
// fsync per event). The entry is exactly what the flusher sends, so a batch is acknowledged
// in the spool only after OpenMeter answered 2xx for it.
//
// Entry format:  "<count, 6 digits> <run> <traceparent or ->\n<JSON array of CloudEvents>"
// where <run> (8 hex) names the process run that spooled it, so the `buffered` figure only
// counts down entries it counted up.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace kghost::billing {

struct SpoolEntry {
  std::size_t count = 0;
  std::string_view run;
  std::string_view traceparent;  // empty when the first request had none
  std::string_view body;         // the JSON array
};
// Nothing when `data` is not an entry of this format.
std::optional<SpoolEntry> decode_entry(std::string_view data);
// An entry with these events (a JSON array) — for replays.
std::string encode_entry(std::size_t count, std::string_view run, std::string_view traceparent,
                         std::string_view body);

class OpenBatch {
 public:
  // Hands a closed batch on (to queue_append); called outside the lock, from whichever thread
  // closed it.
  using Close = std::function<void(std::string entry, std::size_t count)>;
  OpenBatch(std::size_t batch_size, std::chrono::milliseconds max_age, std::string run,
            Close close);

  // [request] Adds one event (already a JSON object); closes the batch when it is full.
  void add(std::string_view event_json, std::string_view traceparent);
  // Closes the batch if its first event is older than max_age (or `force`). [any]
  void tick(bool force = false);
  std::size_t pending() const;

 private:
  std::string take_locked(std::size_t& count);

  const std::size_t batch_size_;
  const std::chrono::milliseconds max_age_;
  const std::string run_;
  Close close_;
  mutable std::mutex mu_;  // guards everything below
  std::string buf_;        // entry being built; empty when no event is pending
  std::size_t count_ = 0;
  std::chrono::steady_clock::time_point first_{};
};

}  // namespace kghost::billing
