// billing: usage metering to OpenMeter, Stripe subscriptions to tiers, the usage API
// (CONTRACT.md §6).
//
// Routes
//   GET  /api/v1/usage                                  any key   the caller's tenant's usage
//   GET  /admin/billing/dead-letter                     admin     batches OpenMeter refused
//   POST /admin/billing/dead-letter/{id}/replay         admin     send one again
//
// Metering, and why nothing is lost and nothing waits:
//   1. The response observer ([request]) turns every request with a principal into an
//      `api.request` CloudEvent whose id is fixed here, adds it to the open batch (memory, one
//      short lock) and bumps the tenant's hour/day usage counters (store incr, fire and forget).
//   2. The batch closes at batch_size events or flush_interval after its first event; a closed
//      batch is ONE durable queue entry (queue_append: group-committed with every other append,
//      never an fsync per event). flush_interval is at most 80 ms, so a request answered 100 ms
//      before kill -9 is on disk. The spool is bounded (max_spool_bytes): a full spool drops the
//      batch, counts it and turns health degraded; the request itself never notices.
//   3. The queue consumer sends each entry as one batch and acknowledges it only after a 2xx.
//      5xx/429/timeouts/connection errors: exponential backoff with jitter (a gate shared by all
//      entries, so an outage costs one attempt per backoff, not one per entry). A batch that
//      was not sent is parked in the queue's dead-letter set (durable, survives kill -9);
//      billing.unparker sends one back as a probe when the backoff has run out, and all of them
//      once OpenMeter accepts again. 401/403: kept, probed at backoff_max, health unhealthy.
//      Other 4xx: the batch moves to the billing dead letters (a second queue) with OpenMeter's
//      answer, and the spool entry is acknowledged.
//   4. stop() (SIGTERM): closes the open batch, then lets the consumer send for up to
//      stop_flush_ms; whatever is left stays spooled for the next start.
//
// Subscriptions: stripe.customer.subscription.* from the bus (the webhooks plugin waits for our
// handler before it acknowledges its own queue entry). The tier is recorded durably in
// <data_dir>/billing/tiers.json, then put as `<tenant>` in the shared store space "tiers" (auth
// re-reads it, which is how other replicas learn it), then published as billing.tier_changed.
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <kghost/plugin.hpp>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>

#include "openmeter_client.hpp"
#include "settings.hpp"
#include "spool.hpp"
#include "tiers.hpp"
#include "usage_event.hpp"

namespace kghost::billing {
namespace {

using nlohmann::json;
using sdk::Host;
using sdk::QueueEntry;
using sdk::Request;
using sdk::Responder;
using sdk::Response;
using sdk::StoreResult;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kStoreWait{2000};       // a bus handler waits this long for the store
constexpr milliseconds kDeadAppendWait{5000};  // the consumer waits this long for a dead letter
constexpr int64_t kHourMs = 3'600'000, kDayMs = 86'400'000;

// tenant -> hour start (unix ms) -> requests not yet added to the store
using UsageMap = std::map<std::string, std::map<int64_t, int64_t>, std::less<>>;

int64_t unix_ms() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string usage_key(std::string_view tenant, char window, int64_t start_ms) {
  std::string k = "usage:";
  k.append(tenant);
  k += ':';
  k += window;
  k += ':';
  k += std::to_string(start_ms / 1000);
  return k;
}

const char* status_name(kg_health_status s) {
  return s == KG_HEALTHY ? "healthy" : s == KG_DEGRADED ? "degraded" : "unhealthy";
}

// The store space billing writes tenants' tiers to and auth reads them from.
constexpr std::string_view kTierSpace = "tiers";

class Billing final : public sdk::Plugin {
 public:
  explicit Billing(Host h)
      : Plugin(h),
        cfg_(parse_settings(h.config_json())),
        run_(new_event_id().substr(0, 8)),
        book_(std::filesystem::path(std::string(h.data_dir())) / "billing"),
        tiers_(h.shared_store(kTierSpace)) {
    if (run_.size() != 8) throw std::runtime_error("billing: OpenSSL RAND_bytes failed");
    kg_queue_options qo{};
    // A batch that could not be sent is parked (the queue's dead letters) at its first failure
    // and unparked by billing.unparker once OpenMeter answers again: the queue's own per-entry
    // backoff would otherwise keep batches waiting up to a minute after an outage ends.
    qo.max_attempts = 1;
    qo.max_bytes = cfg_.max_spool_bytes;
    spool_ = host().queue("events", qo);
    if (!spool_) throw std::runtime_error("billing: cannot open the durable queue \"events\"");
    kg_queue_options dq{};
    dq.max_attempts = 1;  // every entry becomes a dead letter at once (see deliver_dead)
    dead_ = host().queue("dead-letter", dq);
    if (!dead_) throw std::runtime_error("billing: cannot open the durable queue \"dead-letter\"");
    if (cfg_.sink == Sink::openmeter)
      client_ = std::make_unique<OpenMeterClient>(cfg_.url, cfg_.api_key, cfg_.connect_timeout,
                                                  cfg_.timeout);
    batch_ = std::make_unique<OpenBatch>(
        cfg_.batch_size, cfg_.flush_interval, run_,
        [this](std::string entry, std::size_t n) { spool_batch(std::move(entry), n); });

    auto events =
        host().metric(KG_METRIC_COUNTER, "kgents_openmeter_events_total",
                      "Usage events by outcome (spooled, sent, dropped, dead_letter)", {"result"});
    for (auto r : {"spooled", "sent", "dropped", "dead_letter", "discarded"})
      m_events_.emplace(r, events.series({r}));
    m_flush_errors_ = host()
                          .metric(KG_METRIC_COUNTER, "kgents_openmeter_flush_errors_total",
                                  "Batches OpenMeter did not accept (retried or dead-lettered)")
                          .series();
    m_buffered_ = host()
                      .metric(KG_METRIC_GAUGE, "kgents_openmeter_buffer_events",
                              "Usage events waiting to be sent (memory and spool)")
                      .series();
    auto subs = host().metric(KG_METRIC_COUNTER, "kgents_billing_subscription_events_total",
                              "Stripe subscription events by outcome", {"result"});
    for (auto r : {"applied", "duplicate", "stale", "no_tenant", "unknown_price", "malformed"})
      m_subs_.emplace(r, subs.series({r}));

    observer([this](Request& req, const kg_observation& obs) { meter(req, obs); });
    run("billing.spooler", [this](kg_stop* s) { spooler(s); });
    run("billing.unparker", [this](kg_stop* s) {
      while (!stop_wait(s, milliseconds(50))) unpark();
    });
    route({.method = "GET", .path = "/api/v1/usage", .summary = "The caller's tenant's usage"},
          [this](Request& req) { on_usage(req); });
    route({.method = "GET",
           .path = "/admin/billing/dead-letter",
           .scopes = "admin",
           .summary = "List usage batches OpenMeter refused"},
          [this](Request& req) { on_list_dead(req); });
    route({.method = "POST",
           .path = "/admin/billing/dead-letter/{id}/replay",
           .scopes = "admin",
           .summary = "Send a dead-lettered usage batch again"},
          [this](Request& req) { on_replay(req); });
    subscribe("stripe.customer.subscription.*",
              [this](std::string_view topic, std::string_view data, std::string_view id) {
                on_subscription(topic, data, id);
              });
    health([this] { return health_report(); });
  }

  void start() override {
    consume(spool_, [this](const QueueEntry& e) { return deliver(e); });
    consume(dead_, [this](const QueueEntry& e) { return deliver_dead(e); });
    restore_tiers();
  }

  void stop() override {
    const auto deadline = Clock::now() + cfg_.stop_flush;
    stop_deadline_ms_.store(unix_ms() + cfg_.stop_flush.count());
    stopping_.store(true);
    batch_->tick(true);
    while (appends_in_flight_.load() > 0 && Clock::now() < deadline)
      std::this_thread::sleep_for(milliseconds(2));
    while ((spool_.depth() > 0 || parked_.load() > 0) && Clock::now() < deadline) {
      unpark();
      std::this_thread::sleep_for(milliseconds(10));
    }
    host().info("billing: stopped; " + std::to_string(spool_.depth() + parked_.load()) +
                " batches stay spooled for the next start");
  }

 private:
  // ---- metering ---------------------------------------------------------------------------

  void meter(Request& req, const kg_observation& obs) {
    auto p = req.principal();
    if (!p || p->tenant_id.empty()) return;
    const int64_t now = unix_ms();
    count_usage(p->tenant_id, now);
    if (cfg_.sink == Sink::none) return;
    std::string id = new_event_id();
    if (id.empty()) return drop(1, "OpenSSL RAND_bytes failed");
    std::string ev;
    ev.reserve(360);
    append_usage_event(ev, id, p->tenant_id, sdk::view(obs.route), sdk::view(obs.method),
                       obs.status, now);
    buffered_.fetch_add(1, std::memory_order_relaxed);
    batch_->add(ev, req.traceparent());
  }

  // Counted here and added to the store's hour/day counters by the spooler every tick (one
  // incr per tenant and window per tick instead of two per request); the usage API adds what
  // is still pending here, so this replica's own answers are exact.
  void count_usage(std::string_view tenant, int64_t now) {
    const int64_t hour = now - now % kHourMs;
    std::lock_guard lock(usage_mu_);
    auto it = usage_pending_.find(tenant);
    if (it == usage_pending_.end())
      it = usage_pending_.emplace(std::string(tenant), std::map<int64_t, int64_t>{}).first;
    it->second[hour]++;
  }

  void flush_usage() {
    UsageMap pending;
    {
      std::lock_guard lock(usage_mu_);
      if (usage_pending_.empty()) return;
      pending.swap(usage_pending_);
      usage_flushing_ = &pending;
    }
    const kg_host_api* api = host().api();
    for (auto& [tenant, hours] : pending) {
      for (auto [hour, n] : hours) {
        for (auto [window, start, ttl] : {std::tuple{'h', hour, 2 * kHourMs + 60'000},
                                          std::tuple{'d', hour - hour % kDayMs, 2 * kDayMs}}) {
          std::string key = usage_key(tenant, window, start);
          kg_store_result ignored{};
          ignored.struct_size = sizeof ignored;
          api->store_incr(host().ctx(), sdk::str(key), n, ttl, &ignored, nullptr, nullptr);
        }
      }
    }
    std::lock_guard lock(usage_mu_);
    usage_flushing_ = nullptr;
  }

  // Requests of `tenant` counted here but not yet in the store, in [from, to).
  int64_t usage_not_stored(const std::string& tenant, int64_t from, int64_t to) {
    std::lock_guard lock(usage_mu_);
    int64_t n = 0;
    for (const UsageMap* m : {static_cast<const UsageMap*>(&usage_pending_), usage_flushing_}) {
      if (!m) continue;
      auto it = m->find(tenant);
      if (it == m->end()) continue;
      for (auto [hour, c] : it->second)
        if (hour >= from && hour < to) n += c;
    }
    return n;
  }

  // Any thread that closed a batch (a request thread or the spooler).
  void spool_batch(std::string entry, std::size_t n) {
    appends_in_flight_.fetch_add(1);
    kg_status st = spool_.append(entry, [this, n](kg_status s, uint64_t) {
      if (s == KG_OK) {
        m_events_.at("spooled").add(static_cast<double>(n));
      } else {
        drop(n, "the spool could not write the batch");
      }
      appends_in_flight_.fetch_sub(1);
    });
    if (st == KG_PENDING) return;
    appends_in_flight_.fetch_sub(1);
    drop(n, st == KG_ERR_FULL ? "the spool is full (max_spool_bytes)" : "the spool is unavailable");
  }

  void drop(std::size_t n, const char* why) {
    buffered_.fetch_sub(static_cast<int64_t>(n));
    dropped_.fetch_add(n);
    m_events_.at("dropped").add(static_cast<double>(n));
    const int64_t now = unix_ms();
    // One warning per 10 s at most: a full spool under load would otherwise flood the log.
    int64_t last = last_drop_ms_.exchange(now);
    if (now - last > 10'000)
      host().warn(std::string("billing: dropped usage events: ") + why +
                  "; health is degraded until the spool drains");
  }

  void spooler(kg_stop* stop) {
    const milliseconds tick = std::max(milliseconds(1), cfg_.flush_interval / 5);
    while (!stop_wait(stop, tick)) {
      batch_->tick();
      flush_usage();
      m_buffered_.set(static_cast<double>(std::max<int64_t>(0, buffered_.load())));
    }
    batch_->tick(true);
    flush_usage();
  }

  // ---- the flusher (queue consumer, one entry at a time on a host worker) -------------------

  // Moves parked batches back into delivery: all of them while OpenMeter accepts batches, one
  // (a probe) when the backoff of a failing OpenMeter has run out. [task: billing.unparker]
  void unpark() {
    bool failing = false;
    {
      std::lock_guard lock(gate_mu_);
      if (Clock::now() < next_try_) return;
      failing = failures_ > 0;
    }
    if (failing && probe_out_.load()) return;
    std::vector<uint64_t> ids;
    uint64_t parked = 0;
    spool_.list_dead([&](const QueueEntry& e) {
      parked++;
      if (!failing || ids.empty()) ids.push_back(e.id);
      return true;
    });
    if (failing && !ids.empty()) probe_out_.store(true);
    for (uint64_t id : ids)
      if (spool_.replay(id) == KG_OK) parked--;
    parked_.store(parked);
  }

  // The events of an entry this run spooled leave `buffered` once they are settled.
  void settle(const SpoolEntry& e, const char* result) {
    if (e.run == run_) buffered_.fetch_sub(static_cast<int64_t>(e.count));
    m_events_.at(result).add(static_cast<double>(e.count));
  }

  kg_status deliver(const QueueEntry& qe) {
    auto e = decode_entry(qe.data);
    if (!e) {
      host().error("billing: spool entry " + std::to_string(qe.id) +
                   " is not a usage batch; dropped");
      return KG_OK;
    }
    if (cfg_.sink == Sink::none) {
      settle(*e, "discarded");
      return KG_OK;
    }
    if (cfg_.sink == Sink::log) {
      host().info(std::string(R"({"billing_batch":)") + std::to_string(e->count) + R"(,"events":)" +
                  std::string(e->body) + "}");
      settle(*e, "sent");
      return KG_OK;
    }
    if (stopping_.load() && unix_ms() >= stop_deadline_ms_.load()) {
      spool_.fail_reason("stopping: kept for the next start");
      return KG_ERR_RETRY;
    }
    {
      std::lock_guard lock(gate_mu_);
      if (Clock::now() < next_try_) {
        // A probe that meets a gate closed again meanwhile must not block the next one.
        probe_out_.store(false);
        spool_.fail_reason("backing off after: " + last_error_);
        return KG_ERR_RETRY;
      }
    }
    SendResult r = client_->send(e->body, e->traceparent);
    probe_out_.store(false);  // settled: the unparker may probe again
    switch (r.verdict) {
      case Verdict::sent:
        on_sent();
        settle(*e, "sent");
        return KG_OK;
      case Verdict::dead_letter:
        m_flush_errors_.add();
        return to_dead_letter(qe, *e, r) ? KG_OK : KG_ERR_RETRY;
      case Verdict::auth:
      case Verdict::retry:
        on_failed(r);
        spool_.fail_reason(last_error());
        return KG_ERR_RETRY;
    }
    return KG_ERR_RETRY;
  }

  static std::string describe(const SendResult& r) {
    if (r.http_status == 0) return "OpenMeter unreachable: " + r.answer;
    return "OpenMeter answered HTTP " + std::to_string(r.http_status) +
           (r.answer.empty() ? std::string() : ": " + r.answer.substr(0, 300));
  }

  void on_sent() {
    std::lock_guard lock(gate_mu_);
    if (failures_ > 0) host().info("billing: OpenMeter accepts batches again");
    failures_ = 0;
    backoff_ = milliseconds(0);
    auth_failed_.store(false);
    failing_.store(false);
  }

  void on_failed(const SendResult& r) {
    m_flush_errors_.add();
    flush_errors_.fetch_add(1);
    const bool auth = r.verdict == Verdict::auth;
    std::lock_guard lock(gate_mu_);
    failures_++;
    if (auth) {
      backoff_ = cfg_.backoff_max;  // the key is wrong: retry at the longest backoff
    } else {
      backoff_ =
          backoff_.count() == 0 ? cfg_.backoff_initial : std::min(cfg_.backoff_max, backoff_ * 2);
    }
    // Jitter in [backoff/2, backoff], so replicas recovering together do not stampede.
    std::uniform_int_distribution<int64_t> jitter(backoff_.count() / 2, backoff_.count());
    next_try_ = Clock::now() + milliseconds(jitter(rng_));
    last_error_ = describe(r);
    auth_failed_.store(auth);
    failing_.store(true);
    if (failures_ == 1 || auth || failures_ % 20 == 0)
      host().warn("billing: " + last_error_ + (auth ? " (check OPENMETER_API_KEY)" : "") +
                  "; batches stay spooled, next attempt in " + std::to_string(backoff_.count()) +
                  " ms at most");
  }

  std::string last_error() {
    std::lock_guard lock(gate_mu_);
    return last_error_;
  }

  // Keeps the batch for an operator: appended (durably) to the dead-letter queue, whose
  // consumer fails it at once with OpenMeter's answer as its last error.
  bool to_dead_letter(const QueueEntry& qe, const SpoolEntry& e, const SendResult& r) {
    json d = {{"status", r.http_status},
              {"answer", r.answer},
              {"events", e.count},
              {"entry", std::string(qe.data)}};
    struct Wait {
      std::mutex mu;
      std::condition_variable cv;
      std::optional<kg_status> status;
    };
    auto w = std::make_shared<Wait>();
    kg_status st = dead_.append(d.dump(), [w](kg_status s, uint64_t) {
      std::lock_guard lock(w->mu);
      w->status = s;
      w->cv.notify_all();
    });
    if (st != KG_PENDING) {
      spool_.fail_reason("the dead-letter queue refused the batch");
      return false;
    }
    std::unique_lock lock(w->mu);
    if (!w->cv.wait_for(lock, kDeadAppendWait, [&] { return w->status.has_value(); }) ||
        *w->status != KG_OK) {
      spool_.fail_reason("the dead-letter queue could not write the batch");
      return false;
    }
    dead_letters_.fetch_add(1);
    settle(e, "dead_letter");
    host().warn("billing: a batch of " + std::to_string(e.count) + " events was refused (" +
                describe(r) + "); it is kept in the billing dead letters (GET " +
                "/admin/billing/dead-letter, then POST …/{id}/replay once fixed)");
    return true;
  }

  kg_status deliver_dead(const QueueEntry& qe) {
    {
      std::lock_guard lock(replay_mu_);
      if (replaying_.erase(qe.id)) return KG_OK;  // its events are back in the spool
    }
    json d = json::parse(qe.data, nullptr, false);
    std::string why = "OpenMeter refused the batch";
    if (d.is_object())
      why = "OpenMeter answered HTTP " + std::to_string(d.value("status", 0L)) + ": " +
            d.value("answer", std::string()).substr(0, 500);
    dead_.fail_reason(why);
    return KG_ERR_RETRY;
  }

  // ---- admin --------------------------------------------------------------------------------

  void on_list_dead(Request& req) {
    json list = json::array();
    dead_.list_dead([&](const QueueEntry& d) {
      json item = {{"id", d.id}, {"last_error", d.last_error}};
      json body = json::parse(d.data, nullptr, false);
      if (body.is_object()) {
        item["status"] = body.value("status", 0L);
        item["answer"] = body.value("answer", std::string());
        item["events"] = body.value("events", 0);
      }
      list.push_back(std::move(item));
      return list.size() < 1000;
    });
    req.respond(200, json{{"dead_letters", list}, {"count", list.size()}}.dump());
  }

  void on_replay(Request& req) {
    auto p = req.param("id").value_or("");
    uint64_t id = 0;
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), id);
    if (ec != std::errc() || end != p.data() + p.size())
      return req.error(404, "not_found", "no billing dead letter with this id");
    std::string entry;
    dead_.list_dead([&](const QueueEntry& d) {
      if (d.id != id) return true;
      json body = json::parse(d.data, nullptr, false);
      if (body.is_object()) entry = body.value("entry", std::string());
      return false;
    });
    auto e = decode_entry(entry);
    if (!e) return req.error(404, "not_found", "no billing dead letter with this id");
    // Counted as this run's again, so `buffered` shows it until it is sent.
    std::string fresh = encode_entry(e->count, run_, e->traceparent, e->body);
    const std::size_t n = e->count;
    buffered_.fetch_add(static_cast<int64_t>(n));
    auto responder = std::make_shared<Responder>(req.defer());
    kg_status st = spool_.append(fresh, [this, responder, id, n](kg_status s, uint64_t) {
      if (s != KG_OK) {
        buffered_.fetch_sub(static_cast<int64_t>(n));
        return responder->error(503, "unavailable", "the spool could not take the batch");
      }
      {
        std::lock_guard lock(replay_mu_);
        replaying_.insert(id);
      }
      if (dead_.replay(id) != KG_OK) {
        std::lock_guard lock(replay_mu_);
        replaying_.erase(id);
      }
      host().info("billing: dead letter " + std::to_string(id) + " (" + std::to_string(n) +
                  " events) replayed by an operator");
      responder->complete(
          Response{200, json{{"replayed", true}, {"id", id}, {"events", n}}.dump(), {}, {}});
    });
    if (st != KG_PENDING) {
      buffered_.fetch_sub(static_cast<int64_t>(n));
      responder->error(503, "unavailable", "the spool is full or unavailable; retry later");
    }
  }

  // ---- usage API ----------------------------------------------------------------------------

  void on_usage(Request& req) {
    auto p = req.principal();
    if (!p) return req.error(401, "missing_api_key", "this route needs an API key");
    struct Call {
      std::mutex mu;
      Responder responder;
      std::string tenant;
      int64_t hour = 0, day = 0;
      int left = 2;
    };
    auto call = std::make_shared<Call>();
    call->tenant = std::string(p->tenant_id);
    call->responder = req.defer();
    const int64_t now = unix_ms();
    auto answer = [call](bool is_hour, const StoreResult& r) {
      int64_t v = 0;
      if (r.status == KG_OK) std::from_chars(r.data.data(), r.data.data() + r.data.size(), v);
      std::unique_lock lock(call->mu);
      (is_hour ? call->hour : call->day) += v;
      if (--call->left > 0) return;
      json body = {{"tenant_id", call->tenant},
                   {"meters", {{"api_requests", {{"hour", call->hour}, {"day", call->day}}}}}};
      Responder r2 = std::move(call->responder);
      lock.unlock();
      r2.complete(Response{200, body.dump(), {}, {}});
    };
    const int64_t hour = now - now % kHourMs, day = now - now % kDayMs;
    // Read what is pending before the store: a flush in between then counts twice at worst
    // for an instant, never zero times.
    call->hour = usage_not_stored(call->tenant, hour, hour + kHourMs);
    call->day = usage_not_stored(call->tenant, day, day + kDayMs);
    for (bool is_hour : {true, false}) {
      std::string key =
          is_hour ? usage_key(call->tenant, 'h', hour) : usage_key(call->tenant, 'd', day);
      auto r = host().get(key, [answer, is_hour](const StoreResult& res) { answer(is_hour, res); });
      if (r) answer(is_hour, *r);
    }
  }

  // ---- subscriptions → tiers ----------------------------------------------------------------

  template <class Call>
  StoreResult wait_store(Call&& call) {
    struct Slot {
      std::mutex mu;
      std::condition_variable cv;
      std::optional<StoreResult> result;
    };
    auto slot = std::make_shared<Slot>();
    auto now = call([slot](const StoreResult& r) {
      std::lock_guard lock(slot->mu);
      slot->result = r;
      slot->cv.notify_one();
    });
    if (now) return *now;
    std::unique_lock lock(slot->mu);
    if (!slot->cv.wait_for(lock, kStoreWait, [&] { return slot->result.has_value(); }))
      return StoreResult{KG_ERR_UNAVAILABLE, false, 0, -1, "timeout"};
    return *slot->result;
  }

  // [task] Throws when the change could not be made durable: the bus then reports a failure
  // and the webhooks plugin delivers the event again later.
  void on_subscription(std::string_view topic, std::string_view data, std::string_view id) {
    Reading r = read_subscription_event(topic, data, id, cfg_.prices);
    if (!r.change) {
      m_subs_.at(r.why).add();
      host().warn("billing: subscription event " + std::string(id.substr(0, 100)) +
                  " changes no tier: " + r.detail);
      return;
    }
    const TierChange& c = *r.change;
    std::string previous = "FREE";
    TierBook::Outcome o = book_.apply(c, &previous);
    if (o == TierBook::Outcome::stale) {
      m_subs_.at("stale").add();
      host().info("billing: subscription event " + c.event_id + " for tenant '" + c.tenant +
                  "' is older than the last one applied; ignored");
      return;
    }
    // A duplicate goes on to the store and the bus again: harmless, and it repairs a store
    // write that failed the first time.
    m_subs_.at(o == TierBook::Outcome::applied ? "applied" : "duplicate").add();
    auto put = wait_store([&](auto later) {
      return tiers_.put(c.tenant, c.tier, milliseconds(0), std::move(later));
    });
    if (put.status != KG_OK)
      throw std::runtime_error("billing: the shared store \"tiers\" did not take " + c.tenant);
    publish_tier(c.tenant, c.tier, previous, c.event_id);
    if (o == TierBook::Outcome::applied)
      host().info("billing: tenant '" + c.tenant + "' moves from " + previous + " to " + c.tier +
                  " (Stripe event " + c.event_id + ")");
  }

  void publish_tier(const std::string& tenant, const std::string& tier, const std::string& previous,
                    const std::string& event_id) {
    json ev = {{"tenant_id", tenant},
               {"tier", tier},
               {"previous_tier", previous},
               {"stripe_event_id", event_id}};
    host().publish("billing.tier_changed", ev.dump());
  }

  // After a restart with the memory store, the store has forgotten every tier: put back what
  // the tier book holds. A tier the (shared) store already has wins: another replica may have
  // applied a newer event since.
  void restore_tiers() {
    for (auto& [tenant, c] : book_.snapshot()) {
      auto apply = [this, c = c](const StoreResult& r) {
        if (r.status != KG_ERR_NOT_FOUND) return;
        tiers_.put(c.tenant, c.tier, milliseconds(0), [](const StoreResult&) {});
        publish_tier(c.tenant, c.tier, c.tier, c.event_id);
      };
      if (auto now = tiers_.get(tenant, apply)) apply(*now);
    }
  }

  // ---- health -------------------------------------------------------------------------------

  std::pair<kg_health_status, std::string> health_report() {
    kg_health_status openmeter = KG_HEALTHY;
    if (auth_failed_.load()) {
      openmeter = KG_UNHEALTHY;
    } else if (failing_.load()) {
      openmeter = KG_DEGRADED;
    }
    const bool dropping = unix_ms() - last_drop_ms_.load() < 60'000;
    kg_health_status overall = openmeter;
    if (dropping && overall == KG_HEALTHY) overall = KG_DEGRADED;
    const int64_t buffered = std::max<int64_t>(0, buffered_.load());
    static constexpr const char* kSinks[] = {"openmeter", "log", "none"};
    json d = {{"sink", kSinks[static_cast<int>(cfg_.sink)]},
              // Read by /health/saas (observability) as openmeter {status, buffered}.
              {"openmeter", cfg_.sink == Sink::openmeter ? status_name(openmeter) : "disabled"},
              {"buffered", buffered},
              {"spool_batches", spool_.depth()},
              {"parked_batches", parked_.load()},
              {"dropped", dropped_.load()},
              {"dead_letters", dead_letters_.load()},
              {"flush_errors", flush_errors_.load()}};
    std::string err = last_error();
    if (!err.empty() && failing_.load()) d["last_error"] = err;
    return {overall, d.dump()};
  }

  Settings cfg_;
  const std::string run_;
  TierBook book_;
  sdk::SharedStore tiers_;  // tenant -> tier, read by auth on every replica
  sdk::Queue spool_, dead_;
  std::unique_ptr<OpenMeterClient> client_;
  std::unique_ptr<OpenBatch> batch_;

  std::map<std::string, sdk::Metric::Series, std::less<>> m_events_, m_subs_;  // fixed after create
  sdk::Metric::Series m_flush_errors_, m_buffered_;

  std::atomic<int64_t> buffered_{0};
  std::atomic<uint64_t> dropped_{0}, dead_letters_{0}, flush_errors_{0};
  std::atomic<int64_t> last_drop_ms_{0};
  std::atomic<int> appends_in_flight_{0};
  std::atomic<bool> stopping_{false}, auth_failed_{false}, failing_{false};
  std::atomic<int64_t> stop_deadline_ms_{0};
  std::atomic<uint64_t> parked_{0};     // batches waiting for OpenMeter (last count seen)
  std::atomic<bool> probe_out_{false};  // a parked batch was unparked to probe OpenMeter

  std::mutex gate_mu_;  // guards the backoff state below
  Clock::time_point next_try_{};
  milliseconds backoff_{0};
  uint64_t failures_ = 0;
  std::string last_error_;
  std::mt19937_64 rng_{std::random_device{}()};

  std::mutex usage_mu_;  // guards usage_pending_ and usage_flushing_
  UsageMap usage_pending_;
  const UsageMap* usage_flushing_ = nullptr;  // the batch flush_usage is adding to the store

  std::mutex replay_mu_;  // guards replaying_
  std::set<uint64_t> replaying_;
};

}  // namespace
}  // namespace kghost::billing

KGHOST_PLUGIN(kghost::billing::Billing, "billing", "1.0.0",
              "Usage metering to OpenMeter (durable spool), Stripe subscriptions to tiers", 0)
