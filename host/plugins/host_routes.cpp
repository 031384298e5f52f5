#include "plugins/host_routes.hpp"

#include "version.hpp"

namespace kghost {
namespace {

HttpResponse json_response(uint16_t status, const nlohmann::json& body) {
  HttpResponse r;
  r.status = status;
  r.body = body.dump();
  return r;
}

// An OpenAPI 3.1 document of every registered route.
nlohmann::json openapi(const Pipeline& pipeline) {
  nlohmann::json paths = nlohmann::json::object();
  for (const RouteInfo* r : pipeline.router().routes()) {
    nlohmann::json op = {{"summary", r->summary.empty() ? r->method + " " + r->path : r->summary},
                         {"tags", {r->owner}},
                         {"responses", {{"default", {{"description", "JSON response or error"}}}}}};
    nlohmann::json params = nlohmann::json::array();
    std::string_view p = r->path;
    for (auto open = p.find('{'); open != std::string_view::npos; open = p.find('{', open + 1)) {
      auto close = p.find('}', open);
      params.push_back({{"name", std::string(p.substr(open + 1, close - open - 1))},
                        {"in", "path"},
                        {"required", true},
                        {"schema", {{"type", "string"}}}});
    }
    if (!params.empty()) op["parameters"] = params;
    if (r->is_public) {
      op["security"] = nlohmann::json::array();
    } else {
      nlohmann::json scopes = nlohmann::json::array();
      std::string_view s = r->scopes;
      while (!s.empty()) {
        auto sp = s.find(' ');
        if (!s.substr(0, sp).empty()) scopes.push_back(std::string(s.substr(0, sp)));
        if (sp == std::string_view::npos) break;
        s.remove_prefix(sp + 1);
      }
      op["security"] = {{{"ApiKeyHeader", scopes}}, {{"BearerKey", scopes}}};
      op["x-required-scopes"] = scopes;
    }
    std::string method = r->method;
    for (auto& ch : method) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    paths[r->path][method] = op;
  }
  return {{"openapi", "3.1.0"},
          {"info", {{"title", "kghost"}, {"version", KGHOST_VERSION}}},
          {"paths", paths},
          {"components",
           {{"securitySchemes",
             {{"ApiKeyHeader", {{"type", "apiKey"}, {"in", "header"}, {"name", "X-API-Key"}}},
              {"BearerKey", {{"type", "http"}, {"scheme", "bearer"}}}}}}}};
}

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
                                 const HostState& state) {
  auto add = [&](std::string method, std::string path, std::string scopes, bool is_public,
                 std::function<void(Exchange&)> fn) {
    RouteInfo info{std::move(method), std::move(path), std::move(scopes), is_public, "host", "", 0};
    return pipeline.add_route(std::move(info), HandlerEntry{nullptr, nullptr, std::move(fn)});
  };
  std::string err;
  auto check = [&](std::string e) {
    if (err.empty()) err = std::move(e);
  };
  check(add("GET", "/health/live", "", true, [](Exchange& ex) {
    ex.staged = json_response(200, {{"status", "live"}});
  }));
  check(add("GET", "/health/ready", "", true, [&state](Exchange& ex) {
    bool ready = state.ready.load();
    ex.staged = json_response(ready ? 200 : 503, {{"status", ready ? "ready" : "not_ready"}});
  }));
  check(add("GET", "/health", "", true, [&](Exchange& ex) {
    auto doc = health_document(plugins, store, state);
    ex.staged = json_response(doc["status"] == "unhealthy" ? 503 : 200, doc);
  }));
  check(add("GET", "/admin/plugins", "admin", false, [&plugins](Exchange& ex) {
    ex.staged = json_response(200, {{"plugins", plugins.describe()}});
  }));
  check(add("GET", "/openapi.json", "", true,
            [&pipeline](Exchange& ex) { ex.staged = json_response(200, openapi(pipeline)); }));
  return err;
}

}  // namespace kghost
