// streaming: tenant event channels on NATS JetStream (CONTRACT §7).
//
//   POST /api/v1/streams/{channel}/events  (write)  JSON body -> 202 {"sequence":N} once acked,
//                                                   202 {"queued":true} while NATS is away, once
//                                                   the event is in the durable queue "fallback"
//   GET  /api/v1/streams/{channel}/events  (read)   SSE from Last-Event-ID + 1 (or new events)
//   POST /api/v1/streams/{channel}/token   (read)   short-lived token for browsers' EventSource
//   filter streaming.token (order 150): GET …/events?access_token=T authenticates as the
//     token's tenant with scope read, for that channel only
//   bridge: bus topics (default stripe.*, billing.*) -> JetStream subject kgent.<topic>,
//     Nats-Msg-Id = the bus event id
//
// The subject of a tenant channel is always kgent.tenant.<tenant of the principal>.<channel>.
#include <openssl/rand.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <kghost/plugin.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "publisher.hpp"
#include "settings.hpp"
#include "sse.hpp"
#include "tokens.hpp"

namespace kghost::streaming {
namespace {

using nlohmann::json;
using sdk::Flow;
using sdk::Request;

constexpr std::string_view kEventsRoute = "/api/v1/streams/{channel}/events";

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string random_hex(std::size_t bytes) {
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1)
    throw std::runtime_error("RAND_bytes failed");
  return kghost::sdk::to_hex(raw);
}

// Printable ASCII without spaces, 1..200 bytes: safe inside a Nats-Msg-Id header.
bool valid_idempotency_key(std::string_view k) {
  if (k.empty() || k.size() > 200) return false;
  for (unsigned char c : k)
    if (c <= 0x20 || c >= 0x7f) return false;
  return true;
}

class Streaming final : public sdk::Plugin {
 public:
  explicit Streaming(sdk::Host h) : Plugin(h) {
    const char* env = std::getenv("NATS_SERVERS");
    try {
      settings_ = parse_settings(host().config_json(), env ? env : "");
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("[plugins.config] of streaming: ") + e.what());
    }
    signer_ = std::make_unique<TokenSigner>(settings_.token_secret);
    instance_ = random_hex(8);

    PublisherMetrics pm{host()
                            .metric(KG_METRIC_GAUGE, "kgents_nats_circuit_state",
                                    "NATS circuit breaker state: 0 closed, 1 open, 2 half-open")
                            .series(),
                        host()
                            .metric(KG_METRIC_COUNTER, "kgents_nats_published_total",
                                    "Events acknowledged by JetStream")
                            .series(),
                        host()
                            .metric(KG_METRIC_GAUGE, "kgents_nats_fallback_queue_depth",
                                    "Events waiting in the fallback queue for NATS")
                            .series(),
                        host()
                            .metric(KG_METRIC_COUNTER, "kgents_nats_fallback_dropped_total",
                                    "Events refused because the fallback queue was full")
                            .series()};
    SseMetrics sm{
        host()
            .metric(KG_METRIC_GAUGE, "kgents_streaming_sse_clients", "Open SSE connections")
            .series(),
        host()
            .metric(KG_METRIC_COUNTER, "kgents_streaming_sse_slow_disconnects_total",
                    "SSE clients disconnected because they did not keep up")
            .series(),
        host()
            .metric(KG_METRIC_COUNTER, "kgents_streaming_sse_events_total",
                    "Events written to SSE clients")
            .series()};
    auto log = [h = host()](kg_log_level level, const std::string& msg) { h.log(level, msg); };
    publisher_ = std::make_unique<Publisher>(settings_, pm, log);
    hub_ = std::make_unique<SseHub>(settings_, *publisher_, sm, log);

    route({.method = "POST",
           .path = kEventsRoute,
           .scopes = "write",
           .summary = "Publish a JSON event on one of the caller's channels",
           .description = "The body is any JSON document. An Idempotency-Key header makes a "
                          "retry publish at most once. 202 with the stream sequence once NATS "
                          "acknowledged it, or queued:true when it waits in the local buffer.",
           .request_schema = R"({"description":"any JSON document"})",
           .response_schema = R"({"type":"object","properties":{"sequence":{"type":"integer"},)"
                              R"("queued":{"type":"boolean"}}})"},
          [this](Request& req) { post_event(req); });
    route({.method = "GET",
           .path = kEventsRoute,
           .scopes = "read",
           .summary = "Server-Sent Events of one of the caller's channels (Last-Event-ID resumes)",
           .description = "A text/event-stream response; each event's id is its stream "
                          "sequence. EventSource clients pass ?access_token= from the token "
                          "route instead of an API key."},
          [this](Request& req) { get_events(req); });
    route({.method = "POST",
           .path = "/api/v1/streams/{channel}/token",
           .scopes = "read",
           .summary = "A short-lived token for EventSource (?access_token=) on this channel",
           .response_schema = R"({"type":"object","required":["token","expires_in"],)"
                              R"("properties":{"token":{"type":"string"},)"
                              R"("expires_in":{"type":"integer","description":"seconds"}}})"},
          [this](Request& req) { post_token(req); });
    filter("streaming.token", 150, [this](Request& req) { return token_filter(req); });

    if (publisher_->enabled()) {
      // The fallback queue's records wait as long as NATS is away: never dead letters. A
      // redelivery only asks whether JetStream acked the event meanwhile (see publisher.hpp).
      kg_queue_options qo{};
      qo.max_attempts = UINT32_MAX;
      qo.retry_backoff_ms = 200;
      queue_ = host().queue("fallback", qo);
      if (!queue_) throw std::runtime_error("cannot open the durable queue \"fallback\"");
      publisher_->attach_queue(queue_);
      for (auto& pattern : settings_.bridge_topics)
        subscribe(pattern, [this](std::string_view topic, std::string_view data,
                                  std::string_view id) { bridge(topic, data, id); });
      run("nats-publisher",
          [this](kg_stop* stop) { publisher_->run([&] { return stop_requested(stop); }); });
      run("sse-hub", [this](kg_stop* stop) { hub_->run([&] { return stop_requested(stop); }); });
    }
    health([this] { return report(); });
  }

  ~Streaming() override {
    hub_->close_all();
    publisher_->close();
  }

  void start() override {
    if (!publisher_->enabled()) {
      host().info(
          "streaming: no NATS server configured (servers / NATS_SERVERS); streaming is disabled");
      return;
    }
    consume(queue_, [this](const sdk::QueueEntry& e) { return publisher_->consume(e); });
    publisher_->connect();
  }

  void stop() override {
    hub_->close_all();
    publisher_->close();
  }

 private:
  // --- POST …/events ---------------------------------------------------------------------------
  // True when the answer was deferred (KG_PENDING).
  bool post_event(Request& req) {
    std::string channel(req.param("channel").value_or(""));
    if (!valid_channel(channel))
      return fail(req, 400, "bad_request", "channel must match [A-Za-z0-9_-]{1,64}");
    auto p = req.principal();
    if (!p) return fail(req, 401, "missing_api_key", "this route needs an API key");
    std::string_view body = req.body();
    if (!json::accept(body))
      return fail(req, 400, "bad_request", "the body must be a JSON document");
    if (!publisher_->enabled())
      return fail(req, 503, "unavailable", "streaming is disabled: no NATS server is configured");
    std::string msg_id;
    if (auto key = req.header("idempotency-key")) {
      if (!valid_idempotency_key(*key))
        return fail(req, 400, "bad_request", "Idempotency-Key must be 1..200 printable characters");
      msg_id = "idem:" + subject_token(p->tenant_id) + ":" + channel + ":" + std::string(*key);
    } else {
      msg_id = "kg:" + instance_ + ":" + std::to_string(next_id_.fetch_add(1));
    }
    auto responder = std::make_shared<sdk::Responder>(req.defer());
    Admission a = publisher_->publish(tenant_subject(p->tenant_id, channel), std::string(body),
                                      std::move(msg_id), std::string(req.traceparent()),
                                      [responder](const Outcome& o) { answer(*responder, o); });
    switch (a) {
      case Admission::pending:
        break;
      case Admission::overloaded:
        req.add_header("Retry-After", "1");
        responder->error(503, "overloaded", "the fallback queue is full; retry later");
        break;
      case Admission::unavailable:
        req.add_header("Retry-After", "5");
        responder->error(503, "unavailable", "streaming is not available");
        break;
    }
    return true;
  }

  static bool fail(Request& req, uint16_t status, std::string_view code, std::string_view message) {
    req.error(status, code, message);
    return false;
  }

  static void answer(sdk::Responder& r, const Outcome& o) {
    switch (o.kind) {
      case Outcome::acked: {
        json j = {{"sequence", o.sequence}};
        if (o.duplicate) j["duplicate"] = true;
        return r.complete({202, j.dump(), {}, {}});
      }
      case Outcome::queued:
        return r.complete({202, R"({"queued":true})", {}, {}});
      case Outcome::rejected:
        return r.error(502, "upstream_rejected", o.reason);
      case Outcome::overloaded:
        return r.error(503, "overloaded", o.reason, {{"Retry-After", "1"}});
      case Outcome::unavailable:
        return r.error(503, "unavailable", o.reason, {{"Retry-After", "5"}});
    }
  }

  // --- GET …/events (SSE) ----------------------------------------------------------------------
  void get_events(Request& req) {
    std::string channel(req.param("channel").value_or(""));
    if (!valid_channel(channel))
      return req.error(400, "bad_request", "channel must match [A-Za-z0-9_-]{1,64}");
    auto p = req.principal();
    if (!p) return req.error(401, "missing_api_key", "this route needs an API key");
    std::optional<uint64_t> start;
    if (auto last = req.header("last-event-id"); last && !last->empty()) {
      uint64_t n = 0;
      auto [end, ec] = std::from_chars(last->data(), last->data() + last->size(), n);
      if (ec != std::errc() || end != last->data() + last->size() || n == UINT64_MAX)
        return req.error(400, "bad_request", "Last-Event-ID must be a stream sequence number");
      start = n + 1;
    }
    if (!publisher_->enabled())
      return req.error(503, "unavailable", "streaming is disabled: no NATS server is configured");
    if (!publisher_->ready()) {
      req.add_header("Retry-After", "5");
      return req.error(503, "unavailable", "NATS is not reachable right now; retry later");
    }
    if (!hub_->open(req, tenant_subject(p->tenant_id, channel), start)) {
      req.add_header("Retry-After", "5");
      return req.error(503, "overloaded", "too many SSE clients");
    }
  }

  // --- tokens ----------------------------------------------------------------------------------
  void post_token(Request& req) {
    std::string channel(req.param("channel").value_or(""));
    if (!valid_channel(channel))
      return req.error(400, "bad_request", "channel must match [A-Za-z0-9_-]{1,64}");
    auto p = req.principal();
    if (!p) return req.error(401, "missing_api_key", "this route needs an API key");
    TokenClaims c{std::string(p->tenant_id), std::string(p->user_id), std::string(p->tier), channel,
                  unix_now() + settings_.token_ttl.count()};
    json j = {{"token", signer_->mint(c)}, {"expires_in", settings_.token_ttl.count()}};
    req.respond({200, j.dump(), {}, {{"Cache-Control", "no-store"}}});
  }

  // Authenticates GET …/events?access_token=T when no API key did. Never logs the token.
  Flow token_filter(Request& req) {
    if (req.route() != kEventsRoute || req.method() != "GET" || req.principal()) return Flow::next;
    auto token = req.query_param("access_token");
    if (!token) return Flow::next;  // the host answers 401 missing_api_key
    auto claims = signer_->verify(*token, unix_now());
    if (!claims || claims->channel != req.param("channel").value_or("")) {
      req.error(401, "invalid_api_key",
                "the access token is invalid, expired or for another channel");
      return Flow::done;
    }
    req.set_principal({claims->user_id, claims->tenant_id, claims->tier, "read"});
    return Flow::next;
  }

  // --- bus bridge --------------------------------------------------------------------------------
  void bridge(std::string_view topic, std::string_view data, std::string_view id) {
    std::string msg_id = id.empty()
                             ? "kg:" + instance_ + ":" + std::to_string(next_id_.fetch_add(1))
                             : std::string(id);
    Admission a = publisher_->publish("kgent." + std::string(topic), std::string(data),
                                      std::move(msg_id), {}, nullptr);
    if (a == Admission::overloaded) {
      auto n = bridge_drops_.fetch_add(1) + 1;
      if ((n & (n - 1)) == 0)  // 1, 2, 4, 8…: no log flood
        host().warn("streaming: fallback queue full; dropped bus event on " + std::string(topic) +
                    " (" + std::to_string(n) + " bridge drops so far)");
    }
  }

  // --- health ----------------------------------------------------------------------------------
  std::pair<kg_health_status, std::string> report() {
    auto st = publisher_->status();
    json d = {{"circuit", Breaker::name(st.circuit)},
              {"fallback_queue_depth", st.queue_depth},
              {"fallback_stored", st.stored},
              {"recovering", st.recovering},
              {"in_flight", st.in_flight},
              {"published", st.published},
              {"dropped", st.dropped},
              {"sse_clients", hub_->clients()}};
    if (!st.enabled) {
      d["state"] = "disabled";
      d["mode"] = "fallback";
      return {KG_HEALTHY, d.dump()};
    }
    d["connected"] = st.connected;
    if (st.connected && st.stream_ready && st.circuit == Breaker::State::closed) {
      d["state"] = "healthy";
      d["mode"] = "jetstream";
      return {KG_HEALTHY, d.dump()};
    }
    d["state"] = st.circuit == Breaker::State::closed ? "degraded" : "circuit_open";
    d["mode"] = "fallback";
    return {KG_DEGRADED, d.dump()};
  }

  Settings settings_;
  std::unique_ptr<TokenSigner> signer_;
  std::unique_ptr<Publisher> publisher_;
  sdk::Queue queue_;
  std::unique_ptr<SseHub> hub_;
  std::string instance_;
  std::atomic<uint64_t> next_id_{1};
  std::atomic<uint64_t> bridge_drops_{0};
};

}  // namespace
}  // namespace kghost::streaming

KGHOST_PLUGIN(
    kghost::streaming::Streaming, "streaming", "1.0.0",
    "NATS JetStream bridge with circuit breaker and fallback queue; tenant channels over SSE", 0)
