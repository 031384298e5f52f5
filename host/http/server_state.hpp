// What the acceptor (server.cpp), the connections (connection.cpp) and the chunked streams
// (chunked_stream.cpp) share: the Beast/Asio names, one I/O thread, the server's state.
// Internal to host/http; only these files compile Beast and Asio.
#pragma once

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "http/server.hpp"

namespace kghost {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;
// Sockets bound to their io_context's concrete executor: no type-erased executor per operation.
using Socket = net::basic_stream_socket<tcp, net::io_context::executor_type>;
using Clock = std::chrono::steady_clock;

class Connection;

// One I/O thread: its io_context, and the connections it owns for the deadline sweep.
struct IoWorker {
  // Share of one core this thread used over the last sweep period, in per mille: written by
  // its own sweep, read by the acceptor when it places a connection (Impl::pick_worker).
  std::atomic<uint32_t> load_permille{0};
  Clock::time_point sampled_at = Clock::now();  // touched only on this thread
  std::chrono::nanoseconds cpu_at{0};           // this thread's CPU time then
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
  std::string local;
  std::atomic<bool> draining{false};
  std::atomic<uint64_t> in_flight{0};
  std::atomic<uint64_t> connections{0};
  std::mutex streams_mutex;  // guards streams
  std::vector<std::weak_ptr<StreamState>> streams;

  void accept();
  IoWorker& pick_worker();
  void sweep(IoWorker& w);
  void track(const std::shared_ptr<StreamState>& s) {
    std::lock_guard lock(streams_mutex);
    std::erase_if(streams, [](auto& w) { return w.expired(); });
    streams.push_back(s);
  }
};

}  // namespace kghost
