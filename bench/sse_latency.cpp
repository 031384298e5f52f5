// publish -> SSE latency of the streaming plugin (bench/run_streaming_bench.sh).
//
//   sse_latency PORT CLIENTS RATE SECONDS
//
// CLIENTS SSE clients subscribe to channel "bench" (X-Test-Tenant: bench, the header
// authenticator fixture); once all say ": subscribed", publishers POST RATE events/s in total
// for SECONDS, each body {"t":<CLOCK_REALTIME ns at send>}. One epoll thread reads every client
// and records receive time - t for each event. Prints p50/p99/p99.9/max over all deliveries.
// Written in C++ so that the measuring side keeps up with CLIENTS x RATE events/s.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

int64_t realtime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

int connect_to(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    throw std::runtime_error("connect: " + std::string(std::strerror(errno)));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

void send_all(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) throw std::runtime_error("send: " + std::string(std::strerror(errno)));
    off += static_cast<std::size_t>(n);
  }
}

// One keep-alive connection posting at `rate`/s on an absolute schedule.
void publisher(uint16_t port, double rate, double seconds, std::atomic<uint64_t>& sent,
               std::atomic<uint64_t>& failed) {
  int fd = connect_to(port);
  auto t0 = std::chrono::steady_clock::now();
  auto total = static_cast<uint64_t>(rate * seconds);
  std::string buf;
  char rd[4096];
  for (uint64_t k = 0; k < total; ++k) {
    std::this_thread::sleep_until(t0 +
                                  std::chrono::nanoseconds(static_cast<int64_t>(k * 1e9 / rate)));
    std::string body = "{\"t\":" + std::to_string(realtime_ns()) + "}";
    send_all(fd,
             "POST /api/v1/streams/bench/events HTTP/1.1\r\nHost: x\r\nX-Test-Tenant: bench\r\n"
             "Content-Type: application/json\r\nContent-Length: " +
                 std::to_string(body.size()) + "\r\n\r\n" + body);
    buf.clear();
    // The answers are small: read until the head and its Content-Length body are in.
    while (true) {
      ssize_t n = ::recv(fd, rd, sizeof rd, 0);
      if (n <= 0) throw std::runtime_error("publisher: connection closed");
      buf.append(rd, static_cast<std::size_t>(n));
      auto head = buf.find("\r\n\r\n");
      if (head == std::string::npos) continue;
      auto cl = buf.find("Content-Length: ");
      std::size_t len =
          cl == std::string::npos ? 0 : std::strtoul(buf.c_str() + cl + 16, nullptr, 10);
      if (buf.size() >= head + 4 + len) break;
    }
    if (buf.compare(9, 3, "202") != 0) ++failed;
    ++sent;
  }
  close(fd);
}

struct Client {
  int fd = -1;
  std::string buf;
  bool subscribed = false;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: sse_latency PORT CLIENTS RATE SECONDS\n");
    return 2;
  }
  auto port = static_cast<uint16_t>(std::atoi(argv[1]));
  int clients = std::atoi(argv[2]);
  double rate = std::atof(argv[3]), seconds = std::atof(argv[4]);

  int ep = epoll_create1(0);
  std::vector<Client> cs(static_cast<std::size_t>(clients));
  for (int i = 0; i < clients; ++i) {
    auto& c = cs[static_cast<std::size_t>(i)];
    c.fd = connect_to(port);
    send_all(c.fd,
             "GET /api/v1/streams/bench/events HTTP/1.1\r\nHost: x\r\nX-Test-Tenant: bench\r\n"
             "Accept: text/event-stream\r\n\r\n");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<uint32_t>(i);
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
  }

  std::vector<int64_t> lat;
  lat.reserve(static_cast<std::size_t>(clients * rate * seconds) + 16);
  int subscribed = 0;
  std::atomic<uint64_t> sent{0}, failed{0};
  std::vector<std::thread> pubs;
  constexpr int kPublishers = 4;  // each waits for its answer: several keep the rate
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  bool publishing = false;
  std::chrono::steady_clock::time_point end{};
  epoll_event evs[256];
  static constexpr char kNeedle[] = "data: {\"t\":";
  char rd[1 << 16];
  while (true) {
    auto now = std::chrono::steady_clock::now();
    if (!publishing && subscribed == clients) {
      publishing = true;
      for (int p = 0; p < kPublishers; ++p)
        pubs.emplace_back(publisher, port, rate / kPublishers, seconds, std::ref(sent),
                          std::ref(failed));
      end = now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                      std::chrono::duration<double>(seconds + 1.0));  // + the tail in flight
    }
    if (!publishing && now > deadline) {
      std::fprintf(stderr, "only %d/%d SSE clients subscribed\n", subscribed, clients);
      return 1;
    }
    if (publishing && now > end) break;
    int n = epoll_wait(ep, evs, 256, 100);
    for (int k = 0; k < n; ++k) {
      auto& c = cs[evs[k].data.u32];
      ssize_t got = ::recv(c.fd, rd, sizeof rd, 0);
      int64_t t = realtime_ns();
      if (got <= 0) {
        std::fprintf(stderr, "an SSE client was disconnected\n");
        return 1;
      }
      c.buf.append(rd, static_cast<std::size_t>(got));
      if (!c.subscribed && c.buf.find(": subscribed") != std::string::npos) {
        c.subscribed = true;
        ++subscribed;
      }
      std::size_t pos = 0;
      while (true) {
        auto i = c.buf.find(kNeedle, pos);
        if (i == std::string::npos) break;
        auto j = c.buf.find('}', i);
        if (j == std::string::npos) break;
        lat.push_back(t - std::strtoll(c.buf.c_str() + i + sizeof kNeedle - 1, nullptr, 10));
        pos = j + 1;
      }
      // Keep only a possibly cut-off frame.
      c.buf.erase(0, std::max(pos, c.buf.size() > 64 ? c.buf.size() - 64 : 0));
    }
  }
  for (auto& p : pubs) p.join();
  std::sort(lat.begin(), lat.end());
  auto q = [&](double p) {
    return lat.empty()
               ? 0.0
               : static_cast<double>(
                     lat[std::min(lat.size() - 1,
                                  static_cast<std::size_t>(p * static_cast<double>(lat.size())))]) /
                     1e6;
  };
  std::printf(
      "latency clients=%d rate=%.0f/s published=%llu failed=%llu delivered=%zu (expected %llu) "
      "p50_ms=%.2f p99_ms=%.2f p999_ms=%.2f max_ms=%.2f\n",
      clients, rate, static_cast<unsigned long long>(sent.load()),
      static_cast<unsigned long long>(failed.load()), lat.size(),
      static_cast<unsigned long long>(sent.load()) * static_cast<unsigned long long>(clients),
      q(0.5), q(0.99), q(0.999), lat.empty() ? 0.0 : static_cast<double>(lat.back()) / 1e6);
  for (auto& c : cs) close(c.fd);
  return 0;
}
