// streaming end to end: a real kghost with the streaming plugin, a real nats-server -js, and
// a header authenticator fixture (X-Test-Tenant) instead of the auth plugin.
#include <gtest/gtest.h>
#include <nats/nats.h>

#include <atomic>
#include <csignal>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <thread>

#include "host.hpp"

using namespace kghost::test;
using nlohmann::json;

namespace {

std::string config(const std::string& servers, const std::string& extra = "",
                   const std::string& server_extra = "") {
  return "plugin_dir = \"${KG_PLUGIN_DIR}\"\ndata_dir = \"${KG_DATA_DIR}\"\n"
         "[server]\nthreads = 2\n" +
         server_extra +
         "\n[[plugins]]\nname = \"test_auth\"\npath = \"${KG_TEST_PLUGIN_DIR}/kg_test_auth.so\"\n"
         "[[plugins]]\nname = \"streaming\"\nrequired = false\n[plugins.config]\nservers = \"" +
         servers + "\"\nheartbeat_ms = 200\n" + extra;
}

std::vector<std::string> as(const std::string& tenant, std::vector<std::string> more = {}) {
  more.push_back("X-Test-Tenant: " + tenant);
  return more;
}

json body(const HttpResult& r) { return json::parse(r.body, nullptr, false); }

json streaming_health(const KgHost& h) {
  auto j = body(h.get("/health"));
  return j.is_object() ? j["plugins"]["streaming"] : json();
}

// The value of a metric (name with its labels, if any) in the Prometheus text; -1 when absent.
double metric(const KgHost& h, const std::string& name) {
  auto text = h.get("/test/metrics").body;
  std::string quoted;  // the name may carry labels: escape the regex characters
  for (char ch : name) {
    if (std::string_view("{}\\.^$|()[]*+?").find(ch) != std::string_view::npos) quoted += '\\';
    quoted += ch;
  }
  std::regex re("(^|\n)" + quoted + " ([0-9.eE+-]+)");
  std::smatch m;
  if (!std::regex_search(text, m, re)) return -1;
  return std::stod(m[2]);
}

// What JetStream holds, read straight from the stream (not through the host).
class StreamReader {
 public:
  explicit StreamReader(const std::string& url) {
    if (natsConnection_ConnectTo(&nc_, url.c_str()) != NATS_OK ||
        natsConnection_JetStream(&js_, nc_, nullptr) != NATS_OK)
      throw std::runtime_error("cannot connect to " + url);
  }
  ~StreamReader() {
    if (js_) jsCtx_Destroy(js_);
    if (nc_) natsConnection_Destroy(nc_);
  }
  StreamReader(const StreamReader&) = delete;
  StreamReader& operator=(const StreamReader&) = delete;
  uint64_t messages() {
    jsStreamInfo* si = nullptr;
    if (js_GetStreamInfo(&si, js_, "KGENT_EVENTS", nullptr, nullptr) != NATS_OK) return 0;
    uint64_t n = si->State.Msgs;
    jsStreamInfo_Destroy(si);
    return n;
  }
  struct Message {
    int n;  // the event's {"n":…}
    std::string msg_id;
  };
  // Every message on `subject`, in stream order (stops after `expect` or 5 s of silence).
  std::vector<Message> read(const std::string& subject, std::size_t expect) {
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = "KGENT_EVENTS";
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverAll;
    natsSubscription* sub = nullptr;
    std::vector<Message> out;
    if (js_SubscribeSync(&sub, js_, subject.c_str(), nullptr, &so, nullptr) != NATS_OK) return out;
    natsMsg* m = nullptr;
    while (out.size() < expect && natsSubscription_NextMsg(&m, sub, 5000) == NATS_OK) {
      auto j = json::parse(std::string(natsMsg_GetData(m), natsMsg_GetDataLength(m)));
      const char* id = nullptr;
      natsMsgHeader_Get(m, "Nats-Msg-Id", &id);
      out.push_back({j.value("n", -1), id ? id : ""});
      natsMsg_Destroy(m);
    }
    natsSubscription_Destroy(sub);
    return out;
  }

 private:
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
};

// An SSE client over a raw socket; de-chunks the body and parses events.
class Sse {
 public:
  Sse(uint16_t port, const std::string& target, const std::vector<std::string>& headers)
      : c_(port) {
    std::string req = "GET " + target + " HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n";
    for (auto& h : headers) req += h + "\r\n";
    c_.send(req + "\r\n");
  }
  // Reads what is there; returns the de-chunked body so far.
  const std::string& pump(std::chrono::milliseconds t = 20ms) {
    raw_ += c_.read_some(t);
    if (head_end_ == std::string::npos) {
      head_end_ = raw_.find("\r\n\r\n");
      if (head_end_ == std::string::npos) return body_;
      pos_ = head_end_ + 4;
    }
    while (true) {
      auto eol = raw_.find("\r\n", pos_);
      if (eol == std::string::npos) break;
      std::size_t size = std::stoul(raw_.substr(pos_, eol - pos_), nullptr, 16);
      if (raw_.size() < eol + 2 + size + 2) break;
      body_ += raw_.substr(eol + 2, size);
      pos_ = eol + 2 + size + 2;
      if (size == 0) break;
    }
    return body_;
  }
  std::string head() const {
    return head_end_ == std::string::npos ? raw_ : raw_.substr(0, head_end_);
  }
  bool wait_for(const std::string& needle, std::chrono::milliseconds t = 10s) {
    return wait_until([&] { return pump().find(needle) != std::string::npos; }, t, 1ms);
  }
  struct Event {
    uint64_t id;
    std::string data;
  };
  std::vector<Event> events() {
    std::vector<Event> out;
    std::regex re("id: ([0-9]+)\nevent: message\ndata: ([^\n]*)\n\n");
    for (std::sregex_iterator it(body_.begin(), body_.end(), re), end; it != end; ++it)
      out.push_back({std::stoull((*it)[1]), (*it)[2]});
    return out;
  }
  RawClient& client() { return c_; }

 private:
  RawClient c_;
  std::string raw_, body_;
  std::size_t head_end_ = std::string::npos, pos_ = 0;
};

class Streaming : public ::testing::Test {
 protected:
  void SetUp() override {
    host_ = std::make_unique<KgHost>(config(nats_.url()));
    ASSERT_TRUE(host_->wait_ready());
    ASSERT_TRUE(
        wait_until([&] { return streaming_health(*host_).value("mode", "") == "jetstream"; }, 10s))
        << streaming_health(*host_).dump() << host_->log();
  }
  NatsServer nats_;
  std::unique_ptr<KgHost> host_;
};

TEST_F(Streaming, PublishReachesSseWithSequenceAsId) {
  Sse sse(host_->port(), "/api/v1/streams/orders/events", as("t1"));
  ASSERT_TRUE(sse.wait_for(": subscribed")) << sse.head();
  EXPECT_NE(sse.head().find("text/event-stream"), std::string::npos);
  auto r = host_->post("/api/v1/streams/orders/events", R"({"n":1})", as("t1"));
  ASSERT_EQ(r.status, 202) << r.body;
  uint64_t seq = body(r).value("sequence", 0ull);
  ASSERT_GT(seq, 0u);
  ASSERT_TRUE(wait_until([&] {
    sse.pump();
    return !sse.events().empty();
  }));
  auto ev = sse.events();
  EXPECT_EQ(ev[0].id, seq);
  EXPECT_EQ(ev[0].data, R"({"n":1})");
  // A comment heartbeat follows while idle (heartbeat_ms = 200 here, 15 s by default).
  EXPECT_TRUE(sse.wait_for(": heartbeat\n\n", 5s));
}

TEST_F(Streaming, AnotherTenantOnTheSameChannelSeesNothing) {
  Sse mine(host_->port(), "/api/v1/streams/shared/events", as("t1"));
  Sse other(host_->port(), "/api/v1/streams/shared/events", as("t2"));
  ASSERT_TRUE(mine.wait_for(": subscribed"));
  ASSERT_TRUE(other.wait_for(": subscribed"));
  ASSERT_EQ(host_->post("/api/v1/streams/shared/events", R"({"secret":true})", as("t1")).status,
            202);
  auto done = host_->post("/api/v1/streams/shared/events", R"({"for":"t2"})", as("t2"));
  ASSERT_EQ(done.status, 202);
  // t2's own event arrives, so anything of t1's would have arrived before it.
  ASSERT_TRUE(wait_until([&] {
    other.pump();
    return !other.events().empty();
  }));
  ASSERT_TRUE(wait_until([&] {
    mine.pump();
    return !mine.events().empty();
  }));
  auto ev = other.events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].data, R"({"for":"t2"})");
  ASSERT_EQ(mine.events().size(), 1u);
  EXPECT_EQ(mine.events()[0].data, R"({"secret":true})");
}

// Live clients of one channel share one consumer: each gets every event, in order, with the
// stream sequence as id; one leaving does not disturb the others, and a client joining later
// (the consumer already running) gets what is published after its ": subscribed".
TEST_F(Streaming, LiveClientsOfAChannelEachGetEveryEvent) {
  auto a = std::make_unique<Sse>(host_->port(), "/api/v1/streams/live/events", as("t1"));
  Sse b(host_->port(), "/api/v1/streams/live/events", as("t1"));
  ASSERT_TRUE(a->wait_for(": subscribed"));
  ASSERT_TRUE(b.wait_for(": subscribed"));
  std::vector<uint64_t> seqs;
  auto post = [&](int n) {
    auto r =
        host_->post("/api/v1/streams/live/events", "{\"n\":" + std::to_string(n) + "}", as("t1"));
    ASSERT_EQ(r.status, 202) << r.body;
    seqs.push_back(body(r)["sequence"]);
  };
  for (int n = 0; n < 3; ++n) post(n);
  auto got_all = [](Sse& s, std::size_t n) {
    return wait_until([&] {
      s.pump();
      return s.events().size() >= n;
    });
  };
  ASSERT_TRUE(got_all(*a, 3));
  ASSERT_TRUE(got_all(b, 3));
  a.reset();  // leaves
  ASSERT_TRUE(wait_until([&] { return streaming_health(*host_).value("sse_clients", -1) == 1; }));
  Sse c(host_->port(), "/api/v1/streams/live/events", as("t1"));
  ASSERT_TRUE(c.wait_for(": subscribed"));
  for (int n = 3; n < 5; ++n) post(n);
  ASSERT_TRUE(got_all(b, 5));
  ASSERT_TRUE(got_all(c, 2));
  auto eb = b.events();
  ASSERT_EQ(eb.size(), 5u);
  for (int n = 0; n < 5; ++n) {
    EXPECT_EQ(eb[n].id, seqs[n]);
    EXPECT_EQ(eb[n].data, "{\"n\":" + std::to_string(n) + "}");
  }
  auto ec = c.events();
  ASSERT_EQ(ec.size(), 2u);
  EXPECT_EQ(ec[0].id, seqs[3]);
  EXPECT_EQ(ec[1].id, seqs[4]);
}

TEST_F(Streaming, LastEventIdReplaysOnlyLaterEvents) {
  std::vector<uint64_t> seqs;
  for (int i = 0; i < 5; ++i) {
    auto r =
        host_->post("/api/v1/streams/replay/events", "{\"i\":" + std::to_string(i) + "}", as("t1"));
    ASSERT_EQ(r.status, 202);
    seqs.push_back(body(r)["sequence"]);
  }
  // Events of another channel and tenant in between are not replayed either.
  ASSERT_EQ(host_->post("/api/v1/streams/replay/events", R"({"x":1})", as("t2")).status, 202);
  Sse sse(host_->port(), "/api/v1/streams/replay/events",
          as("t1", {"Last-Event-ID: " + std::to_string(seqs[1])}));
  ASSERT_TRUE(wait_until([&] {
    sse.pump();
    return sse.events().size() >= 3;
  }));
  auto ev = sse.events();
  ASSERT_EQ(ev.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(ev[i].id, seqs[i + 2]);
    EXPECT_EQ(ev[i].data, "{\"i\":" + std::to_string(i + 2) + "}");
  }
  auto bad = host_->get("/api/v1/streams/replay/events", as("t1", {"Last-Event-ID: abc"}));
  EXPECT_EQ(bad.status, 400);
}

TEST_F(Streaming, BadChannelsAndBodiesAre400) {
  for (std::string ch :
       std::vector<std::string>{"a.b", "%2A", "%3E", "a%20b", std::string(65, 'c')}) {
    auto p = host_->post("/api/v1/streams/" + ch + "/events", "{}", as("t1"));
    EXPECT_EQ(p.status, 400) << ch << " " << p.body;
    EXPECT_EQ(body(p)["error"]["code"], "bad_request");
    EXPECT_EQ(host_->get("/api/v1/streams/" + ch + "/events", as("t1")).status, 400) << ch;
    EXPECT_EQ(host_->post("/api/v1/streams/" + ch + "/token", "", as("t1")).status, 400) << ch;
  }
  // An empty channel segment matches no route.
  EXPECT_NE(host_->post("/api/v1/streams//events", "{}", as("t1")).status, 202);
  EXPECT_EQ(
      host_->post("/api/v1/streams/" + std::string(64, 'c') + "/events", "{}", as("t1")).status,
      202);
  for (std::string b : {"", "not json", "{\"a\":", "{} trailing"}) {
    auto r = host_->post("/api/v1/streams/ok/events", b, as("t1"));
    EXPECT_EQ(r.status, 400) << b;
    EXPECT_EQ(body(r)["error"]["code"], "bad_request");
  }
  EXPECT_EQ(host_->post("/api/v1/streams/ok/events", "{}").status, 401);
  EXPECT_EQ(
      host_->post("/api/v1/streams/ok/events", "{}", as("t1", {"X-Test-Scopes: read"})).status,
      403);
}

TEST_F(Streaming, IdempotencyKeyIsTheMsgId) {
  auto a =
      host_->post("/api/v1/streams/idem/events", R"({"a":1})", as("t1", {"Idempotency-Key: k-1"}));
  auto b =
      host_->post("/api/v1/streams/idem/events", R"({"a":1})", as("t1", {"Idempotency-Key: k-1"}));
  ASSERT_EQ(a.status, 202);
  ASSERT_EQ(b.status, 202);
  EXPECT_EQ(body(a)["sequence"], body(b)["sequence"]);
  EXPECT_EQ(body(b)["duplicate"], true);
  // The same key from another tenant is another event.
  auto c =
      host_->post("/api/v1/streams/idem/events", R"({"a":1})", as("t2", {"Idempotency-Key: k-1"}));
  EXPECT_NE(body(c)["sequence"], body(a)["sequence"]);
}

TEST_F(Streaming, BusTopicsAreBridgedWithTheEventIdAsMsgId) {
  auto r = host_->post("/test/bus/stripe.invoice.paid", R"({"id":"evt_1"})", {"X-Event-Id: evt_1"});
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(host_->post("/test/bus/stripe.invoice.paid", R"({"id":"evt_1"})", {"X-Event-Id: evt_1"})
                .status,
            200);
  ASSERT_EQ(host_->post("/test/bus/other.topic", R"({"id":"x"})", {"X-Event-Id: other"}).status,
            200);
  ASSERT_TRUE(wait_until([&] { return metric(*host_, "kgents_nats_published_total") >= 2; }));
  // Both went out with Nats-Msg-Id evt_1: JetStream kept one.
  natsConnection* nc = nullptr;
  ASSERT_EQ(natsConnection_ConnectTo(&nc, nats_.url().c_str()), NATS_OK);
  jsCtx* js = nullptr;
  ASSERT_EQ(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
  jsStreamInfo* si = nullptr;
  ASSERT_EQ(js_GetStreamInfo(&si, js, "KGENT_EVENTS", nullptr, nullptr), NATS_OK);
  EXPECT_EQ(si->State.Msgs, 1u);
  EXPECT_EQ(si->Config->Duplicates, int64_t{1800} * 1000000000);
  EXPECT_EQ(si->Config->MaxAge, 0);
  jsStreamInfo_Destroy(si);
  natsMsg* m = nullptr;
  ASSERT_EQ(js_GetLastMsg(&m, js, "KGENT_EVENTS", "kgent.stripe.invoice.paid", nullptr, nullptr),
            NATS_OK);
  const char* id = nullptr;
  ASSERT_EQ(natsMsgHeader_Get(m, "Nats-Msg-Id", &id), NATS_OK);
  EXPECT_STREQ(id, "evt_1");
  natsMsg_Destroy(m);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
}

TEST(StreamingTokens, TokenWorksForItsTenantAndChannelOnlyAndExpires) {
  NatsServer nats;
  KgHost host(config(nats.url(), "token_ttl_s = 2\n"));
  ASSERT_TRUE(host.wait_ready());
  ASSERT_TRUE(wait_until([&] { return streaming_health(host).value("mode", "") == "jetstream"; }));
  auto t = host.post("/api/v1/streams/live/token", "", as("t1"));
  ASSERT_EQ(t.status, 200) << t.body;
  EXPECT_EQ(body(t)["expires_in"], 2);
  std::string token = body(t)["token"];
  {
    Sse sse(host.port(), "/api/v1/streams/live/events?access_token=" + token, {});
    ASSERT_TRUE(sse.wait_for(": subscribed")) << sse.head();
    ASSERT_EQ(host.post("/api/v1/streams/live/events", R"({"via":"token"})", as("t1")).status, 202);
    ASSERT_TRUE(wait_until([&] {
      sse.pump();
      return !sse.events().empty();
    }));
    EXPECT_EQ(sse.events()[0].data, R"({"via":"token"})");
  }
  auto other_channel = host.get("/api/v1/streams/other/events?access_token=" + token);
  EXPECT_EQ(other_channel.status, 401);
  EXPECT_EQ(body(other_channel)["error"]["code"], "invalid_api_key");
  EXPECT_EQ(host.get("/api/v1/streams/live/events?access_token=forged" + token).status, 401);
  EXPECT_EQ(body(host.get("/api/v1/streams/live/events"))["error"]["code"], "missing_api_key");
  // The token never lands in the log.
  EXPECT_EQ(host.log().find(token), std::string::npos);
  // Expired after its TTL.
  std::vector<int> seen;
  ASSERT_TRUE(wait_until(
      [&] {
        // While valid this starts a stream that never ends: a short client timeout cuts it.
        seen.push_back(http(host.port(), "GET", "/api/v1/streams/live/events?access_token=" + token,
                            {}, "", 300ms)
                           .status);
        return seen.back() == 401;
      },
      15s, 100ms))
      << ::testing::PrintToString(seen) << host.log();
}

TEST(StreamingFaults, NatsDownAtStartThenUp) {
  NatsServer nats;
  nats.kill();
  KgHost host(config(nats.url(), "reconnect_wait_ms = 100\n"));
  ASSERT_TRUE(host.wait_ready()) << host.log();
  auto h = streaming_health(host);
  EXPECT_EQ(h["status"], "degraded") << h.dump();
  EXPECT_EQ(h["mode"], "fallback");
  EXPECT_EQ(body(host.get("/health"))["status"], "degraded");
  auto q = host.post("/api/v1/streams/early/events", R"({"early":true})", as("t1"));
  ASSERT_EQ(q.status, 202);
  EXPECT_EQ(body(q)["queued"], true);
  EXPECT_EQ(host.get("/api/v1/streams/early/events", as("t1")).status, 503);
  nats.start();
  ASSERT_TRUE(
      wait_until([&] { return streaming_health(host).value("mode", "") == "jetstream"; }, 15s))
      << streaming_health(host).dump();
  ASSERT_TRUE(wait_until([&] { return metric(host, "kgents_nats_published_total") == 1; }));
  Sse sse(host.port(), "/api/v1/streams/early/events", as("t1", {"Last-Event-ID: 0"}));
  ASSERT_TRUE(wait_until([&] {
    sse.pump();
    return !sse.events().empty();
  }));
  EXPECT_EQ(sse.events()[0].data, R"({"early":true})");
}

// The publisher's per-channel order rests on this cnats property: with a reconnect buffer of 0
// bytes, no publish is accepted while the connection is reconnecting (one accepted there would
// be sent on the new connection ahead of the events lost with the old one).
TEST(StreamingFaults, CnatsBuffersNothingWhileReconnecting) {
  NatsServer nats;
  natsOptions* opts = nullptr;
  natsConnection* nc = nullptr;
  ASSERT_EQ(natsOptions_Create(&opts), NATS_OK);
  ASSERT_EQ(natsOptions_SetURL(opts, nats.url().c_str()), NATS_OK);
  ASSERT_EQ(natsOptions_SetMaxReconnect(opts, -1), NATS_OK);
  ASSERT_EQ(natsOptions_SetReconnectWait(opts, 50), NATS_OK);
  ASSERT_EQ(natsOptions_SetReconnectBufSize(opts, 0), NATS_OK);
  ASSERT_EQ(natsConnection_Connect(&nc, opts), NATS_OK);
  nats.kill();
  EXPECT_TRUE(wait_until([&] { return natsConnection_Status(nc) == NATS_CONN_STATUS_RECONNECTING; },
                         10s, 1ms));
  EXPECT_EQ(natsConnection_PublishString(nc, "kgent.probe", "first"), NATS_INSUFFICIENT_BUFFER);
  EXPECT_EQ(natsConnection_PublishString(nc, "kgent.probe", "second"), NATS_INSUFFICIENT_BUFFER);
  natsConnection_Destroy(nc);
  natsOptions_Destroy(opts);
}

TEST(StreamingFaults, FallbackOverflowIs503AndCounted) {
  NatsServer nats;
  nats.kill();
  KgHost host(config(nats.url(), "fallback_capacity = 3\n"));
  ASSERT_TRUE(host.wait_ready());
  for (int i = 0; i < 3; ++i)
    ASSERT_EQ(host.post("/api/v1/streams/c/events", "{}", as("t1")).status, 202);
  auto r = host.post("/api/v1/streams/c/events", "{}", as("t1"));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(body(r)["error"]["code"], "overloaded");
  EXPECT_FALSE(r.header("retry-after").empty());
  EXPECT_EQ(metric(host, "kgents_nats_fallback_dropped_total"), 1);
  EXPECT_EQ(metric(host, "kgents_nats_fallback_queue_depth"), 3);
}

TEST(StreamingFaults, DisabledWithoutServers) {
  KgHost host(config(""));
  ASSERT_TRUE(host.wait_ready()) << host.log();
  auto h = streaming_health(host);
  EXPECT_EQ(h["status"], "healthy");
  EXPECT_EQ(h["state"], "disabled");
  EXPECT_EQ(body(host.get("/health"))["status"], "healthy");
  EXPECT_EQ(host.post("/api/v1/streams/c/events", "{}", as("t1")).status, 503);
  EXPECT_EQ(host.log().find("\"level\":\"error\""), std::string::npos) << host.log();
}

// Chaos: publishes from 8 concurrent clients (one channel each) while NATS is killed (-9) and
// restarted on the same store dir. Every event lands in JetStream exactly once and, per channel,
// in order; health and metrics show the fallback and its drain.
TEST(StreamingChaos, KillAndRestartNatsDuringPublishes) {
  constexpr int kClients = 8, kPerClient = 625;  // 5,000 events
  constexpr int kEvents = kClients * kPerClient;
  NatsServer nats;
  KgHost host(config(nats.url(),
                     "fallback_capacity = 6000\nbreaker_failures = 5\nbreaker_open_ms = 500\n"
                     "ack_timeout_ms = 1000\nreconnect_wait_ms = 100\n"));
  ASSERT_TRUE(host.wait_ready());
  ASSERT_TRUE(wait_until([&] { return streaming_health(host).value("mode", "") == "jetstream"; }));

  std::atomic<int> sent{0}, queued{0}, failed{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c)
    clients.emplace_back([&, c] {
      for (int i = 0; i < kPerClient; ++i) {
        auto r = http(host.port(), "POST", "/api/v1/streams/chaos" + std::to_string(c) + "/events",
                      as("t1"), "{\"n\":" + std::to_string(i) + "}");
        if (r.status != 202)
          ++failed;
        else if (body(r).value("queued", false))
          ++queued;
        ++sent;
      }
    });
  ASSERT_TRUE(wait_until([&] { return sent >= 1000; }, 30s));
  nats.kill();
  // Disconnected: events wait in the fallback queue (the breaker counts the acks that went
  // missing with the connection; it opens only if at least breaker_failures were in flight).
  bool saw_fallback = false;
  EXPECT_TRUE(wait_until(
      [&] {
        auto h = streaming_health(host);
        saw_fallback = saw_fallback || (h["mode"] == "fallback" && h["status"] == "degraded");
        return saw_fallback && sent >= 2500;
      },
      30s))
      << "sent " << sent;
  EXPECT_GT(metric(host, "kgents_nats_fallback_queue_depth"), 0);
  nats.start();
  for (auto& t : clients) t.join();
  EXPECT_EQ(failed, 0);
  EXPECT_GT(queued, 0);
  ASSERT_TRUE(
      wait_until([&] { return metric(host, "kgents_nats_published_total") >= kEvents; }, 30s))
      << streaming_health(host).dump();
  EXPECT_EQ(metric(host, "kgents_nats_circuit_state"), 0);
  EXPECT_EQ(metric(host, "kgents_nats_fallback_queue_depth"), 0);
  EXPECT_EQ(metric(host, "kgents_nats_fallback_dropped_total"), 0);
  EXPECT_EQ(streaming_health(host)["mode"], "jetstream");

  // Read every channel back straight from JetStream.
  StreamReader stream(nats.url());
  EXPECT_EQ(stream.messages(), static_cast<uint64_t>(kEvents));  // nothing stored twice
  // Every event once per channel, in the order its client posted it.
  for (int c = 0; c < kClients; ++c) {
    std::string subject = "kgent.tenant.t1.chaos" + std::to_string(c);
    auto got = stream.read(subject, kPerClient);
    ASSERT_EQ(got.size(), static_cast<std::size_t>(kPerClient)) << subject;
    for (int i = 0; i < kPerClient; ++i) ASSERT_EQ(got[i].n, i) << subject << " at position " << i;
  }
}

// A frozen server (SIGSTOP: the connection stays up, no acks come) makes every ack time out:
// the breaker opens after breaker_failures, publishes are queued, and after SIGCONT the
// half-open probe succeeds, the breaker closes and the queue drains in order.
TEST(StreamingChaos, FrozenNatsOpensTheBreakerThenRecovers) {
  NatsServer nats;
  KgHost host(
      config(nats.url(), "breaker_failures = 5\nbreaker_open_ms = 300\nack_timeout_ms = 200\n"));
  ASSERT_TRUE(host.wait_ready());
  ASSERT_TRUE(wait_until([&] { return streaming_health(host).value("mode", "") == "jetstream"; }));
  ASSERT_EQ(host.post("/api/v1/streams/frozen/events", R"({"n":0})", as("t1")).status, 202);

  nats.signal(SIGSTOP);
  // The first publishes wait for acks that never come: 202 queued once the breaker opens.
  std::vector<int> statuses;
  for (int i = 1; i <= 20; ++i) {
    auto r =
        host.post("/api/v1/streams/frozen/events", "{\"n\":" + std::to_string(i) + "}", as("t1"));
    statuses.push_back(r.status);
    EXPECT_EQ(r.status, 202) << r.body;
  }
  EXPECT_EQ(metric(host, "kgents_nats_circuit_state"), 1);
  auto h = streaming_health(host);
  EXPECT_EQ(h["state"], "circuit_open") << h.dump();
  EXPECT_EQ(h["mode"], "fallback");
  EXPECT_EQ(h["status"], "degraded");
  auto q = host.post("/api/v1/streams/frozen/events", R"({"n":21})", as("t1"));
  EXPECT_EQ(body(q)["queued"], true) << q.body;

  nats.signal(SIGCONT);
  ASSERT_TRUE(wait_until([&] { return metric(host, "kgents_nats_published_total") >= 22; }, 15s))
      << streaming_health(host).dump();
  ASSERT_TRUE(wait_until([&] { return metric(host, "kgents_nats_circuit_state") == 0; }));
  EXPECT_EQ(streaming_health(host)["mode"], "jetstream");
  Sse sse(host.port(), "/api/v1/streams/frozen/events", as("t1", {"Last-Event-ID: 0"}));
  ASSERT_TRUE(wait_until([&] {
    sse.pump();
    return sse.events().size() >= 22;
  }));
  auto ev = sse.events();
  ASSERT_EQ(ev.size(), 22u);  // exactly once
  for (int i = 0; i < 22; ++i) EXPECT_EQ(ev[i].data, "{\"n\":" + std::to_string(i) + "}");
}

}  // namespace

namespace {

// Durability: with NATS stopped, 2,000 events on 4 channels are answered 202 queued (each on
// disk before its answer), the host is killed (-9) and started again while NATS is still away;
// events posted then queue behind the stored ones. Once NATS is back, every event is in
// JetStream exactly once (one message per Nats-Msg-Id), and in order on each channel.
TEST(StreamingDurability, QueuedEventsSurviveKill9AndReachJetStreamOnceInOrder) {
  constexpr int kChannels = 4, kPerChannel = 500, kAfter = 10;  // 2,000 before the kill
  NatsServer nats;
  nats.kill();
  KgHost host(config(nats.url(), "fallback_capacity = 5000\nreconnect_wait_ms = 100\n"));
  ASSERT_TRUE(host.wait_ready()) << host.log();

  // One client per channel, each in order; n counts on across the restart.
  auto post_all = [&](int from, int to) {
    std::atomic<int> not_queued{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < kChannels; ++c)
      clients.emplace_back([&, c] {
        for (int i = from; i < to; ++i) {
          auto r =
              http(host.port(), "POST", "/api/v1/streams/durable" + std::to_string(c) + "/events",
                   as("t1"), "{\"n\":" + std::to_string(i) + "}");
          if (r.status != 202 || !body(r).value("queued", false)) ++not_queued;
        }
      });
    for (auto& t : clients) t.join();
    return not_queued.load();
  };
  ASSERT_EQ(post_all(0, kPerChannel), 0) << host.log();
  EXPECT_EQ(metric(host, "kgents_nats_fallback_queue_depth"), kChannels * kPerChannel);

  host.restart_after_kill();
  ASSERT_TRUE(host.wait_ready()) << host.log();
  EXPECT_EQ(metric(host, "kgents_nats_fallback_queue_depth"), kChannels * kPerChannel)
      << host.log();
  ASSERT_EQ(post_all(kPerChannel, kPerChannel + kAfter), 0) << host.log();

  nats.start();
  constexpr int kTotal = kChannels * (kPerChannel + kAfter);
  // Drained: nothing waits and nothing is in flight any more.
  ASSERT_TRUE(wait_until(
      [&] {
        auto h = streaming_health(host);
        return h.value("fallback_queue_depth", -1) == 0 && h.value("in_flight", -1) == 0;
      },
      30s))
      << streaming_health(host).dump() << host.log();
  EXPECT_EQ(metric(host, "kgents_nats_fallback_dropped_total"), 0);
  EXPECT_NE(host.log().find("read back 2000 events"), std::string::npos) << host.log();

  StreamReader stream(nats.url());
  EXPECT_EQ(stream.messages(), static_cast<uint64_t>(kTotal));
  std::set<std::string> ids;
  for (int c = 0; c < kChannels; ++c) {
    std::string subject = "kgent.tenant.t1.durable" + std::to_string(c);
    auto got = stream.read(subject, kPerChannel + kAfter);
    ASSERT_EQ(got.size(), static_cast<std::size_t>(kPerChannel + kAfter)) << subject;
    for (int i = 0; i < kPerChannel + kAfter; ++i) {
      ASSERT_EQ(got[i].n, i) << subject << " at position " << i;
      EXPECT_FALSE(got[i].msg_id.empty());
      ids.insert(got[i].msg_id);
    }
  }
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(kTotal));  // each Nats-Msg-Id once
  // And the durable records go once published (a redelivery acks them; its backoff is at most
  // a minute).
  EXPECT_TRUE(wait_until(
      [&] { return metric(host, "kgents_queue_depth{queue=\"streaming.fallback\"}") == 0; }, 65s,
      100ms))
      << metric(host, "kgents_queue_depth{queue=\"streaming.fallback\"}");
}

// The events in flight when NATS dies go to disk too, ahead of the later ones: clients post
// while NATS is up, NATS is killed mid-stream, every answer is 202 (a sequence or queued), then
// the host is killed (-9) and both come back. Each channel holds exactly what was answered,
// in order.
TEST(StreamingDurability, EventsInFlightWhenNatsDiesAreStoredInOrder) {
  constexpr int kClients = 4;
  NatsServer nats;
  KgHost host(config(nats.url(),
                     "fallback_capacity = 50000\nack_timeout_ms = 1000\n"
                     "reconnect_wait_ms = 100\n"));
  ASSERT_TRUE(host.wait_ready());
  ASSERT_TRUE(wait_until([&] { return streaming_health(host).value("mode", "") == "jetstream"; }));

  std::atomic<bool> stop{false};
  std::atomic<int> sent{0}, queued{0}, failed{0};
  std::vector<int> answered(kClients, 0);
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c)
    clients.emplace_back([&, c] {
      for (int i = 0; !stop; ++i) {
        auto r =
            http(host.port(), "POST", "/api/v1/streams/inflight" + std::to_string(c) + "/events",
                 as("t1"), "{\"n\":" + std::to_string(i) + "}");
        if (r.status != 202) {
          ++failed;
          return;
        }
        if (body(r).value("queued", false)) ++queued;
        answered[c] = i + 1;
        ++sent;
      }
    });
  ASSERT_TRUE(wait_until([&] { return sent >= 400; }, 30s));
  nats.kill();
  EXPECT_TRUE(wait_until([&] { return queued >= 400; }, 30s)) << "queued " << queued;
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_EQ(failed, 0);

  host.restart_after_kill();
  ASSERT_TRUE(host.wait_ready()) << host.log();
  nats.start();
  ASSERT_TRUE(wait_until(
      [&] {
        auto h = streaming_health(host);
        return h.value("mode", "") == "jetstream" && h.value("fallback_queue_depth", -1) == 0 &&
               h.value("in_flight", -1) == 0;
      },
      30s))
      << streaming_health(host).dump() << host.log();

  StreamReader stream(nats.url());
  uint64_t total = 0;
  for (int c = 0; c < kClients; ++c) {
    std::string subject = "kgent.tenant.t1.inflight" + std::to_string(c);
    auto got = stream.read(subject, static_cast<std::size_t>(answered[c]));
    ASSERT_EQ(got.size(), static_cast<std::size_t>(answered[c])) << subject;
    for (int i = 0; i < answered[c]; ++i) ASSERT_EQ(got[i].n, i) << subject << " at position " << i;
    total += static_cast<uint64_t>(answered[c]);
  }
  EXPECT_EQ(stream.messages(), total);  // nothing stored twice
}

}  // namespace
