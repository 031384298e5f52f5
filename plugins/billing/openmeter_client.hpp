// POST ${url}/api/v1/events over one reused libcurl easy handle (keep-alive). Used by one
// thread at a time (the queue consumer delivers one entry at a time).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

namespace kghost::billing {

// What the flusher does with a batch after one attempt.
enum class Verdict {
  sent,        // any 2xx: acknowledge the spool entry
  retry,       // 5xx, 429, timeout, connection error: back off with jitter, resend
  auth,        // 401/403: our key is wrong, not the data: keep it, retry at the longest backoff
  dead_letter  // any other 4xx: the data is bad; keep it for an operator
};

struct SendResult {
  Verdict verdict = Verdict::retry;
  long http_status = 0;  // 0: no HTTP answer
  std::string answer;    // OpenMeter's body (truncated) or the transport error
};

Verdict classify(long http_status);

class OpenMeterClient {
 public:
  OpenMeterClient(std::string base_url, std::string api_key,
                  std::chrono::milliseconds connect_timeout, std::chrono::milliseconds timeout);
  ~OpenMeterClient();
  OpenMeterClient(const OpenMeterClient&) = delete;
  OpenMeterClient& operator=(const OpenMeterClient&) = delete;

  // body: a JSON array of CloudEvents; traceparent may be empty.
  SendResult send(std::string_view body, std::string_view traceparent);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kghost::billing
