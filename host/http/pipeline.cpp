#include "http/pipeline.hpp"

#include "http/stream_meter.hpp"

namespace kghost {

Pipeline::Pipeline(Logger& log) : log_(log) {
  publish(RouteTable::Builder().build());  // an empty table until the set-up is published
}

void Pipeline::publish(std::shared_ptr<const RouteTable> table) {
  static std::atomic<uint64_t> published{0};  // so that a cached table never outlives its pipeline
  live_.store(std::move(table));
  generation_.store(published.fetch_add(1) + 1, std::memory_order_release);
}

std::shared_ptr<const RouteTable> Pipeline::table() const {
  struct Local {
    uint64_t generation = 0;
    std::shared_ptr<const RouteTable> table;
  };
  thread_local Local local;
  uint64_t generation = generation_.load(std::memory_order_acquire);
  if (local.generation != generation) {
    // A count of this thread's own (a holder of the live reference) that aliases the table.
    auto holder = std::make_shared<std::shared_ptr<const RouteTable>>(live_.load());
    const RouteTable* t = holder->get();
    local.table = std::shared_ptr<const RouteTable>(std::move(holder), t);
    local.generation = generation;
  }
  return local.table;
}

void Pipeline::track(const std::shared_ptr<StreamMeter>& stream) {
  std::lock_guard lock(streams_mutex_);
  if (streams_.size() >= 2 * streams_pruned_at_ + 64) {  // amortised: drop ended streams
    std::erase_if(streams_, [](const auto& w) { return w.expired(); });
    streams_pruned_at_ = streams_.size();
  }
  streams_.push_back(stream);
}

void Pipeline::end_streams() {
  std::vector<std::weak_ptr<StreamMeter>> open;
  {
    std::lock_guard lock(streams_mutex_);
    open.swap(streams_);
  }
  for (auto& w : open)
    if (auto m = w.lock()) m->end(StreamEnd::host_shutdown);
}

}  // namespace kghost
