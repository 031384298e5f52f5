#include "access_log.hpp"

#include <charconv>
#include <functional>
#include <thread>

#include "request_metrics.hpp"

namespace kghost::observability {
namespace {

bool needs_quotes(std::string_view v) {
  if (v.empty()) return true;
  for (unsigned char c : v)
    if (c <= 0x20 || c == '"' || c == '=' || c == '\\' || c >= 0x7f) return true;
  return false;
}

void value(std::string& out, std::string_view v) {
  if (!needs_quotes(v)) {
    out += v;
    return;
  }
  out += '"';
  for (unsigned char c : v) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      out += ' ';  // no control characters in a log line
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
}

void number(std::string& out, uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

// Milliseconds with microsecond precision, without floating-point formatting: "1.234".
void milliseconds(std::string& out, uint64_t ns) {
  uint64_t us = ns / 1000;
  number(out, us / 1000);
  out += '.';
  char frac[4] = {static_cast<char>('0' + us / 100 % 10), static_cast<char>('0' + us / 10 % 10),
                  static_cast<char>('0' + us % 10), 0};
  out += frac;
}

// A JSON string; control characters as \u00XX.
void json_string(std::string& out, std::string_view v) {
  out += '"';
  for (unsigned char c : v) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      constexpr char kHex[] = "0123456789abcdef";
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
}

}  // namespace

void format_access_fields(const AccessFields& f, std::string& out) {
  out.assign("{\"method\":");
  json_string(out, method_label(f.method));
  out += ",\"route\":";
  json_string(out, f.route.empty() ? kUnmatchedRoute : f.route);
  out += ",\"status\":";
  number(out, f.status);
  out += ",\"duration_ms\":";
  milliseconds(out, f.duration_ns);
  out += ",\"bytes_in\":";
  number(out, f.request_bytes);
  out += ",\"bytes_out\":";
  number(out, f.response_bytes);
  if (!f.tenant.empty()) {
    out += ",\"tenant\":";
    json_string(out, f.tenant);
  }
  out += '}';
}

void format_access_line(const AccessFields& f, std::string& out) {
  out.assign("access method=");
  value(out, method_label(f.method));
  out += " route=";
  value(out, f.route.empty() ? kUnmatchedRoute : f.route);
  out += " status=";
  number(out, f.status);
  out += " duration_ms=";
  milliseconds(out, f.duration_ns);
  out += " request_bytes=";
  number(out, f.request_bytes);
  out += " response_bytes=";
  number(out, f.response_bytes);
  if (!f.tenant.empty()) {
    out += " tenant=";
    value(out, f.tenant);
  }
}

bool AccessSampler::should_log(uint16_t status) const {
  if (status >= 500 || rate_ >= 1.0) return true;
  if (rate_ <= 0.0) return false;
  // xorshift64*, one state per thread: no lock, no shared cache line.
  thread_local uint64_t state =
      std::hash<std::thread::id>{}(std::this_thread::get_id()) | 0x9e3779b97f4a7c15ull;
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  uint64_t r = state * 2685821657736338717ull;
  return static_cast<double>(r >> 11) * 0x1.0p-53 < rate_;
}

}  // namespace kghost::observability
