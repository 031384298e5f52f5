#include "support.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace kghost::test {

bool wait_until(const std::function<bool()>& predicate, std::chrono::milliseconds timeout,
                std::chrono::milliseconds poll) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (predicate()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(poll);
  }
}

uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    throw std::runtime_error("free_port: bind failed");
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

bool port_open(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

TempDir::TempDir() {
  std::random_device rd;
  for (int i = 0; i < 100; ++i) {
    auto p = std::filesystem::temp_directory_path() /
             ("kghost-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    if (std::filesystem::create_directory(p)) {
      path_ = p;
      return;
    }
  }
  throw std::runtime_error("TempDir: cannot create a directory");
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

Process::Process(std::vector<std::string> argv, std::map<std::string, std::string> env,
                 std::filesystem::path log_file)
    : log_file_(std::move(log_file)) {
  if (log_file_.empty()) {
    char tmpl[] = "/tmp/kghost-proc-XXXXXX";
    int fd = ::mkstemp(tmpl);
    ::close(fd);
    log_file_ = tmpl;
    own_log_ = true;
  }
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    int fd = ::open(log_file_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    ::setpgid(0, 0);
    for (auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
}

Process::~Process() {
  if (running()) {
    signal(SIGKILL);
    wait(5s);
  }
  if (own_log_) {
    std::error_code ec;
    std::filesystem::remove(log_file_, ec);
  }
}

bool Process::running() {
  if (exit_code_) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == 0) return true;
  if (r == pid_) {
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  } else {
    exit_code_ = -1;
  }
  return false;
}

void Process::signal(int sig) {
  if (!exit_code_) ::kill(pid_, sig);
}

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
  wait_until([&] { return !running(); }, timeout, 2ms);
  return exit_code_;
}

std::string Process::output() const {
  std::ifstream in(log_file_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

namespace {

// Starts a server and waits until its log says `ready`; false (the process gone) when it
// exited first, e.g. because another process took the port.
bool start_server(std::unique_ptr<Process>& proc, std::vector<std::string> argv,
                  const std::string& ready) {
  proc = std::make_unique<Process>(std::move(argv));
  wait_until([&] { return proc->output().find(ready) != std::string::npos || !proc->running(); },
             10s);
  return proc->running() && proc->output().find(ready) != std::string::npos;
}

// redis-server and nats-server need their port before they start (redis' --port 0 turns TCP
// off), and it must stay the same across restarts: a probed free port, tried again with
// another one when something else took it between the probe and the bind.
template <typename Start>
uint16_t start_on_free_port(Start start, const char* what, std::unique_ptr<Process>& proc) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    uint16_t port = free_port();
    if (start(port)) return port;
  }
  throw std::runtime_error(std::string(what) + " did not start: " + proc->output());
}

}  // namespace

RedisServer::RedisServer(bool appendonly) : appendonly_(appendonly) {
  port_ = start_on_free_port([&](uint16_t p) { return launch(p); }, "redis-server", proc_);
}
RedisServer::~RedisServer() { kill(); }

bool RedisServer::launch(uint16_t port) {
  return start_server(proc_,
                      {"redis-server", "--bind", "127.0.0.1", "--port", std::to_string(port),
                       "--save", "", "--appendonly", appendonly_ ? "yes" : "no", "--appendfsync",
                       "always", "--dir", dir_.path().string(), "--daemonize", "no"},
                      "Ready to accept connections");
}

void RedisServer::start() {
  if (!launch(port_)) throw std::runtime_error("redis-server did not start: " + proc_->output());
}

void RedisServer::kill() {
  if (proc_) {
    proc_->signal(SIGKILL);
    proc_->wait();
    proc_.reset();
  }
}

std::string RedisServer::cli(const std::vector<std::string>& args) const {
  std::string cmd = "redis-cli -h 127.0.0.1 -p " + std::to_string(port_);
  for (auto& a : args) cmd += " '" + a + "'";
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = ::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
  }
  return out;
}

NatsServer::NatsServer() {
  port_ = start_on_free_port([&](uint16_t p) { return launch(p); }, "nats-server", proc_);
}
NatsServer::~NatsServer() { kill(); }

bool NatsServer::launch(uint16_t port) {
  return start_server(proc_,
                      {"nats-server", "-a", "127.0.0.1", "-p", std::to_string(port), "-js", "-sd",
                       (dir_.path() / "js").string()},
                      "Server is ready");
}

void NatsServer::start() {
  if (!launch(port_)) throw std::runtime_error("nats-server did not start: " + proc_->output());
}

void NatsServer::signal(int sig) {
  if (proc_) proc_->signal(sig);
}

void NatsServer::kill() {
  if (proc_) {
    proc_->signal(SIGKILL);
    proc_->wait();
    proc_.reset();
  }
}

}  // namespace kghost::test
