#include "redis_url.hpp"

#include <charconv>
#include <stdexcept>

namespace store_redis {
namespace {

bool parse_int(std::string_view s, int& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

std::string mask_url(std::string_view url) {
  const auto scheme = url.find("://");
  const auto start = scheme == std::string_view::npos ? 0 : scheme + 3;
  const auto slash = url.find('/', start);
  const auto at = url.rfind('@', slash == std::string_view::npos ? url.size() : slash);
  if (at == std::string_view::npos || at < start) return std::string(url);
  const auto colon = url.find(':', start);
  if (colon == std::string_view::npos || colon > at) return std::string(url);
  return std::string(url.substr(0, colon + 1)) + "***" + std::string(url.substr(at));
}

namespace {

[[noreturn]] void bad_url(std::string_view url, std::string_view why) {
  throw std::invalid_argument("invalid Redis URL '" + mask_url(url) + "': " + std::string(why) +
                              "; expected " + std::string(kUrlForm));
}

}  // namespace

RedisEndpoint parse_redis_url(std::string_view url) {
  constexpr std::string_view scheme = "redis://";
  if (url.substr(0, scheme.size()) != scheme) {
    if (url.substr(0, 9) == "rediss://") bad_url(url, "TLS (rediss://) is not supported");
    bad_url(url, "the scheme must be redis://");
  }
  std::string_view rest = url.substr(scheme.size());
  if (rest.find_first_of("?#") != std::string_view::npos)
    bad_url(url, "query strings and fragments are not supported");
  RedisEndpoint ep;
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view db = rest.substr(slash + 1);
    if (!db.empty() && (!parse_int(db, ep.db) || ep.db < 0))
      bad_url(url, "the database must be a non-negative number");
  }
  const auto at = authority.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    const auto colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
      ep.password = std::string(userinfo);  // redis://password@host, as some clients allow
    } else {
      ep.user = std::string(userinfo.substr(0, colon));
      ep.password = std::string(userinfo.substr(colon + 1));
    }
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) bad_url(url, "unterminated IPv6 address");
    ep.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') bad_url(url, "unexpected text after the IPv6 address");
      port = after.substr(1);
      if (port.empty()) bad_url(url, "empty port");
    }
  } else {
    const auto colon = authority.rfind(':');
    ep.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) bad_url(url, "empty port");
    }
  }
  if (ep.host.empty()) bad_url(url, "missing host");
  if (ep.host.find_first_of(" \t/:@") != std::string::npos && authority.front() != '[')
    bad_url(url, "malformed host");
  if (!port.empty() && (!parse_int(port, ep.port) || ep.port < 1 || ep.port > 65535))
    bad_url(url, "the port must be a number from 1 to 65535");
  return ep;
}

}  // namespace store_redis
