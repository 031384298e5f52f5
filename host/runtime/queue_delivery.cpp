// Durable queue delivery: the dispatcher thread schedules deliveries on the WorkerPool, one
// batch at a time (up to max_batch entries, oldest first); outcomes become acks, retries with
// backoff, or dead letters.
#include <algorithm>
#include <string>

#include "runtime/durable_queue_impl.hpp"

namespace kghost {

namespace fs = std::filesystem;
namespace qf = queue_format;
using namespace queue_files;
using Clock = std::chrono::steady_clock;

namespace {
constexpr auto kMaxBackoff = std::chrono::milliseconds(60'000);
constexpr int kDeliveriesPerJob = 256;  // then the job yields its pool thread to others
}  // namespace

void DurableQueue::Impl::consume(Consumer c) {
  // One entry at a time: a batch of one, handed to the single-entry consumer.
  consume_batch(
      1, [c = std::move(c)](const std::vector<QueueEntry>& batch, std::vector<Delivery>& out) {
        out[0].error.clear();
        out[0].outcome = c(batch[0], out[0].error);
      });
}

void DurableQueue::Impl::consume_batch(std::size_t limit, BatchConsumer c) {
  {
    std::lock_guard lock(mu);
    if (consumer) throw std::logic_error(label + ": consume() called twice");
    consumer = std::move(c);
    max_batch = std::max<std::size_t>(limit, 1);
  }
  dispatch_cv.notify_one();
}

void DurableQueue::Impl::promote_due_locked(Clock::time_point now) {
  while (!delayed.empty() && delayed.begin()->first <= now) {
    ready.insert(delayed.begin()->second);
    delayed.erase(delayed.begin());
  }
}

void DurableQueue::Impl::dispatcher_loop() {
  std::unique_lock lock(mu);
  while (!stopping) {
    promote_due_locked(Clock::now());
    if (consumer && !in_flight && !ready.empty()) {
      in_flight = true;
      lock.unlock();
      post_delivery();
      lock.lock();
      continue;
    }
    if (consumer && !in_flight && !delayed.empty()) {
      dispatch_cv.wait_until(lock, delayed.begin()->first);
    } else {
      dispatch_cv.wait(lock);
    }
  }
}

void DurableQueue::Impl::post_delivery() {
  auto guard = std::make_shared<DeliveryGuard>(this);
  pool.post([this, guard] {
    guard->ran = true;
    run_deliveries();
    delivery_done();
  });
}

void DurableQueue::Impl::delivery_done() {
  // Notify under the lock: once stop() sees !in_flight it may destroy this object.
  std::lock_guard lock(mu);
  in_flight = false;
  idle_cv.notify_all();
  dispatch_cv.notify_one();
}

void DurableQueue::Impl::run_deliveries() {
  std::vector<QueueEntry> batch;
  std::vector<Delivery> out;
  for (int n = 0; n < kDeliveriesPerJob;) {
    batch.clear();
    {
      std::lock_guard lock(mu);
      if (stopping) return;
      promote_due_locked(Clock::now());
      while (!ready.empty() && batch.size() < max_batch) {
        uint64_t id = *ready.begin();
        ready.erase(ready.begin());
        const Entry& e = entries.at(id);
        batch.push_back(QueueEntry{id, e.failures + 1, e.data, e.last_error});
      }
    }
    if (batch.empty()) return;
    n += static_cast<int>(batch.size());
    out.assign(batch.size(), Delivery{Outcome::retry, "the consumer gave no outcome"});
    try {
      consumer(batch, out);
    } catch (const std::exception& ex) {
      out.assign(batch.size(),
                 Delivery{Outcome::retry, std::string("consumer threw: ") + ex.what()});
    } catch (...) {
      out.assign(batch.size(), Delivery{Outcome::retry, "consumer threw"});
    }
    finish(batch, out);
  }
}

std::chrono::milliseconds DurableQueue::Impl::backoff(uint32_t failures) const {
  auto delay = opts.retry_backoff;
  for (uint32_t i = 1; i < failures && delay < kMaxBackoff; ++i) delay *= 2;
  return std::min(delay, kMaxBackoff);
}

void DurableQueue::Impl::finish(const std::vector<QueueEntry>& batch,
                                const std::vector<Delivery>& out) {
  {
    std::lock_guard lock(mu);
    std::lock_guard commit_lock(commit_mu);
    auto now = Clock::now();
    for (std::size_t i = 0; i < batch.size(); ++i) finish_locked(batch[i].id, out[i], now);
    update_gauges_locked();
  }
  commit_cv.notify_one();
}

void DurableQueue::Impl::finish_locked(uint64_t id, const Delivery& d, Clock::time_point now) {
  auto it = entries.find(id);
  Entry& e = it->second;
  Segment& s = segments[e.segment];
  if (d.outcome == Outcome::ack) {
    live_bytes.fetch_sub(e.data.size());
    s.live--;
    entries.erase(it);
    qf::encode_ack(pending_meta_buf, id);
    pending_acks.push_back(id);
    return;
  }
  e.failures++;
  e.last_error = d.error;
  if (e.failures >= opts.max_attempts) {
    e.dead = true;
    dead.insert(id);
    s.dead++;
    qf::encode_dead(pending_meta_buf, id, e.failures, d.error);
  } else {
    delayed.emplace(now + backoff(e.failures), id);
    qf::encode_retry(pending_meta_buf, id, e.failures, d.error);
  }
}

}  // namespace kghost
