// Fixed-window rate limiting: the pure part (window arithmetic and response headers).
// The counting itself is one atomic store incr per request (see auth.cpp).
#pragma once

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

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

// "rl:<tenant>:<window start>", appended to `out`. The tenant id is validated by whoever set
// the principal; a ':' in it cannot collide with another tenant because the window start is
// last and numeric.
inline void append_counter_key(std::string& out, std::string_view tenant, int64_t window_start_s) {
  char start[24];
  auto end = std::to_chars(start, start + sizeof start, window_start_s).ptr;
  out += "rl:";
  out.append(tenant);
  out += ':';
  out.append(start, end);
}

inline std::string counter_key(std::string_view tenant, int64_t window_start_s) {
  std::string k;
  append_counter_key(k, tenant, window_start_s);
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

// Tier names are at most this long (auth's config checks them).
inline constexpr std::size_t kMaxTierName = 32;

// A tier's rate-limit policy with the parts of its headers that never change, formatted once.
struct RateLimitPolicy {
  RateLimitPolicy() = default;
  // Throws std::invalid_argument for a tier name longer than kMaxTierName.
  RateLimitPolicy(std::string_view tier, int64_t limit, int64_t window_s)
      : limit_text(std::to_string(limit)),
        policy("\"" + std::string(tier) + "\";q=" + limit_text + ";w=" + std::to_string(window_s)),
        state_prefix("\"" + std::string(tier) + "\";r=") {
    if (tier.size() > kMaxTierName)
      throw std::invalid_argument("tier name '" + std::string(tier) + "' is longer than 32");
  }
  std::string limit_text;    // X-RateLimit-Limit
  std::string policy;        // RateLimit-Policy: "<tier>";q=<limit>;w=<window>
  std::string state_prefix;  // RateLimit starts with "<tier>";r=
};

// The headers of one answer: X-RateLimit-Limit/Remaining/Reset and the IETF draft
// (httpapi-ratelimit-headers-11) fields RateLimit-Policy: "<tier>";q=<limit>;w=<window> and
// RateLimit: "<tier>";r=<remaining>;t=<reset>; a 429 also gets Retry-After (seconds to the
// window's end). The changing values are formatted into this object's own buffers and the
// rest borrowed from the policy, so an answer costs no allocation; the views handed to
// for_each live as long as this object and the policy.
class RateLimitHeaders {
 public:
  RateLimitHeaders(const Verdict& v, const RateLimitPolicy& p) : policy_(p), allowed_(v.allowed) {
    remaining_ = put(remaining_buf_, v.remaining);
    reset_ = put(reset_buf_, v.reset_s);
    char* out = state_buf_;  // fits: the prefix is at most kMaxTierName + 5, each number 20
    out = std::copy(p.state_prefix.begin(), p.state_prefix.end(), out);
    out = std::copy(remaining_.begin(), remaining_.end(), out);
    out = std::copy_n(";t=", 3, out);
    out = std::copy(reset_.begin(), reset_.end(), out);
    state_ = {state_buf_, static_cast<std::size_t>(out - state_buf_)};
  }
  RateLimitHeaders(const RateLimitHeaders&) = delete;
  RateLimitHeaders& operator=(const RateLimitHeaders&) = delete;

  bool allowed() const { return allowed_; }
  std::size_t size() const { return allowed_ ? 5 : 6; }
  // fn(name, value) for each header, in a fixed order.
  template <class Fn>
  void for_each(Fn&& fn) const {
    fn(std::string_view("X-RateLimit-Limit"), std::string_view(policy_.limit_text));
    fn(std::string_view("X-RateLimit-Remaining"), remaining_);
    fn(std::string_view("X-RateLimit-Reset"), reset_);
    fn(std::string_view("RateLimit-Policy"), std::string_view(policy_.policy));
    fn(std::string_view("RateLimit"), state_);
    if (!allowed_) fn(std::string_view("Retry-After"), reset_);
  }

 private:
  static std::string_view put(char (&buf)[24], int64_t v) {
    auto end = std::to_chars(buf, buf + sizeof buf, v).ptr;
    return {buf, static_cast<std::size_t>(end - buf)};
  }
  const RateLimitPolicy& policy_;
  bool allowed_;
  char remaining_buf_[24], reset_buf_[24], state_buf_[kMaxTierName + 5 + 2 * 20 + 3];
  std::string_view remaining_, reset_, state_;  // state_: "<tier>";r=<remaining>;t=<reset>
};

}  // namespace kghost::auth
