#include "http/connection.hpp"

#include <algorithm>
#include <limits>

#include "http/chunked_stream.hpp"
#include "http/head_checks.hpp"
#include "http/pipeline.hpp"
#include "http/response_head.hpp"

namespace kghost {

void Connection::start() {
  beast::error_code ec;
  socket_.set_option(tcp::no_delay(true), ec);
  socket_.non_blocking(true, ec);  // reads happen only once epoll says there are bytes
  auto ep = socket_.remote_endpoint(ec);
  if (!ec) remote_ = ep.address().to_string();
  wait_for_request();
}

// [sweep] The deadline passed. A handler or filter that has not answered gets the client a
// 504 and the connection lives on; anything else closes it. True when it was closed.
bool Connection::on_deadline() {
  if (current_ && !current_->answered()) {
    // The answer is late: the client gets 504 now; the plugin's answer, if it ever comes,
    // finds the exchange answered and is dropped.
    std::shared_ptr<Exchange> ex = current_;
    ex->time_out();
    return false;
  }
  close();
  return true;
}

// Waiting for the first byte of a request: a drain closes it at once. Bytes that reached the
// kernel but that this thread has not read yet are a request that has begun (in flight from
// its first byte), so they keep the connection open.
bool Connection::idle() {
  if (!idle_) return false;
  beast::error_code ec;
  return socket_.available(ec) == 0 || ec;
}

// Serialises by hand into one reused buffer: for small responses this is much cheaper than
// Beast's serializer, and the format is fixed (status line, our headers, Content-Length).
// Every response, the HTTP layer's own refusals included, goes through here.
void Connection::send(HttpResponse&& r) {
  bool keep = current_ && current_->keep_alive() && !srv_.draining && !close_after_;
  bool head_only = current_ && current_->method() == "HEAD";
  out_.clear();
  write_head(out_, r.status, r.content_type, r.headers,
             current_ ? std::string_view(current_->request_id()) : std::string_view(reject_id_));
  out_ += "\r\nContent-Length: ";
  out_ += std::to_string(r.body.size());
  if (!keep) {
    out_ += "\r\nConnection: close";
  } else if (current_ && current_->version() == 10) {
    out_ += "\r\nConnection: keep-alive";
  }
  out_ += "\r\n\r\n";
  if (!head_only) out_ += r.body;
  expire_in(srv_.cfg.idle_timeout);
  net::async_write(socket_, net::buffer(out_),
                   [self = shared_from_this(), keep](beast::error_code ec, std::size_t) {
                     self->on_written(ec, keep);
                   });
}

void Connection::request_done() {
  if (counted_) {
    counted_ = false;
    --srv_.in_flight;
  }
}

void Connection::close() {
  beast::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  socket_.close(ec);
  idle_ = false;
  request_done();
  current_.reset();
}

void Connection::wait_for_request() {
  if (srv_.draining) return close();
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(srv_.cfg.max_header_bytes));
  parser_->body_limit(std::numeric_limits<std::uint64_t>::max());  // read below, not by Beast
  parser_->eager(false);  // put() stops after the header section
  chunked_.reset();
  body_left_ = 0;
  bytes_in_ = 0;
  if (buffer_.size() > 0) {  // a pipelined request is already here
    begin_request();
    return parse();
  }
  // Idle keep-alive: wait for the first byte of the next request.
  idle_ = true;
  expire_in(srv_.cfg.idle_timeout);
  read_more();
}

// From its first byte a request is in flight: a drain waits for it.
void Connection::begin_request() {
  idle_ = false;
  started_ = Clock::now();
  expire_in(srv_.cfg.header_timeout);  // one deadline for the whole header section
  if (!counted_) {
    counted_ = true;
    ++srv_.in_flight;
  }
}

// Waits for readability, then reads without blocking: unlike async_read_some, no
// speculative recv that fails with EAGAIN on every keep-alive request. Callers set the
// deadline: the header section has one from its first byte, a body one per read.
void Connection::read_more() {
  socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](beast::error_code ec) {
    if (ec) return self->close();
    std::size_t n = self->socket_.read_some(self->buffer_.prepare(16 * 1024), ec);
    if (ec == net::error::would_block || ec == net::error::try_again) return self->read_more();
    if (ec) return self->close();
    self->buffer_.commit(n);
    if (self->idle_) self->begin_request();
    self->parse();
  });
}

// Beast parses the header section (bounded by header_limit); the body is ours to read.
void Connection::parse() {
  if (parser_->is_header_done()) return read_body();
  beast::error_code ec;
  std::size_t n = parser_->put(buffer_.data(), ec);
  const char* head = static_cast<const char*>(buffer_.data().data());
  // Beast may take the request line alone (then says need_more); a fold can follow it.
  bool folded = has_obs_fold(head, n) ||
                (bytes_in_ > 0 && buffer_.size() > 0 && (*head == ' ' || *head == '\t'));
  buffer_.consume(n);
  bytes_in_ += n;
  if (folded)
    return reject(400, "bad_request",
                  "obsolete line folding (a header line starting with a space or tab) is not "
                  "accepted");
  if (ec == http::error::need_more) return read_more();
  if (ec) return on_read_error(ec);
  if (!parser_->is_header_done()) return buffer_.size() > 0 ? parse() : read_more();
  auto& req = parser_->get();
  Refusal refusal = check_host(req, req.version());
  bool chunked = false;
  if (!refusal.status) refusal = check_transfer_encoding(req, req.version(), chunked);
  if (refusal.status) return reject(refusal.status, refusal.code, std::string(refusal.message));
  if (chunked) {
    chunked_.emplace(srv_.cfg.max_body_bytes, srv_.cfg.max_header_bytes);
  } else if (auto len = parser_->content_length()) {
    if (*len > srv_.cfg.max_body_bytes) return reject_too_large();
    body_left_ = *len;
    req.body().reserve(std::min<std::size_t>(body_left_, 64 * 1024));
  }
  if ((chunked_ || body_left_ > 0) && buffer_.size() == 0 && req.version() >= 11) {
    auto expect = req.find(http::field::expect);
    if (expect != req.end() && beast::iequals(expect->value(), "100-continue"))
      return send_continue();
  }
  read_body();
}

// The client waits for this before it sends the body (RFC 9110 §10.1.1).
void Connection::send_continue() {
  static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
  net::async_write(socket_, net::buffer(kContinue.data(), kContinue.size()),
                   [self = shared_from_this()](beast::error_code ec, std::size_t) {
                     if (ec) return self->close();
                     self->read_body();
                   });
}

// Moves body bytes from the read buffer into the request; dispatches once it is complete.
void Connection::read_body() {
  auto& body = parser_->get().body();
  auto data = buffer_.data();
  const char* p = static_cast<const char*>(data.data());
  if (chunked_) {
    std::size_t used = 0;
    auto result = chunked_->feed(p, data.size(), body, used);
    buffer_.consume(used);
    bytes_in_ += used;
    switch (result) {
      case ChunkedDecoder::Result::done:
        return dispatch();
      case ChunkedDecoder::Result::more:
        break;
      case ChunkedDecoder::Result::body_too_large:
        return reject_too_large();
      case ChunkedDecoder::Result::framing_too_large:
        return reject(431, "headers_too_large",
                      "chunk extensions and trailers are larger than " +
                          std::to_string(srv_.cfg.max_header_bytes) + " bytes");
      case ChunkedDecoder::Result::line_too_long:
        return reject(400, "bad_request",
                      "a chunk-size line is longer than " +
                          std::to_string(ChunkedDecoder::kMaxLine) + " bytes");
      case ChunkedDecoder::Result::bad_framing:
        return reject(400, "bad_request", "malformed chunked body");
    }
  } else {
    std::size_t take = static_cast<std::size_t>(std::min<uint64_t>(body_left_, data.size()));
    if (take > 0) body.append(p, take);
    buffer_.consume(take);
    bytes_in_ += take;
    body_left_ -= take;
    if (body_left_ == 0) return dispatch();
  }
  expire_in(srv_.cfg.body_timeout);  // only a gap longer than this closes the connection
  read_more();
}

void Connection::on_read_error(beast::error_code ec) {
  if (ec == http::error::header_limit)
    return reject(431, "headers_too_large",
                  "the request header section is larger than " +
                      std::to_string(srv_.cfg.max_header_bytes) + " bytes");
  if (ec.category() == beast::error_code(http::error::end_of_stream).category() &&
      ec != http::error::end_of_stream && ec != http::error::partial_message) {
    return reject(400, "bad_request", "malformed HTTP request: " + ec.message());
  }
  close();  // EOF, reset, timeout: nobody to answer
}

void Connection::reject_too_large() {
  reject(
      413, "payload_too_large",
      "the body is larger than the limit of " + std::to_string(srv_.cfg.max_body_bytes) + " bytes");
}

// Answers a request the HTTP layer refuses, before reading all of it, and closes the
// connection after a lingering close.
void Connection::reject(uint16_t status, std::string_view code, const std::string& message) {
  close_after_ = true;
  linger_ = true;
  current_.reset();
  reject_id_.clear();
  if (parser_ && parser_->is_header_done()) {
    auto& req = parser_->get();
    if (auto it = req.find("X-Request-Id"); it != req.end()) {
      std::string_view id(it->value().data(), it->value().size());
      if (valid_request_id(id)) reject_id_ = id;
    }
  }
  if (reject_id_.empty()) reject_id_ = new_request_id();
  send(error_response(status, code, message, reject_id_));
}

void Connection::dispatch() {
  auto now = Clock::now();
  expire_at(now + srv_.cfg.handler_timeout);  // for a filter or handler answering later
  current_ = std::make_shared<BeastExchange>(parser_->release(), shared_from_this(), remote_,
                                             started_, bytes_in_);
  std::shared_ptr<Exchange> ex = current_;  // a copy: close() may reset current_
  try {
    ex->start(srv_.pipeline);
  } catch (const std::exception& e) {
    ex->host_failed(e.what());
  }
  if (current_ == ex && !ex->answered() && ex->route() && ex->route()->timeout_ms)
    expire_at(now + std::chrono::milliseconds(ex->route()->timeout_ms));
}

void Connection::on_written(beast::error_code ec, bool keep) {
  request_done();
  if (ec) return close();
  if (!keep) {
    current_.reset();
    // Unread input (a refused body, pipelined requests) would make the close a reset.
    return linger_ || buffer_.size() > 0 ? linger() : close();
  }
  current_.reset();
  wait_for_request();
}

// nginx's lingering close: no more responses, so shut the write side (the client sees the
// end of the answer), then read and drop input for a bounded time and byte count, so that
// closing with unread input does not reset the connection before the client has read.
void Connection::linger() {
  beast::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  buffer_.clear();
  if (srv_.cfg.lingering_timeout.count() == 0 || srv_.cfg.lingering_bytes == 0) return close();
  linger_left_ = srv_.cfg.lingering_bytes;
  expire_in(srv_.cfg.lingering_timeout);
  discard_input();
}

void Connection::discard_input() {
  socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](beast::error_code ec) {
    if (ec) return self->close();
    while (true) {
      // Read into the buffer's spare room and never commit: the bytes are dropped.
      std::size_t n = self->socket_.read_some(self->buffer_.prepare(16 * 1024), ec);
      if (ec == net::error::would_block || ec == net::error::try_again)
        return self->discard_input();
      if (ec || n >= self->linger_left_) return self->close();  // EOF, error or enough
      self->linger_left_ -= n;
    }
  });
}

std::shared_ptr<StreamState> Connection::begin_stream(HttpResponse&& head,
                                                      std::function<void()> on_closed) {
  bool head_only = current_ && current_->method() == "HEAD";
  std::string h;
  write_head(h, head.status, head.content_type, head.headers,
             current_ ? std::string_view(current_->request_id()) : std::string_view());
  h += "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
  request_done();  // a stream does not hold up a drain; it is ended instead
  auto s = start_chunked_stream(shared_from_this(), srv_.cfg.stream_buffer_bytes,
                                std::move(on_closed), std::move(h), head_only);
  srv_.track(s);
  return s;
}

}  // namespace kghost
