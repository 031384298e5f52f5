// The contract's small pure pieces of a request and its answer: target safety, request ids,
// W3C traceparent, the error body. No I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/header_list.hpp"

namespace kghost {

struct HttpResponse {
  uint16_t status = 200;
  std::string content_type;  // empty: application/json
  std::string body;
  HeaderList headers;
};

// The contract's error body: {"error":{"code","message","request_id"}}. The one place it is built.
HttpResponse error_response(uint16_t status, std::string_view code, std::string_view message,
                            std::string_view request_id);

// True when `target` has a ".." segment or a NUL (raw or %00), raw or percent-encoded.
bool unsafe_target(std::string_view target);
// True when `id` is a usable request id ([A-Za-z0-9._-], 1..128).
bool valid_request_id(std::string_view id);
// A fresh random id: 32 lowercase hex characters.
std::string new_request_id();
// Validates a W3C traceparent (version 00) and returns it, or a new one with a fresh trace id.
std::string continue_traceparent(std::optional<std::string_view> incoming);

}  // namespace kghost
