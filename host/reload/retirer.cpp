#include "reload/retirer.hpp"

#include "common/thread_name.hpp"

namespace kghost {

Retirer::Retirer()
    : thread_([this] {
        name_this_thread("kg-retire");
        run();
      }) {}

Retirer::~Retirer() { finish(); }

Generation::Retire Retirer::retire() {
  return [this](Generation* g) {
    {
      std::lock_guard lock(mutex_);
      if (thread_.joinable() && !finishing_) {
        queue_.push_back(g);
        ++handed_;
        wake_.notify_one();
        return;
      }
    }
    delete g;  // after finish: the host is stopping on this thread
  };
}

void Retirer::flush() {
  std::unique_lock lock(mutex_);
  uint64_t target = handed_;
  done_.wait(lock, [&] { return deleted_ >= target || !thread_.joinable(); });
}

void Retirer::finish() {
  {
    std::lock_guard lock(mutex_);
    if (finishing_) return;
    finishing_ = true;
    wake_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
}

void Retirer::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return !queue_.empty() || finishing_; });
    if (queue_.empty()) return;
    Generation* g = queue_.front();
    queue_.pop_front();
    lock.unlock();
    delete g;  // stops and destroys the instances only it held
    lock.lock();
    ++deleted_;
    done_.notify_all();
  }
}

}  // namespace kghost
