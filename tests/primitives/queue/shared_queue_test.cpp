// The queue handover across a plugin's instances (host/plugins/shared_queues.hpp): one queue
// per key while anyone holds it, and a new consumer that takes over only after the old one's
// delivery in progress has returned — no entry reaches both, none is lost.
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "plugins/shared_queues.hpp"
#include "support.hpp"

namespace kghost {
namespace {

using namespace std::chrono_literals;
using test::TempDir;
using test::wait_until;

class SharedQueueTest : public ::testing::Test {
 protected:
  std::shared_ptr<SharedQueue> open(const std::string& key) {
    return shelf_.open(key, [&] {
      QueueOptions o;
      o.dir = tmp_.path() / key;
      o.name = key;
      o.retry_backoff = 1ms;
      return DurableQueue::open(o, pool_, registry_, log_);
    });
  }
  static void append(SharedQueue& q, int n) {
    std::atomic<int> durable{0};
    for (int i = 0; i < n; ++i)
      ASSERT_EQ(q.queue().append(std::to_string(i), [&](AppendStatus, uint64_t) { ++durable; }),
                AppendStatus::ok);
    ASSERT_TRUE(wait_until([&] { return durable == n; }));
  }

  TempDir tmp_;
  WorkerPool pool_{2};
  prometheus::Registry registry_;
  Logger log_;
  QueueShelf shelf_;
};

TEST_F(SharedQueueTest, OneQueuePerKeyWhileHeldAndReopenableOnceClosed) {
  auto a = open("plugin.q");
  auto b = open("plugin.q");  // a second instance of the plugin: the same queue, not a lock clash
  EXPECT_EQ(a.get(), b.get());
  a.reset();
  b.reset();
  EXPECT_NE(open("plugin.q"), nullptr);  // closed with its last holder: free to open again
}

TEST_F(SharedQueueTest, NewConsumerTakesOverAfterTheOldDeliveryReturnedNoEntryToBoth) {
  auto q = open("plugin.q");
  const void* old_owner = &registry_;
  const void* new_owner = &pool_;
  std::mutex m;
  std::condition_variable cv;
  bool old_blocked = false, release_old = false;
  std::set<std::string> to_old, to_new;
  std::atomic<bool> overlap{false}, in_old{false};
  q->offer(old_owner, [&](const QueueEntry& e, std::string&) {
    in_old = true;
    std::unique_lock lock(m);
    to_old.insert(e.data);
    old_blocked = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release_old; });
    in_old = false;
    return DurableQueue::Outcome::ack;
  });
  q->activate(old_owner);
  append(*q, 50);
  {
    std::unique_lock lock(m);
    ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return old_blocked; }));
  }
  q->offer(new_owner, [&](const QueueEntry& e, std::string&) {
    if (in_old) overlap = true;
    std::lock_guard lock(m);
    to_new.insert(e.data);
    return DurableQueue::Outcome::ack;
  });
  q->activate(new_owner);  // the old consumer's delivery is still running
  std::thread retire([&] { q->release(old_owner); });  // returns once that delivery did
  {
    std::lock_guard lock(m);
    release_old = true;
    cv.notify_all();
  }
  retire.join();
  EXPECT_FALSE(in_old);
  ASSERT_TRUE(wait_until([&] {
    std::lock_guard lock(m);
    return to_old.size() + to_new.size() == 50;
  }));
  EXPECT_FALSE(overlap);
  std::lock_guard lock(m);
  EXPECT_EQ(to_old.size(), 1u);
  for (auto& d : to_old) EXPECT_EQ(to_new.count(d), 0u) << d;
  EXPECT_EQ(q->queue().depth(), 0u);
}

// Batch consumers (queue_consume_batch) hand over the same way, and the queue's batches follow
// the active consumer's size: the old one's batch in progress finishes with it, the new one never
// gets more than it asked for.
TEST_F(SharedQueueTest, BatchConsumersHandOverAndBatchesFollowTheNewConsumersSize) {
  auto q = open("plugin.batch");
  const void* old_owner = &registry_;
  const void* new_owner = &pool_;
  std::mutex m;
  std::condition_variable cv;
  bool old_blocked = false, release_old = false;
  std::multiset<std::string> to_old, to_new;
  std::atomic<std::size_t> biggest_new{0};
  auto ack_all = [](std::vector<DurableQueue::Delivery>& out) {
    for (auto& d : out) d.outcome = DurableQueue::Outcome::ack;
  };
  q->offer(old_owner, 32, [&](const std::vector<QueueEntry>& batch, auto& out) {
    std::unique_lock lock(m);
    for (auto& e : batch) to_old.insert(e.data);
    old_blocked = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release_old; });
    ack_all(out);
  });
  append(*q, 200);
  q->activate(old_owner);
  {
    std::unique_lock lock(m);
    ASSERT_TRUE(cv.wait_for(lock, 10s, [&] { return old_blocked; }));
  }
  q->offer(new_owner, 4, [&](const std::vector<QueueEntry>& batch, auto& out) {
    std::lock_guard lock(m);
    for (auto& e : batch) to_new.insert(e.data);
    biggest_new = std::max(biggest_new.load(), batch.size());
    ack_all(out);
  });
  q->activate(new_owner);
  std::thread retire([&] { q->release(old_owner); });
  {
    std::lock_guard lock(m);
    release_old = true;
    cv.notify_all();
  }
  retire.join();
  ASSERT_TRUE(wait_until([&] {
    std::lock_guard lock(m);
    return to_old.size() + to_new.size() == 200;
  }));
  std::lock_guard lock(m);
  EXPECT_EQ(to_old.size(), 32u);  // its one batch, taken at its size
  for (auto& d : to_old) EXPECT_EQ(to_new.count(d), 0u) << d;
  for (auto& d : to_new) EXPECT_EQ(to_new.count(d), 1u) << d;
  EXPECT_LE(biggest_new.load(), 4u);
  EXPECT_GT(biggest_new.load(), 1u);
  EXPECT_EQ(q->queue().depth(), 0u);
}

}  // namespace
}  // namespace kghost
