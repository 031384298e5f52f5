// One request and its response: the request's state machine. Every state a request can be in
// and every transition between them is here and in exchange.cpp; the adapters (the plugin ABI,
// the host routes) and the connection only call the transitions, each of which checks it is
// legal in the current state. No Beast types: the connection (connection.cpp) implements the
// transport side.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/handler.hpp"
#include "http/protocol.hpp"
#include "http/route_table.hpp"
#include "http/router.hpp"

namespace kghost {

class Pipeline;
class Responder;

struct OwnedPrincipal {
  std::string user_id, tenant_id, tier, scopes;
};

// What a stream write did with the data.
enum class StreamWrite : uint8_t { accepted, full, closed };

// A chunked response in progress. Writes come from any thread; the connection drains them.
class StreamState {
 public:
  virtual ~StreamState() = default;
  virtual StreamWrite write(std::string_view data) = 0;  // full: over the buffer bound
  virtual void close() = 0;                              // ends the response; idempotent
  virtual void abort() = 0;                              // host shutdown: drop the client
};

// The connection side of an exchange.
class Transport {
 public:
  virtual ~Transport() = default;
  // Runs fn on the connection's I/O thread (later, never inline). Safe from any thread.
  virtual void post(std::function<void()> fn) = 0;
  // [request thread] Writes the response, with X-Request-Id (the exchange's request_id) and
  // the framing headers; the connection then reads the next request.
  virtual void send(HttpResponse&& response) = 0;
  // [request thread] Writes the head of a chunked response and hands back its stream.
  // on_closed runs once (any thread) when the client goes or the stream is aborted.
  virtual std::shared_ptr<StreamState> begin_stream(HttpResponse&& head,
                                                    std::function<void()> on_closed) = 0;
};

// The states of a request, in order:
//   filters    the filter chain runs, one filter after another
//   handler    the route's handler runs
//   responded  a response or a stream's head went out; any later answer is dropped
// Within filters and handler, the step in progress is either running its callback (an answer
// given with respond() is staged, and sent when the callback returns) or deferred (a Responder
// is out; only its complete() or the deadline's time_out() moves the request on).
class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(std::shared_ptr<Transport> transport, std::string remote_addr,
           std::chrono::steady_clock::time_point started, uint64_t request_bytes)
      : remote_addr_(std::move(remote_addr)),
        started_(started),
        request_bytes_(request_bytes),
        transport_(std::move(transport)) {}
  virtual ~Exchange() = default;
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  // --- the request (valid for the exchange's life) ---
  virtual std::string_view method() const = 0;
  virtual std::string_view target() const = 0;
  virtual std::string_view body() const = 0;
  virtual std::optional<std::string_view> header(std::string_view name,
                                                 std::size_t index) const = 0;
  std::string_view path() const { return path_; }    // target before '?'
  std::string_view query() const { return query_; }  // after '?'
  const std::string& request_id() const { return request_id_; }
  const std::string& remote_addr() const { return remote_addr_; }
  // The W3C traceparent: the client's continued, or a new one. Made on first use, since most
  // requests never log or call out. [request thread]
  const std::string& traceparent() const;
  std::string_view trace_id() const { return std::string_view(traceparent()).substr(3, 32); }
  std::chrono::steady_clock::time_point started() const { return started_; }
  uint64_t request_bytes() const { return request_bytes_; }
  const RouteInfo* route() const { return match_.route; }  // null until matched
  const PathParams& params() const { return match_.params; }
  // The table this request is served by (kept alive until the exchange ends). [after start]
  const RouteTable& routes() const { return *table_; }

  // --- what filters add on the way (request thread) ---
  const std::optional<OwnedPrincipal>& principal() const { return principal_; }
  void set_principal(OwnedPrincipal p) { principal_ = std::move(p); }
  void add_response_header(std::string_view name, std::string_view value) {
    extra_headers_.emplace_back(name, value);
  }
  // Keeps `value` for the exchange's life and returns a view of it (values handed to plugins
  // as borrowed views, e.g. decoded query parameters).
  std::string_view keep(std::string value);

  // --- transitions ---
  // [request] The connection hands over a parsed request: checks the target, routes it and
  // runs the filters, then the handler.
  void start(Pipeline& pipeline);
  // [request] During a filter or handler callback: answers now (sent when the callback
  // returns). False once answered or deferred.
  bool respond(HttpResponse&& response);
  // [request] During a callback: the answer comes later through the Responder. Empty once
  // answered, deferred or staged.
  std::optional<Responder> defer();
  // [request] During a handler callback: starts a chunked response instead. Null once
  // answered, deferred or staged.
  std::shared_ptr<StreamState> begin_stream(HttpResponse&& head, std::function<void()> on_closed);
  // [request] The deadline passed without an answer: the client gets 504 and a late answer
  // is dropped.
  void time_out();
  // [request] The host itself failed while serving the request: 500.
  void host_failed(std::string_view what);
  bool answered() const { return phase_ == Phase::responded; }
  // [any] A stream this exchange began ended: tells the stream observers (once per stream).
  void observe_stream_end(uint16_t status, uint64_t bytes, StreamEnd reason);

 private:
  friend class Responder;
  enum class Phase : uint8_t { filters, handler, responded };

  // [any] A deferred step finished (Responder::complete): goes on on the request's thread.
  static void complete(std::shared_ptr<Exchange> ex, HttpResponse&& response);
  void resume(HttpResponse&& response);
  void run_filters();
  void run_handler();
  // After a callback returned `v`: true to go on with the next filter; else it answered,
  // waits, or failed (then 500).
  bool settle(Verdict v, bool is_filter, const std::string& who);
  // The one way out: sends `response` with the filters' headers, then tells the observers.
  void finish(HttpResponse&& response);
  Observation observation(Observation::Kind kind, uint16_t status, uint64_t response_bytes) const;
  void observe(Observation::Kind kind, uint16_t status, uint64_t response_bytes);

  std::string_view path_, query_;
  std::string request_id_;
  std::string remote_addr_;
  mutable std::string traceparent_;
  std::chrono::steady_clock::time_point started_;
  uint64_t request_bytes_ = 0;

  std::shared_ptr<Transport> transport_;
  Pipeline* pipeline_ = nullptr;
  std::shared_ptr<const RouteTable> table_;
  RouteMatch match_;

  Phase phase_ = Phase::filters;
  std::size_t next_filter_ = 0;
  bool deferred_ = false;                    // a Responder is out for the current step
  bool streaming_ = false;                   // responded with a stream
  std::optional<HttpResponse> staged_;       // set by respond() during a callback
  HttpResponse completed_;                   // a deferred answer on its way to resume()
  std::atomic<bool> answered_later_{false};  // the deferral's first answer won; reset by defer
  std::optional<OwnedPrincipal> principal_;
  HeaderList extra_headers_;  // added by filters, sent with whatever response goes out
  std::vector<std::unique_ptr<std::string>> kept_;
};

// A deferred answer: keeps its exchange (and so its route table) alive until completed.
class Responder {
 public:
  explicit Responder(std::shared_ptr<Exchange> ex) : ex_(std::move(ex)) {}
  // [any] Answers the request; from a filter, status 0 continues the chain (its headers are
  // added to the response). Once; an answer after the deadline is dropped.
  void complete(HttpResponse&& response) {
    if (ex_) Exchange::complete(std::move(ex_), std::move(response));
  }
  const std::string& request_id() const { return ex_->request_id(); }

 private:
  std::shared_ptr<Exchange> ex_;
};

}  // namespace kghost
