// One client connection (Beast parses the request head; the body, limits, deadlines and the
// response writing are ours): reads a request, hands it to its Exchange, writes the answer,
// and reads the next one (keep-alive) or closes after a lingering close.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "http/chunked.hpp"
#include "http/exchange.hpp"
#include "http/server_state.hpp"

namespace kghost {

// One parsed request handed to the pipeline.
class BeastExchange final : public Exchange {
 public:
  BeastExchange(http::request<http::string_body>&& req, std::shared_ptr<Transport> transport,
                std::string remote_addr, Clock::time_point started, uint64_t request_bytes)
      : Exchange(std::move(transport), std::move(remote_addr), started, request_bytes),
        req_(std::move(req)) {}
  std::string_view method() const override {
    auto m = req_.method_string();
    return {m.data(), m.size()};
  }
  std::string_view target() const override {
    auto t = req_.target();
    return {t.data(), t.size()};
  }
  std::string_view body() const override { return req_.body(); }
  std::optional<std::string_view> header(std::string_view name, std::size_t index) const override {
    auto range = req_.equal_range(beast::string_view(name.data(), name.size()));
    for (auto it = range.first; it != range.second; ++it) {
      if (index-- == 0) return std::string_view(it->value().data(), it->value().size());
    }
    return std::nullopt;
  }
  bool keep_alive() const { return req_.keep_alive(); }
  unsigned version() const { return req_.version(); }

 private:
  http::request<http::string_body> req_;
};

class Connection final : public Transport, public std::enable_shared_from_this<Connection> {
 public:
  Connection(Socket&& socket, HttpServer::Impl& srv) : socket_(std::move(socket)), srv_(srv) {
    ++srv_.connections;
  }
  ~Connection() override {
    request_done();
    --srv_.connections;
  }

  void start();

  void post(std::function<void()> fn) override {
    net::post(socket_.get_executor(), [self = shared_from_this(), fn = std::move(fn)] { fn(); });
  }

  // Deadlines are plain time points checked by the worker's sweep (every 250 ms) instead of
  // a timer armed per operation: no timer-queue or timerfd work on the request path.
  void expire_at(Clock::time_point t) { deadline_ = t; }
  void expire_in(std::chrono::seconds d) { deadline_ = Clock::now() + d; }
  void expire_never() { deadline_ = Clock::time_point::max(); }
  bool expired(Clock::time_point now) const { return now >= deadline_; }
  // [sweep] The deadline passed. A handler or filter that has not answered gets the client a
  // 504 and the connection lives on; anything else closes it. True when it was closed.
  bool on_deadline();
  // Waiting for the first byte of a request: a drain closes it at once. Bytes that reached the
  // kernel but that this thread has not read yet are a request that has begun (in flight from
  // its first byte), so they keep the connection open.
  bool idle();

  // Serialises by hand into one reused buffer: for small responses this is much cheaper than
  // Beast's serializer, and the format is fixed (status line, our headers, Content-Length).
  // Every response, the HTTP layer's own refusals included, goes through here.
  void send(HttpResponse&& r) override;

  std::shared_ptr<StreamState> begin_stream(HttpResponse&& head,
                                            std::function<void()> on_closed) override;

  Socket& socket() { return socket_; }
  void request_done();
  // Also lets go of the current exchange, which points back at this connection.
  void close();

 private:
  void wait_for_request();

  // From its first byte a request is in flight: a drain waits for it.
  void begin_request();

  // Waits for readability, then reads without blocking: unlike async_read_some, no
  // speculative recv that fails with EAGAIN on every keep-alive request. Callers set the
  // deadline: the header section has one from its first byte, a body one per read.
  void read_more();

  // Beast parses the header section (bounded by header_limit); the body is ours to read.
  void parse();

  // The client waits for this before it sends the body (RFC 9110 §10.1.1).
  void send_continue();

  // Moves body bytes from the read buffer into the request; dispatches once it is complete.
  void read_body();

  void on_read_error(beast::error_code ec);

  void reject_too_large();

  // Answers a request the HTTP layer refuses, before reading all of it, and closes the
  // connection after a lingering close.
  void reject(uint16_t status, std::string_view code, const std::string& message);

  void dispatch();

  void on_written(beast::error_code ec, bool keep);

  // nginx's lingering close: no more responses, so shut the write side (the client sees the
  // end of the answer), then read and drop input for a bounded time and byte count, so that
  // closing with unread input does not reset the connection before the client has read.
  void linger();

  void discard_input();

  Socket socket_;
  Clock::time_point deadline_ = Clock::time_point::max();
  HttpServer::Impl& srv_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<ChunkedDecoder> chunked_;  // the body is chunked
  uint64_t body_left_ = 0;                 // Content-Length bytes still to read
  std::string out_;                        // the response being written
  std::shared_ptr<BeastExchange> current_;
  std::string remote_;
  std::string reject_id_;  // the request id of a refusal (no exchange exists for it)
  std::chrono::steady_clock::time_point started_;
  uint64_t bytes_in_ = 0;
  std::size_t linger_left_ = 0;
  bool close_after_ = false;
  bool linger_ = false;
  bool counted_ = false;
  bool idle_ = false;
};

}  // namespace kghost
