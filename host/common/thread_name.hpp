// Names the calling thread, so `top -H`, `perf report --sort comm` and gdb tell the host's
// threads apart (I/O, queue committer, store sweeper...). Linux keeps 15 bytes; longer names
// are cut, never refused.
#pragma once

#include <pthread.h>

#include <string>
#include <string_view>

namespace kghost {

inline void name_this_thread(std::string_view name) {
  std::string cut(name.substr(0, 15));
  pthread_setname_np(pthread_self(), cut.c_str());
}

}  // namespace kghost
