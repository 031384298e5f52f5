// Durable queues outlive the plugin instances that use them: a reload may re-create a plugin
// while its old instance still drains, and both must reach the same queue (its directory is
// locked by whoever has it open). The shelf keeps one queue open per (plugin, name) while any
// instance holds it; its deliveries go to one instance's consumer at a time, and a new
// instance's consumer takes over only once the old one's delivery in progress has returned, so
// no entry reaches both and none is lost. Consumers take one entry or a batch (consume_batch):
// the queue hands out batches sized for the active consumer.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/durable_queue.hpp"

namespace kghost {

class SharedQueue {
 public:
  explicit SharedQueue(std::unique_ptr<DurableQueue> queue) : queue_(std::move(queue)) {}
  ~SharedQueue() { queue_->stop(); }
  SharedQueue(const SharedQueue&) = delete;
  SharedQueue& operator=(const SharedQueue&) = delete;

  DurableQueue& queue() { return *queue_; }
  // [any] `owner`'s consumer, delivered to once activate(owner) ran: one entry at a time, or
  // batches of up to max_batch entries.
  void offer(const void* owner, DurableQueue::Consumer consumer);
  void offer(const void* owner, std::size_t max_batch, DurableQueue::BatchConsumer consumer);
  // [control] `owner`'s consumer (if it offered one) takes over from the next delivery, which
  // starts only after the one in progress returned; the first activation starts delivery.
  void activate(const void* owner);
  // [control, never from a consumer] `owner` stops: nothing is delivered to it from now on
  // (waits for its delivery in progress). Entries wait for the next consumer.
  void release(const void* owner);

 private:
  struct Offer {
    std::size_t max_batch = 1;
    DurableQueue::BatchConsumer consumer;
  };
  void deliver(const std::vector<QueueEntry>& batch, std::vector<DurableQueue::Delivery>& out);

  std::unique_ptr<DurableQueue> queue_;
  std::mutex mutex_;  // guards everything below
  std::condition_variable idle_;
  bool consuming_ = false;
  const void* delivering_to_ = nullptr;  // whose consumer runs now
  const void* active_owner_ = nullptr;
  Offer active_;
  std::map<const void*, Offer> offered_;
};

class QueueShelf {
 public:
  // The open queue named `key`, or a new one made by `open` (which may throw); the queue is
  // stopped and closed when the last holder lets go.
  std::shared_ptr<SharedQueue> open(const std::string& key,
                                    const std::function<std::unique_ptr<DurableQueue>()>& open);

 private:
  std::mutex mutex_;  // guards open_
  std::condition_variable closed_;
  std::map<std::string, std::weak_ptr<SharedQueue>> open_;  // until its close has finished
};

}  // namespace kghost
