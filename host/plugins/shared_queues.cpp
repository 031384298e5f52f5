#include "plugins/shared_queues.hpp"

namespace kghost {

void SharedQueue::offer(const void* owner, DurableQueue::Consumer consumer) {
  std::lock_guard lock(mutex_);
  offered_[owner] = std::move(consumer);
}

void SharedQueue::activate(const void* owner) {
  std::unique_lock lock(mutex_);
  auto it = offered_.find(owner);
  if (it == offered_.end()) return;
  // The queue delivers one entry at a time, so the next delivery (to the new consumer) starts
  // only after the one in progress (to the old) has returned.
  active_ = it->second;
  active_owner_ = owner;
  if (std::exchange(consuming_, true)) return;
  lock.unlock();
  queue_->consume([this](const QueueEntry& e, std::string& error) { return deliver(e, error); });
}

void SharedQueue::release(const void* owner) {
  std::unique_lock lock(mutex_);
  offered_.erase(owner);
  if (active_owner_ == owner) {
    active_ = nullptr;
    active_owner_ = nullptr;
  }
  idle_.wait(lock, [&] { return delivering_to_ != owner; });  // ends: nothing new reaches it
}

DurableQueue::Outcome SharedQueue::deliver(const QueueEntry& entry, std::string& error) {
  DurableQueue::Consumer consumer;
  {
    std::lock_guard lock(mutex_);
    if (!active_) {
      error = "no consumer: its plugin is being reloaded or removed";
      return DurableQueue::Outcome::retry;
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
  return consumer(entry, error);
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
