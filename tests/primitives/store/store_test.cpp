// The shared store: one contract suite run against the memory backend, the Redis provider
// plugin (plugins/store-redis, through the host, against a real redis-server) and a store
// provider written in plain C (tests/fixtures/c_store_provider.c); then Redis faults (killed,
// paused, bad URL) and memory-only TTL/sweep behaviour.
#include "store/store.hpp"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <atomic>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "provider_host.hpp"
#include "redis_url.hpp"
#include "store/memory_store.hpp"
#include "support.hpp"
#include "telemetry/logging.hpp"

namespace kghost {
namespace {

using namespace std::chrono_literals;
using store_redis::parse_redis_url;
using test::make_redis_store;
using test::wait_until;

double metric_value(prometheus::Registry& registry, const std::string& name,
                    const std::map<std::string, std::string>& labels) {
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const auto& m : family.metric) {
      bool all = true;
      for (const auto& [k, v] : labels) {
        bool found = false;
        for (const auto& lp : m.label)
          if (lp.name == k && lp.value == v) found = true;
        all = all && found;
      }
      if (!all) continue;
      if (family.type == prometheus::MetricType::Counter) return m.counter.value;
      if (family.type == prometheus::MetricType::Gauge) return m.gauge.value;
    }
  }
  return -1;
}

// Runs one store call and returns its reply however it comes, checking the contract: an
// immediate reply means `done` is never called; otherwise `done` is called exactly once.
template <typename Call>
StoreReply answer(Call&& call) {
  auto calls = std::make_shared<std::atomic<int>>(0);
  auto promise = std::make_shared<std::promise<StoreReply>>();
  auto future = promise->get_future();
  std::optional<StoreReply> now = call([calls, promise](const StoreReply& r) {
    if (calls->fetch_add(1) == 0) promise->set_value(r);
  });
  if (now) {
    EXPECT_EQ(calls->load(), 0) << "done called although the reply came at once";
    return *now;
  }
  EXPECT_EQ(future.wait_for(5s), std::future_status::ready) << "done never called";
  StoreReply r = future.get();
  EXPECT_EQ(calls->load(), 1);
  return r;
}

// --- the shared contract suite -----------------------------------------------------------

class StoreContract : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "redis") {
      redis_ = std::make_unique<test::RedisServer>();
      store_ = make_redis_store({redis_->url(), 4, 500ms, 100ms}, registry_, log_);
      ASSERT_TRUE(wait_until([&] { return store_->health().status == HealthStatus::healthy; }));
    } else if (GetParam() == "c_hashmap") {
      store_ = test::make_provider_store(KGHOST_TEST_PLUGIN_DIR "/kg_c_store.so", "c_store", {},
                                         registry_, log_);
    } else {
      store_ = make_memory_store(registry_);
    }
  }
  void TearDown() override {
    if (store_) store_->stop();
  }

  StoreReply cas(const std::string& key, std::chrono::milliseconds ttl) {
    return answer([&](StoreDone d) { return store_->check_and_set(key, ttl, std::move(d)); });
  }
  StoreReply incr(const std::string& key, int64_t delta, std::chrono::milliseconds ttl) {
    return answer([&](StoreDone d) { return store_->incr(key, delta, ttl, std::move(d)); });
  }
  StoreReply get(const std::string& key) {
    return answer([&](StoreDone d) { return store_->get(key, std::move(d)); });
  }
  StoreReply put(const std::string& key, const std::string& value, std::chrono::milliseconds ttl) {
    return answer([&](StoreDone d) { return store_->put(key, value, ttl, std::move(d)); });
  }
  StoreReply del(const std::string& key) {
    return answer([&](StoreDone d) { return store_->del(key, std::move(d)); });
  }

  prometheus::Registry registry_;
  Logger log_;
  std::unique_ptr<test::RedisServer> redis_;
  std::unique_ptr<Store> store_;
};

TEST_P(StoreContract, CheckAndSetCreatesOnceThenReportsExisting) {
  auto first = cas("idem:evt_1", 60s);
  EXPECT_EQ(first.code, StoreCode::ok);
  EXPECT_TRUE(first.created);
  auto second = cas("idem:evt_1", 60s);
  EXPECT_EQ(second.code, StoreCode::ok);
  EXPECT_FALSE(second.created);
  auto value = get("idem:evt_1");
  EXPECT_EQ(value.code, StoreCode::ok);
  EXPECT_EQ(value.data, "1");
  EXPECT_GT(value.ttl_ms, 59000);
}

TEST_P(StoreContract, CheckAndSetCreatesAgainAfterExpiry) {
  EXPECT_TRUE(cas("idem:short", 30ms).created);
  EXPECT_TRUE(wait_until([&] { return cas("idem:short", 30ms).created; }, 5s));
}

TEST_P(StoreContract, IncrIsAtomicUnderEightConcurrentThreads) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 1000;
  std::mutex mutex;
  std::set<int64_t> seen;  // every value 1..8000 exactly once proves no lost update
  std::atomic<int> answered{0};
  std::atomic<int> errors{0};
  auto record = [&](const StoreReply& r) {
    if (r.code != StoreCode::ok) errors.fetch_add(1);
    std::lock_guard lock(mutex);
    seen.insert(r.value);
    answered.fetch_add(1);
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        auto now = store_->incr("rl:tenant_a", 1, 60s, record);
        if (now) record(*now);
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(wait_until([&] { return answered.load() == kThreads * kPerThread; }));
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kThreads * kPerThread));
  EXPECT_EQ(*seen.begin(), 1);
  EXPECT_EQ(*seen.rbegin(), kThreads * kPerThread);
  EXPECT_EQ(incr("rl:tenant_a", 0, 60s).value, kThreads * kPerThread);
}

TEST_P(StoreContract, IncrSetsTtlOnNewKeyAndNeverResetsIt) {
  auto first = incr("rl:win", 1, 60s);
  EXPECT_EQ(first.code, StoreCode::ok);
  EXPECT_EQ(first.value, 1);
  EXPECT_GT(first.ttl_ms, 59000);
  EXPECT_LE(first.ttl_ms, 60000);
  auto second = incr("rl:win", 5, 1s);  // a different TTL must not touch the running window
  EXPECT_EQ(second.value, 6);
  EXPECT_GT(second.ttl_ms, 59000);
  auto third = incr("rl:win", -2, 120s);
  EXPECT_EQ(third.value, 4);
  EXPECT_GT(third.ttl_ms, 59000);
  EXPECT_LE(third.ttl_ms, 60000);
}

TEST_P(StoreContract, IncrWithoutTtlKeepsKeyForever) {
  auto r = incr("counter:plain", 3, 0ms);
  EXPECT_EQ(r.value, 3);
  EXPECT_EQ(r.ttl_ms, -1);
  EXPECT_EQ(get("counter:plain").data, "3");
}

TEST_P(StoreContract, IncrRestartsAfterTheWindowExpires) {
  EXPECT_EQ(incr("rl:short", 1, 40ms).value, 1);
  EXPECT_EQ(incr("rl:short", 1, 40ms).value, 2);
  EXPECT_TRUE(wait_until([&] { return get("rl:short").code == StoreCode::not_found; }, 5s));
  auto fresh = incr("rl:short", 1, 60s);
  EXPECT_EQ(fresh.value, 1);
  EXPECT_GT(fresh.ttl_ms, 59000);
}

TEST_P(StoreContract, IncrOfStoredNumberAddsAndOfTextFails) {
  put("n", "41", 0ms);
  EXPECT_EQ(incr("n", 1, 0ms).value, 42);
  put("t", "forty-one", 0ms);
  EXPECT_EQ(incr("t", 1, 0ms).code, StoreCode::error);
  EXPECT_EQ(get("t").data, "forty-one");
}

TEST_P(StoreContract, GetPutDelRoundTrip) {
  EXPECT_EQ(get("k").code, StoreCode::not_found);
  EXPECT_EQ(put("k", "v1", 0ms).code, StoreCode::ok);
  auto g = get("k");
  EXPECT_EQ(g.code, StoreCode::ok);
  EXPECT_EQ(g.data, "v1");
  EXPECT_EQ(g.ttl_ms, -1);
  EXPECT_EQ(put("k", "v2", 30s).code, StoreCode::ok);
  g = get("k");
  EXPECT_EQ(g.data, "v2");
  EXPECT_GT(g.ttl_ms, 29000);
  EXPECT_LE(g.ttl_ms, 30000);
  EXPECT_EQ(put("k", "v3", 0ms).code, StoreCode::ok);  // a put without TTL clears it
  EXPECT_EQ(get("k").ttl_ms, -1);
  EXPECT_EQ(del("k").code, StoreCode::ok);
  EXPECT_EQ(del("k").code, StoreCode::not_found);
  EXPECT_EQ(get("k").code, StoreCode::not_found);
}

TEST_P(StoreContract, PutKeepsBinaryValuesIntact) {
  const std::string value("a\0b\xff\n c", 8);
  put("bin", value, 0ms);
  EXPECT_EQ(get("bin").data, value);
}

TEST_P(StoreContract, KeysExpireAfterTheirTtl) {
  put("short", "x", 40ms);
  put("long", "y", 60s);
  EXPECT_TRUE(wait_until([&] { return get("short").code == StoreCode::not_found; }, 5s));
  EXPECT_EQ(get("long").data, "y");
  EXPECT_EQ(del("short").code, StoreCode::not_found);
}

TEST_P(StoreContract, ReportsHealthyWithItsBackend) {
  auto h = store_->health();
  EXPECT_EQ(h.status, HealthStatus::healthy);
  EXPECT_EQ(h.backend, GetParam());
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreContract, ::testing::Values("memory", "redis", "c_hashmap"),
                         [](const auto& info) { return info.param; });

// --- Redis faults -------------------------------------------------------------------------

class RedisStoreFaults : public ::testing::Test {
 protected:
  std::unique_ptr<Store> make(std::chrono::milliseconds timeout = 300ms) {
    auto s = make_redis_store({redis_.url(), 2, timeout, 100ms}, registry_, log_);
    EXPECT_TRUE(wait_until([&] { return s->health().status == HealthStatus::healthy; }));
    return s;
  }
  prometheus::Registry registry_;
  Logger log_;
  test::RedisServer redis_;
};

TEST_F(RedisStoreFaults, KilledRedisFallsBackToMemoryAndRecoversByItself) {
  auto store = make();
  auto r = answer([&](StoreDone d) { return store->incr("rl:a", 1, 60s, std::move(d)); });
  EXPECT_EQ(r.value, 1);
  EXPECT_NE(redis_.cli({"GET", "rl:a"}).find('1'), std::string::npos);

  redis_.kill();
  // Calls keep being answered, never with an error; health turns degraded.
  for (int i = 0; i < 20; ++i) {
    auto x = answer([&](StoreDone d) { return store->incr("rl:b", 1, 60s, std::move(d)); });
    EXPECT_EQ(x.code, StoreCode::ok);
  }
  ASSERT_TRUE(wait_until([&] { return store->health().status == HealthStatus::degraded; }));
  EXPECT_NE(store->health().detail.find("memory fallback"), std::string::npos);
  EXPECT_EQ(store->health().backend, "redis");
  EXPECT_GT(metric_value(registry_, "kgents_store_fallback_total", {}), 0);
  EXPECT_EQ(metric_value(registry_, "kgents_store_backend_up", {{"backend", "redis"}}), 0);
  auto cas = answer([&](StoreDone d) { return store->check_and_set("idem:x", 60s, std::move(d)); });
  EXPECT_TRUE(cas.created);

  redis_.start();
  ASSERT_TRUE(wait_until([&] { return store->health().status == HealthStatus::healthy; }));
  EXPECT_EQ(metric_value(registry_, "kgents_store_backend_up", {{"backend", "redis"}}), 1);
  auto back = answer([&](StoreDone d) { return store->incr("rl:c", 7, 60s, std::move(d)); });
  EXPECT_EQ(back.value, 7);
  EXPECT_NE(redis_.cli({"GET", "rl:c"}).find('7'), std::string::npos);  // really in Redis
  store->stop();
}

TEST_F(RedisStoreFaults, StartsDegradedWhenRedisIsDownAndAnswersFromMemory) {
  redis_.kill();
  const auto start = std::chrono::steady_clock::now();
  auto store = make_redis_store({redis_.url(), 2, 200ms, 100ms}, registry_, log_);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_EQ(store->health().status, HealthStatus::degraded);
  auto r = answer([&](StoreDone d) { return store->incr("rl:a", 2, 60s, std::move(d)); });
  EXPECT_EQ(r.code, StoreCode::ok);
  EXPECT_EQ(r.value, 2);
  redis_.start();
  EXPECT_TRUE(wait_until([&] { return store->health().status == HealthStatus::healthy; }));
}

TEST_F(RedisStoreFaults, PausedRedisNeverHangsTheCaller) {
  const auto timeout = 300ms;
  auto store = make(timeout);
  redis_.cli({"CLIENT", "PAUSE", "2000"});
  for (int i = 0; i < 5; ++i) {
    const auto start = std::chrono::steady_clock::now();
    std::optional<StoreReply> now;
    const auto call_start = std::chrono::steady_clock::now();
    auto r = answer([&](StoreDone d) {
      now = store->incr("rl:p", 1, 60s, std::move(d));
      // The call itself returns at once, whatever Redis does.
      EXPECT_LT(std::chrono::steady_clock::now() - call_start, 200ms);
      return now;
    });
    EXPECT_EQ(r.code, StoreCode::ok);
    EXPECT_LT(std::chrono::steady_clock::now() - start, timeout + 400ms);
  }
  EXPECT_EQ(store->health().status, HealthStatus::degraded);
  EXPECT_TRUE(wait_until([&] { return store->health().status == HealthStatus::healthy; }, 10s));
  store->stop();
}

TEST_F(RedisStoreFaults, TwoReplicasShareOneExactCounter) {
  auto a = make();
  auto b = make();
  std::atomic<int> answered{0};
  std::atomic<int64_t> max_seen{0};
  auto record = [&](const StoreReply& r) {
    int64_t prev = max_seen.load();
    while (r.value > prev && !max_seen.compare_exchange_weak(prev, r.value)) {
    }
    answered.fetch_add(1);
  };
  std::thread ta([&] {
    for (int i = 0; i < 2000; ++i)
      if (auto r = a->incr("rl:shared", 1, 60s, record)) record(*r);
  });
  std::thread tb([&] {
    for (int i = 0; i < 2000; ++i)
      if (auto r = b->incr("rl:shared", 1, 60s, record)) record(*r);
  });
  ta.join();
  tb.join();
  ASSERT_TRUE(wait_until([&] { return answered.load() == 4000; }));
  EXPECT_EQ(max_seen.load(), 4000);
  const auto pttl = std::stoll(redis_.cli({"PTTL", "rl:shared"}));
  EXPECT_GT(pttl, 50000);
}

TEST_F(RedisStoreFaults, StopAnswersEveryPendingCallbackOnce) {
  auto store = make();
  std::atomic<int> answered{0};
  constexpr int kCalls = 5000;
  for (int i = 0; i < kCalls; ++i) {
    auto r = store->incr("rl:stop", 1, 60s, [&](const StoreReply&) { answered.fetch_add(1); });
    if (r) answered.fetch_add(1);
  }
  store->stop();
  EXPECT_EQ(answered.load(), kCalls);
  // After stop the store still answers, at once.
  auto late = store->get("rl:stop", [](const StoreReply&) { ADD_FAILURE() << "late callback"; });
  EXPECT_TRUE(late.has_value());
}

TEST(RedisStoreUrl, RejectsMalformedUrlsWithAClearMessage) {
  prometheus::Registry registry;
  Logger log;
  for (std::string url :
       {"", "localhost:6379", "http://h:1", "redis://", "redis://h:0", "redis://h:99999",
        "redis://h:abc", "redis://h:1/x", "redis://h:1?x=1", "rediss://h:1", "redis://[::1"}) {
    try {
      make_redis_store({url}, registry, log);
      ADD_FAILURE() << "accepted " << url;
    } catch (const std::invalid_argument& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("'" + url + "'"), std::string::npos) << msg;
      EXPECT_NE(msg.find("redis://[[user]:password@]host[:port][/db]"), std::string::npos) << msg;
    }
  }
}

TEST(RedisStoreUrl, NeverShowsThePasswordInErrors) {
  try {
    parse_redis_url("redis://:s3cret@h:port");
    ADD_FAILURE();
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()).find("s3cret"), std::string::npos) << e.what();
  }
}

TEST(RedisStoreUrl, ParsesHostPortDbAndCredentials) {
  auto a = parse_redis_url("redis://cache.internal");
  EXPECT_EQ(a.host, "cache.internal");
  EXPECT_EQ(a.port, 6379);
  EXPECT_EQ(a.db, 0);
  auto b = parse_redis_url("redis://user:pw@10.0.0.1:6380/2");
  EXPECT_EQ(b.host, "10.0.0.1");
  EXPECT_EQ(b.port, 6380);
  EXPECT_EQ(b.db, 2);
  EXPECT_EQ(b.user, "user");
  EXPECT_EQ(b.password, "pw");
  auto c = parse_redis_url("redis://:pw@[::1]:7000/");
  EXPECT_EQ(c.host, "::1");
  EXPECT_EQ(c.port, 7000);
  EXPECT_EQ(c.password, "pw");
  EXPECT_TRUE(c.user.empty());
}

// --- memory backend specifics ---------------------------------------------------------------

class FakeClock {
 public:
  StoreClock fn() {
    return [this] {
      return std::chrono::steady_clock::time_point(std::chrono::nanoseconds(now_ns_.load()));
    };
  }
  void advance(std::chrono::milliseconds d) {
    now_ns_.fetch_add(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
  }

 private:
  std::atomic<int64_t> now_ns_{3600'000'000'000};
};

TEST(MemoryStore, TtlFollowsTheInjectedClock) {
  prometheus::Registry registry;
  FakeClock clock;
  auto store = make_memory_store(registry, 8, clock.fn());
  EXPECT_EQ(store->incr("k", 1, 1000ms, {})->ttl_ms, 1000);
  clock.advance(999ms);
  auto r = store->incr("k", 1, 1000ms, {});
  EXPECT_EQ(r->value, 2);
  EXPECT_EQ(r->ttl_ms, 1);
  clock.advance(1ms);
  EXPECT_EQ(store->get("k", {})->code, StoreCode::not_found);
  EXPECT_EQ(store->incr("k", 1, 1000ms, {})->value, 1);
  EXPECT_TRUE(store->check_and_set("c", 10ms, {})->created);
  EXPECT_FALSE(store->check_and_set("c", 10ms, {})->created);
  clock.advance(10ms);
  EXPECT_TRUE(store->check_and_set("c", 10ms, {})->created);
}

TEST(MemoryStore, SweepReclaimsExpiredKeysWithoutAccess) {
  prometheus::Registry registry;
  FakeClock clock;
  MemoryStore store(registry, 4, clock.fn());
  for (int i = 0; i < 1000; ++i) store.do_put("k" + std::to_string(i), "v", 10ms);
  store.do_put("keep", "v", 0ms);
  EXPECT_EQ(store.size(), 1001u);
  clock.advance(10ms);
  store.sweep_all();
  EXPECT_EQ(store.size(), 1u);
  EXPECT_EQ(metric_value(registry, "kgents_store_keys", {{"backend", "memory"}}), 1);
}

TEST(MemoryStore, CountsOperationsInMetrics) {
  prometheus::Registry registry;
  MemoryStore store(registry, 4, {});
  for (int i = 0; i < 10; ++i) store.do_incr("k", 1, 0ms);
  store.do_get("k");
  store.sweep_all();
  EXPECT_EQ(metric_value(registry, "kgents_store_operations_total",
                         {{"op", "incr"}, {"backend", "memory"}}),
            10);
  EXPECT_EQ(metric_value(registry, "kgents_store_operations_total",
                         {{"op", "get"}, {"backend", "memory"}}),
            1);
}

TEST(MemoryStore, OverflowingIncrFailsAndKeepsTheValue) {
  prometheus::Registry registry;
  MemoryStore store(registry, 4, {});
  store.do_put("big", "9223372036854775807", 0ms);
  EXPECT_EQ(store.do_incr("big", 1, 0ms).code, StoreCode::error);
  EXPECT_EQ(store.do_get("big").data, "9223372036854775807");
}

}  // namespace
}  // namespace kghost
