#include "spool.hpp"

#include <cstdio>

namespace kghost::billing {

namespace {
constexpr std::size_t kCountDigits = 6;  // batch_size is at most 10000
}

std::optional<SpoolEntry> decode_entry(std::string_view data) {
  auto nl = data.find('\n');
  if (nl == std::string_view::npos || nl < kCountDigits + 2 || data[kCountDigits] != ' ')
    return std::nullopt;
  SpoolEntry e;
  for (std::size_t i = 0; i < kCountDigits; ++i) {
    if (data[i] < '0' || data[i] > '9') return std::nullopt;
    e.count = e.count * 10 + static_cast<std::size_t>(data[i] - '0');
  }
  std::string_view rest = data.substr(kCountDigits + 1, nl - kCountDigits - 1);
  auto sp = rest.find(' ');
  if (sp == std::string_view::npos) return std::nullopt;
  e.run = rest.substr(0, sp);
  e.traceparent = rest.substr(sp + 1);
  if (e.traceparent == "-") e.traceparent = {};
  e.body = data.substr(nl + 1);
  if (e.body.size() < 2 || e.body.front() != '[' || e.body.back() != ']') return std::nullopt;
  return e;
}

std::string encode_entry(std::size_t count, std::string_view run, std::string_view traceparent,
                         std::string_view body) {
  char digits[16];
  std::snprintf(digits, sizeof digits, "%06zu ", count % 1000000);
  std::string out(digits);
  out += run;
  out += ' ';
  out += traceparent.empty() ? std::string_view("-") : traceparent;
  out += '\n';
  out += body;
  return out;
}

OpenBatch::OpenBatch(std::size_t batch_size, std::chrono::milliseconds max_age, std::string run,
                     Close close)
    : batch_size_(batch_size), max_age_(max_age), run_(std::move(run)), close_(std::move(close)) {}

void OpenBatch::add(std::string_view event_json, std::string_view traceparent) {
  std::string closed;
  std::size_t n = 0;
  {
    std::lock_guard lock(mu_);
    if (buf_.empty()) {
      buf_.reserve(batch_size_ * (event_json.size() + 8) + 80);
      buf_.assign(kCountDigits, '0');
      buf_ += ' ';
      buf_ += run_;
      buf_ += ' ';
      buf_ += traceparent.empty() ? std::string_view("-") : traceparent;
      buf_ += "\n[";
      first_ = std::chrono::steady_clock::now();
    } else {
      buf_ += ',';
    }
    buf_ += event_json;
    if (++count_ >= batch_size_) closed = take_locked(n);
  }
  if (n) close_(std::move(closed), n);
}

void OpenBatch::tick(bool force) {
  std::string closed;
  std::size_t n = 0;
  {
    std::lock_guard lock(mu_);
    if (count_ == 0) return;
    if (!force && std::chrono::steady_clock::now() - first_ < max_age_) return;
    closed = take_locked(n);
  }
  close_(std::move(closed), n);
}

std::size_t OpenBatch::pending() const {
  std::lock_guard lock(mu_);
  return count_;
}

std::string OpenBatch::take_locked(std::size_t& count) {
  char digits[16];
  std::snprintf(digits, sizeof digits, "%06zu", count_);
  buf_.replace(0, kCountDigits, digits, kCountDigits);
  buf_ += ']';
  count = count_;
  count_ = 0;
  std::string out;
  out.swap(buf_);
  return out;
}

}  // namespace kghost::billing
