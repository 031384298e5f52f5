#include "plugins/host_routes.hpp"

#include <cctype>
#include <optional>
#include <set>

#include "common/text.hpp"
#include "version.hpp"

namespace kghost {
namespace {

HttpResponse json_response(uint16_t status, const nlohmann::json& body) {
  HttpResponse r;
  r.status = status;
  r.body = body.dump();
  return r;
}

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

// An OpenAPI 3.1 document of every registered route: parameters, scopes, body schemas, and
// the contract's error JSON as one shared component.
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

// Answers `ex` later with what `make` returns, computed on the worker pool: plugin health
// reporters are plugin code and may be slow, and an I/O thread must never wait for them.
void answer_on_pool(WorkerPool& pool, Exchange& ex, std::function<HttpResponse()> make) {
  std::optional<Responder> deferred = ex.defer();
  if (!deferred) return;
  pool.post([responder = std::move(*deferred), make = std::move(make)]() mutable {
    HttpResponse r;
    try {
      r = make();
    } catch (const std::exception& e) {
      r = error_response(500, "internal_error", std::string("cannot answer: ") + e.what(),
                         responder.request_id());
    }
    responder.complete(std::move(r));
  });
}

// A host route: answers during the call (respond) or later (answer_on_pool).
class HostRoute final : public Handler {
 public:
  explicit HostRoute(std::function<void(Exchange&)> fn) : fn_(std::move(fn)) {}
  Verdict handle(Exchange& ex) override {
    fn_(ex);
    return {Verdict::answered, 0};
  }

 private:
  std::function<void(Exchange&)> fn_;
};

}  // namespace

nlohmann::json health_document(const PluginHost& plugins, const Store& store,
                               const HostState& state) {
  HealthStatus overall = HealthStatus::healthy;
  nlohmann::json list = nlohmann::json::object();
  for (auto& [name, report] : plugins.health()) {
    overall = worst(overall, report.status);
    nlohmann::json entry = report.details.is_object() ? report.details : nlohmann::json::object();
    entry["status"] = to_string(report.status);
    list[name] = std::move(entry);
  }
  auto sh = store.health();
  overall =
      worst(overall, sh.status == HealthStatus::unhealthy ? HealthStatus::degraded : sh.status);
  nlohmann::json store_json = {{"status", to_string(sh.status)}, {"backend", sh.backend}};
  if (!sh.detail.empty()) store_json["detail"] = sh.detail;
  auto uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() -
                                                                 state.started)
                    .count();
  return {{"status", to_string(overall)},
          {"version", KGHOST_VERSION},
          {"uptime_s", uptime},
          {"store", store_json},
          {"plugins", list}};
}

std::string register_host_routes(Pipeline& pipeline, const PluginHost& plugins, const Store& store,
                                 const HostState& state, WorkerPool& pool) {
  auto add = [&](std::string method, std::string path, std::string scopes, bool is_public,
                 std::string summary, std::function<void(Exchange&)> fn) {
    RouteInfo info;
    info.method = std::move(method);
    info.path = std::move(path);
    info.scopes = std::move(scopes);
    info.is_public = is_public;
    info.owner = "host";
    info.summary = std::move(summary);
    return pipeline.add_route(std::move(info),
                              HandlerEntry{std::make_shared<HostRoute>(std::move(fn))});
  };
  std::string err;
  auto check = [&](std::string e) {
    if (err.empty()) err = std::move(e);
  };
  check(add("GET", "/health/live", "", true, "Liveness: the process serves", [](Exchange& ex) {
    ex.respond(json_response(200, {{"status", "live"}}));
  }));
  check(add(
      "GET", "/health/ready", "", true, "Readiness: started and not draining",
      [&state](Exchange& ex) {
        bool ready = state.ready.load();
        ex.respond(json_response(ready ? 200 : 503, {{"status", ready ? "ready" : "not_ready"}}));
      }));
  check(add("GET", "/health", "", true, "Health of the host, the store and every plugin",
            [&](Exchange& ex) {
              answer_on_pool(pool, ex, [&] {
                auto doc = health_document(plugins, store, state);
                return json_response(doc["status"] == "unhealthy" ? 503 : 200, doc);
              });
            }));
  check(
      add("GET", "/admin/plugins", "admin", false, "The loaded plugins", [&plugins](Exchange& ex) {
        ex.respond(json_response(200, {{"plugins", plugins.describe()}}));
      }));
  check(add("GET", "/openapi.json", "", true, "This document",
            [](Exchange& ex) { ex.respond(json_response(200, openapi(ex.routes().router()))); }));
  return err;
}

}  // namespace kghost
