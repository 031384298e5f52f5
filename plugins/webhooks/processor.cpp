#include "processor.hpp"

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

#include "spooled_event.hpp"

namespace kghost::webhooks {

using kghost::sdk::Plugin;
using kghost::sdk::StoreResult;
using Clock = std::chrono::steady_clock;

namespace {

// Answers to n asynchronous calls, waited for together with one deadline. A callback that
// comes after the deadline writes into the shared state, which outlives the waiter.
template <class R>
class Join {
 public:
  explicit Join(std::size_t n) : st_(std::make_shared<State>(n)) {}
  void set(std::size_t i, R r) const {
    std::lock_guard lock(st_->mu);
    if (!st_->results[i]) {
      st_->results[i] = std::move(r);
      if (--st_->left == 0) st_->cv.notify_all();
    }
  }
  std::function<void(const R&)> slot(std::size_t i) const {
    return [st = st_, i](const R& r) { Join(st).set(i, r); };
  }
  // Every answer that came before the deadline; the others stay empty.
  std::vector<std::optional<R>> wait(std::chrono::milliseconds timeout) const {
    std::unique_lock lock(st_->mu);
    st_->cv.wait_for(lock, timeout, [&] { return st_->left == 0; });
    return st_->results;
  }

 private:
  struct State {
    explicit State(std::size_t n) : results(n), left(n) {}
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::optional<R>> results;
    std::size_t left;
  };
  explicit Join(std::shared_ptr<State> st) : st_(std::move(st)) {}
  std::shared_ptr<State> st_;
};

// Issues one store call per index; answers now or later land in the join.
template <class Call>
std::vector<std::optional<StoreResult>> store_all(std::size_t n, std::chrono::milliseconds timeout,
                                                  Call&& call) {
  Join<StoreResult> join(n);
  for (std::size_t i = 0; i < n; ++i)
    if (auto now = call(i, join.slot(i))) join.set(i, *now);
  return join.wait(timeout);
}

StoreResult or_timeout(const std::optional<StoreResult>& r) {
  return r ? *r : StoreResult{KG_ERR_UNAVAILABLE, false, 0, -1, "timeout"};
}

}  // namespace

// The one store key of an event's processing, shared by the replicas: check_and_set's "1"
// while a worker holds the claim (with the short lease), kDone once it was processed (with the
// idempotency TTL). One key, not a done mark and a claim: the common case (a fresh event) is one
// SET NX to claim and one SET to mark, and Redis keeps a third fewer keys.
constexpr std::string_view kDone = "done";

struct Processor::Work {
  Plugin::BatchItem* item;
  ParsedEvent event;
  std::string_view body;  // the raw body as Stripe signed it, inside the item's entry
  std::string state_key;
};

Processor::Processor(kghost::sdk::Host host, const Config& cfg, Journal* journal, Count count,
                     kghost::sdk::Metric::Series errors)
    : host_(host),
      cfg_(cfg),
      journal_(journal),
      count_(std::move(count)),
      errors_(std::move(errors)) {}

void Processor::process(std::vector<Plugin::BatchItem>& batch) {
  std::vector<Work> work;
  work.reserve(batch.size());
  for (auto& item : batch) {
    auto spooled = read_spooled(item.entry.data);  // no JSON parse (spooled_event.hpp)
    if (!spooled) {
      fail(item, "?", "the spooled entry is not a Stripe event");
      continue;
    }
    ParsedEvent& ev = spooled->event;
    if (journal_ && journal_->contains(ev.id)) {
      skip(item);
      continue;
    }
    if (!ev.data_object) {
      fail(item, ev.id, "the event has no data.object");
      continue;
    }
    std::string state_key = "whk:state:" + ev.id;
    work.push_back(Work{&item, std::move(ev), spooled->body, std::move(state_key)});
  }
  if (work.empty()) return;
  const auto claimed_at = Clock::now();
  claim(work);
  publish(work, claimed_at);
  mark_done(work);
}

// (c) One SET NX per event claims it. Only where the key exists already (a redelivery,
// or an event both replicas hold) a second round trip reads whether it is done or claimed. A
// store error fails open: the event is processed, the local journal still guards this replica.
void Processor::claim(std::vector<Work>& work) {
  auto claims = store_all(work.size(), cfg_.store_timeout, [&](std::size_t i, auto later) {
    return host_.check_and_set(work[i].state_key, cfg_.claim_lease, std::move(later));
  });
  std::vector<Work> next, taken;
  next.reserve(work.size());
  for (std::size_t i = 0; i < work.size(); ++i) {
    StoreResult claim = or_timeout(claims[i]);
    (claim.status == KG_OK && !claim.created ? taken : next).push_back(std::move(work[i]));
  }
  auto states = store_all(taken.size(), cfg_.store_timeout, [&](std::size_t i, auto later) {
    return host_.get(taken[i].state_key, std::move(later));
  });
  for (std::size_t i = 0; i < taken.size(); ++i) {
    StoreResult state = or_timeout(states[i]);
    if (state.status == KG_OK && state.data == kDone) {
      skip(*taken[i].item);
      continue;
    }
    // Claimed by another worker, or its lease ran out (or the store failed) since the SET NX:
    // either way a later attempt decides.
    fail(*taken[i].item, taken[i].event.id,
         "another worker is processing this event (claim held); retrying");
  }
  work = std::move(next);
}

// (d) Publishes every event and, where the host confirms deliveries (ABI 1.1), waits until
// every subscriber has handled them, so an entry is acknowledged only after durable
// subscribers (billing) made it theirs: a kill -9 after the ack cannot lose the delivery.
void Processor::publish(std::vector<Work>& work, Clock::time_point claimed_at) {
  const kg_host_api* api = host_.api();
  const bool confirmed = KG_HOST_HAS(api, bus_publish_confirmed);
  Join<kg_status> join(work.size());
  std::vector<std::optional<std::string>> why(work.size());
  for (std::size_t i = 0; i < work.size(); ++i) {
    const std::string topic = "stripe." + work[i].event.type;
    const std::string_view data = work[i].body;
    if (!confirmed) {
      join.set(i, host_.publish(topic, data, work[i].event.id));
      continue;
    }
    auto* slot = new std::function<void(const kg_status&)>(join.slot(i));
    kg_status st = api->bus_publish_confirmed(
        host_.ctx(), kghost::sdk::str(topic), kghost::sdk::str(data),
        kghost::sdk::str(work[i].event.id),
        [](void* ud, kg_status s) {
          auto* f = static_cast<std::function<void(const kg_status&)>*>(ud);
          (*f)(s);
          delete f;
        },
        slot);
    if (st != KG_OK) {
      delete slot;
      why[i] = "the event bus refused the event";
      join.set(i, st);
    }
  }
  auto statuses = join.wait(cfg_.confirm_timeout);
  std::vector<Work> next;
  next.reserve(work.size());
  for (std::size_t i = 0; i < work.size(); ++i) {
    if (!why[i] && !statuses[i]) why[i] = "a bus subscriber did not confirm the event in time";
    if (!why[i] && *statuses[i] != KG_OK)
      why[i] = confirmed ? "a bus subscriber failed to handle the event"
                         : "the event bus refused the event";
    if (!why[i]) {
      next.push_back(std::move(work[i]));
      continue;
    }
    // Releasing the claim lets the retry start at once; only while the lease surely still
    // holds, since past it another replica may have claimed the event and marked it done.
    if (Clock::now() - claimed_at < cfg_.claim_lease * 9 / 10)
      host_.del(work[i].state_key, [](auto&) {});
    fail(*work[i].item, work[i].event.id, *why[i]);
  }
  work = std::move(next);
}

// Done marks before the ack: once the queue's ack is durable nothing redelivers it, and before
// that a redelivery finds these marks.
void Processor::mark_done(std::vector<Work>& work) {
  if (journal_) {
    std::vector<std::string_view> ids;
    ids.reserve(work.size());
    for (auto& w : work) ids.push_back(w.event.id);
    journal_->add_all(ids);
  }
  auto put = store_all(work.size(), cfg_.store_timeout, [&](std::size_t i, auto later) {
    return host_.put(work[i].state_key, kDone, cfg_.idempotency_ttl, std::move(later));
  });
  for (std::size_t i = 0; i < work.size(); ++i) {
    if (or_timeout(put[i]).status != KG_OK)
      host_.warn("webhook event " + work[i].event.id + ": done mark not stored");
    processed_++;
    count_("processed");
    work[i].item->status = KG_OK;
  }
}

void Processor::fail(Plugin::BatchItem& item, const std::string& event_id,
                     const std::string& reason) {
  errors_.add();
  item.status = KG_ERR_RETRY;
  item.reason = reason;
  const auto& e = item.entry;
  if (e.attempt >= cfg_.max_attempts) {
    failed_++;
    count_("dead_letter");
    host_.warn("webhook event " + event_id + " (entry " + std::to_string(e.id) +
               ") moved to dead letters after " + std::to_string(e.attempt) +
               " attempts: " + reason + "; fix the cause, then POST /admin/webhooks/dead-letter/" +
               std::to_string(e.id) + "/replay");
  } else {
    host_.info("webhook event " + event_id + " attempt " + std::to_string(e.attempt) +
               " failed, will retry: " + reason);
  }
}

void Processor::skip(Plugin::BatchItem& item) {
  skipped_++;
  count_("skipped_duplicate");
  item.status = KG_OK;
}

}  // namespace kghost::webhooks
