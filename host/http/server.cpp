// The HTTP server's acceptor and I/O threads: binds the listen address, hands each accepted
// socket to an I/O thread (connection.cpp serves it), sweeps deadlines, drains, stops.
#include <algorithm>
#include <ctime>

#include "common/thread_name.hpp"
#include "http/connection.hpp"
#include "http/server_state.hpp"

namespace kghost {

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
    // Hand the descriptor to a worker, which registers it with its own reactor.
    auto protocol = acceptor->local_endpoint().protocol();
    auto fd = socket.release(ec);
    IoWorker& w = pick_worker();
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

// Fill an I/O thread before waking the next: a new connection goes to the first thread that
// used less than half a core over its last sweep period; when every thread is that busy, to the
// least busy one. Keep-alive connections stay where they land, so this decides where the work
// runs. Spreading while the first thread has room buys nothing but wake-ups on more threads, and
// where the cores are shared (a client or sidecar on the same machine, other processes) the
// extra runnable threads wait for a core behind each other: the latency tail. Busy threads get
// no new connections, which is what nginx's shared accept queue achieves by letting only idle
// workers accept; round robin and SO_REUSEPORT would spread evenly whatever the load.
IoWorker& HttpServer::Impl::pick_worker() {
  constexpr uint32_t kBusyPermille = 500;
  IoWorker* least = workers[0].get();
  for (auto& w : workers) {
    uint32_t load = w->load_permille.load(std::memory_order_relaxed);
    if (load < kBusyPermille) return *w;
    if (load < least->load_permille.load(std::memory_order_relaxed)) least = w.get();
  }
  return *least;
}

namespace {
// The calling thread's CPU time.
std::chrono::nanoseconds thread_cpu_time() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}
}  // namespace

void HttpServer::Impl::sweep(IoWorker& w) {
  auto now = Clock::now();
  auto cpu = thread_cpu_time();
  if (auto wall = now - w.sampled_at; wall.count() > 0) {
    auto permille =
        1000 * (cpu - w.cpu_at) / std::chrono::duration_cast<std::chrono::nanoseconds>(wall);
    w.load_permille.store(static_cast<uint32_t>(std::clamp<int64_t>(permille, 0, 1000)),
                          std::memory_order_relaxed);
  }
  w.sampled_at = now;
  w.cpu_at = cpu;
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
  for (std::size_t i = 0; i < s.workers.size(); ++i) {
    auto& w = s.workers[i];
    // The first sweep runs on the worker's thread, so its CPU clock is the one sampled.
    net::post(w->ioc, [&s, &w = *w] {
      w.sampled_at = Clock::now();
      w.cpu_at = thread_cpu_time();
      s.sweep(w);
    });
    w->thread = std::thread([io = &w->ioc, i] {
      name_this_thread("kg-io-" + std::to_string(i));
      io->run();
    });
  }
}

std::string HttpServer::local_address() const { return impl_->local; }

void HttpServer::release_old_tables() {
  for (auto& w : impl_->workers)
    net::post(w->ioc, [&pipeline = impl_->pipeline] { pipeline.table(); });  // refreshes its cache
}

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
