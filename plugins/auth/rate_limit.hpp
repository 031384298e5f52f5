// Fixed-window rate limiting: the pure part (window arithmetic and response headers).
// The counting itself is one atomic store incr per request (see auth.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kghost::auth {

struct Window {
  int64_t start_s = 0;  // unix seconds, a multiple of the window length
  int64_t reset_s = 0;  // seconds until the window ends, rounded up: 1..window_s
  int64_t ttl_ms = 0;   // TTL for the counter key: to the window's end plus a grace second
};

// The fixed window containing `now_ms` (unix ms). Windows are aligned to the epoch, so every
// replica agrees on them without talking to each other.
inline Window window_at(int64_t now_ms, int64_t window_s) {
  const int64_t len_ms = window_s * 1000;
  const int64_t start_ms = now_ms - now_ms % len_ms;
  const int64_t left_ms = start_ms + len_ms - now_ms;  // 1..len_ms
  return Window{start_ms / 1000, (left_ms + 999) / 1000, left_ms + 1000};
}

// "rl:<tenant>:<window start>". The tenant id is validated by whoever set the principal;
// a ':' in it cannot collide with another tenant because the window start is last and numeric.
inline std::string counter_key(std::string_view tenant, int64_t window_start_s) {
  std::string k = "rl:";
  k.append(tenant);
  k += ':';
  k += std::to_string(window_start_s);
  return k;
}

struct Verdict {
  bool allowed = true;
  int64_t limit = 0;
  int64_t remaining = 0;
  int64_t reset_s = 0;
};

// count: the counter's value after this request's increment.
inline Verdict judge(int64_t count, int64_t limit, const Window& w) {
  Verdict v;
  v.limit = limit;
  v.allowed = count <= limit;
  v.remaining = count >= limit ? 0 : limit - count;
  v.reset_s = w.reset_s;
  return v;
}

struct HeaderPair {
  std::string name, value;
};

// X-RateLimit-Limit/Remaining/Reset and the IETF draft (httpapi-ratelimit-headers-11) fields
// RateLimit-Policy: "<tier>";q=<limit>;w=<window> and RateLimit: "<tier>";r=<remaining>;t=<reset>.
// A 429 also gets Retry-After (seconds to the window's end).
inline std::vector<HeaderPair> rate_limit_headers(const Verdict& v, std::string_view tier,
                                                  int64_t window_s) {
  std::string t(tier);
  std::vector<HeaderPair> h;
  h.reserve(6);
  h.push_back({"X-RateLimit-Limit", std::to_string(v.limit)});
  h.push_back({"X-RateLimit-Remaining", std::to_string(v.remaining)});
  h.push_back({"X-RateLimit-Reset", std::to_string(v.reset_s)});
  h.push_back({"RateLimit-Policy",
               "\"" + t + "\";q=" + std::to_string(v.limit) + ";w=" + std::to_string(window_s)});
  h.push_back({"RateLimit", "\"" + t + "\";r=" + std::to_string(v.remaining) +
                                ";t=" + std::to_string(v.reset_s)});
  if (!v.allowed) h.push_back({"Retry-After", std::to_string(v.reset_s)});
  return h;
}

}  // namespace kghost::auth
