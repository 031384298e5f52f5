#include "sse.hpp"

#include <chrono>
#include <vector>

namespace kghost::streaming {

namespace {
int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

SseHub::SseHub(const Settings& settings, Publisher& publisher, SseMetrics metrics, Log log)
    : settings_(settings), publisher_(publisher), metrics_(metrics), log_(std::move(log)) {}

SseHub::~SseHub() { close_all(); }

std::string SseHub::frame(uint64_t seq, std::string_view data) {
  std::string out = "id: " + std::to_string(seq) + "\nevent: message\n";
  out.reserve(out.size() + data.size() + 16);
  while (true) {
    auto nl = data.find('\n');
    std::string_view line = data.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    out += "data: ";
    out += line;
    out += '\n';
    if (nl == std::string_view::npos) break;
    data.remove_prefix(nl + 1);
  }
  out += '\n';
  return out;
}

std::string SseHub::frame(natsMsg* msg) {
  jsMsgMetaData* meta = nullptr;
  uint64_t seq = 0;
  if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
    seq = meta->Sequence.Stream;
    jsMsgMetaData_Destroy(meta);
  }
  return frame(seq, std::string_view(natsMsg_GetData(msg),
                                     static_cast<std::size_t>(natsMsg_GetDataLength(msg))));
}

std::size_t SseHub::clients() { return open_.load(); }

bool SseHub::open(sdk::Request& req, std::string subject, std::optional<uint64_t> start_seq) {
  if (open_.load() >= settings_.max_sse_clients) return false;
  auto c = std::make_shared<Client>();
  c->subject = std::move(subject);
  c->start_seq = start_seq;
  c->hub = this;
  Client* raw = c.get();
  sdk::Response head{
      200, {}, "text/event-stream", {{"Cache-Control", "no-cache"}, {"X-Accel-Buffering", "no"}}};
  {
    std::lock_guard lock(mu_);
    clients_.emplace(raw, c);
  }
  ++open_;
  metrics_.clients.set(static_cast<double>(open_.load()));
  // on_closed may run on any thread as soon as the stream exists: it only flags the client.
  auto stream = req.stream(head, [this, raw] { finish(raw, false); });
  {
    std::lock_guard lock(raw->mu);
    raw->stream = std::move(stream);
    raw->last_write_ms = now_ms();
  }
  {
    std::lock_guard lock(mu_);
    to_subscribe_.push_back(c);
  }
  cv_.notify_one();
  return true;
}

kg_status SseHub::write(Client& c, std::string_view bytes) {
  std::lock_guard lock(c.mu);
  if (c.closed.load()) return KG_ERR_CLOSED;
  kg_status st = c.stream.write(bytes);
  c.last_write_ms = now_ms();
  return st;
}

void SseHub::finish(Client* c, bool slow) {
  bool was = c->closed.exchange(true);
  if (was) return;
  if (slow) {
    metrics_.slow_disconnects.add(1);
    log_(KG_LOG_WARN, "streaming: SSE client on " + c->subject + " is too slow; disconnected");
  }
  std::lock_guard lock(mu_);
  auto it = clients_.find(c);
  if (it != clients_.end()) to_teardown_.push_back(it->second);
  cv_.notify_one();
}

void SseHub::on_msg(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  auto* c = static_cast<Client*>(closure);
  if (!c->closed.load()) {
    kg_status st = c->hub->write(*c, frame(msg));
    if (st == KG_OK) {
      c->hub->metrics_.delivered.add(1);
    } else {
      c->hub->finish(c, st == KG_ERR_FULL);
    }
  }
  natsMsg_Destroy(msg);
}

void SseHub::on_group_msg(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  auto* g = static_cast<Group*>(closure);
  std::string bytes = frame(msg);
  natsMsg_Destroy(msg);
  std::vector<std::pair<ClientPtr, bool>> failed;  // finished after g->mu is released
  std::size_t written = 0;
  {
    std::lock_guard lock(g->mu);
    for (auto& c : g->members) {
      if (c->closed.load()) continue;
      kg_status st = g->hub->write(*c, bytes);
      if (st == KG_OK)
        ++written;
      else
        failed.emplace_back(c, st == KG_ERR_FULL);
    }
  }
  if (written) g->hub->metrics_.delivered.add(static_cast<double>(written));
  for (auto& [c, slow] : failed) g->hub->finish(c.get(), slow);
}

void SseHub::on_group_complete(void* closure) {
  auto* g = static_cast<Group*>(closure);
  SseHub* hub = g->hub;
  GroupPtr keep;
  std::lock_guard lock(hub->mu_);
  auto it = hub->ending_.find(g);
  if (it == hub->ending_.end()) return;
  keep = std::move(it->second);
  hub->ending_.erase(it);
}

void SseHub::on_complete(void* closure) {
  // The subscription delivers nothing more: the client can go.
  auto* c = static_cast<Client*>(closure);
  SseHub* hub = c->hub;
  ClientPtr keep;
  {
    std::lock_guard lock(hub->mu_);
    auto it = hub->clients_.find(c);
    if (it == hub->clients_.end()) return;
    keep = std::move(it->second);
    hub->clients_.erase(it);
  }
}

natsSubscription* SseHub::consumer(const std::string& subject, std::optional<uint64_t> start_seq,
                                   natsMsgHandler cb, void* closure) {
  jsSubOptions so;
  jsSubOptions_Init(&so);
  std::string stream = settings_.stream;
  so.Stream = stream.c_str();
  so.Ordered = true;
  if (start_seq) {
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = *start_seq;
  } else {
    so.Config.DeliverPolicy = js_DeliverNew;
  }
  natsSubscription* sub = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s =
      js_Subscribe(&sub, publisher_.js(), subject.c_str(), cb, closure, nullptr, &so, &jerr);
  if (s != NATS_OK) {
    log_(KG_LOG_WARN, std::string("streaming: cannot create the consumer for an SSE client: ") +
                          natsStatus_GetText(s));
    return nullptr;
  }
  return sub;
}

void SseHub::subscribe(const ClientPtr& c) {
  if (c->closed.load()) return;
  if (!publisher_.js() || !publisher_.ready()) {
    write(*c, "retry: 5000\n: NATS is unavailable\n\n");
    finish(c.get(), false);
    return;
  }
  if (!c->start_seq) return join_group(c);
  natsSubscription* sub = consumer(c->subject, c->start_seq, &SseHub::on_msg, c.get());
  if (!sub) {
    write(*c, "retry: 5000\n: cannot subscribe\n\n");
    finish(c.get(), false);
    return;
  }
  natsSubscription_SetOnCompleteCB(sub, &SseHub::on_complete, c.get());
  {
    std::lock_guard lock(c->mu);
    c->sub = sub;
  }
  // Tells the client (and the tests) that events published from now on will arrive.
  if (write(*c, ": subscribed\n\n") != KG_OK) finish(c.get(), false);
}

void SseHub::join_group(const ClientPtr& c) {
  GroupPtr g;
  {
    std::lock_guard lock(mu_);
    if (auto it = groups_.find(c->subject); it != groups_.end()) g = it->second;
  }
  if (!g) {
    g = std::make_shared<Group>();
    g->subject = c->subject;
    g->hub = this;
    g->sub = consumer(g->subject, std::nullopt, &SseHub::on_group_msg, g.get());
    if (!g->sub) {
      write(*c, "retry: 5000\n: cannot subscribe\n\n");
      finish(c.get(), false);
      return;
    }
    natsSubscription_SetOnCompleteCB(g->sub, &SseHub::on_group_complete, g.get());
    std::lock_guard lock(mu_);
    groups_.emplace(g->subject, g);
  }
  c->group = g;
  kg_status st;
  {
    // Under the group's lock: every event after this comment reaches the client.
    std::lock_guard lock(g->mu);
    st = write(*c, ": subscribed\n\n");
    g->members.push_back(c);
  }
  if (st != KG_OK) finish(c.get(), false);
}

void SseHub::leave_group(const ClientPtr& c) {
  GroupPtr g = std::exchange(c->group, nullptr);
  if (!g) return;
  bool empty;
  {
    std::lock_guard lock(g->mu);
    std::erase(g->members, c);
    empty = g->members.empty();
  }
  if (!empty) return;
  {
    std::lock_guard lock(mu_);
    groups_.erase(g->subject);
    ending_.emplace(g.get(), g);
  }
  natsSubscription_Unsubscribe(g->sub);  // on_group_complete then drops the group
  natsSubscription_Destroy(g->sub);
}

void SseHub::teardown(const ClientPtr& c) {
  if (c->torn_down.exchange(true)) return;
  natsSubscription* sub = nullptr;
  {
    std::lock_guard lock(c->mu);
    c->stream.close();
    sub = std::exchange(c->sub, nullptr);
  }
  --open_;
  metrics_.clients.set(static_cast<double>(open_.load()));
  leave_group(c);
  if (sub) {
    natsSubscription_Unsubscribe(sub);  // on_complete then drops the client
    natsSubscription_Destroy(sub);
  } else {
    std::lock_guard lock(mu_);
    clients_.erase(c.get());
  }
}

void SseHub::run(const std::function<bool()>& stopping) {
  int64_t next_beat = now_ms() + settings_.heartbeat.count();
  while (!stopping()) {
    std::deque<ClientPtr> subs, downs;
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock,
                   std::chrono::milliseconds(std::min<int64_t>(100, settings_.heartbeat.count())),
                   [&] { return !to_subscribe_.empty() || !to_teardown_.empty(); });
      subs.swap(to_subscribe_);
      downs.swap(to_teardown_);
    }
    for (auto& c : subs) subscribe(c);
    for (auto& c : downs) teardown(c);
    int64_t now = now_ms();
    if (now >= next_beat) {
      next_beat = now + std::min<int64_t>(settings_.heartbeat.count(), 1000);
      std::vector<ClientPtr> all;
      {
        std::lock_guard lock(mu_);
        for (auto& [raw, c] : clients_) all.push_back(c);
      }
      for (auto& c : all) {
        if (c->closed.load() || now - c->last_write_ms.load() < settings_.heartbeat.count())
          continue;
        kg_status st = write(*c, ": heartbeat\n\n");
        if (st != KG_OK) finish(c.get(), st == KG_ERR_FULL);
      }
    }
  }
}

void SseHub::close_all() {
  std::vector<ClientPtr> all;
  {
    std::lock_guard lock(mu_);
    for (auto& [raw, c] : clients_) all.push_back(c);
    to_subscribe_.clear();
    to_teardown_.clear();
  }
  for (auto& c : all) {
    c->closed = true;
    teardown(c);
  }
}

}  // namespace kghost::streaming
