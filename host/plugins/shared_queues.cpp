#include "plugins/shared_queues.hpp"

#include <algorithm>

namespace kghost {

void SharedQueue::offer(const void* owner, DurableQueue::Consumer consumer) {
  offer(owner, 1,
        [c = std::move(consumer)](const std::vector<QueueEntry>& batch,
                                  std::vector<DurableQueue::Delivery>& out) {
          out[0].error.clear();
          out[0].outcome = c(batch[0], out[0].error);
        });
}

void SharedQueue::offer(const void* owner, std::size_t max_batch,
                        DurableQueue::BatchConsumer consumer) {
  std::lock_guard lock(mutex_);
  offered_[owner] = Offer{std::max<std::size_t>(max_batch, 1), std::move(consumer)};
}

void SharedQueue::activate(const void* owner) {
  std::unique_lock lock(mutex_);
  auto it = offered_.find(owner);
  if (it == offered_.end()) return;
  // The queue delivers one batch at a time, so the next delivery (to the new consumer) starts
  // only after the one in progress (to the old) has returned.
  active_ = it->second;
  active_owner_ = owner;
  const std::size_t max_batch = active_.max_batch;
  const bool started = std::exchange(consuming_, true);
  lock.unlock();
  if (started) return queue_->set_max_batch(max_batch);  // batches sized for the new consumer
  queue_->consume_batch(max_batch,
                        [this](const std::vector<QueueEntry>& batch,
                               std::vector<DurableQueue::Delivery>& out) { deliver(batch, out); });
}

void SharedQueue::release(const void* owner) {
  std::unique_lock lock(mutex_);
  offered_.erase(owner);
  if (active_owner_ == owner) {
    active_ = {};
    active_owner_ = nullptr;
  }
  idle_.wait(lock, [&] { return delivering_to_ != owner; });  // ends: nothing new reaches it
}

void SharedQueue::deliver(const std::vector<QueueEntry>& batch,
                          std::vector<DurableQueue::Delivery>& out) {
  Offer consumer;
  {
    std::lock_guard lock(mutex_);
    if (!active_.consumer) {
      for (auto& d : out)
        d = {DurableQueue::Outcome::retry, "no consumer: its plugin is being reloaded or removed"};
      return;
    }
    consumer = active_;
    delivering_to_ = active_owner_;
  }
  struct Done {
    SharedQueue& q;
    ~Done() {
      std::lock_guard lock(q.mutex_);
      q.delivering_to_ = nullptr;
      q.idle_.notify_all();
    }
  } done{*this};
  if (batch.size() <= consumer.max_batch) return consumer.consumer(batch, out);
  // Taken for the consumer before it (one that takes bigger batches): in its own sizes.
  for (std::size_t at = 0; at < batch.size(); at += consumer.max_batch) {
    const std::size_t end = std::min(batch.size(), at + consumer.max_batch);
    std::vector<QueueEntry> part(batch.begin() + at, batch.begin() + end);
    std::vector<DurableQueue::Delivery> part_out(out.begin() + at, out.begin() + end);
    try {  // as the queue does for a whole batch, but the parts before this one stand
      consumer.consumer(part, part_out);
    } catch (const std::exception& ex) {
      part_out.assign(part.size(),
                      {DurableQueue::Outcome::retry, std::string("consumer threw: ") + ex.what()});
    }
    std::move(part_out.begin(), part_out.end(), out.begin() + at);
  }
}

std::shared_ptr<SharedQueue> QueueShelf::open(
    const std::string& key, const std::function<std::unique_ptr<DurableQueue>()>& open) {
  std::unique_lock lock(mutex_);
  for (auto it = open_.find(key); it != open_.end(); it = open_.find(key)) {
    if (auto held = it->second.lock()) return held;
    closed_.wait(lock);  // its last holder is closing it: its directory is free once done
  }
  auto made = open();  // under the lock: two first opens of one key must not race
  auto* raw = new SharedQueue(std::move(made));
  std::shared_ptr<SharedQueue> shared(raw, [this, key](SharedQueue* q) {
    delete q;  // stops and closes the queue
    std::lock_guard lock(mutex_);
    open_.erase(key);
    closed_.notify_all();
  });
  open_[key] = shared;
  return shared;
}

}  // namespace kghost
