// observability: the access-log line and its sampling. Pure except for the sampler's PRNG.
//
// The line goes through the host's logger, which writes one JSON object with ts, level, plugin,
// request_id and trace_id. On a 1.1 host the request's own fields are fields of that object
// (kg_host_api.log_fields, msg "access"):
//   {"method":"GET","route":"/api/v1/health","status":200,"duration_ms":0.412,"bytes_in":0,
//    "bytes_out":57,"tenant":"user_bob"}
// A host without log_fields gets them in `msg` as logfmt (key=value, quoted when needed):
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

// The message of an access line.
inline constexpr std::string_view kAccessMessage = "access";

// Replaces `out` with the fields as one JSON object (reusing its capacity); tenant only when
// known.
void format_access_fields(const AccessFields& f, std::string& out);

// Replaces `out` with the logfmt message for a host without log_fields (reusing its capacity).
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
