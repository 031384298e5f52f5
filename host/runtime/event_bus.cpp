#include "runtime/event_bus.hpp"

#include <fmt/format.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <vector>

#include "common/text.hpp"

namespace kghost {

// The pending subscribers of one confirmed publish. The publisher holds one count itself
// while it fans out, so `done` cannot run before every queue has the event.
struct BusConfirmation {
  BusConfirmation(BusConfirm d, Logger& l) : done(std::move(d)), log(l) {}
  void finish(bool success) {
    if (!success) ok.store(false);
    if (remaining.fetch_sub(1) != 1) return;
    try {
      done(ok.load());
    } catch (...) {
      log.error("bus: a confirmed publish's completion threw");
    }
  }
  std::atomic<int> remaining{1};
  std::atomic<bool> ok{true};
  BusConfirm done;
  Logger& log;  // the host's; outlives every publish
};

namespace {

// Fails the confirmations of events that will never be delivered.
void fail_confirmations(std::deque<BusEvent>& queue) {
  for (auto& ev : queue)
    if (ev.confirm) ev.confirm->finish(false);
}

// Events one pool job delivers before it re-queues itself, so a busy subscriber shares the
// pool's threads with the others.
constexpr int kDrainBatch = 64;

// Splits at '.'; `pos` advances past the token and its dot. Returns false when exhausted.
bool next_token(std::string_view s, std::size_t& pos, std::string_view& token) {
  if (pos > s.size()) return false;
  const std::size_t dot = s.find('.', pos);
  const std::size_t end = dot == std::string_view::npos ? s.size() : dot;
  token = s.substr(pos, end - pos);
  pos = end + 1;
  return true;
}

bool valid_subject(std::string_view s, bool allow_wildcards) {
  if (s.empty()) return false;
  std::size_t pos = 0;
  std::string_view tok;
  while (next_token(s, pos, tok)) {
    if (tok.empty()) return false;
    for (char ch : tok) {
      const auto u = static_cast<unsigned char>(ch);
      if (u <= 0x20 || u == 0x7f) return false;
    }
    const bool has_wild = tok.find_first_of("*>") != std::string_view::npos;
    if (!has_wild) continue;
    if (!allow_wildcards) return false;
    if (tok == "*") continue;
    if (tok == ">" && pos > s.size()) continue;  // '>' only as the last token
    return false;
  }
  return true;
}

// Both sides already valid.
bool match_valid(std::string_view pattern, std::string_view topic) {
  std::size_t pp = 0, tp = 0;
  std::string_view p, t;
  while (true) {
    const bool have_p = next_token(pattern, pp, p);
    const bool have_t = next_token(topic, tp, t);
    if (!have_p) return !have_t;
    if (p == ">") return have_t;
    if (!have_t) return false;
    if (p != "*" && p != t) return false;
  }
}

struct Subscription {
  uint64_t id = 0;
  std::string pattern;
  std::string name;
  EventBus::Handler handler;
  prometheus::Counter* delivered = nullptr;
  prometheus::Counter* dropped = nullptr;
  prometheus::Counter* failed = nullptr;
  prometheus::Gauge* depth = nullptr;

  std::mutex mutex;  // guards queue, scheduled, closed, confirmed
  std::deque<BusEvent> queue;
  std::size_t confirmed = 0;  // events in `queue` that a publisher waits for
  bool scheduled = false;     // a pool job owns the draining
  bool running = false;       // a drain job is delivering now (at most one at a time)
  bool closed = false;        // unsubscribed or bus stopped: nothing more starts
};

using SubList = std::vector<std::shared_ptr<Subscription>>;

}  // namespace

struct EventBus::Core : std::enable_shared_from_this<EventBus::Core> {
  Core(WorkerPool& p, prometheus::Registry& registry, Logger& l, std::size_t cap)
      : pool(p),
        log(l),
        capacity(cap == 0 ? 1 : cap),
        subs(std::make_shared<const SubList>()),
        published(&prometheus::BuildCounter()
                       .Name("kgents_bus_published_total")
                       .Help("Events published on the in-process bus.")
                       .Register(registry)
                       .Add({})),
        delivered_family(prometheus::BuildCounter()
                             .Name("kgents_bus_delivered_total")
                             .Help("Bus events handed to a subscriber, by subscriber.")
                             .Register(registry)),
        dropped_family(prometheus::BuildCounter()
                           .Name("kgents_bus_dropped_total")
                           .Help("Bus events dropped because the subscriber's queue was full.")
                           .Register(registry)),
        failed_family(prometheus::BuildCounter()
                          .Name("kgents_bus_failed_total")
                          .Help("Bus events a subscriber's handler reported as failed.")
                          .Register(registry)),
        depth_family(prometheus::BuildGauge()
                         .Name("kgents_bus_queue_depth")
                         .Help("Bus events waiting for a subscriber, by subscriber.")
                         .Register(registry)) {
    confirm_pool = std::make_unique<WorkerPool>(1);
    std::random_device rd;
    id_prefix = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }

  void drain(const std::shared_ptr<Subscription>& sub);
  std::string make_id();

  // Where a subscription's drain runs: the bus's own thread while it holds an event a
  // publisher waits for (that publisher may be blocking a pool thread), else the pool.
  WorkerPool& pool_for(const Subscription& sub) { return sub.confirmed ? *confirm_pool : pool; }

  WorkerPool& pool;
  std::unique_ptr<WorkerPool> confirm_pool;
  Logger& log;
  const std::size_t capacity;

  mutable std::mutex subs_mutex;  // guards subs (copy-on-write) and next_id
  std::shared_ptr<const SubList> subs;
  uint64_t next_id = 1;

  std::atomic<bool> stopped{false};
  std::atomic<std::size_t> depth{0};
  std::atomic<std::size_t> active{0};  // handlers running now
  std::mutex active_mutex;             // pairs with active_cv
  std::condition_variable active_cv;

  uint64_t id_prefix = 0;
  std::atomic<uint64_t> id_seq{0};

  prometheus::Counter* published;
  prometheus::Family<prometheus::Counter>& delivered_family;
  prometheus::Family<prometheus::Counter>& dropped_family;
  prometheus::Family<prometheus::Counter>& failed_family;
  prometheus::Family<prometheus::Gauge>& depth_family;
};

namespace {
// The bus whose handler this thread is running, so stop() from a handler does not wait for
// itself.
thread_local const EventBus::Core* tl_running_bus = nullptr;
}  // namespace

std::string EventBus::Core::make_id() {
  const uint64_t seq = id_seq.fetch_add(1, std::memory_order_relaxed);
  return to_hex(id_prefix) + "-" + to_hex(seq);
}

void EventBus::Core::drain(const std::shared_ptr<Subscription>& sub) {
  {
    // A confirmed publish may have posted a second job (on the bus's own thread) for a
    // subscription whose job is stuck behind busy pool threads: whichever runs first drains.
    std::lock_guard lock(sub->mutex);
    if (sub->running) return;
    sub->running = true;
  }
  for (int n = 0; n < kDrainBatch; ++n) {
    BusEvent ev;
    {
      std::lock_guard lock(sub->mutex);
      if (sub->closed || sub->queue.empty()) {
        sub->scheduled = sub->running = false;
        return;
      }
      ev = std::move(sub->queue.front());
      sub->queue.pop_front();
      if (ev.confirm) sub->confirmed--;
      // Counted under the subscription's lock: stop() closes it under the same lock, so it
      // either sees this handler as active or no handler starts.
      active.fetch_add(1);
    }
    depth.fetch_sub(1, std::memory_order_relaxed);
    sub->depth->Decrement();
    bool ok = false;
    const Core* outer = tl_running_bus;
    tl_running_bus = this;
    try {
      ok = sub->handler(ev);
    } catch (const std::exception& e) {
      log.error(fmt::format("bus: subscriber '{}' threw on topic '{}': {}", sub->name, ev.topic,
                            e.what()));
    } catch (...) {
      log.error(fmt::format("bus: subscriber '{}' threw on topic '{}'", sub->name, ev.topic));
    }
    tl_running_bus = outer;
    sub->delivered->Increment();  // handed over, whatever the handler made of it
    if (!ok) sub->failed->Increment();
    if (ev.confirm) ev.confirm->finish(ok);
    if (active.fetch_sub(1) == 1) {
      std::lock_guard lock(active_mutex);
      active_cv.notify_all();
    }
  }
  // Still scheduled: give the other subscribers a turn on the pool, then continue.
  WorkerPool* next = nullptr;
  {
    std::lock_guard lock(sub->mutex);
    sub->running = false;
    next = &pool_for(*sub);
  }
  next->post([core = shared_from_this(), sub] { core->drain(sub); });
}

bool valid_topic(std::string_view topic) { return valid_subject(topic, false); }
bool valid_pattern(std::string_view pattern) { return valid_subject(pattern, true); }

bool subject_matches(std::string_view pattern, std::string_view topic) {
  return valid_pattern(pattern) && valid_topic(topic) && match_valid(pattern, topic);
}

EventBus::EventBus(WorkerPool& pool, prometheus::Registry& registry, Logger& log,
                   std::size_t per_subscriber_capacity)
    : core_(std::make_shared<Core>(pool, registry, log, per_subscriber_capacity)) {}

EventBus::~EventBus() { stop(); }

uint64_t EventBus::subscribe(std::string_view pattern, std::string_view subscriber_name,
                             Handler handler) {
  if (!handler || !valid_pattern(pattern) || core_->stopped.load()) return 0;
  auto sub = std::make_shared<Subscription>();
  sub->pattern = std::string(pattern);
  sub->name = std::string(subscriber_name);
  sub->handler = std::move(handler);
  const prometheus::Labels labels{{"subscriber", sub->name}};
  sub->delivered = &core_->delivered_family.Add(labels);
  sub->dropped = &core_->dropped_family.Add(labels);
  sub->failed = &core_->failed_family.Add(labels);
  sub->depth = &core_->depth_family.Add(labels);
  std::lock_guard lock(core_->subs_mutex);
  sub->id = core_->next_id++;
  auto next = std::make_shared<SubList>(*core_->subs);
  next->push_back(sub);
  core_->subs = std::move(next);
  return sub->id;
}

bool EventBus::unsubscribe(uint64_t id) {
  std::shared_ptr<Subscription> removed;
  {
    std::lock_guard lock(core_->subs_mutex);
    auto next = std::make_shared<SubList>(*core_->subs);
    auto it = std::find_if(next->begin(), next->end(), [&](auto& s) { return s->id == id; });
    if (it == next->end()) return false;
    removed = *it;
    next->erase(it);
    core_->subs = std::move(next);
  }
  std::lock_guard lock(removed->mutex);
  removed->closed = true;
  fail_confirmations(removed->queue);
  core_->depth.fetch_sub(removed->queue.size());
  removed->depth->Decrement(static_cast<double>(removed->queue.size()));
  removed->queue.clear();
  return true;
}

std::optional<std::string> EventBus::publish(std::string_view topic, std::string_view data,
                                             std::string_view id) {
  return publish_impl(topic, data, id, {});
}

std::optional<std::string> EventBus::publish_confirmed(std::string_view topic,
                                                       std::string_view data, std::string_view id,
                                                       BusConfirm done) {
  if (!done) done = [](bool) {};
  return publish_impl(topic, data, id, std::move(done));
}

std::optional<std::string> EventBus::publish_impl(std::string_view topic, std::string_view data,
                                                  std::string_view id, BusConfirm done) {
  Core& core = *core_;
  if (core.stopped.load(std::memory_order_relaxed) || !valid_topic(topic)) return std::nullopt;
  BusEvent ev{std::string(topic), std::string(data), id.empty() ? core.make_id() : std::string(id),
              done ? std::make_shared<BusConfirmation>(std::move(done), core.log) : nullptr};
  std::shared_ptr<const SubList> subs;
  {
    std::lock_guard lock(core.subs_mutex);
    subs = core.subs;
  }
  core.published->Increment();
  for (const auto& sub : *subs) {
    if (!match_valid(sub->pattern, topic)) continue;
    bool post = false;
    WorkerPool* target = nullptr;
    {
      std::lock_guard lock(sub->mutex);
      if (sub->closed) continue;
      if (sub->queue.size() >= core.capacity) {
        sub->dropped->Increment();
        if (ev.confirm) ev.confirm->ok.store(false);
        continue;
      }
      if (ev.confirm) {
        ev.confirm->remaining.fetch_add(1);
        sub->confirmed++;
      }
      sub->queue.push_back(ev);
      core.depth.fetch_add(1, std::memory_order_relaxed);
      sub->depth->Increment();
      if (!sub->scheduled) {
        post = sub->scheduled = true;
        target = &core.pool_for(*sub);
      } else if (ev.confirm) {
        post = true;  // a job may already wait on the pool: this one cannot be starved
        target = core.confirm_pool.get();
      }
    }
    if (post) target->post([c = core_, sub] { c->drain(sub); });
  }
  if (ev.confirm) ev.confirm->finish(true);  // the publisher's own count
  return std::move(ev.id);
}

void EventBus::stop() {
  Core& core = *core_;
  core.stopped.store(true);
  std::shared_ptr<const SubList> subs;
  {
    std::lock_guard lock(core.subs_mutex);
    subs = core.subs;
  }
  for (const auto& sub : *subs) {
    std::lock_guard lock(sub->mutex);
    sub->closed = true;
    fail_confirmations(sub->queue);
    core.depth.fetch_sub(sub->queue.size());
    sub->depth->Decrement(static_cast<double>(sub->queue.size()));
    sub->queue.clear();
  }
  const std::size_t own = tl_running_bus == &core ? 1 : 0;
  {
    std::unique_lock lock(core.active_mutex);
    core.active_cv.wait(lock, [&] { return core.active.load() <= own; });
  }
  if (!own) core.confirm_pool->stop();  // from a handler the Core's destructor does it
}

std::size_t EventBus::depth() const { return core_->depth.load(); }

}  // namespace kghost
