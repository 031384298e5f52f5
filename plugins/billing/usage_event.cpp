#include "usage_event.hpp"

#include <openssl/rand.h>

#include <ctime>

namespace kghost::billing {
namespace {

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += ch;  // UTF-8 passes through; tenant ids and templates are ASCII in practice
    }
  }
  out += '"';
}

}  // namespace

std::string new_event_id() {
  static constexpr char kHex[] = "0123456789abcdef";
  // One RAND_bytes call per 256 ids: the request thread pays for the CSPRNG in bulk.
  thread_local unsigned char pool[4096];
  thread_local std::size_t used = sizeof pool;
  if (used == sizeof pool) {
    if (RAND_bytes(pool, sizeof pool) != 1) return {};
    used = 0;
  }
  const unsigned char* raw = pool + used;
  used += 16;
  std::string id(32, '0');
  for (int i = 0; i < 16; ++i) {
    id[2 * i] = kHex[raw[i] >> 4];
    id[2 * i + 1] = kHex[raw[i] & 0xf];
  }
  return id;
}

std::string rfc3339_utc(int64_t unix_ms) {
  const std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
  thread_local std::time_t cached_secs = -1;  // formatting once per second per thread
  thread_local std::string cached;
  if (secs != cached_secs) {
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[40];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    cached = buf;
    cached_secs = secs;
  }
  std::string out = cached;
  const int ms = static_cast<int>(unix_ms % 1000);
  out += '.';
  out += static_cast<char>('0' + ms / 100);
  out += static_cast<char>('0' + ms / 10 % 10);
  out += static_cast<char>('0' + ms % 10);
  out += 'Z';
  return out;
}

void append_usage_event(std::string& out, std::string_view id, std::string_view tenant,
                        std::string_view route, std::string_view method, int status,
                        int64_t unix_ms) {
  out += R"({"specversion":"1.0","id":")";
  out += id;
  out += R"(","source":"kghost","type":"api.request","subject":)";
  append_json_string(out, tenant);
  out += R"(,"time":")";
  out += rfc3339_utc(unix_ms);
  out += R"(","datacontenttype":"application/json","data":{"route":)";
  append_json_string(out, route);
  out += R"(,"method":)";
  append_json_string(out, method);
  out += R"(,"status_code":)";
  out += std::to_string(status);
  out += "}}";
}

}  // namespace kghost::billing
