// What a stream carried, and the stream as the plugin sees it: counts the body bytes it
// accepts and reports its end to the stream observers exactly once, whoever ends it (client,
// plugin, host shutdown).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "http/exchange.hpp"

namespace kghost {

// Shared by the plugin's handle and the transport's on_closed.
struct StreamMeter {
  StreamMeter(std::shared_ptr<Exchange> exchange, uint16_t head_status)
      : ex(std::move(exchange)), status(head_status) {}
  std::shared_ptr<Exchange> ex;  // keeps the request readable for the observers
  uint16_t status = 0;
  std::atomic<uint64_t> bytes{0};
  std::atomic<bool> plugin_closing{false}, ended{false};
  void end(StreamEnd reason) {
    if (!ended.exchange(true)) ex->observe_stream_end(status, bytes, reason);
  }
};

class ObservedStream final : public StreamState {
 public:
  ObservedStream(std::shared_ptr<StreamMeter> meter, std::shared_ptr<StreamState> inner)
      : meter_(std::move(meter)), inner_(std::move(inner)) {}
  StreamWrite write(std::string_view data) override;
  void close() override;
  void abort() override { inner_->abort(); }

 private:
  std::shared_ptr<StreamMeter> meter_;
  std::shared_ptr<StreamState> inner_;
};

}  // namespace kghost
