// The durable queue's shared state and the declarations of its parts, one file each:
//   durable_queue.cpp   the public facade, appends, dead letters, depth, stop
//   queue_recovery.cpp  opening the directory and rebuilding state from the segments
//   queue_committer.cpp group commit, segment rotation and compaction (committer thread)
//   queue_delivery.cpp  delivery scheduling, retries and backoff (dispatcher and pool)
// The contract is in durable_queue.hpp. Internal to the host; include only from those files.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "runtime/durable_queue.hpp"
#include "runtime/queue_format.hpp"

namespace kghost {

namespace queue_files {
std::string errno_text(int e);
std::string segment_file_name(uint64_t first_id);
std::optional<uint64_t> parse_segment_name(const std::string& name);
// Writes all of `data` at `offset`; false with errno set on failure.
bool pwrite_all(int fd, std::string_view data, uint64_t offset);
// Writes zeros over [from, to); false with errno set on failure.
bool pwrite_zeros(int fd, uint64_t from, uint64_t to);
void fsync_dir(const std::filesystem::path& dir);
std::string read_whole_file(const std::filesystem::path& path);
}  // namespace queue_files

struct DurableQueue::Impl {
  using Clock = std::chrono::steady_clock;
  struct Entry {
    std::string data;
    uint32_t failures = 0;
    std::string last_error;
    bool dead = false;
    uint64_t segment = 0;  // key of the segment holding its latest full copy
  };
  struct Segment {
    std::filesystem::path path;
    uint64_t live = 0;  // entries whose full copy is here and that are not acked (incl. dead)
    uint64_t dead = 0;  // of those, dead letters
    bool carrying = false;
  };
  struct PendingAppend {
    uint64_t id;
    std::string data;
    AppendDone done;
    Clock::time_point start;
  };

  Impl(QueueOptions o, WorkerPool& p, prometheus::Registry& registry, Logger& l);
  ~Impl();

  // ---- start-up (queue_recovery.cpp) ------------------------------------------------------

  [[noreturn]] void fail_unwritable(const std::string& what, int err);
  void open_dir();
  void apply_recovered(const queue_format::Record& r, uint64_t seg_key);
  void recover();
  bool recover_segment(uint64_t key, const std::filesystem::path& path, bool last);
  // Zeros a torn tail (from valid_end to its last non-zero byte), durably, keeping the file's
  // size, so the runway after it stays usable.
  void zero_torn_tail(const std::filesystem::path& path, std::string_view bytes,
                      uint64_t valid_end);
  void open_active_segment(bool reuse_last);
  // Creates seg-<first_id>.log with its header, durably, and makes it the active segment.
  // Runs at open and on the committer thread.
  bool create_segment(uint64_t first_id, int& err);
  void start_threads();

  // ---- appends (durable_queue.cpp) and the committer (queue_committer.cpp) ----------------

  AppendStatus append(std::string_view data, AppendDone done);
  // Writes one batch at the end of the active segment and fdatasyncs it. On failure the
  // partial bytes are cut off again so later batches follow good records. Returns an errno.
  int write_batch(const std::string& meta, const std::string& appends);
  // Makes sure zeros are on file up to `end` (an errno when they cannot be), and writes the next
  // chunk of the runway once less than half of it is left (best effort). Committer thread.
  int ensure_runway(uint64_t end);
  // Rotates to a new segment before a batch that starts with appends once the active one is
  // full. On failure the active segment just grows.
  uint64_t maybe_rotate(const std::vector<PendingAppend>& appends);
  void committer_loop();
  void apply_committed(std::vector<PendingAppend>& appends, const std::vector<uint64_t>& acks,
                       const std::vector<uint64_t>& carries, uint64_t seg);
  void fail_batch(std::vector<PendingAppend>& appends, std::string& meta_buf,
                  std::vector<uint64_t>& acks, std::vector<uint64_t>& carries);
  void call_done(AppendDone& done, AppendStatus status, uint64_t id);
  // Deletes the oldest segments once every entry in them is acked; copies dead letters that
  // alone keep the oldest segment alive into the active one first. Committer thread only.
  void compact();

  // ---- delivery (queue_delivery.cpp) --------------------------------------------------------

  void consume(Consumer c);
  void consume_batch(std::size_t limit, BatchConsumer c);
  void promote_due_locked(Clock::time_point now);
  void dispatcher_loop();
  // Ends the in-flight delivery even if the pool drops the job (pool already stopped).
  struct DeliveryGuard {
    explicit DeliveryGuard(Impl* i) : impl(i) {}
    DeliveryGuard(const DeliveryGuard&) = delete;
    DeliveryGuard& operator=(const DeliveryGuard&) = delete;
    ~DeliveryGuard() {
      if (!ran) impl->delivery_done();
    }
    Impl* impl;
    bool ran = false;
  };

  void post_delivery();
  void delivery_done();
  void run_deliveries();
  std::chrono::milliseconds backoff(uint32_t failures) const;
  void finish(const std::vector<QueueEntry>& batch, const std::vector<Delivery>& out);
  // Under mu and commit_mu.
  void finish_locked(uint64_t id, const Delivery& d, Clock::time_point now);

  // ---- dead letters, depth, stop (durable_queue.cpp) -----------------------------------------

  uint64_t depth() const;
  void list_dead(const std::function<bool(const QueueEntry&)>& visit) const;
  bool replay(uint64_t id);
  void update_gauges_locked();
  void stop();

  // ---- members ---------------------------------------------------------------------------

  QueueOptions opts;
  WorkerPool& pool;
  Logger& log;
  std::string label;  // "durable queue 'name' (dir)", for messages
  prometheus::Gauge* depth_gauge;
  prometheus::Gauge* bytes_gauge;
  prometheus::Counter* fsyncs_counter;
  prometheus::Histogram* latency_histogram;
  prometheus::Gauge* dead_gauge;
  int lock_fd = -1;
  std::atomic<uint64_t> live_bytes{0};
  // entries.size() - dead.size() as of the last change under mu: depth() is asked on every
  // webhook request, and reading it must not wait behind the committer or a delivery batch.
  std::atomic<uint64_t> depth_now{0};

  // Entry and delivery state, guarded by mu. Lock order: mu before commit_mu.
  mutable std::mutex mu;
  std::unordered_map<uint64_t, Entry> entries;         // every unacked entry, dead ones included
  std::set<uint64_t> ready;                            // deliverable now, oldest first
  std::multimap<Clock::time_point, uint64_t> delayed;  // in retry backoff
  std::set<uint64_t> dead;
  std::map<uint64_t, Segment> segments;  // by first id; also guarded by mu
  uint64_t active_segment = 0;           // written by the committer under mu
  uint64_t max_seen_id = 0;              // recovery only
  uint64_t max_damaged_id = 0;           // recovery only
  BatchConsumer consumer;
  std::size_t max_batch = 1;
  bool in_flight = false;  // a batch is in delivery
  bool stopping = false;
  bool stopped = false;
  std::condition_variable dispatch_cv;
  std::condition_variable idle_cv;
  std::thread dispatcher;

  // Records waiting for the next group commit, guarded by commit_mu.
  std::mutex commit_mu;
  std::condition_variable commit_cv;
  std::string pending_append_buf;
  std::vector<PendingAppend> pending_appends;
  std::string pending_meta_buf;  // acks, retries, dead letters, replays, carries
  std::vector<uint64_t> pending_acks;
  std::vector<uint64_t> pending_carries;
  uint64_t next_id = 1;
  bool commit_stop = false;
  bool broken = false;
  std::thread committer;

  // The active segment; the committer thread's own after start-up.
  int fd = -1;
  uint64_t active_size = 0;    // end of the last record written (where the next one goes)
  uint64_t zeroed_end = 0;     // the file's size: [active_size, zeroed_end) holds zeros
  uint64_t recovered_end = 0;  // recovery only: end of the last segment's good records
};

}  // namespace kghost
