// The in-process event bus: subject matching, per-subscriber ordering, isolation of slow
// subscribers, bounded queues, and deliveries off the publisher's thread.
#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "runtime/event_bus.hpp"
#include "support.hpp"

namespace kghost {
namespace {

using namespace std::chrono_literals;
using test::wait_until;

double metric_value(prometheus::Registry& registry, const std::string& name,
                    const std::string& subscriber) {
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const auto& m : family.metric) {
      bool match = subscriber.empty();
      for (const auto& lp : m.label)
        if (lp.name == "subscriber" && lp.value == subscriber) match = true;
      if (!match) continue;
      return family.type == prometheus::MetricType::Gauge ? m.gauge.value : m.counter.value;
    }
  }
  return -1;
}

// Blocks handlers until opened.
class Gate {
 public:
  void wait() {
    std::unique_lock lock(mutex_);
    ++waiting_;
    cv_.wait(lock, [&] { return open_; });
    --waiting_;
  }
  void open() {
    std::lock_guard lock(mutex_);
    open_ = true;
    cv_.notify_all();
  }
  int waiting() {
    std::lock_guard lock(mutex_);
    return waiting_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false;
  int waiting_ = 0;
};

TEST(SubjectMatching, FollowsNatsWildcardRules) {
  struct Case {
    const char* pattern;
    const char* topic;
    bool match;
  };
  const Case cases[] = {
      {"stripe.invoice.paid", "stripe.invoice.paid", true},
      {"stripe.invoice.paid", "stripe.invoice.failed", false},
      {"stripe.invoice", "stripe.invoice.paid", false},
      {"stripe.invoice.paid", "stripe.invoice", false},
      {"stripe.*.paid", "stripe.invoice.paid", true},
      {"stripe.*.paid", "stripe.invoice.x.paid", false},
      {"stripe.*", "stripe.invoice", true},
      {"stripe.*", "stripe.invoice.paid", false},
      {"stripe.*", "stripe", false},
      {"*", "stripe", true},
      {"*", "stripe.invoice", false},
      {"stripe.>", "stripe.invoice", true},
      {"stripe.>", "stripe.invoice.paid.now", true},
      {"stripe.>", "stripe", false},
      {">", "a", true},
      {">", "a.b.c", true},
      {"*.*.paid", "stripe.invoice.paid", true},
      {"*.>", "billing.tier_changed", true},
      {"*.>", "billing", false},
      {"billing.tier_changed", "billing.tier_changed", true},
      {"Billing.x", "billing.x", false},  // case-sensitive
      // invalid on either side never matches
      {"stripe.>.paid", "stripe.invoice.paid", false},
      {"stripe..paid", "stripe..paid", false},
      {"stripe.in*", "stripe.invoice", false},
      {"stripe.*", "stripe.*", false},
      {"", "", false},
      {"a", "a.", false},
      {"a b", "a b", false},
  };
  for (const auto& c : cases)
    EXPECT_EQ(subject_matches(c.pattern, c.topic), c.match)
        << "pattern '" << c.pattern << "' topic '" << c.topic << "'";
}

TEST(SubjectMatching, ValidatesTopicsAndPatterns) {
  EXPECT_TRUE(valid_topic("stripe.customer.subscription.updated"));
  EXPECT_FALSE(valid_topic("stripe.*"));
  EXPECT_FALSE(valid_topic(".a"));
  EXPECT_FALSE(valid_topic("a..b"));
  EXPECT_FALSE(valid_topic("a\tb"));
  EXPECT_TRUE(valid_pattern("a.*.>"));
  EXPECT_FALSE(valid_pattern(">.a"));
  EXPECT_FALSE(valid_pattern("a.>>"));
}

class EventBusTest : public ::testing::Test {
 protected:
  prometheus::Registry registry_;
  Logger log_;
  WorkerPool pool_{4};
};

TEST_F(EventBusTest, RejectsInvalidPatternsAndTopics) {
  EventBus bus(pool_, registry_, log_);
  EXPECT_EQ(bus.subscribe("a..b", "p", [](const BusEvent&) { return true; }), 0u);
  EXPECT_EQ(bus.subscribe("a.*", "p", {}), 0u);
  EXPECT_NE(bus.subscribe("a.*", "p", [](const BusEvent&) { return true; }), 0u);
  EXPECT_FALSE(bus.publish("a.*", "x").has_value());
  EXPECT_FALSE(bus.publish("", "x").has_value());
}

TEST_F(EventBusTest, DeliversEachSubscribersEventsInPublishOrderOneAtATime) {
  EventBus bus(pool_, registry_, log_);
  constexpr int kEvents = 5000;
  struct Seen {
    std::vector<int> values;
    std::atomic<int> running{0};
    std::atomic<bool> overlapped{false};
  };
  Seen a, b;
  auto handler = [](Seen& s) {
    return [&s](const BusEvent& e) {
      if (s.running.fetch_add(1) != 0) s.overlapped = true;
      s.values.push_back(std::stoi(e.data));  // safe only if calls never overlap
      s.running.fetch_sub(1);
      return true;
    };
  };
  ASSERT_NE(bus.subscribe("orders.>", "a", handler(a)), 0u);
  ASSERT_NE(bus.subscribe("orders.*", "b", handler(b)), 0u);
  for (int i = 0; i < kEvents; ++i) ASSERT_TRUE(bus.publish("orders.created", std::to_string(i)));
  ASSERT_TRUE(wait_until([&] { return bus.depth() == 0; }));
  ASSERT_TRUE(wait_until([&] {
    return metric_value(registry_, "kgents_bus_delivered_total", "a") == kEvents &&
           metric_value(registry_, "kgents_bus_delivered_total", "b") == kEvents;
  }));
  bus.stop();
  EXPECT_FALSE(a.overlapped);
  EXPECT_FALSE(b.overlapped);
  for (Seen* s : {&a, &b}) {
    ASSERT_EQ(s->values.size(), static_cast<std::size_t>(kEvents));
    for (int i = 0; i < kEvents; ++i) ASSERT_EQ(s->values[i], i);
  }
  EXPECT_EQ(metric_value(registry_, "kgents_bus_published_total", ""), kEvents);
}

TEST_F(EventBusTest, SlowSubscriberDoesNotDelayAFastOne) {
  EventBus bus(pool_, registry_, log_);
  Gate gate;
  std::atomic<int> fast{0};
  std::atomic<int> slow{0};
  bus.subscribe("t.>", "slow", [&](const BusEvent&) {
    gate.wait();
    slow.fetch_add(1);
    return true;
  });
  bus.subscribe("t.>", "fast", [&](const BusEvent&) {
    fast.fetch_add(1);
    return true;
  });
  for (int i = 0; i < 200; ++i) bus.publish("t.x", "d");
  EXPECT_TRUE(wait_until([&] { return fast.load() == 200; }, 5s));
  EXPECT_EQ(slow.load(), 0);
  EXPECT_EQ(gate.waiting(), 1);  // one at a time: only one slow handler is running
  gate.open();
  EXPECT_TRUE(wait_until([&] { return slow.load() == 200; }, 5s));
}

TEST_F(EventBusTest, FullQueueDropsEventsForThatSubscriberAndCountsThem) {
  EventBus bus(pool_, registry_, log_, 10);
  Gate gate;
  std::atomic<int> slow{0};
  std::atomic<int> fast{0};
  bus.subscribe("t", "slow", [&](const BusEvent&) {
    gate.wait();
    slow.fetch_add(1);
    return true;
  });
  bus.subscribe("t", "fast", [&](const BusEvent&) {
    fast.fetch_add(1);
    return true;
  });
  bus.publish("t", "first");
  ASSERT_TRUE(wait_until([&] { return gate.waiting() == 1; }));  // handler holds event 1
  // Paced so the fast subscriber's own 10 slots never fill.
  for (int i = 0; i < 99; ++i) {
    bus.publish("t", "more");
    ASSERT_TRUE(wait_until([&] { return fast.load() == i + 2; }));
  }
  // 10 queued, 89 dropped for the slow subscriber; the fast one got all 100.
  EXPECT_EQ(metric_value(registry_, "kgents_bus_dropped_total", "slow"), 89);
  EXPECT_EQ(metric_value(registry_, "kgents_bus_queue_depth", "slow"), 10);
  EXPECT_TRUE(wait_until([&] { return fast.load() == 100; }));
  EXPECT_EQ(metric_value(registry_, "kgents_bus_dropped_total", "fast"), 0);
  EXPECT_EQ(bus.depth(), 10u);
  gate.open();
  EXPECT_TRUE(wait_until([&] { return slow.load() == 11; }));
  EXPECT_TRUE(wait_until([&] { return bus.depth() == 0; }));
  EXPECT_EQ(metric_value(registry_, "kgents_bus_queue_depth", "slow"), 0);
}

TEST_F(EventBusTest, NeverRunsAHandlerOnThePublishersThread) {
  EventBus bus(pool_, registry_, log_);
  std::mutex mutex;
  std::set<std::thread::id> threads;
  std::atomic<int> n{0};
  bus.subscribe(">", "p", [&](const BusEvent&) {
    {
      std::lock_guard lock(mutex);
      threads.insert(std::this_thread::get_id());
    }
    n.fetch_add(1);
    return true;
  });
  for (int i = 0; i < 500; ++i) bus.publish("a.b", "x");
  ASSERT_TRUE(wait_until([&] { return n.load() == 500; }));
  std::lock_guard lock(mutex);
  EXPECT_EQ(threads.count(std::this_thread::get_id()), 0u);
}

TEST_F(EventBusTest, GeneratesUniqueIdsAndKeepsGivenOnes) {
  EventBus bus(pool_, registry_, log_);
  std::mutex mutex;
  std::vector<std::string> ids;
  bus.subscribe("e", "p", [&](const BusEvent& e) {
    std::lock_guard lock(mutex);
    ids.push_back(e.id);
    return true;
  });
  std::set<std::string> returned;
  for (int i = 0; i < 1000; ++i) returned.insert(*bus.publish("e", "x"));
  EXPECT_EQ(returned.size(), 1000u);
  EXPECT_EQ(*bus.publish("e", "x", "evt_123"), "evt_123");
  ASSERT_TRUE(wait_until([&] {
    std::lock_guard lock(mutex);
    return ids.size() == 1001;
  }));
  std::lock_guard lock(mutex);
  EXPECT_EQ(ids.back(), "evt_123");
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end() - 1), returned);
}

TEST_F(EventBusTest, FailedAndThrowingHandlersAreCountedAndDeliveryGoesOn) {
  EventBus bus(pool_, registry_, log_);
  std::atomic<int> calls{0};
  bus.subscribe("e", "flaky", [&](const BusEvent& e) -> bool {
    calls.fetch_add(1);
    if (e.data == "throw") throw std::runtime_error("boom");
    return e.data == "ok";
  });
  bus.publish("e", "ok");
  bus.publish("e", "fail");
  bus.publish("e", "throw");
  bus.publish("e", "ok");
  ASSERT_TRUE(wait_until([&] { return calls.load() == 4; }));
  ASSERT_TRUE(wait_until(
      [&] { return metric_value(registry_, "kgents_bus_delivered_total", "flaky") == 4; }));
  EXPECT_EQ(metric_value(registry_, "kgents_bus_failed_total", "flaky"), 2);
}

TEST_F(EventBusTest, StopWaitsForRunningHandlersAndDeliversNothingAfter) {
  EventBus bus(pool_, registry_, log_);
  Gate gate;
  std::atomic<int> calls{0};
  std::atomic<bool> finished{false};
  bus.subscribe("e", "p", [&](const BusEvent&) {
    calls.fetch_add(1);
    gate.wait();
    finished = true;
    return true;
  });
  for (int i = 0; i < 5; ++i) bus.publish("e", "x");
  ASSERT_TRUE(wait_until([&] { return gate.waiting() == 1; }));
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    bus.stop();
    stopped = true;
  });
  EXPECT_FALSE(wait_until([&] { return stopped.load(); }, 100ms));  // still waiting
  gate.open();
  stopper.join();
  EXPECT_TRUE(finished.load());
  EXPECT_EQ(bus.depth(), 0u);
  EXPECT_FALSE(bus.publish("e", "x").has_value());
  pool_.stop();  // runs every job still queued: none may deliver
  EXPECT_EQ(calls.load(), 1);
}

TEST_F(EventBusTest, UnsubscribeStopsDeliveries) {
  EventBus bus(pool_, registry_, log_);
  std::atomic<int> calls{0};
  const auto id = bus.subscribe("e", "p", [&](const BusEvent&) {
    calls.fetch_add(1);
    return true;
  });
  bus.publish("e", "x");
  ASSERT_TRUE(wait_until([&] { return calls.load() == 1; }));
  EXPECT_TRUE(bus.unsubscribe(id));
  EXPECT_FALSE(bus.unsubscribe(id));
  bus.publish("e", "x");
  pool_.stop();
  EXPECT_EQ(calls.load(), 1);
}

TEST_F(EventBusTest, StopFromInsideAHandlerDoesNotDeadlock) {
  auto bus = std::make_unique<EventBus>(pool_, registry_, log_);
  std::atomic<bool> done{false};
  bus->subscribe("e", "p", [&](const BusEvent&) {
    bus->stop();
    done = true;
    return true;
  });
  bus->publish("e", "x");
  EXPECT_TRUE(wait_until([&] { return done.load(); }));
}

// ---- confirmed publish (ABI 1.1) -------------------------------------------------------

TEST(BusConfirmed, CompletesOnceAfterEverySubscriberReturned) {
  prometheus::Registry registry;
  Logger log;
  WorkerPool pool(2);
  EventBus bus(pool, registry, log);
  std::atomic<int> handled{0};
  bus.subscribe("a.>", "one", [&](const BusEvent&) {
    std::this_thread::sleep_for(20ms);
    handled++;
    return true;
  });
  bus.subscribe("a.b", "two", [&](const BusEvent&) {
    handled++;
    return true;
  });
  std::atomic<int> calls{0};
  std::atomic<int> seen_handled{-1};
  std::atomic<bool> result{false};
  ASSERT_TRUE(bus.publish_confirmed("a.b", "x", "id1", [&](bool ok) {
    seen_handled = handled.load();
    result = ok;
    calls++;
  }));
  ASSERT_TRUE(wait_until([&] { return calls.load() == 1; }));
  EXPECT_EQ(seen_handled.load(), 2) << "done ran before a subscriber returned";
  EXPECT_TRUE(result.load());
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(calls.load(), 1);

  // Nothing matches: done at once; a failing subscriber: done(false).
  bool none = false;
  ASSERT_TRUE(bus.publish_confirmed("z.z", "x", "id2", [&](bool ok) { none = ok; }));
  EXPECT_TRUE(none);
  bus.subscribe("f", "fails", [](const BusEvent&) { return false; });
  std::atomic<int> failed{-1};
  ASSERT_TRUE(bus.publish_confirmed("f", "x", "id3", [&](bool ok) { failed = ok ? 1 : 0; }));
  ASSERT_TRUE(wait_until([&] { return failed.load() != -1; }));
  EXPECT_EQ(failed.load(), 0);
  EXPECT_FALSE(bus.publish_confirmed("bad..topic", "x", "id4", [](bool) { FAIL(); }));
}

// A publisher blocking every pool thread while it waits for the confirmation (a queue consumer
// does exactly that) must not starve the delivery it waits for.
TEST(BusConfirmed, DeliveryIsNotStarvedByBlockedPoolThreads) {
  prometheus::Registry registry;
  Logger log;
  WorkerPool pool(2);
  EventBus bus(pool, registry, log);
  std::atomic<int> handled{0};
  bus.subscribe("t", "s", [&](const BusEvent&) {
    handled++;
    return true;
  });
  // First a plain event whose drain job sits on the (soon blocked) pool.
  Gate release;
  for (int i = 0; i < 2; ++i) pool.post([&] { release.wait(); });
  ASSERT_TRUE(wait_until([&] { return release.waiting() == 2; }));
  bus.publish("t", "plain");
  std::atomic<bool> confirmed{false};
  ASSERT_TRUE(bus.publish_confirmed("t", "x", "c1", [&](bool ok) { confirmed = ok; }));
  EXPECT_TRUE(wait_until([&] { return confirmed.load(); }, 5s));
  EXPECT_EQ(handled.load(), 2);
  release.open();
}

TEST(BusConfirmed, DroppedDeliveriesReportFailure) {
  prometheus::Registry registry;
  Logger log;
  WorkerPool pool(1);
  EventBus bus(pool, registry, log, 1);
  Gate gate;
  bus.subscribe("t", "slow", [&](const BusEvent&) {
    gate.wait();
    return true;
  });
  bus.publish("t", "first");  // held in the handler
  ASSERT_TRUE(wait_until([&] { return gate.waiting() == 1; }));
  bus.publish("t", "fills the queue");
  std::atomic<int> r{-1};
  ASSERT_TRUE(bus.publish_confirmed("t", "x", "c", [&](bool ok) { r = ok ? 1 : 0; }));
  EXPECT_TRUE(wait_until([&] { return r.load() != -1; }));
  EXPECT_EQ(r.load(), 0) << "a full queue dropped it: that is a failure";
  gate.open();
}

}  // namespace
}  // namespace kghost
