#include "http/protocol.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <random>

#include "common/text.hpp"
#include "http/router.hpp"

namespace kghost {
namespace {

std::string random_hex(std::size_t chars) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string out;
  out.reserve(chars + 16);
  while (out.size() < chars) out += to_hex(rng());
  out.resize(chars);
  return out;
}

bool is_lower_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace

HttpResponse error_response(uint16_t status, std::string_view code, std::string_view message,
                            std::string_view request_id) {
  nlohmann::json body = {
      {"error", {{"code", code}, {"message", message}, {"request_id", request_id}}}};
  HttpResponse r;
  r.status = status;
  r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

bool unsafe_target(std::string_view target) {
  if (target.find('\0') != std::string_view::npos) return true;
  std::string_view path = target.substr(0, target.find('?'));
  std::string decoded;
  if (!percent_decode(target, decoded)) return true;  // malformed escape
  if (decoded.find('\0') != std::string::npos) return true;
  if (!percent_decode(path, decoded)) return true;
  std::size_t i = 0;
  while (i <= decoded.size()) {
    std::size_t j = decoded.find('/', i);
    if (j == std::string::npos) j = decoded.size();
    if (std::string_view(decoded).substr(i, j - i) == "..") return true;
    i = j + 1;
  }
  return false;
}

bool valid_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
  });
}

std::string new_request_id() { return random_hex(32); }

std::string continue_traceparent(std::optional<std::string_view> in) {
  // 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>
  if (in && in->size() == 55 && in->substr(0, 3) == "00-" && (*in)[35] == '-' && (*in)[52] == '-') {
    auto trace = in->substr(3, 32), parent = in->substr(36, 16), flags = in->substr(53, 2);
    if (is_lower_hex(trace) && is_lower_hex(parent) && is_lower_hex(flags) &&
        trace != std::string(32, '0') && parent != std::string(16, '0')) {
      return "00-" + std::string(trace) + "-" + random_hex(16) + "-" + std::string(flags);
    }
  }
  return "00-" + random_hex(32) + "-" + random_hex(16) + "-01";
}

}  // namespace kghost
