// What the request pipeline calls: handlers, filters and observers as small C++ interfaces.
// The plugins' C ABI is adapted to these in host/plugins/request_api.cpp; http/ never sees it.
// One virtual call per invocation; no allocation.
#pragma once

#include <cstdint>
#include <string_view>

namespace kghost {

class Exchange;

// What a filter or handler call says about the request it was given.
struct Verdict {
  enum Kind : uint8_t {
    answered,  // it answered (Exchange::respond, or a stream it began)
    next,      // a filter passes the request on
    later,     // it took a Responder (Exchange::defer) or began a stream, and answers through it
    failed,    // anything else: the request gets a 500
  };
  Kind kind;
  int32_t status;  // the callee's own status code, named in the log when the verdict is refused
};

class Handler {
 public:
  virtual ~Handler() = default;
  // [request] Answers `ex` now (respond), later (defer, begin_stream), or fails.
  virtual Verdict handle(Exchange& ex) = 0;
};

class Filter {
 public:
  virtual ~Filter() = default;
  // [request] Passes `ex` on (next), answers it (the chain stops), or defers: a deferred
  // filter's Responder completed with status 0 continues the chain.
  virtual Verdict filter(Exchange& ex) = 0;
};

// Why a stream ended (the values are the ABI's kg_stream_end_reason).
enum class StreamEnd : uint8_t {
  none = 0,
  client_gone = 1,
  closed_by_plugin = 2,
  host_shutdown = 3
};

// What an observer is told of a finished response, a stream's start or its end. Views borrow
// from the exchange and its route for the call.
struct Observation {
  enum class Kind : uint8_t { response = 0, stream_start = 1, stream_end = 2 } kind;
  std::string_view method;
  std::string_view route;  // the route template; empty if none matched
  uint16_t status = 0;
  uint64_t duration_ns = 0;  // from the first byte read to the response queued (or stream end)
  uint64_t request_bytes = 0;
  uint64_t response_bytes = 0;  // stream_end: the body bytes the stream accepted
  StreamEnd end_reason = StreamEnd::none;
};

class Observer {
 public:
  virtual ~Observer() = default;
  // [request], or [any] for a stream's end. May read `ex`, never answer it.
  virtual void observe(Exchange& ex, const Observation& what) = 0;
};

}  // namespace kghost
