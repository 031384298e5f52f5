// The only translation unit that compiles Beast/Asio. Shapes follow Beast's async server
// example: a connection object per socket kept alive by its pending operations, a fresh
// parser per message, a timer on every read.
#include "http/server.hpp"

#include <kghost/plugin.h>

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstring>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

#include "http/chunked.hpp"

namespace kghost {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
// Sockets bound to their io_context's concrete executor: no type-erased executor per operation.
using Socket = net::basic_stream_socket<tcp, net::io_context::executor_type>;
using Clock = std::chrono::steady_clock;

namespace {

class Connection;

// One parsed request handed to the pipeline.
class BeastExchange final : public Exchange {
 public:
  explicit BeastExchange(http::request<http::string_body>&& req) : req_(std::move(req)) {}
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

}  // namespace

namespace {
class Connection;
}

// One I/O thread: its io_context, and the connections it owns for the deadline sweep.
struct IoWorker {
  // Only this thread touches its sockets, so the reactor needs no locks; posts from other
  // threads still go through the (locked) scheduler.
  net::io_context ioc{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  net::executor_work_guard<net::io_context::executor_type> guard{ioc.get_executor()};
  net::steady_timer sweep_timer{ioc};
  std::vector<std::weak_ptr<Connection>> connections;  // touched only on this thread
  std::thread thread;
};

struct HttpServer::Impl {
  Impl(const ServerConfig& c, Pipeline& p, Logger& l) : cfg(c), pipeline(p), log(l) {}

  ServerConfig cfg;
  Pipeline& pipeline;
  Logger& log;
  std::vector<std::unique_ptr<IoWorker>> workers;
  std::unique_ptr<tcp::acceptor> acceptor;  // on workers[0]
  std::unique_ptr<net::steady_timer> accept_retry;
  std::size_t next_worker = 0;
  std::string local;
  std::atomic<bool> draining{false};
  std::atomic<uint64_t> in_flight{0};
  std::atomic<uint64_t> connections{0};
  std::mutex streams_mutex;  // guards streams
  std::vector<std::weak_ptr<StreamState>> streams;

  void accept();
  void sweep(IoWorker& w);
  void track(const std::shared_ptr<StreamState>& s) {
    std::lock_guard lock(streams_mutex);
    std::erase_if(streams, [](auto& w) { return w.expired(); });
    streams.push_back(s);
  }
};

namespace {

class ChunkedStream;

// ASCII case-insensitive equality (Beast 1.74's iequals takes boost::string_view).
bool iequals(std::string_view a, std::string_view b) {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [&](char x, char y) { return lower(x) == lower(y); });
}

// Headers the response writer sets itself; a plugin's copy of one is dropped (never sent twice).
bool writer_owned(std::string_view name) {
  switch (name.size()) {
    case 10:
      return iequals(name, "Connection");
    case 12:
      return iequals(name, "X-Request-Id") || iequals(name, "Content-Type");
    case 14:
      return iequals(name, "Content-Length");
    case 17:
      return iequals(name, "Transfer-Encoding");
    default:
      return false;
  }
}

// Writes the status line, Content-Type, X-Request-Id and the caller's headers (without a
// final CRLF): the one place a response head is formatted.
void write_head(std::string& out, uint16_t status, std::string_view content_type,
                const HeaderList& headers, std::string_view request_id) {
  out += "HTTP/1.1 ";
  char code[4] = {static_cast<char>('0' + status / 100 % 10),
                  static_cast<char>('0' + status / 10 % 10), static_cast<char>('0' + status % 10),
                  ' '};
  out.append(code, 4);
  auto reason = http::obsolete_reason(static_cast<http::status>(status));
  out.append(reason.data(), reason.size());
  for (auto& [name, value] : headers) {
    if (content_type.empty() && name.size() == 12 && iequals(name, "Content-Type"))
      content_type = value;
  }
  out += "\r\nContent-Type: ";
  out += content_type.empty() ? std::string_view("application/json") : content_type;
  out += "\r\nX-Request-Id: ";
  out += request_id;
  for (auto& [name, value] : headers) {
    if (writer_owned(name) || name.empty() || name.find_first_of(":\r\n") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos)
      continue;  // never let a header split the response or repeat one of ours
    out += "\r\n";
    out += name;
    out += ": ";
    out += value;
  }
}

// The request head checks Beast leaves to us. Returns the reason a request must be refused.
struct Refusal {
  uint16_t status = 0;  // 0: acceptable
  std::string_view code;
  std::string_view message;
};

// obs-fold (RFC 9112 §5.2): a line of the header section that starts with SP or HTAB.
bool has_obs_fold(const char* p, std::size_t n) {
  if (n == 0) return false;
  for (const char* end = p + n; (p = static_cast<const char*>(std::memchr(p, '\n', end - p)));) {
    if (++p == end) break;
    if (*p == ' ' || *p == '\t') return true;
  }
  return false;
}

// Host = uri-host [ ":" port ] (RFC 9110 §7.2), as characters.
bool valid_host(std::string_view v) {
  return std::all_of(v.begin(), v.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("-._~!$&'()*+,;=:[]%").find(c) != std::string_view::npos;
  });
}

template <class Fields>
Refusal check_host(const Fields& req, unsigned version) {
  auto hosts = req.equal_range(http::field::host);
  std::size_t count = 0;
  for (auto it = hosts.first; it != hosts.second; ++it) {
    if (++count > 1 || !valid_host({it->value().data(), it->value().size()}))
      return {400, "bad_request", "the request needs exactly one valid Host header"};
  }
  if (count == 0 && version >= 11)
    return {400, "bad_request", "an HTTP/1.1 request needs exactly one valid Host header"};
  return {};
}

// Transfer-Encoding (RFC 9112 §6.1): only "chunked", as the final and only coding, frames a
// body we can read; anything else would be read differently by someone, so it is refused.
template <class Fields>
Refusal check_transfer_encoding(const Fields& req, unsigned version, bool& chunked) {
  chunked = false;
  auto range = req.equal_range(http::field::transfer_encoding);
  if (range.first == range.second) return {};
  static constexpr Refusal kBad{400, "bad_request",
                                "Transfer-Encoding must end with chunked, once, without "
                                "Content-Length, in HTTP/1.1"};
  if (version < 11 || req.count(http::field::content_length) > 0) return kBad;
  bool unsupported = false;
  for (auto it = range.first; it != range.second; ++it) {
    std::string_view list(it->value().data(), it->value().size());
    while (!list.empty()) {
      auto comma = list.find(',');
      std::string_view coding = list.substr(0, comma);
      coding = coding.substr(0, coding.find(';'));
      while (!coding.empty() && (coding.front() == ' ' || coding.front() == '\t'))
        coding.remove_prefix(1);
      while (!coding.empty() && (coding.back() == ' ' || coding.back() == '\t'))
        coding.remove_suffix(1);
      if (!coding.empty()) {
        if (chunked) return kBad;  // a coding after chunked: the body has no end we can find
        if (iequals(coding, "chunked"))
          chunked = true;
        else
          unsupported = true;
      }
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    }
  }
  if (!chunked) return kBad;
  if (unsupported)
    return {501, "not_implemented",
            "only the chunked transfer coding is implemented; send the body without gzip, "
            "deflate or other transfer codings"};
  return {};
}

class Connection final : public Transport, public std::enable_shared_from_this<Connection> {
 public:
  Connection(Socket&& socket, HttpServer::Impl& srv) : socket_(std::move(socket)), srv_(srv) {
    ++srv_.connections;
  }
  ~Connection() override {
    request_done();
    --srv_.connections;
  }

  void start() {
    beast::error_code ec;
    socket_.set_option(tcp::no_delay(true), ec);
    socket_.non_blocking(true, ec);  // reads happen only once epoll says there are bytes
    auto ep = socket_.remote_endpoint(ec);
    if (!ec) remote_ = ep.address().to_string();
    wait_for_request();
  }

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
  bool on_deadline() {
    if (current_ && current_->phase != Exchange::Phase::responded) {
      handler_timed_out();
      return false;
    }
    close();
    return true;
  }
  // Waiting for the first byte of a request: a drain closes it at once. Bytes that reached the
  // kernel but that this thread has not read yet are a request that has begun (in flight from
  // its first byte), so they keep the connection open.
  bool idle() {
    if (!idle_) return false;
    beast::error_code ec;
    return socket_.available(ec) == 0 || ec;
  }

  // Serialises by hand into one reused buffer: for small responses this is much cheaper than
  // Beast's serializer, and the format is fixed (status line, our headers, Content-Length).
  // Every response, the HTTP layer's own refusals included, goes through here.
  void send(HttpResponse&& r) override {
    bool keep = current_ && current_->keep_alive() && !srv_.draining && !close_after_;
    bool head_only = current_ && current_->method() == "HEAD";
    out_.clear();
    write_head(out_, r.status, r.content_type, r.headers,
               current_ ? std::string_view(current_->request_id) : std::string_view(reject_id_));
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

  std::shared_ptr<StreamState> begin_stream(HttpResponse&& head,
                                            std::function<void()> on_closed) override;

  Socket& socket() { return socket_; }
  HttpServer::Impl& server() { return srv_; }
  void request_done() {
    if (counted_) {
      counted_ = false;
      --srv_.in_flight;
    }
  }
  // Also lets go of the current exchange, which points back at this connection.
  void close() {
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    socket_.close(ec);
    idle_ = false;
    request_done();
    current_.reset();
  }

 private:
  void wait_for_request() {
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
  void begin_request() {
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
  void read_more() {
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
  void parse() {
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
  void send_continue() {
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    net::async_write(socket_, net::buffer(kContinue.data(), kContinue.size()),
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       if (ec) return self->close();
                       self->read_body();
                     });
  }

  // Moves body bytes from the read buffer into the request; dispatches once it is complete.
  void read_body() {
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

  void on_read_error(beast::error_code ec) {
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

  void reject_too_large() {
    reject(413, "payload_too_large",
           "the body is larger than the limit of " + std::to_string(srv_.cfg.max_body_bytes) +
               " bytes");
  }

  // Answers a request the HTTP layer refuses, before reading all of it, and closes the
  // connection after a lingering close.
  void reject(uint16_t status, std::string_view code, const std::string& message) {
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

  void dispatch() {
    auto now = Clock::now();
    expire_at(now + srv_.cfg.handler_timeout);  // for a filter or handler answering later
    current_ = std::make_shared<BeastExchange>(parser_->release());
    current_->transport = shared_from_this();
    current_->remote_addr = remote_;
    current_->started = started_;
    current_->request_bytes = bytes_in_;
    std::shared_ptr<Exchange> ex = current_;  // a copy: close() may reset current_
    try {
      srv_.pipeline.handle(ex);
    } catch (const std::exception& e) {
      srv_.log.log(LogLevel::error, "host", std::string("request failed: ") + e.what(),
                   ex->request_id);
      srv_.pipeline.finish(
          *ex, error_response(500, "internal_error", "the host failed", ex->request_id));
    }
    if (current_ == ex && ex->phase != Exchange::Phase::responded && ex->match.route &&
        ex->match.route->timeout_ms)
      expire_at(now + std::chrono::milliseconds(ex->match.route->timeout_ms));
  }

  // The answer is late: the client gets 504 now; the plugin's answer, if it ever comes, finds
  // the exchange answered and is dropped (Pipeline::complete).
  void handler_timed_out() {
    std::shared_ptr<Exchange> ex = current_;
    srv_.log.log(LogLevel::warn, ex->match.route ? ex->match.route->owner : "host",
                 std::string(ex->method()) + " " +
                     (ex->match.route ? ex->match.route->path : std::string(ex->path)) +
                     " did not answer in time: 504",
                 ex->request_id, ex->trace_id());
    srv_.pipeline.finish(*ex, error_response(504, "gateway_timeout",
                                             "the handler did not answer in time", ex->request_id));
  }

  void on_written(beast::error_code ec, bool keep) {
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
  void linger() {
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    buffer_.clear();
    if (srv_.cfg.lingering_timeout.count() == 0 || srv_.cfg.lingering_bytes == 0) return close();
    linger_left_ = srv_.cfg.lingering_bytes;
    expire_in(srv_.cfg.lingering_timeout);
    discard_input();
  }

  void discard_input() {
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

// A chunked response: writes from any thread are buffered (bounded) and flushed on the
// connection's thread; a read on the socket notices the client leaving.
class ChunkedStream final : public StreamState, public std::enable_shared_from_this<ChunkedStream> {
 public:
  ChunkedStream(std::shared_ptr<Connection> conn, std::size_t bound,
                std::function<void()> on_closed)
      : conn_(std::move(conn)), bound_(bound), on_closed_(std::move(on_closed)) {}

  // For HEAD only the head goes out; the stream then ends as if the client had gone.
  void start(std::string head, bool head_only) {
    out_ = std::move(head);
    flushing_ = true;
    head_only_ = head_only;
    write_out();
    watch_client();
  }

  int32_t write(std::string_view data) override {
    if (data.empty()) return KG_OK;
    std::lock_guard lock(mutex_);
    if (gone_ || closing_) return KG_ERR_CLOSED;
    if (pending_.size() + data.size() > bound_) return KG_ERR_FULL;
    char size_line[24];
    int n = std::snprintf(size_line, sizeof size_line, "%zx\r\n", data.size());
    pending_.append(size_line, static_cast<std::size_t>(n));
    pending_.append(data);
    pending_.append("\r\n");
    schedule_flush_locked();
    return KG_OK;
  }

  void close() override {
    notify_closed();  // the plugin is letting go: tell it now if nobody has yet
    std::lock_guard lock(mutex_);
    if (closing_) return;
    closing_ = true;
    schedule_flush_locked();
  }

  void abort() override {
    net::post(conn_->socket().get_executor(), [self = shared_from_this()] { self->client_gone(); });
  }

 private:
  void schedule_flush_locked() {
    if (flushing_) return;
    flushing_ = true;
    net::post(conn_->socket().get_executor(), [self = shared_from_this()] { self->flush(); });
  }

  void flush() {
    {
      std::lock_guard lock(mutex_);
      out_.swap(pending_);
      pending_.clear();
      if (closing_ && !final_sent_ && !gone_) {
        out_.append("0\r\n\r\n");
        final_sent_ = true;
      }
      if (out_.empty() || gone_) {
        flushing_ = false;
        return;
      }
    }
    write_out();
  }

  void write_out() {
    conn_->expire_never();
    net::async_write(conn_->socket(), net::buffer(out_),
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       if (ec || self->head_only_) return self->client_gone();
                       bool done, more;
                       {
                         std::lock_guard lock(self->mutex_);
                         done = self->final_sent_;
                         more = !self->pending_.empty() || (self->closing_ && !self->final_sent_);
                         if (!more) self->flushing_ = false;
                       }
                       if (done && !more) return self->conn_->close();
                       if (more) self->flush();
                     });
  }

  void watch_client() {
    conn_->socket().async_read_some(net::buffer(scratch_),
                                    [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                      if (ec) return self->client_gone();
                                      self->watch_client();  // ignore anything the client sends
                                    });
  }

  void client_gone() {
    {
      std::lock_guard lock(mutex_);
      if (gone_) return;
      gone_ = true;
      pending_.clear();
    }
    conn_->close();
    notify_closed();
  }

  // Runs on_closed at most once. Under callback_mutex_, so that a close() on another thread
  // waits for a callback in progress: once stream_close returns, the plugin may free what the
  // callback touches. Recursive, because the callback may itself close the stream.
  void notify_closed() {
    std::lock_guard lock(callback_mutex_);
    auto fn = std::move(on_closed_);
    on_closed_ = nullptr;
    if (fn) fn();
  }

  std::shared_ptr<Connection> conn_;
  std::size_t bound_;
  std::mutex mutex_;  // guards pending_ and the flags
  std::string pending_;
  std::string out_;                      // being written; only touched on the connection's thread
  std::recursive_mutex callback_mutex_;  // guards on_closed_ and its call
  std::function<void()> on_closed_;
  bool flushing_ = false, closing_ = false, final_sent_ = false, gone_ = false;
  bool head_only_ = false;  // set before the first write; read on the connection's thread
  char scratch_[512];
};

std::shared_ptr<StreamState> Connection::begin_stream(HttpResponse&& head,
                                                      std::function<void()> on_closed) {
  bool head_only = current_ && current_->method() == "HEAD";
  std::string h;
  write_head(h, head.status, head.content_type, head.headers,
             current_ ? std::string_view(current_->request_id) : std::string_view());
  h += "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
  auto s = std::make_shared<ChunkedStream>(shared_from_this(), srv_.cfg.stream_buffer_bytes,
                                           std::move(on_closed));
  srv_.track(s);
  request_done();  // a stream does not hold up a drain; it is ended instead
  s->start(std::move(h), head_only);
  return s;
}

}  // namespace

void HttpServer::Impl::accept() {
  acceptor->async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor->is_open()) return;
    if (ec) {
      // Out of descriptors or similar: keep serving the connections we have, retry shortly.
      log.warn("accept failed: " + ec.message() + "; retrying in 100 ms");
      accept_retry->expires_after(std::chrono::milliseconds(100));
      accept_retry->async_wait([this](beast::error_code e) {
        if (!e) accept();
      });
      return;
    }
    // Hand the descriptor to the next worker, which registers it with its own reactor.
    auto protocol = acceptor->local_endpoint().protocol();
    auto fd = socket.release(ec);
    IoWorker& w = *workers[next_worker];
    next_worker = (next_worker + 1) % workers.size();
    if (!ec) {
      net::post(w.ioc, [this, &w, protocol, fd] {
        beast::error_code e;
        Socket s(w.ioc.get_executor());
        s.assign(protocol, fd, e);
        if (e) return;
        auto conn = std::make_shared<Connection>(std::move(s), *this);
        w.connections.push_back(conn);
        conn->start();
      });
    }
    accept();
  });
}

void HttpServer::Impl::sweep(IoWorker& w) {
  auto now = Clock::now();
  std::erase_if(w.connections, [now](std::weak_ptr<Connection>& weak) {
    auto c = weak.lock();
    if (!c) return true;
    if (!c->expired(now)) return false;
    // A close makes its pending read or write complete with an error and let go of it.
    return c->on_deadline();
  });
  w.sweep_timer.expires_after(std::chrono::milliseconds(250));
  w.sweep_timer.async_wait([this, &w](beast::error_code ec) {
    if (!ec) sweep(w);
  });
}

HttpServer::HttpServer(const ServerConfig& config, Pipeline& pipeline, Logger& log)
    : impl_(std::make_unique<Impl>(config, pipeline, log)) {}

HttpServer::~HttpServer() { stop(); }

void HttpServer::start() {
  auto& s = *impl_;
  unsigned n = s.cfg.threads ? s.cfg.threads : std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < n; ++i) s.workers.push_back(std::make_unique<IoWorker>());
  auto listen = parse_listen(s.cfg.listen);  // checked with the config; this is a backstop
  beast::error_code ec;
  auto addr = net::ip::make_address(listen && !listen->host.empty() ? listen->host : "0.0.0.0", ec);
  if (!listen || ec)
    throw std::runtime_error("server.listen \"" + s.cfg.listen +
                             "\" is not HOST:PORT with an IP address and a port 0-65535");
  auto port = listen->port;
  tcp::endpoint ep(addr, static_cast<unsigned short>(port));
  auto& first = s.workers[0]->ioc;
  s.acceptor = std::make_unique<tcp::acceptor>(first);
  s.accept_retry = std::make_unique<net::steady_timer>(first);
  s.acceptor->open(ep.protocol(), ec);
  if (!ec) s.acceptor->set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor->bind(ep, ec);
  if (!ec) s.acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("cannot listen on " + s.cfg.listen + ": " + ec.message());
  auto local = s.acceptor->local_endpoint();
  s.local = (local.address().is_v6() ? "[" + local.address().to_string() + "]"
                                     : local.address().to_string()) +
            ":" + std::to_string(local.port());
  s.accept();
  for (auto& w : s.workers) {
    s.sweep(*w);
    w->thread = std::thread([io = &w->ioc] { io->run(); });
  }
}

std::string HttpServer::local_address() const { return impl_->local; }

bool HttpServer::drain(std::chrono::milliseconds timeout) {
  auto& s = *impl_;
  s.draining = true;
  if (s.acceptor)
    net::post(s.workers[0]->ioc, [&s] {
      beast::error_code ec;
      s.acceptor->close(ec);
    });
  // Idle keep-alive connections close now; a request that has begun is finished.
  for (auto& w : s.workers)
    net::post(w->ioc, [&w = *w] {
      for (auto& weak : w.connections)
        if (auto c = weak.lock(); c && c->idle()) c->close();
    });
  {
    std::lock_guard lock(s.streams_mutex);
    for (auto& w : s.streams)
      if (auto st = w.lock()) st->abort();
    s.streams.clear();
  }
  // An abort runs on its stream's I/O thread (it calls the plugin's on_closed there). A marker
  // posted to every I/O thread after the aborts runs after them: once all markers ran, every
  // on_closed has, before the host stops the plugins and the I/O threads.
  auto aborted = std::make_shared<std::atomic<std::size_t>>(0);
  for (auto& w : s.workers) net::post(w->ioc, [aborted] { aborted->fetch_add(1); });
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while ((s.in_flight.load() > 0 || aborted->load() < s.workers.size()) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return s.in_flight.load() == 0;
}

void HttpServer::stop() {
  auto& s = *impl_;
  for (auto& w : s.workers) {
    w->guard.reset();
    w->ioc.stop();
  }
  for (auto& w : s.workers)
    if (w->thread.joinable()) w->thread.join();
  s.acceptor.reset();
  s.accept_retry.reset();
  s.workers.clear();  // destroys the connections still waiting
}

uint64_t HttpServer::in_flight() const { return impl_->in_flight.load(); }
uint64_t HttpServer::open_connections() const { return impl_->connections.load(); }

}  // namespace kghost
