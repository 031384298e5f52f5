// The durable queue: a local write-ahead log of segment files with group-committed fsync.
//
// Durability contract
// - append() reports ok through its callback only after the record is written and fdatasync'd.
//   Many concurrent appends share one write + one fdatasync (group commit on one committer
//   thread), so throughput grows with the number of appenders.
// - An ack is written into the same group commit as soon as the consumer returns it; delivery
//   does not wait for it. An ack is FINAL once it is durable (QueueOptions::on_ack_durable
//   reports that moment): an entry whose ack is durable is never delivered again, also after
//   kill -9. An entry acked but killed before its ack reached the disk is delivered again
//   (at-least-once: consumers de-duplicate by entry id).
// - Retries, dead letters and replays are written the same way (lazily, in the next group; a
//   group of only these waits up to 2 ms for an append to share its fdatasync).
// - Recovery after a crash: a torn last record is dropped silently; a damaged record in the
//   middle of a segment keeps the records before it and logs a warning naming the file and
//   offset; a segment of a later format version is refused (open throws). Segments are written
//   ahead with zeros (QueueOptions::preallocate_bytes); zeros after the last record are unused
//   space, and a torn tail is zeroed (not cut off) so new records follow the good ones.
// - Compaction: the oldest segment is deleted once every entry appended in it is acked. Dead
//   letters still in it are first copied forward (a `carry` record) so they survive; entries
//   still waiting for delivery keep their segment (and every newer one) on disk.
//
// Threads: append, depth, list_dead and replay are [any] and never block on disk. Consumers run
// on the WorkerPool, one call at a time (one entry, or one batch with consume_batch). AppendDone
// and on_ack_durable run on the committer thread: keep them short and never call stop() from them
// or from a consumer.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/worker_pool.hpp"
#include "telemetry/logging.hpp"

namespace prometheus {
class Registry;
}

namespace kghost {

struct QueueOptions {
  std::filesystem::path dir;  // the queue's own directory (created if missing)
  std::string name;           // metric label
  uint32_t max_attempts = 5;
  uint64_t max_bytes = 256ull << 20;  // live (unacked, incl. dead) payload bytes; past it: full
  std::chrono::milliseconds retry_backoff{500};  // first retry delay, doubled each time, cap 60 s
  uint64_t segment_bytes = 64ull << 20;
  // Bytes of zeros written ahead of the log's end (at most segment_bytes): an fdatasync of
  // records written over zeros already on disk commits data only, not the file's size and
  // extents as well; a fresh chunk is written when less than half of it is left. 0: no runway,
  // the file grows with every group commit.
  uint64_t preallocate_bytes = 1ull << 20;
  // Optional: called on the committer thread once an ack is durable (the ack is final).
  std::function<void(uint64_t id)> on_ack_durable;
};

struct QueueEntry {
  uint64_t id;
  uint32_t attempt;  // 1 on the first delivery; for dead letters: attempts made
  std::string data;
  std::string last_error;
};

enum class AppendStatus { ok, full, io_error };

class DurableQueue {
 public:
  // Opens or creates the queue in options.dir and recovers its segments. Throws
  // std::runtime_error naming the directory or file and what to do when the directory cannot be
  // created or written, is in use by another process, or holds a segment of another format.
  // Recovery warnings and disk errors are logged to `log`, which outlives the queue.
  static std::unique_ptr<DurableQueue> open(QueueOptions options, WorkerPool& pool,
                                            prometheus::Registry& registry, Logger& log);
  ~DurableQueue();
  DurableQueue(const DurableQueue&) = delete;
  DurableQueue& operator=(const DurableQueue&) = delete;

  using AppendDone = std::function<void(AppendStatus, uint64_t id)>;
  // [any] Never blocks on disk. Returns `full` at once when the live bytes would pass max_bytes,
  // and `io_error` at once when the queue is stopped or its disk failed beyond repair; in both
  // cases `done` is not called. Otherwise returns ok and calls `done` exactly once on the
  // committer thread: (ok, id) once the record is durable, (io_error, 0) if the write or fsync
  // failed (e.g. disk full).
  AppendStatus append(std::string_view data, AppendDone done);

  enum class Outcome { ack, retry };
  using Consumer = std::function<Outcome(const QueueEntry&, std::string& error_out)>;
  // Starts delivery on the WorkerPool, one entry at a time, oldest id first. `retry` (or an
  // exception) redelivers after the backoff with attempt+1; after max_attempts failures the
  // entry becomes a dead letter, kept durably with its last error. Call once.
  void consume(Consumer consumer);

  struct Delivery {
    Outcome outcome = Outcome::retry;
    std::string error;  // why, for a retry
  };
  // `out` comes sized like `batch`, each preset to retry ("the consumer gave no outcome").
  using BatchConsumer =
      std::function<void(const std::vector<QueueEntry>& batch, std::vector<Delivery>& out)>;
  // Like consume(), but hands out up to max_batch entries per call (the oldest ready ones, in
  // id order), so a consumer can work on several at once; it sets each entry's outcome in
  // `out`. An exception retries the whole batch. Call once, instead of consume().
  void consume_batch(std::size_t max_batch, BatchConsumer consumer);
  // [any] The size of the batches handed out from the next delivery on (a reload's new consumer).
  void set_max_batch(std::size_t max_batch);

  uint64_t depth() const;  // entries waiting, in delivery or in backoff; dead letters excluded
  // Dead letters, oldest first; `visit` returns false to stop. It may call replay().
  void list_dead(const std::function<bool(const QueueEntry&)>& visit) const;
  // Dead letter → queue again with its attempt count reset. False if no such dead letter.
  bool replay(uint64_t id);
  // Stops delivery (waits for the entry in delivery) and the committer; appends accepted
  // before it complete (ok or io_error) before it returns. Idempotent; the destructor calls it.
  void stop();

 private:
  struct Impl;
  explicit DurableQueue(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kghost
