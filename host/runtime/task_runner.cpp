#include "runtime/task_runner.hpp"

#include <algorithm>

#include "common/thread_name.hpp"

namespace kghost {

bool StopToken::requested() const {
  std::lock_guard lock(mutex_);
  return stopped_;
}

bool StopToken::wait_for(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return cv_.wait_for(lock, timeout, [&] { return stopped_; });
}

void StopToken::request() {
  {
    std::lock_guard lock(mutex_);
    stopped_ = true;
  }
  cv_.notify_all();
}

TaskRunner::~TaskRunner() { stop(); }

void TaskRunner::every(std::string name, std::chrono::milliseconds interval,
                       std::function<void()> fn) {
  periodic_.push_back(Periodic{
      std::move(name), std::max(interval, std::chrono::milliseconds(1)), std::move(fn), {}, false});
}

void TaskRunner::run(std::string name, std::function<void(StopToken&)> fn) {
  long_running_.push_back(LongRunning{std::move(name), std::move(fn)});
}

void TaskRunner::start() {
  if (started_) return;
  started_ = true;
  auto now = std::chrono::steady_clock::now();
  for (auto& p : periodic_) p.next = now + p.interval;
  for (auto& l : long_running_)
    threads_.emplace_back([this, &l] {
      name_this_thread("kg-task");
      l.fn(stop_);
    });
  if (!periodic_.empty())
    scheduler_ = std::thread([this] {
      name_this_thread("kg-tasks-tick");
      schedule_loop();
    });
}

void TaskRunner::schedule_loop() {
  while (true) {
    auto now = std::chrono::steady_clock::now();
    auto wake = now + std::chrono::seconds(1);
    {
      std::lock_guard lock(mutex_);
      for (auto& p : periodic_) {
        if (!p.running && p.next <= now) {
          p.running = true;
          ++active_;
          pool_.post([this, &p] {
            p.fn();
            std::lock_guard l(mutex_);
            p.running = false;
            p.next = std::chrono::steady_clock::now() + p.interval;
            --active_;
            idle_cv_.notify_all();
          });
        }
        if (!p.running) wake = std::min(wake, p.next);
      }
    }
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(wake - now);
    if (stop_.wait_for(
            std::clamp(wait, std::chrono::milliseconds(1), std::chrono::milliseconds(50))))
      return;
  }
}

void TaskRunner::stop() {
  if (stopped_) return;
  stopped_ = true;
  stop_.request();
  if (scheduler_.joinable()) scheduler_.join();
  {
    std::unique_lock lock(mutex_);
    idle_cv_.wait(lock, [&] { return active_ == 0; });
  }
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

}  // namespace kghost
