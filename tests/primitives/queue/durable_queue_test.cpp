// Unit tests of the durable queue: delivery, retries, dead letters, recovery and faults.
#include "runtime/durable_queue.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <signal.h>
#include <spdlog/sinks/ostream_sink.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "runtime/queue_format.hpp"
#include "support.hpp"

namespace kghost {
namespace {

using namespace std::chrono_literals;
using test::TempDir;
using test::wait_until;
namespace fs = std::filesystem;
namespace qf = queue_format;

class DurableQueueTest : public ::testing::Test {
 protected:
  QueueOptions options(const std::string& sub = "q") {
    QueueOptions o;
    o.dir = tmp_.path() / sub;
    o.name = "test";
    o.retry_backoff = 1ms;
    return o;
  }

  std::unique_ptr<DurableQueue> open(QueueOptions o) {
    return DurableQueue::open(std::move(o), pool_, registry_, log_);
  }

  // Appends and waits until durable; returns the id.
  static uint64_t append_sync(DurableQueue& q, std::string_view data) {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    AppendStatus status{};
    uint64_t id = 0;
    EXPECT_EQ(q.append(data,
                       [&](AppendStatus s, uint64_t i) {
                         std::lock_guard lock(m);
                         status = s;
                         id = i;
                         done = true;
                         cv.notify_all();
                       }),
              AppendStatus::ok);
    std::unique_lock lock(m);
    EXPECT_TRUE(cv.wait_for(lock, 10s, [&] { return done; }));
    EXPECT_EQ(status, AppendStatus::ok);
    return id;
  }

  static std::vector<fs::path> segments(const fs::path& dir) {
    std::vector<fs::path> out;
    for (const auto& e : fs::directory_iterator(dir)) {
      if (e.path().filename().string().starts_with("seg-")) out.push_back(e.path());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  // Offset just past the last good record of a segment (before its zeroed runway).
  static uint64_t data_end(const fs::path& seg) {
    std::ifstream in(seg, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return qf::scan_records(bytes, [](const qf::Record&) {}).valid_end;
  }

  static std::vector<QueueEntry> dead_letters(const DurableQueue& q) {
    std::vector<QueueEntry> out;
    q.list_dead([&](const QueueEntry& e) {
      out.push_back(e);
      return true;
    });
    return out;
  }

  double metric(const std::string& name) {
    for (const auto& family : registry_.Collect()) {
      if (family.name != name) continue;
      for (const auto& m : family.metric) {
        if (family.type == prometheus::MetricType::Counter) return m.counter.value;
        if (family.type == prometheus::MetricType::Gauge) return m.gauge.value;
        if (family.type == prometheus::MetricType::Histogram) {
          return static_cast<double>(m.histogram.sample_count);
        }
      }
    }
    return -1;
  }

  TempDir tmp_;
  WorkerPool pool_{2};
  prometheus::Registry registry_;
  Logger log_;
};

// Collects deliveries and answers with a scripted outcome (`decide`, set before consumer()).
// The consumer shares the record rather than pointing into the Recorder: a queue declared before
// its Recorder outlives it and may still deliver an entry appended last while the Recorder is being
// destroyed.
class Recorder {
 public:
  using Decide = std::function<DurableQueue::Outcome(const QueueEntry&, std::string&)>;
  Decide decide = [](const QueueEntry&, std::string&) { return DurableQueue::Outcome::ack; };

  DurableQueue::Consumer consumer() {
    return [state = state_, decide = decide](const QueueEntry& e, std::string& err) {
      auto outcome = decide(e, err);
      std::lock_guard lock(state->m);
      state->seen.push_back(e);
      return outcome;
    };
  }
  std::size_t count() {
    std::lock_guard lock(state_->m);
    return state_->seen.size();
  }
  std::vector<QueueEntry> snapshot() {
    std::lock_guard lock(state_->m);
    return state_->seen;
  }

 private:
  struct State {
    std::mutex m;
    std::vector<QueueEntry> seen;
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

TEST_F(DurableQueueTest, DeliversInAppendOrderAndAckRemovesEntries) {
  auto q = open(options());
  std::vector<uint64_t> ids;
  for (int i = 0; i < 50; ++i) ids.push_back(append_sync(*q, "msg-" + std::to_string(i)));
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  EXPECT_EQ(q->depth(), 50u);
  Recorder rec;
  std::atomic<int> active{0}, max_active{0};
  rec.decide = [&](const QueueEntry&, std::string&) {
    int now = ++active;
    max_active = std::max(max_active.load(), now);
    std::this_thread::yield();
    --active;
    return DurableQueue::Outcome::ack;
  };
  q->consume(rec.consumer());
  ASSERT_TRUE(wait_until([&] { return q->depth() == 0 && rec.count() == 50; }));
  EXPECT_EQ(max_active, 1) << "the consumer ran concurrently with itself";
  auto seen = rec.snapshot();
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(seen[i].id, ids[i]);
    EXPECT_EQ(seen[i].data, "msg-" + std::to_string(i));
    EXPECT_EQ(seen[i].attempt, 1u);
  }
  EXPECT_EQ(metric("kgents_queue_depth"), 0);
  EXPECT_GE(metric("kgents_queue_fsyncs_total"), 1);
  EXPECT_EQ(metric("kgents_queue_append_latency_seconds"), 50);
}

TEST_F(DurableQueueTest, RetryRedeliversWithVisibleAttemptCount) {
  auto q = open(options());
  Recorder rec;
  rec.decide = [](const QueueEntry& e, std::string& err) {
    if (e.attempt < 3) {
      err = "boom " + std::to_string(e.attempt);
      return DurableQueue::Outcome::retry;
    }
    return DurableQueue::Outcome::ack;
  };
  q->consume(rec.consumer());
  uint64_t id = append_sync(*q, "x");
  ASSERT_TRUE(wait_until([&] { return q->depth() == 0 && rec.count() == 3; }));
  auto seen = rec.snapshot();
  for (uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(seen[i].id, id);
    EXPECT_EQ(seen[i].attempt, i + 1);
  }
  EXPECT_EQ(seen[0].last_error, "");
  EXPECT_EQ(seen[2].last_error, "boom 2");
}

TEST_F(DurableQueueTest, DeadLetterAfterMaxAttemptsThenListAndReplay) {
  auto o = options();
  o.max_attempts = 3;
  auto q = open(o);
  Recorder rec;
  std::atomic<bool> healthy{false};
  rec.decide = [&](const QueueEntry& e, std::string& err) {
    if (healthy) return DurableQueue::Outcome::ack;
    err = "downstream 500 on attempt " + std::to_string(e.attempt);
    return DurableQueue::Outcome::retry;
  };
  q->consume(rec.consumer());
  uint64_t bad = append_sync(*q, "poison");
  ASSERT_TRUE(wait_until([&] { return !dead_letters(*q).empty(); }));
  EXPECT_EQ(rec.count(), 3u);
  EXPECT_EQ(q->depth(), 0u);
  auto dead = dead_letters(*q);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].id, bad);
  EXPECT_EQ(dead[0].data, "poison");
  EXPECT_EQ(dead[0].attempt, 3u);
  EXPECT_EQ(dead[0].last_error, "downstream 500 on attempt 3");
  EXPECT_EQ(metric("kgents_queue_dead_letters"), 1);

  EXPECT_FALSE(q->replay(bad + 1000));
  healthy = true;
  EXPECT_TRUE(q->replay(bad));
  EXPECT_FALSE(q->replay(bad));  // no longer a dead letter
  ASSERT_TRUE(wait_until([&] { return rec.count() == 4 && q->depth() == 0; }));
  EXPECT_EQ(rec.snapshot().back().attempt, 1u);  // attempt count reset
  EXPECT_TRUE(dead_letters(*q).empty());
  EXPECT_EQ(metric("kgents_queue_dead_letters"), 0);
}

TEST_F(DurableQueueTest, ListDeadVisitsOldestFirstAndStopsWhenAsked) {
  auto o = options();
  o.max_attempts = 1;
  auto q = open(o);
  q->consume([](const QueueEntry&, std::string& err) {
    err = "no";
    return DurableQueue::Outcome::retry;
  });
  std::vector<uint64_t> ids;
  for (int i = 0; i < 100; ++i) ids.push_back(append_sync(*q, std::to_string(i)));
  ASSERT_TRUE(wait_until([&] { return dead_letters(*q).size() == 100; }));
  auto all = dead_letters(*q);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(all[i].id, ids[i]);
  int visited = 0;
  q->list_dead([&](const QueueEntry&) { return ++visited < 70; });
  EXPECT_EQ(visited, 70);
}

TEST_F(DurableQueueTest, ReopenAfterCleanStopKeepsUnackedAndDeadButNotAcked) {
  auto o = options();
  o.max_attempts = 1;
  uint64_t dead_id = 0;
  {
    auto q = open(o);
    for (int i = 0; i < 10; ++i) append_sync(*q, "e" + std::to_string(i));
    Recorder rec;
    rec.decide = [](const QueueEntry& e, std::string& err) {
      if (e.data == "e3") {
        err = "bad e3";
        return DurableQueue::Outcome::retry;
      }
      return DurableQueue::Outcome::ack;
    };
    q->consume(rec.consumer());
    ASSERT_TRUE(wait_until([&] { return q->depth() == 0; }));
    dead_id = dead_letters(*q).at(0).id;
    q->stop();
    EXPECT_EQ(q->append("late", [](AppendStatus, uint64_t) {}), AppendStatus::io_error);
  }
  {
    auto q = open(o);  // no consumer this time
    for (int i = 10; i < 15; ++i) append_sync(*q, "e" + std::to_string(i));
  }
  auto q = open(o);
  EXPECT_EQ(q->depth(), 5u);
  auto dead = dead_letters(*q);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].id, dead_id);
  EXPECT_EQ(dead[0].last_error, "bad e3");
  Recorder rec;
  q->consume(rec.consumer());
  ASSERT_TRUE(wait_until([&] { return rec.count() == 5; }));
  auto seen = rec.snapshot();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(seen[i].data, "e" + std::to_string(10 + i));
  // New ids continue after the old ones.
  EXPECT_GT(append_sync(*q, "new"), seen.back().id);
}

TEST_F(DurableQueueTest, AppendReturnsFullAtOnceOverMaxBytes) {
  auto o = options();
  o.max_bytes = 1000;
  auto q = open(o);
  std::string blob(400, 'b');
  append_sync(*q, blob);
  append_sync(*q, blob);
  bool called = false;
  EXPECT_EQ(q->append(blob, [&](AppendStatus, uint64_t) { called = true; }), AppendStatus::full);
  EXPECT_FALSE(called);
  EXPECT_EQ(metric("kgents_queue_bytes"), 800);
  // Consuming frees the space again.
  q->consume([](const QueueEntry&, std::string&) { return DurableQueue::Outcome::ack; });
  ASSERT_TRUE(wait_until([&] { return q->depth() == 0; }));
  append_sync(*q, blob);
}

TEST_F(DurableQueueTest, TornLastRecordIsDroppedSilently) {
  auto o = options();
  {
    auto q = open(o);
    append_sync(*q, "first");
    append_sync(*q, "second");
  }
  auto segs = segments(o.dir);
  ASSERT_EQ(segs.size(), 1u);
  auto good_size = fs::file_size(segs[0]);
  auto good_end = data_end(segs[0]);
  EXPECT_GT(good_size, good_end) << "the segment has a zeroed runway";
  {
    // A crash in the middle of a group commit: half a record after the good ones.
    std::string rec;
    qf::encode_append(rec, 99, "third, never confirmed");
    std::fstream out(segs[0], std::ios::binary | std::ios::in | std::ios::out);
    out.seekp(static_cast<std::streamoff>(good_end));
    out.write(rec.data(), static_cast<std::streamsize>(rec.size() / 2));
  }
  std::ostringstream log;
  Logger capture(std::make_shared<spdlog::sinks::ostream_sink_mt>(log));
  auto q = DurableQueue::open(o, pool_, registry_, capture);
  EXPECT_EQ(log.str(), "") << "a torn tail is normal after a crash";
  EXPECT_EQ(q->depth(), 2u);
  EXPECT_EQ(fs::file_size(segs[0]), good_size);  // the torn tail was zeroed, the runway kept
  EXPECT_EQ(data_end(segs[0]), good_end);
  uint64_t id = append_sync(*q, "after");
  Recorder rec;
  q->consume(rec.consumer());
  ASSERT_TRUE(wait_until([&] { return rec.count() == 3; }));
  auto seen = rec.snapshot();
  EXPECT_EQ(seen[0].data, "first");
  EXPECT_EQ(seen[1].data, "second");
  EXPECT_EQ(seen[2].data, "after");
  EXPECT_EQ(seen[2].id, id);
}

TEST_F(DurableQueueTest, CorruptRecordMidSegmentKeepsEarlierRecordsAndNamesTheFile) {
  auto o = options();
  uint64_t offset_of_second = 0;
  {
    auto q = open(o);
    append_sync(*q, "first");
    offset_of_second = data_end(segments(o.dir)[0]);
    append_sync(*q, "second");
    append_sync(*q, "third");
  }
  auto seg = segments(o.dir)[0];
  {
    // Flip a payload byte of the second record.
    std::fstream f(seg, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(offset_of_second + qf::kRecordHeaderSize + 12));
    f.put('X');
  }
  std::ostringstream log;
  Logger capture(std::make_shared<spdlog::sinks::ostream_sink_mt>(log));
  std::unique_ptr<DurableQueue> q;
  EXPECT_NO_THROW(q = DurableQueue::open(o, pool_, registry_, capture));

  EXPECT_NE(log.str().find(seg.string()), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("offset " + std::to_string(offset_of_second)), std::string::npos)
      << log.str();
  EXPECT_EQ(q->depth(), 1u);
  // New appends go to a fresh segment, never after the damage.
  append_sync(*q, "fourth");
  EXPECT_EQ(segments(o.dir).size(), 2u);
  Recorder rec;
  q->consume(rec.consumer());
  ASSERT_TRUE(wait_until([&] { return rec.count() == 2; }));
  EXPECT_EQ(rec.snapshot()[0].data, "first");
  EXPECT_EQ(rec.snapshot()[1].data, "fourth");
}

TEST_F(DurableQueueTest, SegmentOfLaterFormatVersionIsRefused) {
  auto o = options();
  fs::create_directories(o.dir);
  auto path = o.dir / "seg-00000000000000000001.log";
  {
    std::ofstream out(path, std::ios::binary);
    out << qf::segment_header(qf::kVersion + 1);
  }
  try {
    open(o);
    FAIL() << "opened a segment of a later format version";
  } catch (const std::runtime_error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(path.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("format version 2"), std::string::npos) << msg;
  }
  EXPECT_EQ(fs::file_size(path), qf::kHeaderSize);  // left untouched
}

TEST_F(DurableQueueTest, DirectoryUnderAFileGivesClearError) {
  auto file = tmp_.path() / "plain-file";
  std::ofstream(file) << "x";
  auto o = options();
  o.dir = file / "queue";
  try {
    open(o);
    FAIL() << "opened a queue below a regular file";
  } catch (const std::runtime_error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(o.dir.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("writable"), std::string::npos) << msg;
  }
}

TEST_F(DurableQueueTest, ReadOnlyDirectoryGivesClearError) {
  auto o = options();
  fs::create_directories(o.dir);
  ::chmod(o.dir.c_str(), 0555);
  int probe = ::open((o.dir / "probe").c_str(), O_WRONLY | O_CREAT, 0644);
  if (probe >= 0) {
    ::close(probe);
    ::chmod(o.dir.c_str(), 0755);
    GTEST_SKIP() << "running with CAP_DAC_OVERRIDE (root): chmod does not stop writes; "
                    "DirectoryUnderAFileGivesClearError covers the error path";
  }
  try {
    open(o);
    ADD_FAILURE() << "opened a read-only directory";
  } catch (const std::runtime_error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("not writable"), std::string::npos) << msg;
    EXPECT_NE(msg.find(o.dir.string()), std::string::npos) << msg;
  }
  ::chmod(o.dir.c_str(), 0755);
}

TEST_F(DurableQueueTest, SecondOpenOfSameDirectoryIsRefused) {
  auto o = options();
  auto q = open(o);
  EXPECT_THROW(open(o), std::runtime_error);
  q->stop();
  EXPECT_NO_THROW(open(o));
}

TEST_F(DurableQueueTest, GroupCommitSharesFsyncsAcrossConcurrentAppenders) {
  auto q = open(options());
  constexpr int kThreads = 64, kPerThread = 50;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) append_sync(*q, std::to_string(t * 1000 + i));
    });
  }
  for (auto& t : threads) t.join();
  double fsyncs = metric("kgents_queue_fsyncs_total");
  EXPECT_EQ(q->depth(), static_cast<uint64_t>(kThreads * kPerThread));
  EXPECT_LT(fsyncs, kThreads * kPerThread / 4.0) << "fsyncs: " << fsyncs;
}

TEST_F(DurableQueueTest, RotatesSegmentsAndCompactsAckedOnesKeepingDeadLetters) {
  auto o = options();
  o.segment_bytes = 4096;
  o.max_attempts = 1;
  std::string blob(500, 'z');
  uint64_t dead_id = 0;
  {
    auto q = open(o);
    std::atomic<bool> fail_first{true};
    q->consume([&](const QueueEntry&, std::string& err) {
      if (fail_first.exchange(false)) {
        err = "first one fails";
        return DurableQueue::Outcome::retry;
      }
      return DurableQueue::Outcome::ack;
    });
    for (int i = 0; i < 200; ++i) append_sync(*q, blob + std::to_string(i));
    ASSERT_TRUE(wait_until([&] { return q->depth() == 0; }));
    // A few more batches let the committer write the acks and the carried dead letter.
    for (int i = 0; i < 3; ++i) append_sync(*q, "tail");
    ASSERT_TRUE(wait_until([&] { return q->depth() == 0 && segments(o.dir).size() <= 3; }))
        << segments(o.dir).size() << " segments left";
    auto dead = dead_letters(*q);
    ASSERT_EQ(dead.size(), 1u);
    dead_id = dead[0].id;
    EXPECT_EQ(dead[0].data, blob + "0");
  }
  // The dead letter survived the deletion of the segment it was appended in.
  EXPECT_GT(segments(o.dir).front().filename().string(), "seg-00000000000000000001.log");
  auto q = open(o);
  auto dead = dead_letters(*q);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].id, dead_id);
  EXPECT_EQ(dead[0].last_error, "first one fails");
  EXPECT_EQ(q->depth(), 0u);
}

TEST_F(DurableQueueTest, WriteFailureGivesIoErrorAndQueueRecovers) {
  // RLIMIT_FSIZE makes writes past the limit fail with EFBIG, like a full disk.
  auto q = open(options());
  append_sync(*q, "before");
  struct rlimit old {};
  ::getrlimit(RLIMIT_FSIZE, &old);
  auto previous_handler = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit tight = old;
  tight.rlim_cur = fs::file_size(segments(tmp_.path() / "q")[0]) + 100;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &tight), 0);
  std::atomic<int> result{-1};
  // Bigger than the zeroed runway, so the write has to grow the file.
  EXPECT_EQ(q->append(std::string((1u << 20) + 4096, 'f'),
                      [&](AppendStatus s, uint64_t) { result = static_cast<int>(s); }),
            AppendStatus::ok);
  bool failed = wait_until([&] { return result != -1; });
  ::setrlimit(RLIMIT_FSIZE, &old);
  ::signal(SIGXFSZ, previous_handler);
  ASSERT_TRUE(failed);
  EXPECT_EQ(result, static_cast<int>(AppendStatus::io_error));
  EXPECT_EQ(metric("kgents_queue_bytes"), 6);  // the failed append's bytes are released
  append_sync(*q, "after");
  q->stop();
  auto reopened = open(options());
  Recorder rec;
  reopened->consume(rec.consumer());
  ASSERT_TRUE(wait_until([&] { return rec.count() == 2; }));
  EXPECT_EQ(rec.snapshot()[0].data, "before");
  EXPECT_EQ(rec.snapshot()[1].data, "after");
}

TEST_F(DurableQueueTest, ConsumerExceptionCountsAsRetry) {
  auto q = open(options());
  Recorder rec;
  rec.decide = [](const QueueEntry& e, std::string&) -> DurableQueue::Outcome {
    if (e.attempt == 1) throw std::runtime_error("kaput");
    return DurableQueue::Outcome::ack;
  };
  q->consume(rec.consumer());
  append_sync(*q, "x");
  ASSERT_TRUE(wait_until([&] { return rec.count() == 1 && q->depth() == 0; }));
  EXPECT_EQ(rec.snapshot()[0].attempt, 2u);
  EXPECT_EQ(rec.snapshot()[0].last_error, "consumer threw: kaput");
}

TEST(QueueFormat, ScannerTellsTornTailFromMidSegmentDamage) {
  std::string file = qf::segment_header();
  qf::encode_append(file, 1, "a");
  auto one = file.size();
  qf::encode_ack(file, 1);
  int n = 0;
  auto clean = qf::scan_records(file, [&](const qf::Record&) { ++n; });
  EXPECT_EQ(clean.end, qf::ScanEnd::clean);
  EXPECT_EQ(n, 2);

  std::string torn = file.substr(0, file.size() - 3);
  auto t = qf::scan_records(torn, [](const qf::Record&) {});
  EXPECT_EQ(t.end, qf::ScanEnd::torn);
  EXPECT_EQ(t.valid_end, one);

  std::string damaged = file;
  damaged[qf::kHeaderSize + qf::kRecordHeaderSize + 2] ^= 1;
  auto d = qf::scan_records(damaged, [](const qf::Record&) {});
  EXPECT_EQ(d.end, qf::ScanEnd::corrupt);
  EXPECT_EQ(d.valid_end, qf::kHeaderSize);
}

TEST(QueueFormat, ZerosAfterTheLastRecordAreRunwayNotDamage) {
  std::string file = qf::segment_header();
  qf::encode_append(file, 1, "a");
  auto one = file.size();
  int n = 0;
  auto runway = qf::scan_records(file + std::string(5000, '\0'), [&](const qf::Record&) { ++n; });
  EXPECT_EQ(runway.end, qf::ScanEnd::clean);
  EXPECT_EQ(runway.valid_end, one);
  EXPECT_EQ(n, 1);
  // Fewer zeros than a record header: still the runway.
  EXPECT_EQ(qf::scan_records(file + std::string(3, '\0'), [](const qf::Record&) {}).end,
            qf::ScanEnd::clean);
  // A torn record inside the runway is torn, not damage.
  std::string rec;
  qf::encode_append(rec, 2, "bbbbbbbb");
  std::string torn = file + rec.substr(0, rec.size() - 4) + std::string(4000, '\0');
  auto t = qf::scan_records(torn, [](const qf::Record&) {});
  EXPECT_EQ(t.end, qf::ScanEnd::torn);
  EXPECT_EQ(t.valid_end, one);
  // Zeros and then bytes again: damage.
  auto d = qf::scan_records(file + std::string(64, '\0') + rec, [](const qf::Record&) {});
  EXPECT_EQ(d.end, qf::ScanEnd::corrupt);
  EXPECT_EQ(d.valid_end, one);
}

TEST(QueueFormat, Crc32cMatchesKnownVector) { EXPECT_EQ(qf::crc32c("123456789", 9), 0xE3069283u); }

}  // namespace
}  // namespace kghost
