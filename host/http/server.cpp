// The only translation unit that compiles Beast/Asio. Shapes follow Beast's async server
// example: a connection object per socket kept alive by its pending operations, a fresh
// parser per message, a timer on every read.
#include "http/server.hpp"

#include <kghost/plugin.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <mutex>
#include <thread>
#include <vector>

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

class Connection final : public Transport, public std::enable_shared_from_this<Connection> {
 public:
  Connection(Socket&& socket, HttpServer::Impl& srv) : socket_(std::move(socket)), srv_(srv) {
    ++srv_.connections;
  }
  ~Connection() override { --srv_.connections; }

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
  void expire_in(std::chrono::seconds d) { deadline_ = Clock::now() + d; }
  void expire_never() { deadline_ = Clock::time_point::max(); }
  bool expired(Clock::time_point now) const { return now >= deadline_; }

  // Serialises by hand into one reused buffer: for small responses this is much cheaper than
  // Beast's serializer, and the format is fixed (status line, our headers, Content-Length).
  void send(HttpResponse&& r) override {
    bool keep = current_ && current_->keep_alive() && !srv_.draining && !close_after_;
    bool head_only = current_ && current_->method() == "HEAD";
    out_.clear();
    out_ += "HTTP/1.1 ";
    out_ += std::to_string(r.status);
    out_ += ' ';
    auto reason = http::obsolete_reason(static_cast<http::status>(r.status));
    out_.append(reason.data(), reason.size());
    out_ += "\r\nContent-Type: ";
    out_ += r.content_type.empty() ? std::string_view("application/json") : r.content_type;
    for (auto& [name, value] : r.headers) {
      out_ += "\r\n";
      out_ += name;
      out_ += ": ";
      out_ += value;
    }
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
    current_.reset();
  }

 private:
  void wait_for_request() {
    if (srv_.draining) return close();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(srv_.cfg.max_header_bytes));
    parser_->body_limit(srv_.cfg.max_body_bytes);
    parser_->eager(true);
    bytes_in_ = 0;
    if (buffer_.size() > 0) {  // a pipelined request is already here
      started_ = std::chrono::steady_clock::now();
      return parse();
    }
    // Idle keep-alive: wait for the first byte of the next request.
    read_more(srv_.cfg.idle_timeout, true);
  }

  // One read into the buffer; `first` marks the first bytes of a request, which start the
  // header deadline. The header section has one deadline from its first byte; a body gets a
  // fresh one per read, so only a gap longer than body_timeout closes the connection.
  // Waits for readability, then reads without blocking: unlike async_read_some, no
  // speculative recv that fails with EAGAIN on every keep-alive request.
  void read_more(std::chrono::seconds timeout, bool first = false) {
    if (first || parser_->is_header_done()) expire_in(timeout);
    socket_.async_wait(
        tcp::socket::wait_read, [self = shared_from_this(), first, timeout](beast::error_code ec) {
          if (ec) return self->close();
          std::size_t n = self->socket_.read_some(self->buffer_.prepare(16 * 1024), ec);
          if (ec == net::error::would_block || ec == net::error::try_again)
            return self->read_more(timeout, false);
          if (ec) return self->close();
          self->buffer_.commit(n);
          if (first) {
            self->started_ = std::chrono::steady_clock::now();
            self->expire_in(self->srv_.cfg.header_timeout);
          }
          self->parse();
        });
  }

  // Feeds what is buffered to the parser; dispatches a complete request, else reads more.
  void parse() {
    beast::error_code ec;
    bool header_was_done = parser_->is_header_done();
    while (buffer_.size() > 0 && !parser_->is_done()) {
      std::size_t n = parser_->put(buffer_.data(), ec);
      buffer_.consume(n);
      bytes_in_ += n;
      if (ec == http::error::need_more) {
        ec = {};
        break;
      }
      if (ec) return on_read_error(ec);
      if (n == 0) break;
    }
    if (!header_was_done && parser_->is_header_done()) {
      if (auto len = parser_->content_length(); len && *len > srv_.cfg.max_body_bytes) {
        return reject(413, "payload_too_large",
                      "the body is larger than the limit of " +
                          std::to_string(srv_.cfg.max_body_bytes) + " bytes");
      }
    }
    if (parser_->is_done()) return dispatch();
    read_more(parser_->is_header_done() ? srv_.cfg.body_timeout : srv_.cfg.header_timeout);
  }

  void on_read_error(beast::error_code ec) {
    if (ec == http::error::header_limit)
      return reject(431, "headers_too_large",
                    "the request header section is larger than " +
                        std::to_string(srv_.cfg.max_header_bytes) + " bytes");
    if (ec == http::error::body_limit)
      return reject(413, "payload_too_large",
                    "the body is larger than the limit of " +
                        std::to_string(srv_.cfg.max_body_bytes) + " bytes");
    if (ec.category() == beast::error_code(http::error::end_of_stream).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message) {
      return reject(400, "bad_request", "malformed HTTP request: " + ec.message());
    }
    close();  // EOF, reset, timeout: nobody to answer
  }

  // Answers an unparseable or over-limit request and closes the connection.
  void reject(uint16_t status, std::string_view code, const std::string& message) {
    close_after_ = true;
    current_.reset();
    HttpResponse r = error_response(status, code, message, new_request_id());
    r.headers.emplace_back("Connection", "close");
    send(std::move(r));
  }

  void dispatch() {
    expire_never();  // a plugin may take its time; the client is not the one being slow now
    current_ = std::make_shared<BeastExchange>(parser_->release());
    current_->transport = shared_from_this();
    current_->remote_addr = remote_;
    current_->started = started_;
    current_->request_bytes = bytes_in_;
    counted_ = true;
    ++srv_.in_flight;
    try {
      std::shared_ptr<Exchange> ex = current_;  // a copy: close() may reset current_
      srv_.pipeline.handle(ex);
    } catch (const std::exception& e) {
      srv_.log.log(LogLevel::error, "host", std::string("request failed: ") + e.what(),
                   current_->request_id);
      srv_.pipeline.finish(*current_, error_response(500, "internal_error", "the host failed",
                                                     current_->request_id));
    }
  }

  void on_written(beast::error_code ec, bool keep) {
    request_done();
    if (ec || !keep) return close();
    current_.reset();
    wait_for_request();
  }

  Socket socket_;
  Clock::time_point deadline_ = Clock::time_point::max();
  HttpServer::Impl& srv_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string out_;  // the response being written
  std::shared_ptr<BeastExchange> current_;
  std::string remote_;
  std::chrono::steady_clock::time_point started_;
  uint64_t bytes_in_ = 0;
  bool close_after_ = false;
  bool counted_ = false;
};

// A chunked response: writes from any thread are buffered (bounded) and flushed on the
// connection's thread; a read on the socket notices the client leaving.
class ChunkedStream final : public StreamState, public std::enable_shared_from_this<ChunkedStream> {
 public:
  ChunkedStream(std::shared_ptr<Connection> conn, std::size_t bound,
                std::function<void()> on_closed)
      : conn_(std::move(conn)), bound_(bound), on_closed_(std::move(on_closed)) {}

  void start(std::string head) {
    out_ = std::move(head);
    flushing_ = true;
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
                       if (ec) return self->client_gone();
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
  char scratch_[512];
};

std::shared_ptr<StreamState> Connection::begin_stream(HttpResponse&& head,
                                                      std::function<void()> on_closed) {
  std::string h =
      "HTTP/1.1 " + std::to_string(head.status) + " " +
      std::string(http::obsolete_reason(static_cast<http::status>(head.status))) +
      "\r\nContent-Type: " +
      (head.content_type.empty() ? std::string("application/json") : head.content_type) +
      "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n";
  for (auto& [name, value] : head.headers) {
    if (name.find_first_of("\r\n") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos)
      continue;  // never let a header split the response
    h += name + ": " + value + "\r\n";
  }
  h += "\r\n";
  auto s = std::make_shared<ChunkedStream>(shared_from_this(), srv_.cfg.stream_buffer_bytes,
                                           std::move(on_closed));
  srv_.track(s);
  request_done();  // a stream does not hold up a drain; it is ended instead
  s->start(std::move(h));
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
    c->close();  // its pending read or write completes with an error and lets go of it
    return true;
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
  auto colon = s.cfg.listen.rfind(':');
  if (colon == std::string::npos)
    throw std::runtime_error("server.listen \"" + s.cfg.listen + "\" must be HOST:PORT");
  std::string host = s.cfg.listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  unsigned long port = 0;
  try {
    port = std::stoul(s.cfg.listen.substr(colon + 1));
  } catch (...) {
    port = 70000;
  }
  beast::error_code ec;
  auto addr = net::ip::make_address(host.empty() ? "0.0.0.0" : host, ec);
  if (ec || port > 65535)
    throw std::runtime_error("server.listen \"" + s.cfg.listen +
                             "\" is not HOST:PORT with an IP address and a port 0-65535");
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
  {
    std::lock_guard lock(s.streams_mutex);
    for (auto& w : s.streams)
      if (auto st = w.lock()) st->abort();
    s.streams.clear();
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (s.in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline)
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
