// Driver for the kill -9 test: opens a durable queue, appends from 8 threads while consuming
// and acking, and reports on stdout, one line per event, each written with a single write(2)
// so that a SIGKILL leaves only whole lines behind:
//   S                          the queue is open (recovery done)
//   A <id> <payload>           an append is durable (its callback said ok)
//   D <id> <attempt> <payload> a delivery (printed before the consumer answers)
//   K <id>                     an ack is durable (QueueOptions::on_ack_durable)
//   DONE                       drain mode: queue empty and stopped cleanly
// Usage: queue_crash_driver <dir> <round> run|drain
//        queue_crash_driver <dir> <n> append   appends payloads p1..pn one after the other (each
//                                              durable before the next: A lines), then SIGKILLs
//                                              itself without stopping the queue
#include <prometheus/registry.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "queue_crash_payload.hpp"
#include "runtime/durable_queue.hpp"

namespace {

constexpr int kThreads = 8;
constexpr int kAppends = 10'000;

std::mutex out_mutex;

void emit(const std::string& line) {
  std::lock_guard lock(out_mutex);
  std::string l = line + "\n";
  const char* p = l.data();
  std::size_t n = l.size();
  while (n > 0) {
    ssize_t w = ::write(STDOUT_FILENO, p, n);
    if (w <= 0) std::_Exit(4);
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

// Appends p1..pn, each durable before the next, then dies like kill -9 would kill it.
int append_then_die(kghost::DurableQueue& queue, int n) {
  for (int i = 1; i <= n; ++i) {
    std::string payload = "p" + std::to_string(i);
    auto state = std::make_shared<std::atomic<int>>(0);  // outlives a late notify_one()
    auto status = queue.append(payload, [state, payload](kghost::AppendStatus s, uint64_t id) {
      if (s == kghost::AppendStatus::ok) emit("A " + std::to_string(id) + " " + payload);
      state->store(s == kghost::AppendStatus::ok ? 1 : 2);
      state->notify_one();
    });
    if (status != kghost::AppendStatus::ok) return 3;
    state->wait(0);
    if (state->load() != 1) return 3;
  }
  ::kill(::getpid(), SIGKILL);
  return 5;  // not reached
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s <dir> <round> run|drain|append\n", argv[0]);
    return 2;
  }
  const int round = std::atoi(argv[2]);
  const bool drain = std::string(argv[3]) == "drain";

  kghost::WorkerPool pool(2);
  prometheus::Registry registry;
  kghost::Logger log;
  kghost::QueueOptions options;
  options.dir = argv[1];
  options.name = "crash";
  options.retry_backoff = std::chrono::milliseconds(1);
  options.segment_bytes = 64 << 10;  // small, so rotation and compaction happen under the kills
  options.on_ack_durable = [](uint64_t id) { emit("K " + std::to_string(id)); };
  auto queue = kghost::DurableQueue::open(options, pool, registry, log);
  emit("S");
  if (std::string(argv[3]) == "append") return append_then_die(*queue, round);

  queue->consume([](const kghost::QueueEntry& e, std::string& error) {
    emit("D " + std::to_string(e.id) + " " + std::to_string(e.attempt) + " " + e.data);
    if (kghost::test::crash_consumer_retries(e.id, e.attempt)) {  // retries across crashes
      error = "first attempt of every 53rd entry fails";
      return kghost::DurableQueue::Outcome::retry;
    }
    return kghost::DurableQueue::Outcome::ack;
  });

  if (!drain) {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kAppends / kThreads; ++i) {
          std::string payload = kghost::test::crash_payload(round, t, i);
          // Shared: the callback may still be inside notify_one() when this thread wakes.
          auto state = std::make_shared<std::atomic<int>>(0);
          auto status =
              queue->append(payload, [state, payload](kghost::AppendStatus s, uint64_t id) {
                if (s == kghost::AppendStatus::ok) emit("A " + std::to_string(id) + " " + payload);
                state->store(s == kghost::AppendStatus::ok ? 1 : 2);
                state->notify_one();
              });
          if (status != kghost::AppendStatus::ok) {
            emit("E append refused");
            std::_Exit(3);
          }
          state->wait(0);
          if (state->load() != 1) {
            emit("E append failed");
            std::_Exit(3);
          }
        }
      });
    }
    for (auto& t : threads) t.join();
  }
  while (queue->depth() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  queue->stop();  // writes the remaining acks
  emit("DONE");
  return 0;
}
