// webhooks: the local journal of processed event ids.
//
// Ids of events this replica processed, appended to a file (write(2), no fsync: it has to
// survive kill -9 of the process, which the page cache does). It closes the gap the store
// cannot close alone: with the memory store every done mark is gone after a restart, and the
// queue redelivers the entries whose ack had not reached the disk yet; with Redis, an outage
// (memory fallback) or a Redis that lost its data would forget the done marks too. Two
// generations of `rotate` ids are kept (processed.1.log, processed.log), which covers any
// redelivery after a crash (only recent entries can be unacked).
//
// Memory: the files hold the ids; memory holds only a 64-bit fingerprint of each, in one sorted
// vector per generation: 8 bytes per id, at most 2 × rotate × 8 bytes (1.6 MB at the default
// 100000), instead of ~100 bytes per id for a set of strings. A fingerprint match is confirmed
// against the generation's file before contains() says yes, so a fingerprint collision can
// never skip an event that was not processed (matches are rare: only real duplicates).
//
// Threads: any; one mutex (the consumer adds and asks, health reads).
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace kghost::webhooks {

class Journal {
 public:
  using Fingerprint = std::function<uint64_t(std::string_view)>;
  // Creates `dir`, loads both generations and opens processed.log for appending. Throws
  // std::runtime_error naming the file when it cannot be opened. `fingerprint` (tests) replaces
  // the default hash.
  Journal(std::filesystem::path dir, uint64_t rotate, Fingerprint fingerprint = {});
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // True if `id` was added (in either kept generation).
  bool contains(std::string_view id) const;
  // Records `id` in memory and in processed.log; first rotates (processed.log becomes
  // processed.1.log, the older generation is dropped) once the current one holds `rotate` ids.
  void add(std::string_view id) { add_all({id}); }
  // The same for several ids, under one lock and with one write(2) per generation touched.
  void add_all(const std::vector<std::string_view>& ids);
  uint64_t failed_writes() const { return failed_writes_.load(); }
  // Bytes the in-memory index holds (vector capacities): bounded by rotate, not by the number
  // of events ever added.
  std::size_t memory_bytes() const;

 private:
  struct Generation {
    std::filesystem::path file;
    std::vector<uint64_t> prints;  // sorted; one per id (equal fingerprints repeat)
    // The latest additions, sorted, merged into `prints` in bulk: an insert moves a few KB,
    // not half of `prints`.
    std::vector<uint64_t> recent;
    std::size_t size() const { return prints.size() + recent.size(); }
  };
  static void insert(Generation& g, uint64_t print);
  void rotate();
  void write_lines(const std::string& lines);
  void load(Generation& g) const;
  bool holds(const Generation& g, std::string_view id, uint64_t print) const;
  void open_current();

  std::filesystem::path dir_;
  uint64_t rotate_;
  Fingerprint fingerprint_;
  mutable std::mutex mu_;
  Generation current_, previous_;
  int fd_ = -1;
  std::atomic<uint64_t> failed_writes_{0};
};

}  // namespace kghost::webhooks
