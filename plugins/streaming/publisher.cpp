#include "publisher.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "fallback_entry.hpp"

namespace kghost::streaming {

using Clock = Breaker::Clock;

// How long the queue's consumer waits for JetStream to ack a record's event before it asks for
// a redelivery: short, it holds a host worker.
constexpr auto kConsumerWait = std::chrono::milliseconds(50);

namespace {

std::string nats_error(natsStatus s) {
  std::string out = natsStatus_GetText(s);
  natsStatus ignored;
  const char* last = nats_GetLastError(&ignored);
  if (last && *last) out += std::string(" (") + last + ")";
  return out;
}

}  // namespace

Publisher::Publisher(const Settings& settings, PublisherMetrics metrics, Log log)
    : settings_(settings),
      metrics_(metrics),
      log_(std::move(log)),
      enabled_(!settings.servers.empty()),
      breaker_(settings.breaker_failures, settings.breaker_open) {
  metrics_.circuit_state.set(0);
  metrics_.queue_depth.set(0);
}

Publisher::~Publisher() { close(); }

void Publisher::connect() {
  if (!enabled_) return;
  std::vector<const char*> urls;
  for (auto& s : settings_.servers) urls.push_back(s.c_str());
  natsStatus s = natsOptions_Create(&opts_);
  if (s == NATS_OK) s = natsOptions_SetServers(opts_, urls.data(), static_cast<int>(urls.size()));
  if (s == NATS_OK) s = natsOptions_SetName(opts_, "kghost-streaming");
  if (s == NATS_OK) s = natsOptions_SetSendAsap(opts_, true);
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts_, -1);  // forever
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(opts_, settings_.reconnect_wait.count());
  if (s == NATS_OK) s = natsOptions_SetReconnectJitter(opts_, 100, 1000);
  // Our FIFO is the reconnect buffer: a publish while reconnecting must fail at once, never be
  // replayed by the library ahead of an earlier event lost with the old connection. The size
  // must be 0: cnats refuses a publish only once the buffer holds at least this many bytes, so
  // with 1 the first publish of every outage was buffered and stored ahead of the events lost
  // with the connection. (nats.h says 0 means "the 8 MB default", but the library checks
  // `len >= size` and never substitutes a default; its own streaming client sets 0 to buffer
  // nothing. StreamingFaults.CnatsBuffersNothingWhileReconnecting pins this.)
  if (s == NATS_OK) s = natsOptions_SetReconnectBufSize(opts_, 0);
  if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(opts_, &Publisher::on_disconnected, this);
  if (s == NATS_OK) s = natsOptions_SetReconnectedCB(opts_, &Publisher::on_connected, this);
  if (s == NATS_OK) s = natsOptions_SetClosedCB(opts_, &Publisher::on_closed, this);
  if (s == NATS_OK)
    s = natsOptions_SetRetryOnFailedConnect(opts_, true, &Publisher::on_connected, this);
  // SSE subscriptions share a small pool of delivery threads instead of one thread each.
  if (s == NATS_OK) s = natsOptions_UseGlobalMessageDelivery(opts_, true);
  if (s == NATS_OK) s = nats_SetMessageDeliveryPoolSize(4);
  if (s != NATS_OK) throw std::runtime_error("cannot set NATS options: " + nats_error(s));

  s = natsConnection_Connect(&nc_, opts_);
  if (s == NATS_OK) {
    set_connected(true, nc_);
  } else if (s == NATS_NOT_YET_CONNECTED) {
    log_(KG_LOG_WARN, "streaming: NATS not reachable yet; events wait in the fallback queue");
  } else {
    throw std::runtime_error("cannot create the NATS connection: " + nats_error(s));
  }
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = settings_.ack_timeout.count();
  jo.PublishAsync.AckHandler = &Publisher::on_ack;
  jo.PublishAsync.AckHandlerClosure = this;
  jo.PublishAsync.MaxPending = static_cast<int64_t>(settings_.max_in_flight) + 16;
  s = natsConnection_JetStream(&js_, nc_, &jo);
  if (s != NATS_OK)
    throw std::runtime_error("cannot create the JetStream context: " + nats_error(s));
}

void Publisher::close() {
  std::vector<Done> dones;
  std::size_t lost = 0, kept = 0;
  {
    std::lock_guard lock(mu_);
    if (closing_ && !nc_) return;
    closing_ = true;
    for (auto* q : {&in_flight_, &waiting_}) {
      for (auto& e : *q) {
        if (e->acked || e->dropped) continue;
        if (e->disk != Event::Disk::none) {
          ++kept;  // an append still running answers its client "queued" when it completes
          continue;
        }
        ++lost;
        if (e->done) dones.push_back(std::exchange(e->done, nullptr));
      }
      q->clear();
    }
    by_msg_.clear();
  }
  resolved_cv_.notify_all();
  Outcome gone{Outcome::unavailable, 0, false, "the host is shutting down"};
  for (auto& d : dones) d(gone);
  if (lost)
    log_(KG_LOG_WARN, "streaming: " + std::to_string(lost) + " events not published at shutdown");
  if (kept)
    log_(KG_LOG_INFO, "streaming: " + std::to_string(kept) +
                          " events stay in the durable fallback queue for the next start");
  if (nc_) natsConnection_Close(nc_);
  if (js_) jsCtx_Destroy(js_);
  if (nc_) natsConnection_Destroy(nc_);
  if (opts_) natsOptions_Destroy(opts_);
  js_ = nullptr;
  nc_ = nullptr;
  opts_ = nullptr;
}

// --- connection state (cnats callback thread) -------------------------------------------------

void Publisher::on_disconnected(natsConnection*, void* closure) {
  static_cast<Publisher*>(closure)->set_connected(false);
}
void Publisher::on_connected(natsConnection* nc, void* closure) {
  static_cast<Publisher*>(closure)->set_connected(true, nc);
}
void Publisher::on_closed(natsConnection*, void* closure) {
  static_cast<Publisher*>(closure)->set_connected(false);
}

void Publisher::set_connected(bool up, natsConnection* nc) {
  bool changed;
  {
    std::lock_guard lock(mu_);
    changed = connected_ != up;
    if (up) {
      connected_ = true;
      reconnects_seen_ = reconnects(nc);  // nc_ may not be set yet (first connect)
      if (changed) {
        stream_ready_ = false;  // checked again after every (re)connect
        next_ensure_ = {};
      }
    } else {
      lost_connection_locked();  // also when a failed publish saw the loss first
    }
  }
  cv_.notify_all();
  if (changed)
    log_(up ? KG_LOG_INFO : KG_LOG_WARN,
         up ? "streaming: connected to NATS"
            : "streaming: disconnected from NATS; using the fallback queue");
}

void Publisher::lost_connection_locked() {
  connected_ = false;
  stream_ready_ = false;
  // What was handed to the old connection may be lost: resend it before anything newer.
  if (!in_flight_.empty()) need_resync_ = true;
  next_ensure_ = {};
}

uint64_t Publisher::reconnects(natsConnection* nc) {
  uint64_t n = 0;
  natsStatistics* st = nullptr;
  if (nc && natsStatistics_Create(&st) == NATS_OK) {
    if (natsConnection_GetStats(nc, st) == NATS_OK)
      natsStatistics_GetCounts(st, nullptr, nullptr, nullptr, nullptr, &n);
    natsStatistics_Destroy(st);
  }
  return n;
}

bool Publisher::ready() {
  std::lock_guard lock(mu_);
  return connected_ && stream_ready_;
}

// --- admission ----------------------------------------------------------------------------------

bool Publisher::healthy_locked(Clock::time_point now) {
  return connected_ && stream_ready_ && breaker_.state(now) == Breaker::State::closed;
}

// Events may stay in memory only while NATS is healthy and no stored event is still being read
// back; otherwise they go to the durable queue (behind everything before them).
bool Publisher::admit_direct_locked(Clock::time_point now) {
  return !recovering_ && healthy_locked(now);
}

std::size_t Publisher::depth_locked() const {
  return waiting_.size() + (recovering_ ? to_recover_ - recovered_ : 0);
}

Admission Publisher::publish(std::string subject, std::string data, std::string msg_id,
                             std::string traceparent, Done done) {
  if (!enabled_) return Admission::unavailable;
  Admission result = Admission::pending;
  Answers answers;
  {
    std::lock_guard lock(mu_);
    if (closing_) return Admission::unavailable;
    auto now = Clock::now();
    if (depth_locked() >= settings_.fallback_capacity) {
      ++dropped_;
      metrics_.dropped.add(1);
      return Admission::overloaded;
    }
    auto e = std::make_shared<Event>();
    e->subject = std::move(subject);
    e->data = std::move(data);
    e->msg_id = std::move(msg_id);
    e->traceparent = std::move(traceparent);
    if (!admit_direct_locked(now)) {
      // Everything before it goes to disk first, so the queue's order is the FIFO's.
      spill_locked(answers);
      kg_status st = append_locked(e);
      if (st == KG_ERR_FULL) {
        ++dropped_;
        metrics_.dropped.add(1);
        result = Admission::overloaded;
      } else if (st != KG_PENDING) {
        result = Admission::unavailable;
      }
    }
    if (result == Admission::pending) {
      if (e->disk == Event::Disk::none) all_stored_ = false;
      e->done = std::move(done);
      waiting_.push_back(std::move(e));
      metrics_.queue_depth.set(static_cast<double>(depth_locked()));
    }
  }
  for (auto& [d, o] : answers) d(o);
  if (result == Admission::pending) cv_.notify_one();
  return result;
}

// --- the durable queue ------------------------------------------------------------------------

void Publisher::attach_queue(sdk::Queue queue) {
  std::lock_guard lock(mu_);
  queue_ = queue;
  to_recover_ = queue_.depth();
  recovering_ = to_recover_ > 0;
  if (recovering_)
    log_(KG_LOG_INFO, "streaming: " + std::to_string(to_recover_) +
                          " events wait in the durable fallback queue from an earlier run; they "
                          "are published first");
  metrics_.queue_depth.set(static_cast<double>(depth_locked()));
}

kg_status Publisher::append_locked(const EventPtr& e) {
  if (!queue_) return KG_ERR_UNAVAILABLE;
  kg_status st =
      queue_.append(encode_entry(e->subject, e->msg_id, e->traceparent, e->data),
                    [this, e](kg_status status, uint64_t id) { on_appended(e, status, id); });
  if (st == KG_PENDING) e->disk = Event::Disk::appending;
  return st;
}

void Publisher::spill_locked(Answers& out) {
  if (all_stored_) return;  // nothing admitted in memory since the last spill
  // False when the event could not be stored: it is answered 503 and never sent again.
  auto store = [&](const EventPtr& e) {
    if (e->acked || e->dropped || e->disk != Event::Disk::none) return true;
    kg_status st = append_locked(e);
    if (st == KG_PENDING) return true;
    e->dropped = true;
    if (st == KG_ERR_FULL) {
      ++dropped_;
      metrics_.dropped.add(1);
    }
    if (e->done)
      out.emplace_back(
          std::exchange(e->done, nullptr),
          st == KG_ERR_FULL
              ? Outcome{Outcome::overloaded, 0, false, "the fallback queue is full"}
              : Outcome{Outcome::unavailable, 0, false, "the fallback queue cannot be written"});
    return false;
  };
  for (auto& e : in_flight_) store(e);  // a dropped one leaves in_flight_ with its ack or resync
  std::erase_if(waiting_, [&](const EventPtr& e) { return !store(e); });
  all_stored_ = true;
}

void Publisher::on_appended(const EventPtr& e, kg_status status, uint64_t id) {
  Done done;
  Outcome outcome{Outcome::queued, 0, false, {}};
  {
    std::lock_guard lock(mu_);
    if (status == KG_OK) {
      e->disk = Event::Disk::stored;
      e->qid = id;
      if (e->acked || e->dropped)
        resolved_.insert(id);  // JetStream acked it meanwhile: the record can go
      else
        stored_.emplace(id, e);
      done = std::exchange(e->done, nullptr);
    } else {
      e->disk = Event::Disk::none;
      if (!e->acked) {
        e->dropped = true;
        auto it = std::find(waiting_.begin(), waiting_.end(), e);
        if (it != waiting_.end()) waiting_.erase(it);
        done = std::exchange(e->done, nullptr);
        outcome = Outcome{Outcome::unavailable, 0, false,
                          "the fallback queue cannot be written to disk; retry later"};
      }
    }
    metrics_.queue_depth.set(static_cast<double>(depth_locked()));
  }
  cv_.notify_one();  // the publisher may wait for this record at the head of the FIFO
  if (done) done(outcome);
}

void Publisher::resolved_locked(Event& e) {
  if (e.disk != Event::Disk::stored) return;  // appending: on_appended sees `acked`
  stored_.erase(e.qid);
  resolved_.insert(e.qid);
  resolved_cv_.notify_all();
}

kg_status Publisher::consume(const sdk::QueueEntry& entry) {
  std::unique_lock lock(mu_);
  if (resolved_.erase(entry.id)) return KG_OK;
  if (closing_) {
    queue_.fail_reason("the host is shutting down");
    return KG_ERR_RETRY;
  }
  if (stored_.count(entry.id)) {
    // Only while draining is its ack near; otherwise do not hold a host worker.
    if (admit_direct_locked(Clock::now())) {
      resolved_cv_.wait_for(lock, kConsumerWait,
                            [&] { return closing_ || resolved_.count(entry.id) > 0; });
      if (resolved_.erase(entry.id)) return KG_OK;
    }
    queue_.fail_reason("waiting for a JetStream ack");
    return KG_ERR_RETRY;
  }
  if (!recovering_) {
    // Appended in this run, its completion not run yet: known in a moment.
    queue_.fail_reason("waiting for a JetStream ack");
    return KG_ERR_RETRY;
  }
  // Stored by an earlier run. The queue hands those out oldest first and before anything
  // appended since (lower ids), so they go back in front of the FIFO in order.
  ++recovered_;
  kg_status st = KG_ERR_RETRY;
  if (auto rec = decode_entry(entry.data)) {
    auto e = std::make_shared<Event>();
    e->subject = std::move(rec->subject);
    e->msg_id = std::move(rec->msg_id);
    e->traceparent = std::move(rec->traceparent);
    e->data = std::move(rec->data);
    e->disk = Event::Disk::stored;
    e->qid = entry.id;
    waiting_.insert(waiting_.begin() + static_cast<std::ptrdiff_t>(recovered_front_++), e);
    stored_.emplace(entry.id, std::move(e));
    queue_.fail_reason("read back; waiting for a JetStream ack");
  } else {
    log_(KG_LOG_ERROR, "streaming: durable fallback record " + std::to_string(entry.id) +
                           " is unreadable (unknown version or damaged); dropped");
    st = KG_OK;
  }
  if (recovered_ >= to_recover_) {
    recovering_ = false;
    log_(KG_LOG_INFO, "streaming: read back " + std::to_string(recovered_front_) +
                          " events from the durable fallback queue");
  }
  metrics_.queue_depth.set(static_cast<double>(depth_locked()));
  lock.unlock();
  cv_.notify_one();
  return st;
}

// --- acks (cnats thread) ----------------------------------------------------------------------

void Publisher::on_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
  auto* self = static_cast<Publisher*>(closure);
  Done done;
  Outcome outcome;
  bool wake = false;
  {
    std::lock_guard lock(self->mu_);
    auto it = self->by_msg_.find(msg);
    if (it != self->by_msg_.end()) {
      EventPtr e = it->second;
      self->by_msg_.erase(it);
      if (pa) {
        e->acked = true;
        if (e->disk != Event::Disk::none) self->resolved_locked(*e);
        self->breaker_.on_success();
        ++self->published_;
        self->metrics_.published.add(1);
        outcome = Outcome{Outcome::acked, pa->Sequence, pa->Duplicate, {}};
        done = std::exchange(e->done, nullptr);
      } else if (pae && pae->ErrCode != 0) {
        // JetStream refused this very message (an API error, e.g. over a limit): resending
        // cannot help. Answer it, count the failure, keep the others flowing.
        e->acked = true;  // resolved: never resent
        self->resolved_locked(*e);
        self->breaker_.on_failure(Clock::now());
        ++self->failures_;
        outcome =
            Outcome{Outcome::rejected, 0, false,
                    "JetStream refused the event (error " + std::to_string(pae->ErrCode) +
                        (pae->ErrText ? std::string(": ") + pae->ErrText : std::string()) + ")"};
        done = std::exchange(e->done, nullptr);
        wake = true;
      } else {
        // No responders, timeout or connection loss: a missing ack. Resend from here.
        ++self->pending_failures_;
        self->need_resync_ = true;
        wake = true;
      }
      while (!self->in_flight_.empty() && self->in_flight_.front()->acked)
        self->in_flight_.pop_front();
      wake = wake || self->in_flight_.size() + 1 >= self->settings_.max_in_flight;
    }
  }
  natsMsg_Destroy(msg);
  if (wake) self->cv_.notify_one();
  if (done) done(outcome);
}

// --- the publisher loop -----------------------------------------------------------------------

bool Publisher::ensure_stream() {
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, js_, settings_.stream.c_str(), nullptr, &jerr);
  if (s == NATS_OK) {
    int64_t want = settings_.duplicate_window_s * int64_t{1000000000};
    if (si->Config && si->Config->Duplicates < want)
      log_(KG_LOG_WARN, "streaming: stream " + settings_.stream + " has a duplicate_window of " +
                            std::to_string(si->Config->Duplicates / 1000000000) +
                            " s, shorter than the configured " +
                            std::to_string(settings_.duplicate_window_s) +
                            " s; events resent after a long outage may be stored twice");
    jsStreamInfo_Destroy(si);
    return true;
  }
  if (s != NATS_NOT_FOUND) {
    log_(KG_LOG_WARN,
         "streaming: cannot look up stream " + settings_.stream + ": " + nats_error(s));
    return false;
  }
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  const char* subjects[] = {"kgent.>"};
  cfg.Name = settings_.stream.c_str();
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  cfg.Duplicates = settings_.duplicate_window_s * int64_t{1000000000};  // nanoseconds
  if (settings_.max_age_s > 0) cfg.MaxAge = settings_.max_age_s * int64_t{1000000000};
  s = js_AddStream(&si, js_, &cfg, nullptr, &jerr);
  if (s == NATS_OK) {
    jsStreamInfo_Destroy(si);
    log_(KG_LOG_INFO, "streaming: created stream " + settings_.stream +
                          " on kgent.> (duplicate_window " +
                          std::to_string(settings_.duplicate_window_s) + " s)");
    return true;
  }
  log_(KG_LOG_WARN, "streaming: cannot create stream " + settings_.stream + ": " + nats_error(s) +
                        " (JetStream error " + std::to_string(static_cast<int>(jerr)) + ")");
  return false;
}

void Publisher::update_gauges_locked() {
  auto st = breaker_.state(Clock::now());
  if (st != last_state_) {
    log_(st == Breaker::State::closed ? KG_LOG_INFO : KG_LOG_WARN,
         std::string("streaming: circuit breaker ") + Breaker::name(last_state_) + " -> " +
             Breaker::name(st));
    last_state_ = st;
  }
  metrics_.circuit_state.set(static_cast<double>(static_cast<int>(st)));
  metrics_.queue_depth.set(static_cast<double>(depth_locked()));
}

void Publisher::resync(std::unique_lock<std::mutex>& lock, std::size_t failures, const char* why) {
  // Take back everything cnats still waits an ack for; late acks for those are then dropped by
  // the library, and our resend (same Nats-Msg-Id) gets JetStream's answer instead.
  by_msg_.clear();
  lock.unlock();
  natsMsgList pending{};
  if (js_PublishAsyncGetPendingList(&pending, js_) == NATS_OK) natsMsgList_Destroy(&pending);
  lock.lock();
  std::size_t moved = 0;
  for (auto it = in_flight_.rbegin(); it != in_flight_.rend(); ++it) {
    if ((*it)->acked || (*it)->dropped) continue;
    waiting_.push_front(*it);
    ++moved;
  }
  in_flight_.clear();
  need_resync_ = false;
  if (failures == SIZE_MAX) failures = moved;
  failures += pending_failures_;
  pending_failures_ = 0;
  auto now = Clock::now();
  for (std::size_t i = 0; i < failures; ++i) breaker_.on_failure(now);
  failures_ += failures;
  Answers answers;
  if (!admit_direct_locked(now)) spill_locked(answers);  // answered "queued" once on disk
  update_gauges_locked();
  if (moved)
    log_(KG_LOG_WARN, "streaming: " + std::string(why) + "; " + std::to_string(moved) +
                          " un-acked events go back to the head of the queue");
  lock.unlock();
  for (auto& [d, o] : answers) d(o);
  lock.lock();
}

void Publisher::send_batch(std::unique_lock<std::mutex>& lock, std::size_t max) {
  // cnats reconnected before its disconnect callback reached us: what was in flight on the old
  // connection goes first (the reconnect callback, queued behind, lets sending resume).
  if (reconnects(nc_) != reconnects_seen_) {
    lost_connection_locked();
    return;
  }
  std::vector<EventPtr> batch;
  // A record still being written waits: it is sent once on disk, in its place.
  while (!waiting_.empty() && batch.size() < max &&
         waiting_.front()->disk != Event::Disk::appending) {
    batch.push_back(waiting_.front());
    waiting_.pop_front();
  }
  if (batch.empty()) return;
  lock.unlock();
  std::vector<natsMsg*> msgs(batch.size(), nullptr);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    auto& e = *batch[i];
    natsMsg* m = nullptr;
    if (natsMsg_Create(&m, e.subject.c_str(), nullptr, e.data.data(),
                       static_cast<int>(e.data.size())) != NATS_OK)
      continue;
    natsMsgHeader_Set(m, "Nats-Msg-Id", e.msg_id.c_str());
    if (!e.traceparent.empty()) natsMsgHeader_Set(m, "traceparent", e.traceparent.c_str());
    msgs[i] = m;
  }
  lock.lock();
  auto now = Clock::now();
  for (std::size_t i = 0; i < batch.size(); ++i) {
    batch[i]->sent_at = now;
    in_flight_.push_back(batch[i]);
    if (msgs[i]) by_msg_.emplace(msgs[i], batch[i]);
  }
  lock.unlock();
  std::size_t sent = 0;
  natsStatus failed = NATS_OK;
  for (; sent < batch.size(); ++sent) {
    if (!msgs[sent]) {
      failed = NATS_NO_MEMORY;
      break;
    }
    natsMsg* m = msgs[sent];
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = settings_.ack_timeout.count();
    natsStatus s = js_PublishMsgAsync(js_, &msgs[sent], &po);
    if (s != NATS_OK) {
      failed = s;
      msgs[sent] = m;  // still ours
      break;
    }
  }
  lock.lock();
  if (failed == NATS_OK) return;
  // Not handed over (reconnecting, payload too large…): these go back to the head, in order.
  std::vector<Done> rejects;
  for (std::size_t i = batch.size(); i-- > sent;) {
    if (msgs[i]) by_msg_.erase(msgs[i]);
    auto it = std::find(in_flight_.begin(), in_flight_.end(), batch[i]);
    if (it != in_flight_.end()) in_flight_.erase(it);
    if (i == sent && failed == NATS_MAX_PAYLOAD) {
      batch[i]->acked = true;  // resolved for good: never resent
      resolved_locked(*batch[i]);
      if (batch[i]->done) rejects.push_back(std::exchange(batch[i]->done, nullptr));
      log_(KG_LOG_WARN, "streaming: an event on " + batch[i]->subject +
                            " is over the NATS max_payload; dropped");
      continue;
    }
    waiting_.push_front(batch[i]);
  }
  lock.unlock();
  for (auto* m : msgs) natsMsg_Destroy(m);  // NULL for those the library took
  for (auto& d : rejects)
    d(Outcome{Outcome::rejected, 0, false, "the event is over the NATS max_payload"});
  if (failed != NATS_MAX_PAYLOAD) {
    log_(KG_LOG_WARN, "streaming: publish not handed to NATS: " + nats_error(failed));
    std::lock_guard l(mu_);
    if (natsConnection_Status(nc_) != NATS_CONN_STATUS_CONNECTED) lost_connection_locked();
  }
  lock.lock();
  cv_.wait_for(lock, std::chrono::milliseconds(20));  // no busy loop on a failing connection
}

void Publisher::run(const std::function<bool()>& stopping) {
  if (!enabled_) return;
  std::unique_lock lock(mu_);
  std::optional<Clock::time_point> drain_deadline;
  while (true) {
    auto now = Clock::now();
    if (stopping()) {
      if (!drain_deadline) drain_deadline = now + std::chrono::seconds(2);
      bool empty = waiting_.empty() && in_flight_.empty();
      if (empty || now >= *drain_deadline || !connected_) break;
    }
    if (need_resync_) {
      // After a lost connection every un-acked event is a missing ack (counted by resync).
      resync(lock, connected_ ? 0 : SIZE_MAX,
             connected_ ? "a JetStream ack failed" : "the NATS connection was lost");
      continue;
    }
    // Ack timeouts: every event waiting longer than ack_timeout is a missing ack.
    if (!in_flight_.empty() && now - in_flight_.front()->sent_at >= settings_.ack_timeout) {
      std::size_t late = 0;
      for (auto& e : in_flight_) {
        if (now - e->sent_at < settings_.ack_timeout) break;  // sent in order
        if (!e->acked) ++late;
      }
      if (late) {
        resync(lock, late, "JetStream acks timed out");
        continue;
      }
    }
    if (connected_ && !stream_ready_ && now >= next_ensure_) {
      lock.unlock();
      bool ok = ensure_stream();
      lock.lock();
      if (connected_) stream_ready_ = ok;
      next_ensure_ = Clock::now() + std::chrono::seconds(1);
      continue;
    }
    auto state = breaker_.state(now);
    update_gauges_locked();
    bool healthy = admit_direct_locked(now);
    if (!healthy && was_healthy_) {
      // NATS went away or the breaker opened: every event not acked yet goes to disk, and
      // whoever waits for an ack is told "queued" once it is there.
      Answers answers;
      spill_locked(answers);
      was_healthy_ = false;
      if (!answers.empty()) {
        lock.unlock();
        for (auto& [d, o] : answers) d(o);
        lock.lock();
        continue;
      }
    }
    was_healthy_ = healthy;
    std::size_t room = 0;
    if (connected_ && stream_ready_ && !recovering_ && !waiting_.empty() &&
        waiting_.front()->disk != Event::Disk::appending) {
      if (state == Breaker::State::closed)
        room = settings_.max_in_flight > in_flight_.size()
                   ? settings_.max_in_flight - in_flight_.size()
                   : 0;
      else if (state == Breaker::State::half_open && in_flight_.empty())
        room = 1;  // the probe
    }
    if (room) {
      send_batch(lock, std::min<std::size_t>(room, 256));
      continue;
    }
    // Sleep until something changes: new event, ack, connection, breaker, ack deadline.
    auto until = now + std::chrono::milliseconds(50);
    if (state == Breaker::State::open) until = std::min(until, breaker_.open_until());
    if (!in_flight_.empty())
      until = std::min(until, in_flight_.front()->sent_at + settings_.ack_timeout);
    cv_.wait_until(lock, until);
  }
  update_gauges_locked();
}

PublisherStatus Publisher::status() {
  std::lock_guard lock(mu_);
  PublisherStatus st;
  st.enabled = enabled_;
  st.connected = connected_;
  st.stream_ready = stream_ready_;
  st.circuit = breaker_.state(Clock::now());
  st.recovering = recovering_;
  st.queue_depth = depth_locked();
  st.stored = stored_.size();
  st.in_flight = in_flight_.size();
  st.published = published_;
  st.dropped = dropped_;
  st.failures = failures_;
  return st;
}

}  // namespace kghost::streaming
