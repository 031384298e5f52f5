// The host's worker pool: runs tasks, bus deliveries and queue consumers off the I/O threads.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace kghost {

class WorkerPool {
 public:
  explicit WorkerPool(std::size_t threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues a job; runs it on one of the pool's threads. Jobs posted after stop() are dropped.
  void post(std::function<void()> job);
  // Finishes the jobs already queued, then joins the threads. Idempotent.
  void stop();
  std::size_t size() const { return threads_.size(); }

 private:
  void run();

  std::mutex mutex_;  // guards jobs_ and stopping_
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace kghost
