// Durable queue start-up: the directory (writable, locked) and recovery from its segments.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>

#include "runtime/durable_queue_impl.hpp"

namespace kghost {

namespace fs = std::filesystem;
namespace qf = queue_format;
using namespace queue_files;
using Clock = std::chrono::steady_clock;

void DurableQueue::Impl::fail_unwritable(const std::string& what, int err) {
  throw std::runtime_error(label + ": " + what + ": " + errno_text(err) +
                           ". Make the directory writable by the user running kghost, free "
                           "space, or point the queue at another directory.");
}

void DurableQueue::Impl::open_dir() {
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

void DurableQueue::Impl::apply_recovered(const qf::Record& r, uint64_t seg_key) {
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

// Recovers one segment file; returns whether new records may follow its end (only asked of
// the last segment).
bool DurableQueue::Impl::recover_segment(uint64_t key, const fs::path& path, bool last) {
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
      return false;
    }
    log.warn(fmt::format("{}: {} is shorter than a segment header; ignored. Move it away.", label,
                         path.string()));
    segments[key].path = path;
    return false;
  }
  segments[key].path = path;
  auto scan = qf::scan_records(bytes, [&](const qf::Record& r) { apply_recovered(r, key); });
  bool reusable = last;
  if (last) recovered_end = scan.valid_end;
  if (scan.end == qf::ScanEnd::torn && last) {
    // Normal after a crash: the last group commit was not (fully) written. Zero it so new
    // records follow the good ones (a zeroed tail reads as the unused runway).
    zero_torn_tail(path, bytes, scan.valid_end);
  } else if (scan.end != qf::ScanEnd::clean) {
    log.warn(fmt::format(
        "{}: segment {} is damaged at offset {} ({}); kept the records before it and "
        "ignored the {} bytes from there on. Entries recorded after that offset may be "
        "lost or delivered again; keep a copy of the file for inspection.",
        label, path.string(), scan.valid_end, scan.reason, bytes.size() - scan.valid_end));
    reusable = false;  // never append after damage: the next scan stops there
    // Ids recorded after the damage are unknown; never hand them out again (consumers
    // de-duplicate by id). An append record takes at least kMinAppend bytes.
    constexpr uint64_t kMinAppend = qf::kRecordHeaderSize + 9;
    max_damaged_id = std::max(max_damaged_id, key + bytes.size() / kMinAppend);
  }
  return reusable;
}

void DurableQueue::Impl::zero_torn_tail(const fs::path& path, std::string_view bytes,
                                        uint64_t valid_end) {
  uint64_t torn_end = bytes.size();
  while (torn_end > valid_end && bytes[torn_end - 1] == '\0') --torn_end;
  int tfd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (tfd < 0 || !pwrite_zeros(tfd, valid_end, torn_end) || ::fdatasync(tfd) != 0) {
    fail_unwritable("cannot clear the torn tail of " + path.string(), errno);
  }
  ::close(tfd);
}

void DurableQueue::Impl::recover() {
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
    reuse_last = recover_segment(key, path, last) && last;
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

  open_active_segment(reuse_last);
  update_gauges_locked();
}

// Opens the last recovered segment for appending, or starts a new one.
void DurableQueue::Impl::open_active_segment(bool reuse_last) {
  if (reuse_last) {
    auto& [key, seg] = *segments.rbegin();
    fd = ::open(seg.path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) fail_unwritable("cannot open " + seg.path.string() + " for writing", errno);
    struct stat st {};
    ::fstat(fd, &st);
    active_size = recovered_end;  // what follows is zeros: runway, or a cleared torn tail
    zeroed_end = std::max(recovered_end, static_cast<uint64_t>(st.st_size));
    active_segment = key;
  } else {
    while (fs::exists(opts.dir / segment_file_name(next_id))) ++next_id;
    int err = 0;
    if (!create_segment(next_id, err)) {
      fail_unwritable("cannot create " + (opts.dir / segment_file_name(next_id)).string(), err);
    }
  }
}

bool DurableQueue::Impl::create_segment(uint64_t first_id, int& err) {
  fs::path path = opts.dir / segment_file_name(first_id);
  int nfd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (nfd < 0) {
    err = errno;
    return false;
  }
  // The header and the first chunk of the runway, durable before the file is named active.
  std::string header = qf::segment_header();
  uint64_t runway = std::min(opts.preallocate_bytes, opts.segment_bytes);
  uint64_t file_end = runway ? (header.size() + runway + 4095) & ~uint64_t{4095} : header.size();
  bool ok = pwrite_all(nfd, header, 0);
  if (ok && file_end > header.size() && !pwrite_zeros(nfd, header.size(), file_end)) {
    // No room for the runway (disk nearly full): start without it, growing per commit.
    file_end = header.size();
    ok = ::ftruncate(nfd, static_cast<off_t>(file_end)) == 0;
  }
  if (!ok || ::fdatasync(nfd) != 0) {
    err = errno;
    ::close(nfd);
    ::unlink(path.c_str());
    return false;
  }
  fsync_dir(opts.dir);
  if (fd >= 0) ::close(fd);
  fd = nfd;
  active_size = header.size();
  zeroed_end = file_end;
  std::lock_guard lock(mu);
  segments[first_id].path = path;
  active_segment = first_id;
  return true;
}

}  // namespace kghost
