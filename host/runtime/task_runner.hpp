// Background tasks: periodic ones on the worker pool, long-running ones on their own threads
// with a stop signal.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/worker_pool.hpp"

namespace kghost {

// Shared by the runner and every long-running task (handed to plugins as kg_stop*).
class StopToken {
 public:
  bool requested() const;
  // Sleeps up to `timeout` or until stop is requested; true if stopped.
  bool wait_for(std::chrono::milliseconds timeout) const;
  void request();

 private:
  mutable std::mutex mutex_;  // guards stopped_
  mutable std::condition_variable cv_;
  bool stopped_ = false;
};

class TaskRunner {
 public:
  explicit TaskRunner(WorkerPool& pool) : pool_(pool) {}
  ~TaskRunner();

  // Before start(): register tasks. A periodic run is skipped while the previous one runs.
  void every(std::string name, std::chrono::milliseconds interval, std::function<void()> fn);
  void run(std::string name, std::function<void(StopToken&)> fn);

  void start();
  // Signals long-running tasks and waits for them and for running periodic ones. Idempotent.
  void stop();

 private:
  struct Periodic {
    std::string name;
    std::chrono::milliseconds interval;
    std::function<void()> fn;
    std::chrono::steady_clock::time_point next;
    bool running = false;
  };
  struct LongRunning {
    std::string name;
    std::function<void(StopToken&)> fn;
  };
  void schedule_loop();

  WorkerPool& pool_;
  StopToken stop_;
  std::mutex mutex_;  // guards periodic_ running flags and active_
  std::condition_variable idle_cv_;
  int active_ = 0;
  std::vector<Periodic> periodic_;
  std::vector<LongRunning> long_running_;
  std::vector<std::thread> threads_;
  std::thread scheduler_;
  bool started_ = false, stopped_ = false;
};

}  // namespace kghost
