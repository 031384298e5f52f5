#include "host.hpp"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <stdexcept>

namespace kghost::test {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

void add_header_line(HttpResult& r, std::string_view line) {
  auto colon = line.find(':');
  if (colon == std::string_view::npos) return;
  std::string name = lower(std::string(line.substr(0, colon)));
  std::string value(line.substr(colon + 1));
  value.erase(0, value.find_first_not_of(" \t"));
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' '))
    value.pop_back();
  auto& slot = r.headers[name];
  slot = slot.empty() ? value : slot + ", " + value;
}

size_t on_body(char* p, size_t s, size_t n, void* ud) {
  static_cast<HttpResult*>(ud)->body.append(p, s * n);
  return s * n;
}
size_t on_header(char* p, size_t s, size_t n, void* ud) {
  std::string_view line(p, s * n);
  auto* r = static_cast<HttpResult*>(ud);
  if (line.rfind("HTTP/", 0) == 0)
    r->headers.clear();  // a new response (e.g. after 100)
  else
    add_header_line(*r, line);
  return s * n;
}

struct CurlInit {
  CurlInit() { curl_global_init(CURL_GLOBAL_DEFAULT); }
} curl_init;

}  // namespace

std::string HttpResult::header(const std::string& name) const {
  auto it = headers.find(lower(name));
  return it == headers.end() ? "" : it->second;
}

HttpResult http(uint16_t port, const std::string& method, const std::string& target,
                const std::vector<std::string>& headers, const std::string& body,
                std::chrono::milliseconds timeout) {
  HttpResult r;
  CURL* c = curl_easy_init();
  std::string url = "http://127.0.0.1:" + std::to_string(port) + target;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
  if (method == "HEAD") curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  if (!body.empty() || method == "POST" || method == "PUT") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  curl_slist* list = curl_slist_append(nullptr, "Expect:");
  for (auto& h : headers) list = curl_slist_append(list, h.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  if (curl_easy_perform(c) == CURLE_OK) {
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    r.status = static_cast<int>(code);
  }
  curl_slist_free_all(list);
  curl_easy_cleanup(c);
  return r;
}

RawClient::RawClient(uint16_t port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd_);
    fd_ = -1;
    return;
  }
  int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

RawClient::~RawClient() {
  if (fd_ >= 0) ::close(fd_);
}

bool RawClient::send(const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

std::string RawClient::read_some(std::chrono::milliseconds timeout) {
  std::string out = std::move(buffered_);
  buffered_.clear();
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char buf[8192];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

bool RawClient::closed_by_peer(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) > 0) {
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return true;
      buffered_.append(buf, static_cast<size_t>(n));
    }
  }
  return false;
}

HttpResult RawClient::read_response(std::chrono::milliseconds timeout) {
  HttpResult r;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto fill = [&]() -> bool {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char buf[8192];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return false;
    buffered_.append(buf, static_cast<size_t>(n));
    return true;
  };
  size_t end;
  while ((end = buffered_.find("\r\n\r\n")) == std::string::npos)
    if (!fill()) return r;
  std::string head = buffered_.substr(0, end);
  buffered_.erase(0, end + 4);
  size_t line_end = head.find("\r\n");
  std::string status_line = head.substr(0, line_end);
  if (status_line.size() >= 12) r.status = std::stoi(status_line.substr(9, 3));
  size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
  while (pos < head.size()) {
    size_t e = head.find("\r\n", pos);
    if (e == std::string::npos) e = head.size();
    add_header_line(r, std::string_view(head).substr(pos, e - pos));
    pos = e + 2;
  }
  if (r.header("transfer-encoding") == "chunked") {
    while (true) {
      size_t le;
      while ((le = buffered_.find("\r\n")) == std::string::npos)
        if (!fill()) return r;
      size_t len = std::stoul(buffered_.substr(0, le), nullptr, 16);
      while (buffered_.size() < le + 2 + len + 2)
        if (!fill()) return r;
      r.body += buffered_.substr(le + 2, len);
      buffered_.erase(0, le + 2 + len + 2);
      if (len == 0) break;
    }
  } else {
    size_t len = r.headers.count("content-length") ? std::stoul(r.header("content-length")) : 0;
    while (buffered_.size() < len)
      if (!fill()) return r;
    r.body = buffered_.substr(0, len);
    buffered_.erase(0, len);
  }
  return r;
}

std::string kghost_binary() { return KGHOST_BINARY; }
std::string plugin_dir() { return KGHOST_PLUGIN_DIR; }
std::string test_plugin_dir() { return KGHOST_TEST_PLUGIN_DIR; }

std::string write_file(const TempDir& dir, const std::string& name, const std::string& text) {
  auto path = (dir.path() / name).string();
  std::ofstream(path) << text;
  return path;
}

KgHost::KgHost(const std::string& config_toml, std::map<std::string, std::string> env,
               std::optional<std::string> data_dir)
    : env_(std::move(env)) {
  config_path_ = write_file(dir_, "kghost.toml", config_toml);
  ready_file_ = (dir_.path() / "ready").string();
  data_dir_ = data_dir ? *data_dir : (dir_.path() / "data").string();
  launch();
}

KgHost::~KgHost() = default;

void KgHost::rewrite_config(const std::string& config_toml) {
  auto tmp = write_file(dir_, "kghost.toml.next", config_toml);
  std::filesystem::rename(tmp, config_path_);
}

void KgHost::launch() {
  auto env = env_;
  env.emplace("KG_PLUGIN_DIR", plugin_dir());
  env.emplace("KG_TEST_PLUGIN_DIR", test_plugin_dir());
  env.emplace("KG_DATA_DIR", data_dir_);
  std::string log = (dir_.path() / "kghost.log").string();
  // The host picks a free port itself and reports it in the ready file: no race with another
  // test for a port handed over between a probe and the bind.
  std::error_code ec;
  std::filesystem::remove(ready_file_, ec);
  port_ = 0;
  proc_ = std::make_unique<Process>(
      std::vector<std::string>{kghost_binary(), "--config", config_path_, "--listen", "127.0.0.1:0",
                               "--ready-file", ready_file_},
      env, log);
}

bool KgHost::read_ready_file() const {
  std::ifstream in(ready_file_);
  std::string address;
  if (!std::getline(in, address) || in.fail()) return false;
  auto colon = address.rfind(':');
  if (colon == std::string::npos) return false;
  port_ = static_cast<uint16_t>(std::stoul(address.substr(colon + 1)));
  return port_.load() != 0;
}

uint16_t KgHost::port() const {
  if (port_.load() == 0)
    wait_until([&] { return read_ready_file() || !proc_->running(); }, std::chrono::seconds(30),
               std::chrono::milliseconds(10));
  return port_;
}

bool KgHost::wait_ready(std::chrono::milliseconds timeout) {
  return wait_until(
             [&] {
               if (!proc_->running()) return true;
               if (port_.load() == 0 && !read_ready_file()) return false;
               return http(port_.load(), "GET", "/health/live", {}, {},
                           std::chrono::milliseconds(500))
                          .status == 200;
             },
             timeout, std::chrono::milliseconds(20)) &&
         proc_->running();
}

void KgHost::restart_after_kill() {
  proc_->signal(9);
  proc_->wait();
  launch();
}

RunResult run_kghost(const std::vector<std::string>& args, std::map<std::string, std::string> env,
                     std::chrono::milliseconds timeout) {
  std::vector<std::string> argv{kghost_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  env.emplace("KG_PLUGIN_DIR", plugin_dir());
  env.emplace("KG_TEST_PLUGIN_DIR", test_plugin_dir());
  Process p(argv, env);
  auto code = p.wait(timeout);
  if (!code) {
    p.signal(9);
    p.wait();
    return {-1, p.output()};
  }
  return {*code, p.output()};
}

}  // namespace kghost::test
