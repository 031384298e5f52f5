// Method + path-template routing ("/api/v1/streams/{channel}/events"). Pure: no I/O.
// Literal segments win over {param} segments; conflicts are refused when a route is added.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kghost {

struct RouteInfo {
  std::string method;
  std::string path;    // the template
  std::string scopes;  // space-separated
  bool is_public = false;
  std::string owner;  // plugin name, or "host"
  std::string summary;
  uint32_t timeout_ms = 0;  // the handler timeout; 0: the host's server.handler_timeout_s
  std::size_t handler = 0;  // index into the caller's handler table
  // For /openapi.json: longer text, and JSON Schemas (JSON text) of the bodies; may be empty.
  std::string description, request_schema, response_schema;
};

using PathParams = std::vector<std::pair<std::string_view, std::string>>;

struct RouteMatch {
  enum Kind { found, not_found, method_not_allowed } kind = not_found;
  const RouteInfo* route = nullptr;
  PathParams params;  // names borrowed from the route; values percent-decoded
  std::string allow;  // for 405: "GET, POST"
};

class Router {
 public:
  Router();
  ~Router();
  Router(Router&&) noexcept;
  Router& operator=(Router&&) noexcept;

  // Returns an empty string on success, or why the route is refused (bad template, or the
  // same method and shape already registered — naming the owner of the existing route).
  std::string add(RouteInfo route);
  // HEAD is served by the GET route when there is no HEAD route (RFC 9110 §9.1).
  RouteMatch match(std::string_view method, std::string_view path) const;
  std::vector<const RouteInfo*> routes() const;

 private:
  struct Node;
  std::unique_ptr<Node> root_;
  std::vector<std::unique_ptr<RouteInfo>> routes_;
};

// Percent-decodes `in`; false on a malformed escape.
bool percent_decode(std::string_view in, std::string& out);

}  // namespace kghost
