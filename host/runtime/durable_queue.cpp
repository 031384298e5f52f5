#include "runtime/durable_queue.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include "runtime/queue_format.hpp"

namespace kghost {

namespace fs = std::filesystem;
namespace qf = queue_format;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kMaxBackoff = std::chrono::milliseconds(60'000);
constexpr int kDeliveriesPerJob = 256;  // then the job yields its pool thread to others
constexpr std::size_t kListBatch = 64;

std::string errno_text(int e) { return std::system_category().message(e); }

std::string segment_file_name(uint64_t first_id) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "seg-%020llu.log", static_cast<unsigned long long>(first_id));
  return buf;
}

std::optional<uint64_t> parse_segment_name(const std::string& name) {
  constexpr std::string_view kPrefix = "seg-", kSuffix = ".log";
  if (name.size() <= kPrefix.size() + kSuffix.size() || !name.starts_with(kPrefix) ||
      !name.ends_with(kSuffix)) {
    return std::nullopt;
  }
  std::string digits = name.substr(kPrefix.size(), name.size() - kPrefix.size() - kSuffix.size());
  if (digits.empty() || digits.size() > 20 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  return std::stoull(digits);
}

// Writes all of `data` at `offset`; false with errno set on failure.
bool pwrite_all(int fd, std::string_view data, uint64_t offset) {
  while (!data.empty()) {
    ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return true;
}

void fsync_dir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

std::string read_whole_file(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw std::runtime_error("cannot read queue segment " + path.string() + ": " +
                             errno_text(errno));
  }
  std::string out;
  struct stat st {};
  if (::fstat(fd, &st) == 0) out.reserve(static_cast<std::size_t>(st.st_size));
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      throw std::runtime_error("cannot read queue segment " + path.string() + ": " + errno_text(e));
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace

struct DurableQueue::Impl {
  struct Entry {
    std::string data;
    uint32_t failures = 0;
    std::string last_error;
    bool dead = false;
    uint64_t segment = 0;  // key of the segment holding its latest full copy
  };
  struct Segment {
    fs::path path;
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

  Impl(QueueOptions o, WorkerPool& p, prometheus::Registry& registry, Logger& l)
      : opts(std::move(o)), pool(p), log(l) {
    if (opts.max_attempts == 0) opts.max_attempts = 5;
    if (opts.segment_bytes == 0) opts.segment_bytes = 64ull << 20;
    label = "durable queue '" + opts.name + "' (" + opts.dir.string() + ")";
    prometheus::Labels labels{{"queue", opts.name}};
    depth_gauge = &prometheus::BuildGauge()
                       .Name("kgents_queue_depth")
                       .Help("Durable queue entries waiting for delivery, excluding dead letters")
                       .Register(registry)
                       .Add(labels);
    bytes_gauge = &prometheus::BuildGauge()
                       .Name("kgents_queue_bytes")
                       .Help("Durable queue payload bytes not yet acknowledged (incl. dead)")
                       .Register(registry)
                       .Add(labels);
    fsyncs_counter = &prometheus::BuildCounter()
                          .Name("kgents_queue_fsyncs_total")
                          .Help("Durable queue group commits (one write + one fdatasync each)")
                          .Register(registry)
                          .Add(labels);
    latency_histogram = &prometheus::BuildHistogram()
                             .Name("kgents_queue_append_latency_seconds")
                             .Help("Time from append to the record being durable")
                             .Register(registry)
                             .Add(labels, prometheus::Histogram::BucketBoundaries{
                                              0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                              0.025, 0.05, 0.1, 0.25, 0.5, 1.0});
    dead_gauge = &prometheus::BuildGauge()
                      .Name("kgents_queue_dead_letters")
                      .Help("Durable queue dead letters (failed max attempts), kept until replay")
                      .Register(registry)
                      .Add(labels);
  }

  ~Impl() {
    if (fd >= 0) ::close(fd);
    if (lock_fd >= 0) ::close(lock_fd);
  }

  // ---- start-up ---------------------------------------------------------------------------

  [[noreturn]] void fail_unwritable(const std::string& what, int err) {
    throw std::runtime_error(label + ": " + what + ": " + errno_text(err) +
                             ". Make the directory writable by the user running kghost, free "
                             "space, or point the queue at another directory.");
  }

  void open_dir() {
    std::error_code ec;
    fs::create_directories(opts.dir, ec);
    if (ec) fail_unwritable("cannot create directory " + opts.dir.string(), ec.value());
    if (!fs::is_directory(opts.dir, ec)) {
      throw std::runtime_error(label + ": " + opts.dir.string() +
                               " is not a directory. Point the queue at a directory.");
    }
    // A probe proves we can create (and so rotate) files here, e.g. not a read-only mount.
    fs::path probe = opts.dir / ".write-probe";
    int pfd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (pfd < 0) fail_unwritable("directory " + opts.dir.string() + " is not writable", errno);
    ::close(pfd);
    ::unlink(probe.c_str());

    fs::path lock_path = opts.dir / "LOCK";
    lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd < 0) fail_unwritable("cannot open " + lock_path.string(), errno);
    if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
      throw std::runtime_error(label + ": " + lock_path.string() +
                               " is locked by another process or queue instance. Give each "
                               "queue its own directory; run one kghost per directory.");
    }
  }

  void apply_recovered(const qf::Record& r, uint64_t seg_key) {
    auto it = entries.find(r.id);
    switch (r.type) {
      case qf::RecordType::append:
      case qf::RecordType::carry: {
        if (it == entries.end()) {
          it = entries.emplace(r.id, Entry{}).first;
        } else {
          segments[it->second.segment].live--;
        }
        Entry& e = it->second;
        e.data.assign(r.data);
        e.failures = r.type == qf::RecordType::carry ? r.failures : 0;
        e.last_error.assign(r.type == qf::RecordType::carry ? r.error : std::string_view{});
        e.dead = r.type == qf::RecordType::carry && r.dead;
        e.segment = seg_key;
        segments[seg_key].live++;
        max_seen_id = std::max(max_seen_id, r.id);
        return;
      }
      case qf::RecordType::ack:
        if (it != entries.end()) {
          segments[it->second.segment].live--;
          entries.erase(it);
        }
        return;
      case qf::RecordType::retry:
      case qf::RecordType::dead:
        if (it != entries.end()) {
          it->second.failures = r.failures;
          it->second.last_error.assign(r.error);
          it->second.dead = r.type == qf::RecordType::dead;
        }
        return;
      case qf::RecordType::replay:
        if (it != entries.end()) {
          it->second.failures = 0;
          it->second.dead = false;
        }
        return;
    }
  }

  void recover() {
    std::map<uint64_t, fs::path> files;
    std::error_code ec;
    for (const auto& de : fs::directory_iterator(opts.dir, ec)) {
      if (auto key = parse_segment_name(de.path().filename().string())) files[*key] = de.path();
    }
    if (ec) fail_unwritable("cannot list directory " + opts.dir.string(), ec.value());

    bool reuse_last = false;
    uint64_t max_key = 0;
    for (auto fit = files.begin(); fit != files.end(); ++fit) {
      const auto& [key, path] = *fit;
      bool last = std::next(fit) == files.end();
      max_key = std::max(max_key, key);
      std::string bytes = read_whole_file(path);
      auto header = qf::check_header(bytes);
      if (header.status == qf::HeaderStatus::bad_magic) {
        throw std::runtime_error(label + ": " + path.string() +
                                 " is not a kghost queue segment (bad magic). Move it out of " +
                                 opts.dir.string() + " or point the queue at another directory.");
      }
      if (header.status == qf::HeaderStatus::unsupported_version) {
        throw std::runtime_error(
            label + ": " + path.string() + " was written by queue format version " +
            std::to_string(header.version) + "; this kghost reads version " +
            std::to_string(qf::kVersion) + ". Run a kghost that supports it, or move " +
            opts.dir.string() + " away to start an empty queue.");
      }
      if (header.status == qf::HeaderStatus::too_short) {
        if (last) {
          // Crash while creating the segment: it never held a record.
          ::unlink(path.c_str());
          continue;
        }
        log.warn(fmt::format("{}: {} is shorter than a segment header; ignored. Move it away.",
                             label, path.string()));
        segments[key].path = path;
        continue;
      }
      segments[key].path = path;
      auto scan = qf::scan_records(bytes, [&](const qf::Record& r) { apply_recovered(r, key); });
      reuse_last = last;
      if (scan.end == qf::ScanEnd::torn && last) {
        // Normal after a crash: the last group commit was not (fully) written. Cut it off so
        // new records follow the good ones.
        int tfd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
        if (tfd < 0 || ::ftruncate(tfd, static_cast<off_t>(scan.valid_end)) != 0 ||
            ::fdatasync(tfd) != 0) {
          fail_unwritable("cannot truncate the torn tail of " + path.string(), errno);
        }
        ::close(tfd);
      } else if (scan.end != qf::ScanEnd::clean) {
        log.warn(fmt::format(
            "{}: segment {} is damaged at offset {} ({}); kept the records before it and "
            "ignored the {} bytes from there on. Entries recorded after that offset may be "
            "lost or delivered again; keep a copy of the file for inspection.",
            label, path.string(), scan.valid_end, scan.reason, bytes.size() - scan.valid_end));
        if (last) reuse_last = false;  // never append after damage: the next scan stops there
        // Ids recorded after the damage are unknown; never hand them out again (consumers
        // de-duplicate by id). An append record takes at least kMinAppend bytes.
        constexpr uint64_t kMinAppend = qf::kRecordHeaderSize + 9;
        max_damaged_id = std::max(max_damaged_id, key + bytes.size() / kMinAppend);
      }
    }

    next_id = std::max<uint64_t>({max_seen_id + 1, max_key, max_damaged_id + 1, 1});
    for (auto& [id, e] : entries) {
      live_bytes += e.data.size();
      if (e.dead) {
        dead.insert(id);
        segments[e.segment].dead++;
      } else {
        ready.insert(id);
      }
    }

    if (reuse_last) {
      auto& [key, seg] = *segments.rbegin();
      fd = ::open(seg.path.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0) fail_unwritable("cannot open " + seg.path.string() + " for writing", errno);
      struct stat st {};
      ::fstat(fd, &st);
      active_size = static_cast<uint64_t>(st.st_size);
      active_segment = key;
    } else {
      while (fs::exists(opts.dir / segment_file_name(next_id))) ++next_id;
      int err = 0;
      if (!create_segment(next_id, err)) {
        fail_unwritable("cannot create " + (opts.dir / segment_file_name(next_id)).string(), err);
      }
    }
    update_gauges_locked();
  }

  // Creates seg-<first_id>.log with its header, durably, and makes it the active segment.
  // Runs at open and on the committer thread.
  bool create_segment(uint64_t first_id, int& err) {
    fs::path path = opts.dir / segment_file_name(first_id);
    int nfd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (nfd < 0) {
      err = errno;
      return false;
    }
    std::string header = qf::segment_header();
    if (!pwrite_all(nfd, header, 0) || ::fdatasync(nfd) != 0) {
      err = errno;
      ::close(nfd);
      ::unlink(path.c_str());
      return false;
    }
    fsync_dir(opts.dir);
    if (fd >= 0) ::close(fd);
    fd = nfd;
    active_size = header.size();
    std::lock_guard lock(mu);
    segments[first_id].path = path;
    active_segment = first_id;
    return true;
  }

  void start_threads() {
    committer = std::thread([this] { committer_loop(); });
    dispatcher = std::thread([this] { dispatcher_loop(); });
  }

  // ---- appends and the committer ------------------------------------------------------------

  AppendStatus append(std::string_view data, AppendDone done) {
    uint64_t size = data.size();
    if (size > qf::kMaxRecordPayload - 64) return AppendStatus::full;
    uint64_t before = live_bytes.fetch_add(size);
    if (before + size > opts.max_bytes) {
      live_bytes.fetch_sub(size);
      return AppendStatus::full;
    }
    PendingAppend pending{0, std::string(data), std::move(done), Clock::now()};
    {
      std::lock_guard lock(commit_mu);
      if (commit_stop || broken) {
        live_bytes.fetch_sub(size);
        return AppendStatus::io_error;
      }
      pending.id = next_id++;
      qf::encode_append(pending_append_buf, pending.id, data);
      pending_appends.push_back(std::move(pending));
    }
    commit_cv.notify_one();
    bytes_gauge->Set(static_cast<double>(live_bytes.load()));
    return AppendStatus::ok;
  }

  // Writes one batch at the end of the active segment and fdatasyncs it. On failure the
  // partial bytes are cut off again so later batches follow good records. Returns an errno.
  int write_batch(const std::string& meta, const std::string& appends) {
    uint64_t start = active_size;
    int err = 0;
    if (!pwrite_all(fd, meta, start) || !pwrite_all(fd, appends, start + meta.size())) {
      err = errno;
    } else if (::fdatasync(fd) != 0) {
      err = errno;
    }
    if (err == 0) {
      active_size += meta.size() + appends.size();
      fsyncs_counter->Increment();
      return 0;
    }
    if (::ftruncate(fd, static_cast<off_t>(start)) != 0 || ::fdatasync(fd) != 0) {
      log.error(
          fmt::format("{}: cannot undo a failed write to segment {}: {}. The queue refuses "
                      "appends until restarted.",
                      label, active_segment, errno_text(errno)));
      std::lock_guard lock(commit_mu);
      broken = true;
    }
    return err;
  }

  // Rotates to a new segment before a batch that starts with appends once the active one is
  // full. On failure the active segment just grows.
  uint64_t maybe_rotate(const std::vector<PendingAppend>& appends) {
    if (!appends.empty() && active_size >= opts.segment_bytes) {
      int err = 0;
      if (!create_segment(appends.front().id, err)) {
        log.warn(
            fmt::format("{}: cannot create a new segment: {}; still writing to the current one.",
                        label, errno_text(err)));
      }
    }
    return active_segment;  // written only by this thread after start-up
  }

  void committer_loop() {
    std::string append_buf, meta_buf;
    std::vector<PendingAppend> appends;
    std::vector<uint64_t> acks, carries;
    bool last_failed = false;
    bool warned = false;
    while (true) {
      {
        std::unique_lock lock(commit_mu);
        if (last_failed && !commit_stop) {
          // Disk trouble: do not spin on the same failing metadata records.
          commit_cv.wait_for(lock, std::chrono::milliseconds(100),
                             [&] { return commit_stop || !pending_appends.empty(); });
        }
        commit_cv.wait(lock, [&] {
          return commit_stop || !pending_append_buf.empty() || !pending_meta_buf.empty();
        });
        if (pending_append_buf.empty() && pending_meta_buf.empty()) break;  // stopping, drained
        append_buf.swap(pending_append_buf);
        meta_buf.swap(pending_meta_buf);
        appends.swap(pending_appends);
        acks.swap(pending_acks);
        carries.swap(pending_carries);
      }
      uint64_t seg = maybe_rotate(appends);
      int err = write_batch(meta_buf, append_buf);
      if (err == 0) {
        if (warned) log.info(fmt::format("{}: writes succeed again.", label));
        last_failed = warned = false;
        apply_committed(appends, acks, carries, seg);
      } else {
        if (!warned) {
          log.error(
              fmt::format("{}: writing segment {} failed: {}. Appends fail (callers answer 503) "
                          "until the disk accepts writes again.",
                          label, segment_file_name(seg), errno_text(err)));
          warned = true;
        }
        last_failed = true;
        fail_batch(appends, meta_buf, acks, carries);
      }
      append_buf.clear();
      meta_buf.clear();
      appends.clear();
      acks.clear();
      carries.clear();
      compact();
    }
  }

  void apply_committed(std::vector<PendingAppend>& appends, const std::vector<uint64_t>& acks,
                       const std::vector<uint64_t>& carries, uint64_t seg) {
    std::vector<std::pair<uint64_t, AppendDone>> dones;
    dones.reserve(appends.size());
    auto now = Clock::now();
    {
      std::lock_guard lock(mu);
      Segment& s = segments[seg];
      for (auto& a : appends) {
        entries.emplace(a.id, Entry{std::move(a.data), 0, {}, false, seg});
        s.live++;
        ready.insert(a.id);
      }
      for (uint64_t id : carries) {
        auto it = entries.find(id);
        if (it == entries.end() || it->second.segment == seg) continue;
        Segment& old = segments[it->second.segment];
        old.live--;
        if (it->second.dead) old.dead--;
        it->second.segment = seg;
        s.live++;
        if (it->second.dead) s.dead++;
      }
      update_gauges_locked();
    }
    if (!appends.empty()) dispatch_cv.notify_one();
    for (auto& a : appends) {
      latency_histogram->Observe(std::chrono::duration<double>(now - a.start).count());
      call_done(a.done, AppendStatus::ok, a.id);
    }
    if (opts.on_ack_durable) {
      for (uint64_t id : acks) opts.on_ack_durable(id);
    }
  }

  void fail_batch(std::vector<PendingAppend>& appends, std::string& meta_buf,
                  std::vector<uint64_t>& acks, std::vector<uint64_t>& carries) {
    for (auto& a : appends) live_bytes.fetch_sub(a.data.size());
    bytes_gauge->Set(static_cast<double>(live_bytes.load()));
    for (auto& a : appends) call_done(a.done, AppendStatus::io_error, 0);
    // Acks, retries and dead letters are already in effect in memory: write them again with
    // the next batch, in the same order, unless the queue is stopping.
    std::lock_guard lock(commit_mu);
    if (commit_stop) {
      if (!meta_buf.empty()) {
        log.error(
            fmt::format("{}: stopping with {} bytes of acks/retries not written; those entries "
                        "may be delivered again after a restart.",
                        label, meta_buf.size()));
      }
      return;
    }
    meta_buf.append(pending_meta_buf);
    pending_meta_buf.swap(meta_buf);
    acks.insert(acks.end(), pending_acks.begin(), pending_acks.end());
    pending_acks.swap(acks);
    carries.insert(carries.end(), pending_carries.begin(), pending_carries.end());
    pending_carries.swap(carries);
  }

  void call_done(AppendDone& done, AppendStatus status, uint64_t id) {
    if (!done) return;
    try {
      done(status, id);
    } catch (const std::exception& e) {
      log.error(fmt::format("{}: append callback threw: {}", label, e.what()));
    } catch (...) {
      log.error(fmt::format("{}: append callback threw", label));
    }
  }

  // Deletes the oldest segments once every entry in them is acked; copies dead letters that
  // alone keep the oldest segment alive into the active one first. Committer thread only.
  void compact() {
    std::vector<fs::path> doomed;
    bool carried = false;
    {
      std::lock_guard lock(mu);
      while (segments.size() > 1) {
        auto it = segments.begin();
        if (it->first == active_segment) break;
        Segment& s = it->second;
        if (s.live == 0) {
          doomed.push_back(s.path);
          segments.erase(it);
          continue;
        }
        if (!s.carrying && s.live == s.dead) {
          s.carrying = true;
          std::lock_guard commit_lock(commit_mu);
          for (uint64_t id : dead) {
            const Entry& e = entries.at(id);
            if (e.segment != it->first) continue;
            qf::encode_carry(pending_meta_buf, id, e.failures, true, e.last_error, e.data);
            pending_carries.push_back(id);
          }
          carried = true;
        }
        break;
      }
    }
    if (carried) commit_cv.notify_one();
    for (const auto& path : doomed) {
      // One at a time, each durable before the next: a segment that came back after a crash
      // while a newer one (holding its acks) is gone would resurrect acked entries.
      if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
        log.warn(fmt::format("{}: cannot delete segment {}: {}", label, path.string(),
                             errno_text(errno)));
      }
      fsync_dir(opts.dir);
    }
  }

  // ---- delivery -------------------------------------------------------------------------

  void consume(Consumer c) {
    {
      std::lock_guard lock(mu);
      if (consumer) throw std::logic_error(label + ": consume() called twice");
      consumer = std::move(c);
    }
    dispatch_cv.notify_one();
  }

  void promote_due_locked(Clock::time_point now) {
    while (!delayed.empty() && delayed.begin()->first <= now) {
      ready.insert(delayed.begin()->second);
      delayed.erase(delayed.begin());
    }
  }

  void dispatcher_loop() {
    std::unique_lock lock(mu);
    while (!stopping) {
      promote_due_locked(Clock::now());
      if (consumer && !in_flight && !ready.empty()) {
        in_flight = true;
        lock.unlock();
        post_delivery();
        lock.lock();
        continue;
      }
      if (consumer && !in_flight && !delayed.empty()) {
        dispatch_cv.wait_until(lock, delayed.begin()->first);
      } else {
        dispatch_cv.wait(lock);
      }
    }
  }

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

  void post_delivery() {
    auto guard = std::make_shared<DeliveryGuard>(this);
    pool.post([this, guard] {
      guard->ran = true;
      run_deliveries();
      delivery_done();
    });
  }

  void delivery_done() {
    // Notify under the lock: once stop() sees !in_flight it may destroy this object.
    std::lock_guard lock(mu);
    in_flight = false;
    idle_cv.notify_all();
    dispatch_cv.notify_one();
  }

  void run_deliveries() {
    for (int n = 0; n < kDeliveriesPerJob; ++n) {
      QueueEntry entry;
      {
        std::lock_guard lock(mu);
        if (stopping) return;
        promote_due_locked(Clock::now());
        if (ready.empty()) return;
        uint64_t id = *ready.begin();
        ready.erase(ready.begin());
        const Entry& e = entries.at(id);
        entry = QueueEntry{id, e.failures + 1, e.data, e.last_error};
      }
      std::string error;
      Outcome outcome;
      try {
        outcome = consumer(entry, error);
      } catch (const std::exception& ex) {
        outcome = Outcome::retry;
        error = std::string("consumer threw: ") + ex.what();
      } catch (...) {
        outcome = Outcome::retry;
        error = "consumer threw";
      }
      finish(entry.id, outcome, error);
    }
  }

  std::chrono::milliseconds backoff(uint32_t failures) const {
    auto delay = opts.retry_backoff;
    for (uint32_t i = 1; i < failures && delay < kMaxBackoff; ++i) delay *= 2;
    return std::min(delay, kMaxBackoff);
  }

  void finish(uint64_t id, Outcome outcome, const std::string& error) {
    {
      std::lock_guard lock(mu);
      auto it = entries.find(id);
      Entry& e = it->second;
      Segment& s = segments[e.segment];
      if (outcome == Outcome::ack) {
        live_bytes.fetch_sub(e.data.size());
        s.live--;
        entries.erase(it);
        std::lock_guard commit_lock(commit_mu);
        qf::encode_ack(pending_meta_buf, id);
        pending_acks.push_back(id);
      } else {
        e.failures++;
        e.last_error = error;
        std::lock_guard commit_lock(commit_mu);
        if (e.failures >= opts.max_attempts) {
          e.dead = true;
          dead.insert(id);
          s.dead++;
          qf::encode_dead(pending_meta_buf, id, e.failures, error);
        } else {
          delayed.emplace(Clock::now() + backoff(e.failures), id);
          qf::encode_retry(pending_meta_buf, id, e.failures, error);
        }
      }
      update_gauges_locked();
    }
    commit_cv.notify_one();
  }

  // ---- dead letters, depth, stop ------------------------------------------------------------

  uint64_t depth() const {
    std::lock_guard lock(mu);
    return entries.size() - dead.size();
  }

  void list_dead(const std::function<bool(const QueueEntry&)>& visit) const {
    uint64_t cursor = 0;
    while (true) {
      std::vector<QueueEntry> batch;
      {
        std::lock_guard lock(mu);
        for (auto it = dead.upper_bound(cursor); it != dead.end() && batch.size() < kListBatch;
             ++it) {
          const Entry& e = entries.at(*it);
          batch.push_back(QueueEntry{*it, e.failures, e.data, e.last_error});
        }
      }
      if (batch.empty()) return;
      for (const auto& entry : batch) {
        cursor = entry.id;
        if (!visit(entry)) return;
      }
    }
  }

  bool replay(uint64_t id) {
    {
      std::lock_guard lock(mu);
      if (dead.erase(id) == 0) return false;
      Entry& e = entries.at(id);
      e.dead = false;
      e.failures = 0;
      segments[e.segment].dead--;
      ready.insert(id);
      {
        std::lock_guard commit_lock(commit_mu);
        qf::encode_replay(pending_meta_buf, id);
      }
      update_gauges_locked();
    }
    commit_cv.notify_one();
    dispatch_cv.notify_one();
    return true;
  }

  void update_gauges_locked() {
    depth_gauge->Set(static_cast<double>(entries.size() - dead.size()));
    dead_gauge->Set(static_cast<double>(dead.size()));
    bytes_gauge->Set(static_cast<double>(live_bytes.load()));
  }

  void stop() {
    {
      std::lock_guard lock(mu);
      if (stopped) return;
      stopped = stopping = true;
    }
    dispatch_cv.notify_all();
    if (dispatcher.joinable()) dispatcher.join();
    {
      std::unique_lock lock(mu);
      idle_cv.wait(lock, [&] { return !in_flight; });
    }
    {
      std::lock_guard lock(commit_mu);
      commit_stop = true;
    }
    commit_cv.notify_all();
    if (committer.joinable()) committer.join();
    if (fd >= 0) ::close(fd);
    fd = -1;
    if (lock_fd >= 0) ::close(lock_fd);  // releases the directory lock
    lock_fd = -1;
  }

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
  Consumer consumer;
  bool in_flight = false;
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
  uint64_t active_size = 0;
};

std::unique_ptr<DurableQueue> DurableQueue::open(QueueOptions options, WorkerPool& pool,
                                                 prometheus::Registry& registry, Logger& log) {
  auto impl = std::make_unique<Impl>(std::move(options), pool, registry, log);
  impl->open_dir();
  impl->recover();
  impl->start_threads();
  return std::unique_ptr<DurableQueue>(new DurableQueue(std::move(impl)));
}

DurableQueue::DurableQueue(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DurableQueue::~DurableQueue() { impl_->stop(); }

AppendStatus DurableQueue::append(std::string_view data, AppendDone done) {
  return impl_->append(data, std::move(done));
}
void DurableQueue::consume(Consumer consumer) { impl_->consume(std::move(consumer)); }
uint64_t DurableQueue::depth() const { return impl_->depth(); }
void DurableQueue::list_dead(const std::function<bool(const QueueEntry&)>& visit) const {
  impl_->list_dead(visit);
}
bool DurableQueue::replay(uint64_t id) { return impl_->replay(id); }
void DurableQueue::stop() { impl_->stop(); }

}  // namespace kghost
