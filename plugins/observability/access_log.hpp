// observability: the access-log line and its sampling. Pure except for the sampler's PRNG.
//
// The line goes through kg_host_api.log, which writes one JSON object with ts, level, plugin,
// request_id and trace_id; ABI 1.0 carries only a message, so the request's own fields travel
// in `msg` as logfmt (key=value, values quoted when needed), e.g.
//   access method=GET route=/api/v1/health status=200 duration_ms=0.412 request_bytes=0
//   response_bytes=57 tenant=user_bob
// Never the raw path, the query string or a header: a key or an SSE token could be in them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kghost::observability {

struct AccessFields {
  std::string_view method;
  std::string_view route;  // template; empty: unmatched
  uint16_t status = 0;
  uint64_t duration_ns = 0;
  uint64_t request_bytes = 0;
  uint64_t response_bytes = 0;
  std::string_view tenant;  // empty: not authenticated
};

// Replaces `out` with the message (reusing its capacity).
void format_access_line(const AccessFields& f, std::string& out);

// Decides which requests are logged: a fraction `rate` (0..1) of them, and every 5xx.
class AccessSampler {
 public:
  explicit AccessSampler(double rate) : rate_(rate) {}
  // [request] Lock-free; a per-thread PRNG.
  bool should_log(uint16_t status) const;
  double rate() const { return rate_; }

 private:
  double rate_;
};

}  // namespace kghost::observability
