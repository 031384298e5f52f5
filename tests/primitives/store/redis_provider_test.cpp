// The Redis store provider (plugins/store-redis) on its own, against a real redis-server:
// coalesced increments of one hot key answer exactly what sequential ones would, TTLs are set
// once and never given to a key without one, refused sums are retried one by one; and, through
// the host, a redis-server killed with coalesced batches in flight.
#include "redis_provider.hpp"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "provider_host.hpp"
#include "store/store.hpp"
#include "support.hpp"
#include "telemetry/logging.hpp"

namespace kghost {
namespace {

using namespace std::chrono_literals;
using store_redis::Op;
using test::wait_until;

// What one submitted operation was answered with.
struct Outcome {
  std::string key;
  std::string put_value;
  std::atomic<int> completions{0};
  kg_status status = KG_OK;
  int32_t created = 0;
  int64_t value = 0;
  int64_t ttl_ms = 0;
  std::string data;
};

// A RedisProvider whose completions land in Outcome slots (the token is the slot).
class Provider {
 public:
  Provider(const std::string& url, std::size_t pool, std::chrono::milliseconds timeout)
      : provider_({url, pool, timeout, 50ms}, host()) {
    provider_.start();
  }
  ~Provider() { provider_.stop(); }

  Outcome& submit(Op op, const std::string& key, int64_t delta, int64_t ttl_ms,
                  const std::string& value = {}) {
    Outcome* o = nullptr;
    {
      std::lock_guard lock(mutex_);
      o = &slots_.emplace_back();
    }
    o->key = key;
    o->put_value = value;
    const kg_status st = provider_.submit(op, {o->key.data(), o->key.size()},
                                          {o->put_value.data(), o->put_value.size()}, delta, ttl_ms,
                                          reinterpret_cast<kg_store_op*>(o));
    if (st != KG_PENDING) {
      o->status = st;
      o->completions.fetch_add(1);
      answered_.fetch_add(1);
    }
    return *o;
  }
  Outcome& incr(const std::string& key, int64_t delta, int64_t ttl_ms) {
    return submit(Op::incr, key, delta, ttl_ms);
  }
  bool all_answered(std::chrono::milliseconds within = 10s) {
    return wait_until(
        [&] {
          std::lock_guard lock(mutex_);
          return answered_.load() == slots_.size();
        },
        within);
  }
  std::deque<Outcome>& slots() { return slots_; }
  kg_health_status status() const { return provider_.status(nullptr); }

 private:
  store_redis::ProviderHost host() {
    return {[this](kg_store_op* token, const kg_store_result* r) {
              auto* o = reinterpret_cast<Outcome*>(token);
              o->status = r->status;
              o->created = r->created;
              o->value = r->value;
              o->ttl_ms = r->ttl_ms;
              o->data.assign(r->data.ptr ? r->data.ptr : "", r->data.len);
              o->completions.fetch_add(1);
              answered_.fetch_add(1);
            },
            [] {}, [](kg_log_level, const std::string&) {}};
  }

  std::mutex mutex_;  // guards slots_ (its elements never move)
  std::deque<Outcome> slots_;
  std::atomic<std::size_t> answered_{0};
  store_redis::RedisProvider provider_;
};

int64_t command_calls(const test::RedisServer& redis, const std::string& command) {
  const std::string stats = redis.cli({"INFO", "commandstats"});
  const std::string tag = "cmdstat_" + command + ":calls=";
  const auto at = stats.find(tag);
  return at == std::string::npos ? 0 : std::stoll(stats.substr(at + tag.size()));
}

// `threads` threads each submitting `per_thread` incr(key, 1, ttl) at once.
void hammer(Provider& p, const std::string& key, int threads, int per_thread, int64_t ttl) {
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < per_thread; ++i) p.incr(key, 1, ttl);
    });
  for (auto& t : ts) t.join();
}

class RedisProviderTest : public ::testing::Test {
 protected:
  test::RedisServer redis_;
};

TEST_F(RedisProviderTest, CoalescedIncrementsOfOneKeyMatchSequentialOnes) {
  Provider p(redis_.url(), 4, 2000ms);
  ASSERT_TRUE(wait_until([&] { return p.status() == KG_HEALTHY; }));
  const int64_t incrby_before = command_calls(redis_, "incrby");
  constexpr int kThreads = 8;
  constexpr int kPerThread = 1000;
  constexpr int kTotal = kThreads * kPerThread;
  hammer(p, "rl:hot", kThreads, kPerThread, 60000);
  ASSERT_TRUE(p.all_answered());
  std::set<int64_t> values;
  for (auto& o : p.slots()) {
    ASSERT_EQ(o.status, KG_OK);
    EXPECT_EQ(o.completions.load(), 1);
    values.insert(o.value);
  }
  EXPECT_EQ(values.size(), static_cast<std::size_t>(kTotal));  // no duplicates
  EXPECT_EQ(*values.begin(), 1);
  EXPECT_EQ(*values.rbegin(), kTotal);
  EXPECT_EQ(redis_.cli({"GET", "rl:hot"}), std::to_string(kTotal) + "\n");
  // Fewer INCRBY than calls: the hot key's increments really were coalesced.
  EXPECT_LT(command_calls(redis_, "incrby") - incrby_before, kTotal);
}

// One thread submits a random mix on three keys without waiting (so batches hold runs of one
// key); every answer must equal a sequential model's, whatever the batching was.
TEST_F(RedisProviderTest, MixedOperationsMatchASequentialModel) {
  Provider p(redis_.url(), 1, 2000ms);
  ASSERT_TRUE(wait_until([&] { return p.status() == KG_HEALTHY; }));
  struct Entry {
    int64_t value;
    bool ttl;
  };
  std::map<std::string, Entry> model;
  struct Expected {
    Op op;
    kg_status status = KG_OK;
    int64_t value = 0;
    bool ttl = false;
    bool created = false;
  };
  std::vector<Expected> expected;
  const int64_t incrby_before = command_calls(redis_, "incrby");
  std::mt19937 rng(7);
  const std::string keys[] = {"m:a", "m:b", "m:c"};
  for (int i = 0; i < 3000; ++i) {
    const std::string& key = keys[rng() % 3];
    const unsigned kind = rng() % 10;
    const int64_t ttl = rng() % 2 ? 60000 : 0;
    const bool found = model.count(key) > 0;
    Expected e{};
    if (kind < 6) {  // incr, deltas of both signs
      const int64_t delta = static_cast<int64_t>(rng() % 9) - 3;
      Entry& entry = model.emplace(key, Entry{0, ttl > 0}).first->second;
      entry.value += delta;
      e = {Op::incr, KG_OK, entry.value, entry.ttl};
      p.incr(key, delta, ttl);
    } else if (kind == 6) {
      e = {Op::get, found ? KG_OK : KG_ERR_NOT_FOUND, found ? model[key].value : 0,
           found && model[key].ttl};
      p.submit(Op::get, key, 0, 0);
    } else if (kind == 7) {
      model[key] = Entry{10, ttl > 0};
      e = {Op::put};
      p.submit(Op::put, key, 0, ttl, "10");
    } else if (kind == 8) {
      e = {Op::del, found ? KG_OK : KG_ERR_NOT_FOUND};
      model.erase(key);
      p.submit(Op::del, key, 0, 0);
    } else {
      if (!found) model[key] = Entry{1, ttl > 0};
      e = {Op::check_and_set, KG_OK, 0, false, !found};
      p.submit(Op::check_and_set, key, 0, ttl);
    }
    expected.push_back(e);
  }
  ASSERT_TRUE(p.all_answered());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const Expected& e = expected[i];
    const Outcome& o = p.slots()[i];
    ASSERT_EQ(o.status, e.status) << "call " << i;
    if (e.status != KG_OK) continue;
    const std::string what = "call " + std::to_string(i);
    if (e.op == Op::incr) {
      EXPECT_EQ(o.value, e.value) << what;
    } else if (e.op == Op::get) {
      EXPECT_EQ(o.data, std::to_string(e.value)) << what;
    } else if (e.op == Op::check_and_set) {
      EXPECT_EQ(o.created != 0, e.created) << what;
    }
    if (e.op == Op::incr || e.op == Op::get) {
      EXPECT_EQ(o.ttl_ms > 0, e.ttl) << what;
    }
  }
  const auto incrs = std::count_if(expected.begin(), expected.end(),
                                   [](const Expected& e) { return e.op == Op::incr; });
  EXPECT_LT(command_calls(redis_, "incrby") - incrby_before, incrs) << "nothing was coalesced";
}

TEST_F(RedisProviderTest, TtlIsSetOnceWhenTheKeyIsCreatedAndKeptByLaterIncrements) {
  Provider p(redis_.url(), 2, 2000ms);
  ASSERT_TRUE(wait_until([&] { return p.status() == KG_HEALTHY; }));
  hammer(p, "rl:win", 2, 100, 60000);  // the first batch creates the key
  ASSERT_TRUE(p.all_answered());
  for (auto& o : p.slots()) {
    ASSERT_EQ(o.status, KG_OK);
    EXPECT_GT(o.ttl_ms, 55000);
    EXPECT_LE(o.ttl_ms, 60000);
  }
  redis_.cli({"PEXPIRE", "rl:win", "5000"});  // the window is nearly over
  hammer(p, "rl:win", 2, 100, 60000);
  ASSERT_TRUE(p.all_answered());
  for (std::size_t i = 200; i < p.slots().size(); ++i) {
    ASSERT_EQ(p.slots()[i].status, KG_OK);
    EXPECT_GT(p.slots()[i].ttl_ms, 0);
    EXPECT_LE(p.slots()[i].ttl_ms, 5000) << "a later increment extended the window";
  }
  EXPECT_LE(std::stoll(redis_.cli({"PTTL", "rl:win"})), 5000);
  EXPECT_EQ(redis_.cli({"GET", "rl:win"}), "400\n");
}

TEST_F(RedisProviderTest, AKeyWithoutTtlIsNotGivenOne) {
  Provider p(redis_.url(), 2, 2000ms);
  ASSERT_TRUE(wait_until([&] { return p.status() == KG_HEALTHY; }));
  redis_.cli({"SET", "counter", "5"});
  hammer(p, "counter", 2, 100, 60000);
  ASSERT_TRUE(p.all_answered());
  std::set<int64_t> values;
  for (auto& o : p.slots()) {
    ASSERT_EQ(o.status, KG_OK);
    EXPECT_EQ(o.ttl_ms, -1);
    values.insert(o.value);
  }
  EXPECT_EQ(values.size(), 200u);
  EXPECT_EQ(*values.begin(), 6);
  EXPECT_EQ(*values.rbegin(), 205);
  EXPECT_EQ(redis_.cli({"PTTL", "counter"}), "-1\n");
}

// A sum Redis refuses is run again call by call: near the top of the range the first calls
// still count and only the later ones fail, exactly as sequential calls would.
TEST_F(RedisProviderTest, RefusedSumsAreRetriedOneByOne) {
  Provider p(redis_.url(), 1, 2000ms);
  ASSERT_TRUE(wait_until([&] { return p.status() == KG_HEALTHY; }));
  redis_.cli({"SET", "big", "9223372036854775805"});
  redis_.cli({"SET", "text", "forty-one"});
  redis_.cli({"CLIENT", "PAUSE", "300"});  // what follows queues up behind the first batch
  p.incr("other", 1, 0);
  for (int i = 0; i < 5; ++i) p.incr("big", 1, 60000);
  for (int i = 0; i < 3; ++i) p.incr("text", 1, 60000);
  ASSERT_TRUE(p.all_answered());
  auto& s = p.slots();
  EXPECT_EQ(s[1].status, KG_OK);
  EXPECT_EQ(s[1].value, 9223372036854775806);
  EXPECT_EQ(s[2].status, KG_OK);
  EXPECT_EQ(s[2].value, 9223372036854775807);
  for (std::size_t i = 3; i < 9; ++i) EXPECT_EQ(s[i].status, KG_ERR_INTERNAL) << i;
  EXPECT_NE(s[3].data.find("overflow"), std::string::npos) << s[3].data;
  EXPECT_EQ(redis_.cli({"GET", "big"}), "9223372036854775807\n");
  EXPECT_EQ(redis_.cli({"GET", "text"}), "forty-one\n");
  EXPECT_EQ(redis_.cli({"PTTL", "big"}), "-1\n");
}

// A transaction Redis refuses while queueing (here: out of memory) reports why, not just
// EXECABORT. Out of memory, Redis queues nothing inside MULTI, reads neither (the old Lua get
// still passed); the store's writes fail there anyway.
TEST_F(RedisProviderTest, RefusedTransactionsSayWhy) {
  Provider p(redis_.url(), 1, 2000ms);
  ASSERT_TRUE(wait_until([&] { return p.status() == KG_HEALTHY; }));
  redis_.cli({"SET", "k", "3"});
  redis_.cli({"CONFIG", "SET", "maxmemory", "1"});
  Outcome& incr = p.incr("k", 1, 60000);
  Outcome& get = p.submit(Op::get, "k", 0, 0);
  ASSERT_TRUE(p.all_answered());
  redis_.cli({"CONFIG", "SET", "maxmemory", "0"});
  for (Outcome* o : {&incr, &get}) {
    EXPECT_EQ(o->status, KG_ERR_INTERNAL);
    EXPECT_NE(o->data.find("OOM"), std::string::npos) << o->data;
  }
  EXPECT_EQ(redis_.cli({"GET", "k"}), "3\n");
}

// Killed with batches in flight (written, held by CLIENT PAUSE, never answered): every call is
// completed exactly once, as unavailable, within the timeout; after the restart nothing is
// replayed, so the counter starts again from the first new call.
TEST_F(RedisProviderTest, KilledWithBatchesInFlightAnswersEachCallOnceAndNeverReplays) {
  Provider p(redis_.url(), 2, 1000ms);
  ASSERT_TRUE(wait_until([&] { return p.status() == KG_HEALTHY; }));
  redis_.cli({"CLIENT", "PAUSE", "10000"});
  hammer(p, "rl:hot", 2, 250, 60000);
  redis_.kill();
  ASSERT_TRUE(p.all_answered(3s));
  for (auto& o : p.slots()) {
    EXPECT_EQ(o.completions.load(), 1);
    EXPECT_EQ(o.status, KG_ERR_UNAVAILABLE);
  }
  redis_.start();
  ASSERT_TRUE(wait_until([&] { return p.status() == KG_HEALTHY; }));
  Outcome& after = p.incr("rl:hot", 1, 60000);
  ASSERT_TRUE(p.all_answered());
  EXPECT_EQ(after.status, KG_OK);
  EXPECT_EQ(after.value, 1);
  EXPECT_EQ(redis_.cli({"GET", "rl:hot"}), "1\n");
}

// The same through the host: callers see the memory fallback's answers, never an error or a
// hang, while calls keep coming during the kill; the restarted Redis counts only new calls.
TEST_F(RedisProviderTest, KilledUnderLoadTheHostAnswersFromItsFallback) {
  prometheus::Registry registry;
  Logger log;
  auto store = test::make_redis_store({redis_.url(), 2, 500ms, 50ms}, registry, log);
  ASSERT_TRUE(wait_until([&] { return store->health().status == HealthStatus::healthy; }));
  std::atomic<int> submitted{0};
  std::atomic<int> answered{0};
  std::atomic<int> errors{0};
  std::atomic<bool> stop{false};
  auto record = [&](const StoreReply& r) {
    if (r.code != StoreCode::ok) errors.fetch_add(1);
    answered.fetch_add(1);
  };
  std::thread load([&] {
    while (!stop.load()) {
      submitted.fetch_add(1);
      if (auto r = store->incr("rl:hot", 1, 60s, record)) record(*r);
    }
  });
  ASSERT_TRUE(wait_until([&] { return answered.load() > 2000; }));
  redis_.cli({"CLIENT", "PAUSE", "10000"});
  const int before_kill = submitted.load();
  ASSERT_TRUE(wait_until([&] { return submitted.load() > before_kill + 500; }));
  redis_.kill();
  ASSERT_TRUE(wait_until([&] { return store->health().status == HealthStatus::degraded; }));
  stop.store(true);
  load.join();
  ASSERT_TRUE(wait_until([&] { return answered.load() == submitted.load(); }, 3s));
  EXPECT_EQ(errors.load(), 0);
  redis_.start();
  ASSERT_TRUE(wait_until([&] { return store->health().status == HealthStatus::healthy; }));
  std::promise<StoreReply> after;
  if (auto r = store->incr("rl:hot", 1, 60s, [&](const StoreReply& x) { after.set_value(x); }))
    after.set_value(*r);
  auto future = after.get_future();
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(future.get().value, 1);
  EXPECT_EQ(redis_.cli({"GET", "rl:hot"}), "1\n");
  store->stop();
}

}  // namespace
}  // namespace kghost
