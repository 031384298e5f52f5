// One request and its response, as the request pipeline and the plugin API see it. No Beast
// types here: the connection (connection.cpp) implements the transport side.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/router.hpp"

namespace kghost {

class Pipeline;
using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct HttpResponse {
  uint16_t status = 200;
  std::string content_type;  // empty: application/json
  std::string body;
  HeaderList headers;
};

// The contract's error body: {"error":{"code","message","request_id"}}. The one place it is built.
HttpResponse error_response(uint16_t status, std::string_view code, std::string_view message,
                            std::string_view request_id);

struct OwnedPrincipal {
  std::string user_id, tenant_id, tier, scopes;
};

// A chunked response in progress. Writes come from any thread; the connection drains them.
class StreamState {
 public:
  virtual ~StreamState() = default;
  virtual int32_t write(std::string_view data) = 0;  // KG_OK / KG_ERR_FULL / KG_ERR_CLOSED
  virtual void close() = 0;                          // ends the response; idempotent
  virtual void abort() = 0;                          // host shutdown: drop the client
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

class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  virtual ~Exchange() = default;

  // --- the request (valid for the exchange's life) ---
  virtual std::string_view method() const = 0;
  virtual std::string_view target() const = 0;
  virtual std::string_view body() const = 0;
  virtual std::optional<std::string_view> header(std::string_view name,
                                                 std::size_t index) const = 0;
  std::string_view path;   // target before '?'
  std::string_view query;  // after '?'
  std::string remote_addr;
  std::string request_id;
  // The W3C traceparent: the client's continued, or a new one. Made on first use, since most
  // requests never log or call out. [request thread]
  const std::string& traceparent() const;
  std::string_view trace_id() const { return std::string_view(traceparent()).substr(3, 32); }
  std::chrono::steady_clock::time_point started;
  uint64_t request_bytes = 0;

  // --- pipeline state (touched only on the request's I/O thread) ---
  RouteMatch match;
  std::optional<OwnedPrincipal> principal;
  HeaderList extra_headers;  // added by filters, sent with whatever response goes out
  std::size_t next_filter = 0;
  enum class Phase { filters, handler, responded } phase = Phase::filters;
  bool deferred = false;  // a responder is out for the current step
  bool streaming = false;
  std::optional<HttpResponse> staged;  // set by respond() during a callback

  std::shared_ptr<Transport> transport;
  Pipeline* pipeline = nullptr;  // set when the pipeline takes the exchange
  mutable std::string traceparent_;
  // Decoded values handed to plugins as borrowed views (query parameters).
  std::vector<std::unique_ptr<std::string>> scratch;
};

}  // namespace kghost
