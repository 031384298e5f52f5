// The HTTP edge as a hostile or careless client meets it: framing attacks, smuggling shapes,
// refusals written by the HTTP layer, lingering close, 100-continue, HEAD, the handler
// timeout, the drain of a half-sent request and a bad listen address.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "host.hpp"

using namespace kghost::test;
using nlohmann::json;

namespace {

const std::string kConfig = R"(
plugin_dir = "${KG_TEST_PLUGIN_DIR}"
[server]
threads = 2
handler_timeout_s = 1
drain_timeout_s = 20
[[plugins]]
name = "faulty"
)";

json body_json(const HttpResult& r) { return json::parse(r.body, nullptr, false); }

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// The header names of the first response in `raw`, lower-cased, in order (repeats kept).
std::vector<std::string> header_names(const std::string& raw) {
  std::vector<std::string> names;
  std::size_t end = raw.find("\r\n\r\n");
  std::size_t pos = raw.find("\r\n");
  while (pos != std::string::npos && pos < end) {
    pos += 2;
    std::size_t eol = raw.find("\r\n", pos);
    std::string line = raw.substr(pos, eol - pos);
    if (auto colon = line.find(':'); colon != std::string::npos)
      names.push_back(lower(line.substr(0, colon)));
    pos = eol;
  }
  return names;
}

int status_of(const std::string& raw) {
  return raw.size() >= 12 && raw.rfind("HTTP/1.", 0) == 0 ? std::stoi(raw.substr(9, 3)) : 0;
}

std::size_t count(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto p = haystack.find(needle); p != std::string::npos; p = haystack.find(needle, p + 1))
    ++n;
  return n;
}

// Sends `request` on a fresh connection and reads until the host closes it.
std::string exchange_until_close(uint16_t port, const std::string& request) {
  RawClient c(port);
  EXPECT_TRUE(c.send(request));
  return c.read_some(std::chrono::seconds(5));
}

long rss_kib(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

class HttpEdge : public ::testing::Test {
 protected:
  void SetUp() override {
    host_ = std::make_unique<KgHost>(kConfig);
    ASSERT_TRUE(host_->wait_ready()) << host_->log();
  }
  uint16_t port() const { return host_->port(); }
  std::unique_ptr<KgHost> host_;
};

const std::string kPost = "POST /faulty/echo HTTP/1.1\r\nHost: x\r\n";

}  // namespace

// --- responses the HTTP layer writes itself ----------------------------------------------------

TEST_F(HttpEdge, RefusalsCarryOneRequestIdTheErrorJsonAndNoRepeatedHeader) {
  struct Case {
    std::string request;
    int status;
    std::string code;
  };
  std::vector<Case> cases = {
      {"GARBAGE\r\n\r\n", 400, "bad_request"},
      {"GET /faulty/ok HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(17 * 1024, 'a') + "\r\n\r\n",
       431, "headers_too_large"},
      {kPost + "X-Request-Id: mine-413\r\nContent-Length: 2097152\r\n\r\n", 413,
       "payload_too_large"},
      {kPost + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, "not_implemented"},
      {kPost + "Transfer-Encoding: foo\r\n\r\n", 400, "bad_request"},
  };
  for (auto& c : cases) {
    std::string raw = exchange_until_close(port(), c.request);
    SCOPED_TRACE(c.request.substr(0, 60));
    EXPECT_EQ(status_of(raw), c.status) << raw;
    auto names = header_names(raw);
    std::set<std::string> unique(names.begin(), names.end());
    EXPECT_EQ(unique.size(), names.size()) << raw;  // no header twice
    EXPECT_EQ(std::count(names.begin(), names.end(), "x-request-id"), 1) << raw;
    EXPECT_EQ(std::count(names.begin(), names.end(), "connection"), 1) << raw;
    auto j = json::parse(raw.substr(raw.find("\r\n\r\n") + 4), nullptr, false);
    EXPECT_EQ(j["error"]["code"], c.code) << raw;
    auto id_at = raw.find("X-Request-Id: ");
    ASSERT_NE(id_at, std::string::npos) << raw;
    std::string id = raw.substr(id_at + 14, raw.find("\r\n", id_at) - id_at - 14);
    EXPECT_EQ(j["error"]["request_id"], id) << raw;
    if (c.status == 413) {
      EXPECT_EQ(id, "mine-413");  // a valid incoming id is echoed
    }
  }
}

// --- lingering close ----------------------------------------------------------------------------

TEST_F(HttpEdge, CurlUploadOf4MiBGetsIts413) {
  auto r = http(port(), "POST", "/faulty/echo", {}, std::string(4 << 20, 'x'));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(body_json(r)["error"]["code"], "payload_too_large");
  EXPECT_EQ(host_->get("/faulty/ok").status, 200);
}

TEST_F(HttpEdge, PythonClientThatKeepsSendingTheWhole4MiBStillReadsThe413) {
  // sendall() of the whole request first, then read: a reset would raise before the read.
  const std::string script = R"(
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
body = b"x" * (4 << 20)
s.sendall(b"POST /faulty/echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print("status line:", data.split(b"\r\n")[0].decode())
print("body:", data.split(b"\r\n\r\n", 1)[1].decode())
)";
  Process py({"python3", "-c", script, std::to_string(port())});
  auto code = py.wait(std::chrono::seconds(30));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << py.output();
  EXPECT_NE(py.output().find("status line: HTTP/1.1 413 Payload Too Large"), std::string::npos)
      << py.output();
  EXPECT_NE(py.output().find("payload_too_large"), std::string::npos) << py.output();
}

// --- framing attacks ----------------------------------------------------------------------------

TEST_F(HttpEdge, EndlessTrailersExtensionsAndLeadingZerosAreAnsweredAndClosedEarly) {
  const std::string chunked = kPost + "Transfer-Encoding: chunked\r\n\r\n";
  struct Shape {
    std::string name, prefix, unit;
    std::set<int> statuses;
  };
  std::vector<Shape> shapes = {
      {"trailers", chunked + "1\r\na\r\n0\r\n", "X-T: " + std::string(1000, 'a') + "\r\n", {431}},
      {"extensions", chunked, "1;e=" + std::string(200, 'a') + "\r\nx\r\n", {431}},
      {"one long extension", chunked + "1;e=", std::string(1000, 'a'), {400, 431}},
      {"leading zeros", chunked, std::string(1000, '0'), {400}},
  };
  long rss_before = rss_kib(host_->process().pid());
  for (auto& shape : shapes) {
    SCOPED_TRACE(shape.name);
    RawClient c(port());
    ASSERT_TRUE(c.send(shape.prefix));
    std::string piece;
    while (piece.size() < 8192) piece += shape.unit;
    std::size_t sent = shape.prefix.size();
    bool closed = false;
    // Up to 8 MiB, paced so that the host has ample time to refuse long before 1 MiB.
    while (sent < (8u << 20)) {
      if (!c.send(piece)) break;
      sent += piece.size();
      if ((closed = c.closed_by_peer(std::chrono::milliseconds(25)))) break;
    }
    EXPECT_TRUE(closed || c.closed_by_peer(std::chrono::seconds(3)));
    EXPECT_LT(sent, 1u << 20);
    auto r = c.read_response(std::chrono::seconds(3));
    EXPECT_TRUE(shape.statuses.count(r.status)) << r.status << " " << r.body;
  }
  long rss_after = rss_kib(host_->process().pid());
  EXPECT_LT(rss_after - rss_before, 8 * 1024) << rss_before << " KiB -> " << rss_after << " KiB";
  EXPECT_EQ(host_->get("/faulty/ok").status, 200);
}

TEST_F(HttpEdge, ValidChunkedBodyWithExtensionsAndTrailersIsDecoded) {
  RawClient c(port());
  ASSERT_TRUE(c.send(kPost +
                     "Transfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n006\r\n world\r\n"
                     "0\r\nX-Trailer: t\r\n\r\nGET /faulty/ok HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto first = c.read_response();
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(body_json(first)["bytes"], 11);
  auto second = c.read_response();
  EXPECT_EQ(second.status, 200);
  EXPECT_EQ(body_json(second)["ok"], true);
}

// --- request smuggling (RFC 9112 §6.1) ----------------------------------------------------------

TEST_F(HttpEdge, TransferEncodingNotEndingInChunkedIs400AndThePipelinedRequestNeverRuns) {
  const std::string smuggled = "GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n";
  for (std::string te : {"Transfer-Encoding: foo\r\n", "Transfer-Encoding: chunked, gzip\r\n",
                         "Transfer-Encoding: foo\r\nContent-Length: 5\r\n",
                         "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                         "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"}) {
    SCOPED_TRACE(te);
    std::string raw = exchange_until_close(port(), kPost + te + "\r\n" + "0\r\n\r\n" + smuggled);
    EXPECT_EQ(status_of(raw), 400) << raw;
    EXPECT_EQ(count(raw, "HTTP/1.1 "), 1u) << raw;  // one answer, then the close
    EXPECT_EQ(raw.find("openapi"), std::string::npos) << raw;
  }
  // HTTP/1.0 has no Transfer-Encoding: the framing is faulty.
  std::string raw = exchange_until_close(
      port(),
      "POST /faulty/echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled);
  EXPECT_EQ(status_of(raw), 400) << raw;
  EXPECT_EQ(raw.find("openapi"), std::string::npos) << raw;
}

TEST_F(HttpEdge, CodingWeDoNotImplementBeforeChunkedIs501) {
  RawClient c(port());
  ASSERT_TRUE(c.send(kPost + "Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
  auto r = c.read_response(std::chrono::seconds(3));
  EXPECT_EQ(r.status, 501);
  EXPECT_EQ(body_json(r)["error"]["code"], "not_implemented");
  EXPECT_TRUE(c.closed_by_peer(std::chrono::seconds(3)));
}

TEST_F(HttpEdge, ObsFoldIsRejected) {
  for (std::string fold : {"X-A: b\r\n Transfer-Encoding: chunked\r\n", "X-A: b\r\n\tmore\r\n"}) {
    SCOPED_TRACE(fold);
    RawClient c(port());
    ASSERT_TRUE(c.send("GET /faulty/ok HTTP/1.1\r\nHost: x\r\n" + fold + "\r\n"));
    auto r = c.read_response(std::chrono::seconds(3));
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(body_json(r)["error"]["code"], "bad_request");
    EXPECT_TRUE(c.closed_by_peer(std::chrono::seconds(3)));
  }
}

// --- Host (RFC 9112 §3.2) -----------------------------------------------------------------------

TEST_F(HttpEdge, Http11WithoutExactlyOneValidHostIs400) {
  for (std::string hosts : {"", "Host: a\r\nHost: b\r\n", "Host: a b\r\n"}) {
    SCOPED_TRACE(hosts);
    RawClient c(port());
    ASSERT_TRUE(c.send("GET /faulty/ok HTTP/1.1\r\n" + hosts + "\r\n"));
    auto r = c.read_response(std::chrono::seconds(3));
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(body_json(r)["error"]["code"], "bad_request");
  }
  RawClient ok(port());
  ASSERT_TRUE(ok.send("GET /faulty/ok HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"));
  EXPECT_EQ(ok.read_response().status, 200);
  RawClient old(port());  // HTTP/1.0 may leave it out
  ASSERT_TRUE(old.send("GET /faulty/ok HTTP/1.0\r\n\r\n"));
  EXPECT_EQ(old.read_response().status, 200);
}

// --- Expect: 100-continue -----------------------------------------------------------------------

TEST_F(HttpEdge, ExpectContinueGets100BeforeTheBodyOrTheFinalStatusAtOnce) {
  RawClient c(port());
  ASSERT_TRUE(c.send(kPost + "Content-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  auto interim = c.read_response(std::chrono::seconds(3));  // the client waits for it
  EXPECT_EQ(interim.status, 100);
  ASSERT_TRUE(c.send("hello"));
  auto r = c.read_response();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(body_json(r)["bytes"], 5);

  RawClient chunked(port());
  ASSERT_TRUE(chunked.send(kPost + "Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"));
  EXPECT_EQ(chunked.read_response(std::chrono::seconds(3)).status, 100);
  ASSERT_TRUE(chunked.send("3\r\nabc\r\n0\r\n\r\n"));
  EXPECT_EQ(body_json(chunked.read_response())["bytes"], 3);

  // Too large by Content-Length: the final answer comes at once, no 100.
  RawClient big(port());
  ASSERT_TRUE(big.send(kPost + "Content-Length: 2097152\r\nExpect: 100-continue\r\n\r\n"));
  EXPECT_EQ(big.read_response(std::chrono::seconds(3)).status, 413);
}

// --- HEAD (RFC 9110 §9.1) -----------------------------------------------------------------------

TEST_F(HttpEdge, HeadOnAGetRouteHasTheGetHeadersAndNoBody) {
  auto get = host_->get("/faulty/ok");
  ASSERT_EQ(get.status, 200);
  RawClient c(port());
  // HEAD then GET pipelined: the GET's answer must follow the HEAD's head directly.
  ASSERT_TRUE(
      c.send("HEAD /faulty/ok HTTP/1.1\r\nHost: x\r\n\r\n"
             "GET /faulty/ok HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string raw;
  ASSERT_TRUE(wait_until([&] {
    raw += c.read_some(std::chrono::milliseconds(50));
    return count(raw, "HTTP/1.1 200") == 2 && raw.size() > raw.rfind("\r\n\r\n") + 4;
  }));
  EXPECT_EQ(status_of(raw), 200);
  EXPECT_NE(raw.find("Content-Length: " + std::to_string(get.body.size()) + "\r\n"),
            std::string::npos)
      << raw;
  EXPECT_EQ(raw.find("HTTP/1.1 200", raw.find("\r\n\r\n") + 4), raw.find("\r\n\r\n") + 4) << raw;
  EXPECT_EQ(count(raw, get.body), 1u) << raw;

  auto wrong = http(port(), "DELETE", "/faulty/ok");
  EXPECT_EQ(wrong.status, 405);
  EXPECT_EQ(wrong.header("allow"), "GET, HEAD");
  auto post_only = http(port(), "HEAD", "/faulty/echo");
  EXPECT_EQ(post_only.status, 405);
  EXPECT_EQ(post_only.header("allow"), "POST");
}

// --- handler timeout ----------------------------------------------------------------------------

TEST_F(HttpEdge, HandlerThatNeverAnswersGets504AndItsLateAnswerIsDropped) {
  RawClient c(port());
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(c.send("GET /faulty/hang HTTP/1.1\r\nHost: x\r\nX-Request-Id: hang-1\r\n\r\n"));
  auto r = c.read_response(std::chrono::seconds(10));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.status, 504);
  EXPECT_EQ(body_json(r)["error"]["code"], "gateway_timeout");
  EXPECT_EQ(body_json(r)["error"]["request_id"], "hang-1");
  EXPECT_GE(took, std::chrono::milliseconds(900));
  EXPECT_LT(took, std::chrono::seconds(3));
  // The plugin answers now, too late: nothing more arrives on the connection, which serves on.
  auto released = host_->post("/faulty/release", "");
  EXPECT_EQ(body_json(released)["released"], 1);
  ASSERT_TRUE(c.send("GET /faulty/ok HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto next = c.read_response();
  EXPECT_EQ(next.status, 200);
  EXPECT_EQ(body_json(next)["ok"], true) << next.body;
  EXPECT_NE(host_->log().find("did not answer in time"), std::string::npos) << host_->log();
}

// --- drain --------------------------------------------------------------------------------------

TEST(HttpDrain, HalfSentBodyIsFinishedIdleConnectionsCloseAndTheHostExits0) {
  KgHost host(kConfig);
  ASSERT_TRUE(host.wait_ready()) << host.log();
  RawClient idle(host.port());
  ASSERT_TRUE(idle.send("GET /faulty/ok HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_EQ(idle.read_response().status, 200);
  RawClient half(host.port());
  ASSERT_TRUE(half.send(kPost + "Content-Length: 10\r\n\r\nabcde"));
  // The host has read the first half (the request is in flight) before the signal.
  ASSERT_TRUE(half.closed_by_peer(std::chrono::milliseconds(300)) == false);

  host.process().signal(SIGTERM);
  ASSERT_TRUE(wait_until([&] { return host.log().find("draining") != std::string::npos; }));
  EXPECT_TRUE(idle.closed_by_peer(std::chrono::seconds(3)));  // idle keep-alive: closed at once
  EXPECT_TRUE(wait_until([&] { return !port_open(host.port()); }, std::chrono::seconds(3)));
  ASSERT_TRUE(half.send("fghij"));
  auto r = half.read_response();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(body_json(r)["bytes"], 10);
  EXPECT_EQ(r.header("connection"), "close");
  auto code = host.process().wait(std::chrono::seconds(20));
  ASSERT_TRUE(code.has_value());
  EXPECT_EQ(*code, 0) << host.log();
}

// --- listen address -----------------------------------------------------------------------------

TEST(HttpListen, BadListenAddressIsAConfigErrorCaughtByCheck) {
  TempDir dir;
  for (std::string listen :
       {"127.0.0.1:70000", "localhost:8080", "1.2.3.4", "1.2.3.4:x", "[::1]:-1", "1.2.3:80"}) {
    SCOPED_TRACE(listen);
    auto cfg = write_file(dir, "k.toml", "mode = \"dev\"\n[server]\nlisten = \"" + listen + "\"\n");
    auto r = run_kghost({"--config", cfg, "--check"});
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("k.toml:3:10: 'server.listen'"), std::string::npos) << r.output;
  }
  auto cfg = write_file(dir, "ok.toml", "[server]\nlisten = \"[::1]:0\"\n");
  EXPECT_EQ(run_kghost({"--config", cfg, "--check"}).exit_code, 0);
  auto flag = run_kghost({"--config", cfg, "--check", "--listen", "nowhere:1"});
  EXPECT_EQ(flag.exit_code, 2) << flag.output;
  EXPECT_NE(flag.output.find("--listen"), std::string::npos) << flag.output;
  auto env = run_kghost({"--config", cfg, "--check"}, {{"KG_LISTEN", "1.2.3.4:99999"}});
  EXPECT_EQ(env.exit_code, 2) << env.output;
  EXPECT_NE(env.output.find("KG_LISTEN"), std::string::npos) << env.output;
}
