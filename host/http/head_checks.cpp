#include "http/head_checks.hpp"

#include <algorithm>
#include <cstring>

#include "http/response_head.hpp"

namespace kghost {
namespace http = boost::beast::http;
namespace {

// Host = uri-host [ ":" port ] (RFC 9110 §7.2), as characters.
bool valid_host(std::string_view v) {
  return std::all_of(v.begin(), v.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("-._~!$&'()*+,;=:[]%").find(c) != std::string_view::npos;
  });
}

}  // namespace

// obs-fold (RFC 9112 §5.2): a line of the header section that starts with SP or HTAB.
bool has_obs_fold(const char* p, std::size_t n) {
  if (n == 0) return false;
  for (const char* end = p + n; (p = static_cast<const char*>(std::memchr(p, '\n', end - p)));) {
    if (++p == end) break;
    if (*p == ' ' || *p == '\t') return true;
  }
  return false;
}

Refusal check_host(const http::fields& req, unsigned version) {
  auto hosts = req.equal_range(http::field::host);
  std::size_t count = 0;
  for (auto it = hosts.first; it != hosts.second; ++it) {
    if (++count > 1 || !valid_host({it->value().data(), it->value().size()}))
      return {400, "bad_request", "the request needs exactly one valid Host header"};
  }
  if (count == 0 && version >= 11)
    return {400, "bad_request", "an HTTP/1.1 request needs exactly one valid Host header"};
  return {};
}

Refusal check_transfer_encoding(const http::fields& req, unsigned version, bool& chunked) {
  chunked = false;
  auto range = req.equal_range(http::field::transfer_encoding);
  if (range.first == range.second) return {};
  static constexpr Refusal kBad{400, "bad_request",
                                "Transfer-Encoding must end with chunked, once, without "
                                "Content-Length, in HTTP/1.1"};
  if (version < 11 || req.count(http::field::content_length) > 0) return kBad;
  bool unsupported = false;
  for (auto it = range.first; it != range.second; ++it) {
    std::string_view list(it->value().data(), it->value().size());
    while (!list.empty()) {
      auto comma = list.find(',');
      std::string_view coding = list.substr(0, comma);
      coding = coding.substr(0, coding.find(';'));
      while (!coding.empty() && (coding.front() == ' ' || coding.front() == '\t'))
        coding.remove_prefix(1);
      while (!coding.empty() && (coding.back() == ' ' || coding.back() == '\t'))
        coding.remove_suffix(1);
      if (!coding.empty()) {
        if (chunked) return kBad;  // a coding after chunked: the body has no end we can find
        if (iequals(coding, "chunked"))
          chunked = true;
        else
          unsupported = true;
      }
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    }
  }
  if (!chunked) return kBad;
  if (unsupported)
    return {501, "not_implemented",
            "only the chunked transfer coding is implemented; send the body without gzip, "
            "deflate or other transfer codings"};
  return {};
}

}  // namespace kghost
