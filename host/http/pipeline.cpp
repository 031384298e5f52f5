#include "http/pipeline.hpp"

#include "http/stream_meter.hpp"

namespace kghost {

Pipeline::Pipeline(Logger& log) : log_(log) {
  publish(RouteTable::Builder().build());  // an empty table until the set-up is published
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
