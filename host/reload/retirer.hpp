// Where generations that nothing serves any more are stopped and destroyed: one thread of its
// own, so that the last reference to a generation may drop anywhere (an I/O thread finishing a
// request, a plugin completing a deferred answer) without running plugin stop hooks there, and
// so that generations die one at a time.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "plugins/generation.hpp"

namespace kghost {

class Retirer {
 public:
  Retirer();
  ~Retirer();  // finish()
  Retirer(const Retirer&) = delete;
  Retirer& operator=(const Retirer&) = delete;

  // [any] What Generation::make takes: deletes the generation on the retiring thread (at once
  // on the caller's after finish()).
  Generation::Retire retire();
  // [any] Returns once every generation handed over before the call is deleted.
  void flush();
  // Deletes what is queued and stops the thread. Idempotent.
  void finish();

 private:
  void run();

  std::mutex mutex_;  // guards the three below
  std::condition_variable wake_, done_;
  std::deque<Generation*> queue_;
  uint64_t handed_ = 0, deleted_ = 0;
  bool finishing_ = false;
  std::thread thread_;
};

}  // namespace kghost
