// Runs a real kghost process for integration tests and talks HTTP to it.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support.hpp"

namespace kghost::test {

struct HttpResult {
  int status = 0;                              // 0: no response (connection failed or closed)
  std::map<std::string, std::string> headers;  // lower-case names; repeated ones joined by ", "
  std::string body;
  std::string header(const std::string& name) const;
};

// One HTTP/1.1 request over a fresh connection (libcurl). `headers` are "Name: value" lines.
HttpResult http(uint16_t port, const std::string& method, const std::string& target,
                const std::vector<std::string>& headers = {}, const std::string& body = {},
                std::chrono::milliseconds timeout = std::chrono::seconds(10));

// A keep-alive client over one raw socket: for pipelined, malformed or slow traffic.
class RawClient {
 public:
  explicit RawClient(uint16_t port);
  ~RawClient();
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;
  bool connected() const { return fd_ >= 0; }
  bool send(const std::string& bytes);
  // Reads one response (Content-Length or chunked body). status 0 if the peer closed first.
  HttpResult read_response(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // True once the server has closed the connection (reads EOF) within `timeout`.
  bool closed_by_peer(std::chrono::milliseconds timeout);
  // Reads whatever arrives within `timeout` (for streams).
  std::string read_some(std::chrono::milliseconds timeout);

 private:
  int fd_ = -1;
  std::string buffered_;
};

// Where the build put things (set by CMake for test binaries).
std::string kghost_binary();
std::string plugin_dir();       // the real plugins (bin/plugins)
std::string test_plugin_dir();  // fixture plugins (bin/test-plugins)

// A kghost process on a loopback port of its own choosing (--listen 127.0.0.1:0), reported
// through --ready-file, with the given TOML config. The config may use ${KG_PLUGIN_DIR} and
// ${KG_TEST_PLUGIN_DIR}; KG_DATA_DIR points at a fresh directory.
class KgHost {
 public:
  explicit KgHost(const std::string& config_toml, std::map<std::string, std::string> env = {},
                  std::optional<std::string> data_dir = std::nullopt);
  ~KgHost();
  // The port the running process listens on; waits (up to 30 s) until it has reported it.
  // It changes with restart_after_kill: ask again rather than keeping it. 0 if the process
  // exited before it was ready.
  uint16_t port() const;
  Process& process() { return *proc_; }
  const std::string& data_dir() const { return data_dir_; }
  // Waits until /health/live answers; false (with the log in the failure) if it exits first.
  bool wait_ready(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  HttpResult get(const std::string& target, const std::vector<std::string>& headers = {}) const {
    return http(port(), "GET", target, headers);
  }
  HttpResult post(const std::string& target, const std::string& body,
                  const std::vector<std::string>& headers = {}) const {
    return http(port(), "POST", target, headers, body);
  }
  std::string log() const { return proc_->output(); }
  // Replaces the config file the process was started with (atomically: a reload never reads
  // half of it); send SIGHUP or POST /admin/reload to apply it.
  void rewrite_config(const std::string& config_toml);
  const std::string& config_path() const { return config_path_; }
  // SIGKILL and start again with the same config and data dir, on a new port.
  void restart_after_kill();

 private:
  void launch();
  bool read_ready_file() const;  // sets port_ once the host has written its address
  TempDir dir_;
  std::string config_path_;
  std::string ready_file_;
  std::string data_dir_;
  std::map<std::string, std::string> env_;
  mutable std::atomic<uint16_t> port_{0};  // 0 until read; port() may run on many threads
  std::unique_ptr<Process> proc_;
};

// Runs kghost to completion with `args` (e.g. --check); returns exit code and output.
struct RunResult {
  int exit_code;
  std::string output;
};
RunResult run_kghost(const std::vector<std::string>& args,
                     std::map<std::string, std::string> env = {},
                     std::chrono::milliseconds timeout = std::chrono::seconds(30));
// Writes `text` to a file in `dir` and returns its path.
std::string write_file(const TempDir& dir, const std::string& name, const std::string& text);

}  // namespace kghost::test
