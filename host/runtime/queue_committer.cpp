// Durable queue committer thread: group commit (one write + one fdatasync per batch), segment
// rotation, completion callbacks, and compaction of fully acknowledged segments.
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "runtime/durable_queue_impl.hpp"

namespace kghost {

namespace fs = std::filesystem;
namespace qf = queue_format;
using namespace queue_files;
using Clock = std::chrono::steady_clock;

namespace {
// How long acks, retries and dead letters wait for an append to share a group commit with.
constexpr auto kMetaLinger = std::chrono::milliseconds(2);
}  // namespace

int DurableQueue::Impl::ensure_runway(uint64_t end) {
  const uint64_t chunk = std::min(opts.preallocate_bytes, opts.segment_bytes);
  if (chunk == 0 || end + chunk / 2 <= zeroed_end) return 0;
  const uint64_t from = zeroed_end;
  uint64_t to = std::max(end, zeroed_end) + chunk;
  to = (to + 4095) & ~uint64_t{4095};
  if (!pwrite_zeros(fd, from, to)) {
    // Past the runway: the batch cannot be written. Inside it: try again with the next batch.
    return end > zeroed_end ? errno : 0;
  }
  zeroed_end = to;
  // Start writing the zeros back now, so the next fdatasync mostly waits for its own records.
  ::sync_file_range(fd, static_cast<off_t>(from), static_cast<off_t>(to - from),
                    SYNC_FILE_RANGE_WRITE);
  return 0;
}

int DurableQueue::Impl::write_batch(const std::string& meta, const std::string& appends) {
  uint64_t start = active_size;
  uint64_t end = start + meta.size() + appends.size();
  int err = ensure_runway(end);
  if (err == 0 && (!pwrite_all(fd, meta, start) || !pwrite_all(fd, appends, start + meta.size())))
    err = errno;
  if (err == 0 && ::fdatasync(fd) != 0) err = errno;
  if (err == 0) {
    active_size = end;
    zeroed_end = std::max(zeroed_end, end);
    fsyncs_counter->Increment();
    return 0;
  }
  // Cut off whatever part of the batch (and of the runway) made it, so later batches follow
  // good records; the runway is written again with the next batch.
  zeroed_end = start;
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

uint64_t DurableQueue::Impl::maybe_rotate(const std::vector<PendingAppend>& appends) {
  if (!appends.empty() && active_size >= opts.segment_bytes) {
    int err = 0;
    if (!create_segment(appends.front().id, err)) {
      log.warn(fmt::format("{}: cannot create a new segment: {}; still writing to the current one.",
                           label, errno_text(err)));
    }
  }
  return active_segment;  // written only by this thread after start-up
}

void DurableQueue::Impl::committer_loop() {
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
      if (pending_append_buf.empty() && !commit_stop) {
        // Only acks and retries: nobody waits for them. Give appends a moment to share the
        // fdatasync instead of spending one on these alone.
        commit_cv.wait_for(lock, kMetaLinger,
                           [&] { return commit_stop || !pending_append_buf.empty(); });
      }
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

void DurableQueue::Impl::apply_committed(std::vector<PendingAppend>& appends,
                                         const std::vector<uint64_t>& acks,
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

void DurableQueue::Impl::fail_batch(std::vector<PendingAppend>& appends, std::string& meta_buf,
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

void DurableQueue::Impl::call_done(AppendDone& done, AppendStatus status, uint64_t id) {
  if (!done) return;
  try {
    done(status, id);
  } catch (const std::exception& e) {
    log.error(fmt::format("{}: append callback threw: {}", label, e.what()));
  } catch (...) {
    log.error(fmt::format("{}: append callback threw", label));
  }
}

void DurableQueue::Impl::compact() {
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
      log.warn(
          fmt::format("{}: cannot delete segment {}: {}", label, path.string(), errno_text(errno)));
    }
    fsync_dir(opts.dir);
  }
}

}  // namespace kghost
