// webhooks: Stripe in (CONTRACT.md §5). Signature on the raw body, idempotency on the event id,
// durable acknowledgement, asynchronous processing with retries and dead letters.
//
// Routes
//   POST /webhooks/stripe                                  public  (Stripe has no API key)
//   GET  /webhooks/stripe/health                           public  counters and status
//   GET  /admin/webhooks/dead-letter                       admin   list dead letters (deferred,
//                                                                  built on the admin task)
//   POST /admin/webhooks/dead-letter/{id}/replay           admin   replay one
//
// Ingress, in this order (each step only runs when the one before it succeeded):
//   1. per-source-IP rate limit (store incr with TTL)               → 429 rate_limited
//   2. Stripe-Signature over the raw body, before any parsing        → 400 invalid_signature
//   3. parse: a JSON object with string `id` and `type`              → 400 invalid_payload
//   4. store get `whk:evt:<id>`: present → 200 {"received":true,"duplicate":true}
//   5. durable append of the raw body to the queue (fsync'd)          → 503 overloaded if full
//   6. store check_and_set `whk:evt:<id>` (TTL 72 h), then 200 {"received":true}
//
// Why this order can neither lose an event nor turn a retry into a false duplicate:
//   The mark `whk:evt:<id>` is written only in step 6, after the append of step 5 is durable.
//   So whenever the mark exists, a durable copy of the event exists too, and answering
//   "duplicate" (step 4) is only ever said of an event we kept. A crash between 5 and 6 leaves
//   a durable copy and no mark: Stripe, having got no 200, retries; the retry finds no mark and
//   is appended again. That makes two copies in the queue, and the consumer de-duplicates them
//   by event id (below), so the event is processed once. A crash before 5 completes leaves
//   neither a copy nor a mark: the retry is a fresh event. The reverse order (mark first, as in
//   OpenMeter #5118) would answer "duplicate" to the retry of an event that was never kept.
//   Two replicas racing on the same id may both append (both pass step 4); the loser of step
//   6 answers duplicate:true, and the consumer de-duplication again keeps processing single.
//
// Processing: the queue's batch consumer, see processor.hpp.

#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <kghost/plugin.hpp>
#include <kghost/sdk/config.hpp>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_set>
#include <vector>

#include "config.hpp"
#include "journal.hpp"
#include "processor.hpp"
#include "spooled_event.hpp"
#include "stripe_event.hpp"
#include "stripe_signature.hpp"

namespace {

using kghost::sdk::Host;
using kghost::sdk::Principal;
using kghost::sdk::QueueEntry;
using kghost::sdk::Request;
using kghost::sdk::Responder;
using kghost::sdk::Response;
using kghost::sdk::StoreResult;
using kghost::webhooks::Config;
using kghost::webhooks::parse_config;
using kghost::webhooks::parse_event;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

// ---- the plugin -----------------------------------------------------------------------------

class Webhooks final : public kghost::sdk::Plugin {
 public:
  explicit Webhooks(Host h)
      : Plugin(h), cfg_(parse_config(h.config_json())), signing_(cfg_.secrets) {
    if (cfg_.journal_dir.empty()) cfg_.journal_dir = std::string(host().data_dir()) + "/webhooks";
    journal_ = std::make_unique<kghost::webhooks::Journal>(cfg_.journal_dir, cfg_.journal_rotate);
    kg_queue_options qo{};
    qo.max_attempts = cfg_.max_attempts;
    qo.max_bytes = cfg_.max_queue_bytes;
    qo.retry_backoff_ms = static_cast<uint32_t>(cfg_.retry_backoff.count());
    queue_ = host().queue("events", qo);
    if (!queue_) throw std::runtime_error("webhooks: cannot open the durable queue \"events\"");

    auto total =
        host().metric(KG_METRIC_COUNTER, "kgents_stripe_webhooks_total",
                      "Stripe webhook requests and processing outcomes, by result", {"result"});
    for (auto r : {"ok", "duplicate", "invalid_signature", "invalid_payload", "rate_limited",
                   "overloaded", "unavailable", "processed", "skipped_duplicate", "dead_letter"})
      results_.emplace(r, total.series({r}));
    processor_ = std::make_unique<kghost::webhooks::Processor>(
        host(), cfg_, journal_.get(), [this](const char* result) { count(result); },
        host()
            .metric(KG_METRIC_COUNTER, "kgents_stripe_webhooks_errors_total",
                    "Stripe webhook processing attempts that failed (retried or dead-lettered)")
            .series());

    route({.method = "POST",
           .path = "/webhooks/stripe",
           .is_public = true,
           .summary = "Stripe webhook receiver (Stripe-Signature required)",
           .description = "Verifies the Stripe-Signature header over the raw body, then keeps "
                          "the event durably before answering; a redelivered event id answers "
                          "duplicate:true.",
           .request_schema = R"({"type":"object","required":["id","type"],)"
                             R"("properties":{"id":{"type":"string"},"type":{"type":"string"}}})",
           .response_schema = R"({"type":"object","required":["received"],)"
                              R"("properties":{"received":{"const":true},)"
                              R"("duplicate":{"type":"boolean"}}})"},
          [this](Request& req) { on_webhook(req); });
    route({.method = "GET",
           .path = "/webhooks/stripe/health",
           .is_public = true,
           .summary = "Stripe webhook receiver status and counters",
           .response_schema =
               R"({"type":"object","required":["status"],)"
               R"("properties":{"status":{"enum":["healthy","degraded","unhealthy"]}},)"
               R"("additionalProperties":true})"},
          [this](Request& req) { req.respond(200, health_json().dump()); });
    route(
        {.method = "GET",
         .path = "/admin/webhooks/dead-letter",
         .scopes = "admin",
         .summary = "List Stripe events that failed processing",
         .response_schema = R"({"type":"object","required":["dead_letters","count"],"properties":{)"
                            R"("count":{"type":"integer"},"dead_letters":{"type":"array","items":{)"
                            R"("type":"object","properties":{"id":{"type":"integer"},)"
                            R"("attempts":{"type":"integer"},"last_error":{"type":"string"}}}}}})"},
        [this](Request& req) { on_list_dead(req); });
    route(
        {.method = "POST",
         .path = "/admin/webhooks/dead-letter/{id}/replay",
         .scopes = "admin",
         .summary = "Queue a dead-lettered Stripe event for processing again",
         .response_schema = R"({"type":"object","required":["replayed","id"],)"
                            R"("properties":{"replayed":{"const":true},"id":{"type":"integer"}}})"},
        [this](Request& req) { on_replay(req); });

    health([this] { return std::make_pair(status(), health_json().dump()); });
    run("webhooks.admin", [this](kg_stop* stop) { serve_admin_jobs(stop); });
  }

  // Delivery starts after every plugin is created, so subscribers of stripe.> are in place
  // before the first (possibly redelivered) event is published.
  void start() override {
    consume_batch(queue_, cfg_.process_batch,
                  [this](std::vector<BatchItem>& batch) { processor_->process(batch); });
  }

 private:
  // ---- ingress ------------------------------------------------------------------------------

  struct Call {  // one POST /webhooks/stripe in flight
    Responder responder;
    std::string signature, body;
    kghost::webhooks::ParsedEvent event;  // once the body parsed
    bool signature_repeated = false;
  };
  using CallPtr = std::shared_ptr<Call>;

  // Heterogeneous lookup (std::less<>): no std::string is built per call.
  void count(std::string_view result) { results_.find(result)->second.add(); }

  void finish_error(const CallPtr& c, uint16_t status, std::string_view code, std::string_view msg,
                    bool retry_after = false) {
    std::vector<kghost::sdk::Header> headers;
    if (retry_after) headers.push_back({"Retry-After", std::to_string(cfg_.retry_after_s)});
    c->responder.error(status, code, msg, std::move(headers));
  }

  void on_webhook(Request& req) {
    auto c = std::make_shared<Call>();
    c->signature = req.header("stripe-signature").value_or("");
    c->signature_repeated = req.header("stripe-signature", 1).has_value();
    c->body = req.body();
    std::string ip(req.remote_addr());
    c->responder = req.defer();
    try {
      start_chain(c, ip);
    } catch (const std::exception& e) {
      host().error(std::string("webhook request failed: ") + e.what());
      finish_error(c, 500, "internal_error", "the webhook could not be handled");
    }
  }

  void start_chain(const CallPtr& c, const std::string& ip) {
    if (cfg_.rate_limit <= 0) return verify_and_parse(c);
    // Fixed window per source IP, aligned to the Unix epoch (wall clock, as auth's are), so
    // replicas sharing the store count in the same window; one atomic incr-with-TTL, never
    // read-then-write. The key lives to the window's end plus a grace second.
    const int64_t len_ms = cfg_.rate_window.count();
    const int64_t now_ms = std::chrono::duration_cast<milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
    const int64_t start_ms = now_ms - now_ms % len_ms;
    std::string key = "whk:rl:" + ip + ":" + std::to_string(start_ms);
    auto now = host().incr(key, 1, milliseconds(start_ms + len_ms - now_ms + 1000),
                           [this, c](const StoreResult& r) { after_rate_limit(c, r); });
    if (now) after_rate_limit(c, *now);
  }

  void after_rate_limit(const CallPtr& c, const StoreResult& r) {
    // A store error fails open: Stripe's deliveries matter more than the limit.
    if (r.status == KG_OK && r.value > cfg_.rate_limit) {
      count("rate_limited");
      return finish_error(c, 429, "rate_limited", "too many webhook requests from this address",
                          true);
    }
    verify_and_parse(c);
  }

  void verify_and_parse(const CallPtr& c) {
    auto now =
        std::chrono::duration_cast<seconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    auto v = c->signature_repeated
                 ? kghost::webhooks::SignatureResult::malformed
                 : kghost::webhooks::verify(c->signature, c->body, signing_, now, cfg_.tolerance);
    if (v != kghost::webhooks::SignatureResult::ok) {
      invalid_signatures_++;
      count("invalid_signature");
      return finish_error(c, 400, "invalid_signature",
                          std::string("Stripe-Signature check failed: ") +
                              std::string(kghost::webhooks::to_string(v)));
    }
    auto ev = parse_event(c->body);
    if (!ev) {
      count("invalid_payload");
      return finish_error(c, 400, "invalid_payload",
                          "the body is not a JSON event with a string id and type");
    }
    c->event = std::move(*ev);
    auto now_r = host().get("whk:evt:" + c->event.id,
                            [this, c](const StoreResult& r) { after_mark_lookup(c, r); });
    if (now_r) after_mark_lookup(c, *now_r);
  }

  void after_mark_lookup(const CallPtr& c, const StoreResult& r) {
    if (r.status == KG_OK) return answer_duplicate(c);
    // Not found, or a store error: append. A second durable copy is harmless (the consumer
    // de-duplicates); answering "duplicate" for an event we may not hold would not be.
    if (queue_.depth() >= cfg_.max_queue_depth) {
      count("overloaded");
      return finish_error(c, 503, "overloaded",
                          "the webhook processing backlog is full; retry later", true);
    }
    // The queue copies the entry: one buffer per thread serves every append.
    thread_local std::string entry;
    kghost::webhooks::spool_entry(c->event, c->body, entry);
    kg_status st = queue_.append(entry, [this, c](kg_status s, uint64_t) { after_append(c, s); });
    if (st == KG_PENDING) return;
    if (st == KG_ERR_FULL) {
      count("overloaded");
      return finish_error(c, 503, "overloaded", "the webhook spool is full; retry later", true);
    }
    count("unavailable");
    finish_error(c, 503, "unavailable", "the webhook spool cannot accept events; retry later",
                 true);
  }

  // Committer thread: keep it short (the store answers now, or later on its own thread).
  void after_append(const CallPtr& c, kg_status s) {
    if (s != KG_OK) {
      count("unavailable");
      return finish_error(c, 503, "unavailable",
                          "the event could not be written durably; retry later", true);
    }
    auto now = host().check_and_set("whk:evt:" + c->event.id, cfg_.idempotency_ttl,
                                    [this, c](const StoreResult& r) { after_mark(c, r); });
    if (now) after_mark(c, *now);
  }

  void after_mark(const CallPtr& c, const StoreResult& r) {
    // Durable already: the answer is 200 whatever the store says. created == false means
    // another request (or replica) kept the same event first.
    if (r.status == KG_OK && !r.created) return answer_duplicate(c);
    received_++;
    count("ok");
    c->responder.complete(Response{200, R"({"received":true})", {}, {}});
  }

  void answer_duplicate(const CallPtr& c) {
    duplicates_++;
    count("duplicate");
    c->responder.complete(Response{200, R"({"received":true,"duplicate":true})", {}, {}});
  }

  // ---- admin ----------------------------------------------------------------------------------

  void on_list_dead(Request& req) {
    size_t limit = 100;
    if (auto l = req.query_param("limit")) {
      size_t v = 0;
      auto [p, ec] = std::from_chars(l->data(), l->data() + l->size(), v);
      if (ec != std::errc() || p != l->data() + l->size() || v == 0 || v > 10000)
        return req.error(400, "bad_request", "limit must be an integer between 1 and 10000");
      limit = v;
    }
    // Up to 10,000 dead letters parsed: too long for the I/O thread that received the request.
    // The answer is deferred and built on the admin task's thread.
    std::lock_guard lock(admin_mutex_);
    if (!admin_running_) return req.respond(200, dead_letters(limit));  // not started or stopped
    admin_jobs_.push_back([this, limit, r = std::make_shared<Responder>(req.defer())] {
      r->complete({200, dead_letters(limit)});
    });
    admin_cv_.notify_one();
  }

  std::string dead_letters(size_t limit) {
    json list = json::array();
    queue_.list_dead([&](const QueueEntry& d) {
      json item = {{"id", d.id}, {"attempts", d.attempt}, {"last_error", d.last_error}};
      if (auto spooled = kghost::webhooks::read_spooled(d.data)) {
        item["event_id"] = spooled->event.id;
        item["type"] = spooled->event.type;
      }
      list.push_back(std::move(item));
      return list.size() < limit;
    });
    return json{{"dead_letters", list}, {"count", list.size()}}.dump();
  }

  // The admin task: runs the jobs admin routes defer, one at a time, until the host stops it.
  // Jobs queued before the stop still run; later listings are answered inline.
  void serve_admin_jobs(kg_stop* stop) {
    std::unique_lock lock(admin_mutex_);
    admin_running_ = true;
    while (true) {
      admin_cv_.wait_for(lock, milliseconds(100), [&] { return !admin_jobs_.empty(); });
      if (admin_jobs_.empty()) {
        if (stop_requested(stop)) break;
        continue;
      }
      auto job = std::move(admin_jobs_.front());
      admin_jobs_.pop_front();
      lock.unlock();
      job();
      lock.lock();
    }
    admin_running_ = false;
  }

  void on_replay(Request& req) {
    auto p = req.param("id").value_or("");
    uint64_t id = 0;
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), id);
    if (ec != std::errc() || end != p.data() + p.size())
      return req.error(404, "not_found", "no dead letter with this id");
    if (queue_.replay(id) != KG_OK)
      return req.error(404, "not_found", "no dead letter with this id");
    host().info("webhook dead letter " + std::to_string(id) + " replayed by an operator");
    req.respond(200, json{{"replayed", true}, {"id", id}}.dump());
  }

  // ---- health ---------------------------------------------------------------------------------

  // Redis away: idempotency marks fall back to this replica's memory.
  bool store_degraded() { return host().store_status() != KG_HEALTHY; }

  kg_health_status status() {
    if (store_degraded()) return KG_DEGRADED;
    if (queue_.depth() * 10 >= cfg_.max_queue_depth * 9) return KG_DEGRADED;
    return KG_HEALTHY;
  }

  json health_json() {
    static constexpr const char* kNames[] = {"healthy", "degraded", "unhealthy"};
    json j = {
        {"status", kNames[status()]},           {"received", received_.load()},
        {"duplicates", duplicates_.load()},     {"invalid_signatures", invalid_signatures_.load()},
        {"failed", processor_->failed()},       {"queue_depth", queue_.depth()},
        {"processed", processor_->processed()}, {"skipped_duplicates", processor_->skipped()}};
    j["store"] = {{"status", store_degraded() ? "degraded" : "healthy"}};
    return j;
  }

  Config cfg_;
  const kghost::webhooks::SigningSecrets signing_;  // cfg_.secrets, keyed once
  std::mutex admin_mutex_;                          // guards admin_jobs_, admin_running_
  std::condition_variable admin_cv_;
  std::deque<std::function<void()>> admin_jobs_;
  bool admin_running_ = false;
  std::unique_ptr<kghost::webhooks::Journal> journal_;
  kghost::sdk::Queue queue_;
  std::map<std::string, kghost::sdk::Metric::Series, std::less<>> results_;  // fixed after create
  std::unique_ptr<kghost::webhooks::Processor> processor_;
  std::atomic<uint64_t> received_{0}, duplicates_{0}, invalid_signatures_{0};
};

}  // namespace

KGHOST_PLUGIN(Webhooks, "webhooks", "1.0.0",
              "Stripe webhooks: signature, idempotency, durable acknowledgement, dead letters", 0)
