#include "http/stream_meter.hpp"

namespace kghost {

StreamWrite ObservedStream::write(std::string_view data) {
  StreamWrite st = inner_->write(data);
  if (st == StreamWrite::accepted) meter_->bytes += data.size();
  return st;
}

void ObservedStream::close() {
  meter_->plugin_closing = true;
  inner_->close();  // runs on_closed (and so StreamMeter::end) unless the client left first
  meter_->end(StreamEnd::closed_by_plugin);
}

}  // namespace kghost
