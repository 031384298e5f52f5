// Test helpers shared by every kghost test: waiting for a condition, free loopback ports,
// child processes, and real servers (redis-server, nats-server) on free ports.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace kghost::test {

using namespace std::chrono_literals;

// Polls `predicate` until it returns true or `timeout` passes. Never a fixed sleep.
bool wait_until(const std::function<bool()>& predicate, std::chrono::milliseconds timeout = 10s,
                std::chrono::milliseconds poll = 5ms);

// A loopback TCP port nobody listens on right now (bind to 0, read it back, close). Racy under
// parallel tests: another process may take it before the caller binds it. Only for servers
// that must know their port before they start (RedisServer, NatsServer retry on a clash);
// kghost itself binds port 0 and reports its port (KgHost).
uint16_t free_port();

// True when something accepts TCP connections on 127.0.0.1:port.
bool port_open(uint16_t port);

// A fresh empty directory under the system temp dir, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A child process with stdout+stderr captured to a file. Killed (SIGKILL) by the destructor
// if still running.
class Process {
 public:
  Process(std::vector<std::string> argv, std::map<std::string, std::string> env = {},
          std::filesystem::path log_file = {});
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  int pid() const { return pid_; }
  bool running();
  void signal(int sig);
  // Waits for exit; returns the exit code (128+signal if killed), nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout = 10s);
  // Everything the process wrote so far.
  std::string output() const;
  const std::filesystem::path& log_file() const { return log_file_; }

 private:
  int pid_ = -1;
  std::optional<int> exit_code_;
  std::filesystem::path log_file_;
  bool own_log_ = false;
};

// A real redis-server on a free loopback port, no persistence unless `appendonly` (then every
// write is fsync'd to its append-only file before Redis answers, appendfsync always, and the
// data dir survives kill() + start()). Stopped by the destructor.
class RedisServer {
 public:
  explicit RedisServer(bool appendonly = false);
  ~RedisServer();
  uint16_t port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  void kill();   // SIGKILL and wait
  void start();  // (again) on the same port
  // Runs redis-cli against this server and returns its output.
  std::string cli(const std::vector<std::string>& args) const;

 private:
  bool launch(uint16_t port);
  TempDir dir_;
  bool appendonly_ = false;
  uint16_t port_ = 0;
  std::unique_ptr<Process> proc_;
};

// A real nats-server with JetStream on a free loopback port; the store dir survives restarts.
class NatsServer {
 public:
  NatsServer();
  ~NatsServer();
  uint16_t port() const { return port_; }
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }
  void kill();
  void start();
  void signal(int sig);  // e.g. SIGSTOP / SIGCONT to freeze it

 private:
  bool launch(uint16_t port);
  TempDir dir_;
  uint16_t port_ = 0;
  std::unique_ptr<Process> proc_;
};

}  // namespace kghost::test
