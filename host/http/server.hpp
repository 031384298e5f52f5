// The HTTP/1.1 server (Boost.Beast): N I/O threads, keep-alive, limits and timeouts, drain.
// Beast and Asio stay inside the server's files (server_state.hpp names them); this header is
// plain C++.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "config/config.hpp"
#include "http/pipeline.hpp"
#include "telemetry/logging.hpp"

namespace kghost {

class HttpServer {
 public:
  HttpServer(const ServerConfig& config, Pipeline& pipeline, Logger& log);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the listen address (throws std::runtime_error naming it) and starts the I/O threads.
  void start();
  // The bound address, e.g. "127.0.0.1:41234" (the real port when the config said 0).
  std::string local_address() const;
  // Stops accepting; idle keep-alive connections are closed at once, the others after their
  // current response; streams are ended. Then waits up to `timeout` for in-flight requests (in
  // flight from their first byte, so a half-sent one is finished) and for the ended streams'
  // on_closed callbacks. True if all requests finished.
  bool drain(std::chrono::milliseconds timeout);
  // [any] After Pipeline::publish: every I/O thread lets go of the table it cached, so an old
  // table (and what its callbacks hold) goes once its last exchange ends, not at that
  // thread's next request.
  void release_old_tables();
  // Stops the I/O threads. Idempotent.
  void stop();
  uint64_t in_flight() const;
  uint64_t open_connections() const;

  struct Impl;  // public so the connections (connection.cpp) can name it

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kghost
