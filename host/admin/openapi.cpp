#include "admin/openapi.hpp"

#include <cctype>
#include <set>

#include "common/text.hpp"
#include "version.hpp"

namespace kghost {
namespace {

std::vector<std::string> split_scopes(std::string_view list) {
  std::vector<std::string> out;
  for_each_scope(list, [&](std::string_view s) {
    out.emplace_back(s);
    return true;
  });
  return out;
}

// "GET /api/v1/streams/{channel}/events" -> "get_api_v1_streams_channel_events"
std::string operation_id(const RouteInfo& r) {
  std::string id;
  for (char ch : r.method + r.path) {
    bool word = std::isalnum(static_cast<unsigned char>(ch));
    if (word)
      id += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    else if (!id.empty() && id.back() != '_')
      id += '_';
  }
  while (!id.empty() && id.back() == '_') id.pop_back();
  return id;
}

nlohmann::json json_content(std::string_view schema_text) {
  return {{"application/json", {{"schema", nlohmann::json::parse(schema_text)}}}};
}

nlohmann::json operation(const RouteInfo& r) {
  nlohmann::json op = {{"operationId", operation_id(r)},
                       {"summary", r.summary.empty() ? r.method + " " + r.path : r.summary},
                       {"tags", {r.owner}}};
  if (!r.description.empty()) op["description"] = r.description;
  nlohmann::json params = nlohmann::json::array();
  std::string_view p = r.path;
  for (auto open = p.find('{'); open != std::string_view::npos; open = p.find('{', open + 1)) {
    auto close = p.find('}', open);
    params.push_back({{"name", std::string(p.substr(open + 1, close - open - 1))},
                      {"in", "path"},
                      {"required", true},
                      {"schema", {{"type", "string"}}}});
  }
  if (!params.empty()) op["parameters"] = params;
  if (!r.request_schema.empty())
    op["requestBody"] = {{"required", true}, {"content", json_content(r.request_schema)}};
  nlohmann::json ok = {{"description", "Success"}};
  if (!r.response_schema.empty()) ok["content"] = json_content(r.response_schema);
  op["responses"] = {{"2XX", ok},
                     {"4XX", {{"$ref", "#/components/responses/Error"}}},
                     {"5XX", {{"$ref", "#/components/responses/Error"}}}};
  if (r.is_public) {
    op["security"] = nlohmann::json::array();
  } else {
    auto scopes = split_scopes(r.scopes);
    op["security"] = {{{"ApiKeyHeader", scopes}}, {{"BearerKey", scopes}}};
    op["x-required-scopes"] = scopes;
  }
  return op;
}

}  // namespace

nlohmann::json openapi(const Router& router) {
  nlohmann::json paths = nlohmann::json::object();
  std::set<std::string> owners;
  for (const RouteInfo* r : router.routes()) {
    std::string method = r->method;
    for (auto& ch : method) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    paths[r->path][method] = operation(*r);
    owners.insert(r->owner);
  }
  nlohmann::json tags = nlohmann::json::array();
  for (auto& o : owners)
    tags.push_back(
        {{"name", o},
         {"description", o == "host" ? "Served by the host itself" : "Served by the plugin " + o}});
  nlohmann::json error_schema = {
      {"type", "object"},
      {"required", {"error"}},
      {"properties",
       {{"error",
         {{"type", "object"},
          {"required", {"code", "message", "request_id"}},
          {"properties",
           {{"code", {{"type", "string"}, {"description", "machine-readable, e.g. rate_limited"}}},
            {"message", {{"type", "string"}}},
            {"request_id", {{"type", "string"}, {"description", "as in X-Request-Id"}}}}}}}}}};
  return {
      {"openapi", "3.1.0"},
      {"info",
       {{"title", "kghost"},
        {"version", KGHOST_VERSION},
        {"description", "Every route the host and its loaded plugins serve."}}},
      {"servers", {{{"url", "/"}}}},
      {"tags", tags},
      {"paths", paths},
      {"components",
       {{"schemas", {{"Error", error_schema}}},
        {"responses",
         {{"Error",
           {{"description", "The error JSON, with the request id"},
            {"content",
             {{"application/json", {{"schema", {{"$ref", "#/components/schemas/Error"}}}}}}}}}}},
        {"securitySchemes",
         {{"ApiKeyHeader", {{"type", "apiKey"}, {"in", "header"}, {"name", "X-API-Key"}}},
          {"BearerKey", {{"type", "http"}, {"scheme", "bearer"}}}}}}}};
}

}  // namespace kghost
