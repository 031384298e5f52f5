// The durable queue survives kill -9: 20 rounds of a driver process appending 10,000 entries
// from 8 threads while consuming, each killed at a random moment, then a final drain.
//
// What the driver reports (see queue_crash_driver.cpp):
// - "confirmed" append: its A line was printed (the queue said durable).
// - "acked" entry: its K line was printed (the queue said the ack is durable).
// - "consumer-acked": a D line whose consumer answer was ack (crash_consumer_retries decides).
// A kill can fall between an ack reaching the disk and its K line, so after every kill the test
// also reads the segment files with the format's scanner (independently of the queue's own
// recovery) and checks:
// - every confirmed append that no consumer acked is still on disk (no durable append lost);
// - no entry whose ack was confirmed is still on disk;
// - a consumer-acked entry without K is either on disk (then it must be delivered again) or
//   its ack was durable (then it counts as acked from now on).
// Checked for every line: nothing acked is delivered again (in that round or any later one),
// every delivery carries exactly the payload appended under its id, no payload appears under
// two ids, no delivery is of a payload the driver never made. At the end a drain round
// delivers everything left; every confirmed append must then be acked.
#include <gtest/gtest.h>
#include <prometheus/registry.h>
#include <signal.h>
#include <spdlog/sinks/ostream_sink.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "queue_crash_payload.hpp"
#include "runtime/durable_queue.hpp"
#include "runtime/queue_format.hpp"
#include "support.hpp"

namespace kghost::test {
namespace {

constexpr int kRounds = 20;
namespace fs = std::filesystem;
namespace qf = kghost::queue_format;

// Ids appended (or carried) and not acked according to the segment files as they are now.
std::set<uint64_t> live_on_disk(const fs::path& dir) {
  std::set<uint64_t> live;
  std::vector<fs::path> segs;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().starts_with("seg-")) segs.push_back(e.path());
  }
  std::sort(segs.begin(), segs.end());
  for (const auto& seg : segs) {
    std::ifstream in(seg, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (qf::check_header(bytes).status != qf::HeaderStatus::ok) continue;
    auto scan = qf::scan_records(bytes, [&](const qf::Record& r) {
      if (r.type == qf::RecordType::append || r.type == qf::RecordType::carry) live.insert(r.id);
      if (r.type == qf::RecordType::ack) live.erase(r.id);
    });
    EXPECT_NE(scan.end, qf::ScanEnd::corrupt) << seg << " damaged at " << scan.valid_end;
  }
  return live;
}

struct Ledger {
  std::map<uint64_t, std::string> payload_of;  // every id seen (A or D) → its payload
  std::map<std::string, uint64_t> id_of;       // payload → id
  std::set<uint64_t> confirmed;
  std::set<uint64_t> acked;           // K printed, or the ack proved durable on disk
  std::set<uint64_t> consumer_acked;  // the consumer answered ack at least once
  uint64_t deliveries = 0, redeliveries_of_unacked = 0;
  std::map<uint64_t, std::string> history;  // id → "A3 D4 K4 …" for failure messages

  void bind(uint64_t id, const std::string& payload, int round, const std::string& line) {
    auto origin = parse_crash_payload(payload);
    ASSERT_TRUE(origin.has_value()) << "round " << round << ": invented payload: " << line;
    ASSERT_LE(origin->round, round) << "payload from the future: " << line;
    auto [it, fresh] = payload_of.emplace(id, payload);
    ASSERT_EQ(it->second, payload)
        << "round " << round << ": id " << id << " changed payload (corrupted): " << line;
    auto [pit, pfresh] = id_of.emplace(payload, id);
    ASSERT_EQ(pit->second, id) << "round " << round << ": payload under two ids: " << line;
  }

  void check_round(const std::string& output, int round, bool* done) {
    std::istringstream in(output);
    std::string line;
    std::set<uint64_t> delivered_here;
    while (std::getline(in, line)) {
      if (in.eof()) break;  // a line without its newline: cut by the kill, ignore
      std::istringstream fields(line);
      std::string kind;
      fields >> kind;
      if (kind == "A") {
        uint64_t id;
        std::string payload;
        fields >> id >> payload;
        ASSERT_EQ(parse_crash_payload(payload)->round, round) << line;
        bind(id, payload, round, line);
        confirmed.insert(id);
        history[id] += " A" + std::to_string(round);
      } else if (kind == "D") {
        uint64_t id;
        uint32_t attempt;
        std::string payload;
        fields >> id >> attempt >> payload;
        ASSERT_FALSE(acked.count(id))
            << "round " << round << ": delivered again after its ack was durable: " << line;
        bind(id, payload, round, line);
        history[id] += " D" + std::to_string(round);
        ++deliveries;
        if (!delivered_here.insert(id).second && attempt == 1) ++redeliveries_of_unacked;
        if (!crash_consumer_retries(id, attempt)) consumer_acked.insert(id);
      } else if (kind == "K") {
        uint64_t id;
        fields >> id;
        ASSERT_TRUE(delivered_here.count(id)) << "round " << round << ": ack of an entry not "
                                              << "delivered by this process: " << line;
        acked.insert(id);
        history[id] += " K" + std::to_string(round);
      } else if (kind == "DONE") {
        *done = true;
      } else if (kind == "E") {
        FAIL() << "round " << round << ": driver reported: " << line;
      }
    }
  }

  // After a kill: compare what the driver was told with what is on disk.
  void check_disk(const fs::path& dir, int round) {
    auto live = live_on_disk(dir);
    for (uint64_t id : live) {
      ASSERT_FALSE(acked.count(id)) << "round " << round << ": entry " << id
                                    << " acked durably but still live on disk;" << history[id];
    }
    for (uint64_t id : confirmed) {
      if (acked.count(id)) continue;
      if (consumer_acked.count(id)) {
        if (!live.count(id)) {
          acked.insert(id);  // the ack reached the disk; the kill came before its K line
          history[id] += " k" + std::to_string(round);
          ++acks_durable_unreported;
        }
        continue;
      }
      ASSERT_TRUE(live.count(id)) << "round " << round << ": confirmed append " << id
                                  << " lost from disk;" << history[id];
    }
  }
  uint64_t acks_durable_unreported = 0;
};

TEST(DurableQueueCrash, Kill9DuringAppendsAndAcksLosesNothingAndRedeliversNoAcked) {
  unsigned seed = std::random_device{}();
  if (const char* s = std::getenv("KG_CRASH_SEED")) seed = static_cast<unsigned>(std::stoul(s));
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> delay_ms(5, 300);
  std::cout << "crash test seed " << seed << " (rerun with KG_CRASH_SEED=" << seed << ")\n";
  RecordProperty("seed", static_cast<int>(seed));

  TempDir tmp;
  const std::string dir = (tmp.path() / "queue").string();
  Ledger ledger;
  int finished_before_kill = 0;

  for (int round = 1; round <= kRounds; ++round) {
    Process driver({KG_QUEUE_CRASH_DRIVER, dir, std::to_string(round), "run"});
    ASSERT_TRUE(wait_until(
        [&] { return driver.output().find("S\n") != std::string::npos || !driver.running(); }, 30s))
        << "round " << round << ": driver did not open the queue";
    int delay = delay_ms(rng);
    // The random moment of the kill is the point of this test, not a synchronisation.
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    driver.signal(SIGKILL);
    auto code = driver.wait(30s);
    ASSERT_TRUE(code.has_value());
    std::string out = driver.output();
    bool done = false;
    ledger.check_round(out, round, &done);
    if (HasFatalFailure()) {
      ADD_FAILURE() << "seed " << seed << ", round " << round << ", kill after " << delay
                    << " ms; driver output tail:\n"
                    << out.substr(out.size() > 2000 ? out.size() - 2000 : 0);
      return;
    }
    ledger.check_disk(dir, round);
    ASSERT_FALSE(HasFatalFailure()) << "seed " << seed << ", round " << round;
    if (done) ++finished_before_kill;
    ASSERT_TRUE(done || *code == 128 + SIGKILL) << "driver exit " << *code << "\n" << out;
    std::cout << "round " << round << ": killed after " << delay << " ms; confirmed so far "
              << ledger.confirmed.size() << ", acked " << ledger.acked.size() << "\n";
  }

  Process drainer({KG_QUEUE_CRASH_DRIVER, dir, std::to_string(kRounds + 1), "drain"});
  auto code = drainer.wait(60s);
  ASSERT_TRUE(code.has_value()) << "drain did not finish";
  ASSERT_EQ(*code, 0) << drainer.output();
  bool done = false;
  ledger.check_round(drainer.output(), kRounds + 1, &done);
  ASSERT_FALSE(HasFatalFailure()) << "seed " << seed;
  ASSERT_TRUE(done);
  EXPECT_TRUE(live_on_disk(dir).empty()) << "entries left on disk after the drain";

  std::size_t missing = 0;
  for (uint64_t id : ledger.confirmed) {
    if (!ledger.acked.count(id)) {
      if (++missing <= 10)
        ADD_FAILURE() << "confirmed append " << id
                      << " never acked; history:" << ledger.history[id];
    }
  }
  EXPECT_EQ(missing, 0u) << "seed " << seed;
  EXPECT_GT(ledger.confirmed.size(), 0u);
  std::cout << "confirmed " << ledger.confirmed.size() << ", acked " << ledger.acked.size()
            << ", deliveries " << ledger.deliveries << ", acks durable but unreported at a kill "
            << ledger.acks_durable_unreported << ", rounds finished before the kill "
            << finished_before_kill << "\n";
}

// A segment written ahead with zeros, then kill -9 right after the last confirmed append:
// recovery finds the end of the log inside the zeroed runway, keeps every confirmed append,
// warns about nothing, and later appends follow the good records (a second crash and reopen
// still sees them all, in order, under their ids).
TEST(DurableQueueCrash, PreallocatedSegmentKeepsEveryConfirmedAppendAfterKill9) {
  TempDir tmp;
  const fs::path dir = tmp.path() / "queue";
  std::map<uint64_t, std::string> confirmed;
  auto run = [&](int n) {
    Process driver({KG_QUEUE_CRASH_DRIVER, dir.string(), std::to_string(n), "append"});
    auto code = driver.wait(30s);
    ASSERT_TRUE(code.has_value());
    ASSERT_EQ(*code, 128 + SIGKILL) << driver.output();
    std::istringstream in(driver.output());
    std::string kind, payload;
    uint64_t id = 0;
    int lines = 0;
    while (in >> kind && kind != "A") {
    }
    do {
      if (kind != "A" || !(in >> id >> payload)) break;
      ASSERT_TRUE(confirmed.emplace(id, payload).second) << "id " << id << " handed out twice";
      ++lines;
    } while (in >> kind);
    ASSERT_EQ(lines, n) << driver.output();
  };
  run(300);
  std::vector<fs::path> segs;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().starts_with("seg-")) segs.push_back(e.path());
  ASSERT_EQ(segs.size(), 1u);
  std::ifstream in(segs[0], std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto scan = qf::scan_records(bytes, [](const qf::Record&) {});
  EXPECT_EQ(scan.end, qf::ScanEnd::clean);
  EXPECT_LT(scan.valid_end, bytes.size()) << "the segment was not written ahead with zeros";
  EXPECT_EQ(live_on_disk(dir).size(), 300u);

  run(200);  // reopens after the kill, appends after the good records, dies again
  auto live = live_on_disk(dir);
  ASSERT_EQ(live.size(), 500u);
  for (const auto& [id, payload] : confirmed) EXPECT_TRUE(live.count(id)) << id << " lost";

  // A clean open delivers each confirmed payload under its id, nothing else, and warns of
  // nothing.
  WorkerPool pool(2);
  prometheus::Registry registry;
  std::ostringstream log;
  Logger capture(std::make_shared<spdlog::sinks::ostream_sink_mt>(log));
  QueueOptions o;
  o.dir = dir;
  o.name = "crash";
  auto q = DurableQueue::open(o, pool, registry, capture);
  std::mutex m;
  std::map<uint64_t, std::string> delivered;
  q->consume([&](const QueueEntry& e, std::string&) {
    std::lock_guard lock(m);
    delivered.emplace(e.id, e.data);
    return DurableQueue::Outcome::ack;
  });
  ASSERT_TRUE(wait_until([&] {
    std::lock_guard lock(m);
    return delivered.size() >= confirmed.size();
  }));
  q->stop();
  EXPECT_EQ(delivered, confirmed);
  EXPECT_EQ(log.str(), "");
}

}  // namespace
}  // namespace kghost::test
