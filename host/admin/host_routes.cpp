#include "admin/host_routes.hpp"

#include "admin/openapi.hpp"

namespace kghost {
namespace {

HttpResponse json_response(uint16_t status, const nlohmann::json& body) {
  HttpResponse r;
  r.status = status;
  r.body = body.dump();
  return r;
}

// Answers `ex` later with what `make` returns, computed on the worker pool: plugin health
// reporters are plugin code and may be slow, and an I/O thread must never wait for them.
void answer_on_pool(WorkerPool& pool, Exchange& ex, std::function<HttpResponse()> make) {
  ex.deferred = true;
  auto* responder = new kg_responder{ex.shared_from_this(), ex.pipeline};
  pool.post([responder, make = std::move(make)] {
    HttpResponse r;
    try {
      r = make();
    } catch (const std::exception& e) {
      r = error_response(500, "internal_error", std::string("cannot answer: ") + e.what(),
                         responder->exchange->request_id);
    }
    responder->pipeline->complete(responder, std::move(r));
  });
}

}  // namespace

std::string register_host_routes(Pipeline& pipeline, const HostRouteSources& sources) {
  auto add = [&](std::string method, std::string path, std::string scopes, bool is_public,
                 std::string summary, std::function<void(Exchange&)> fn) {
    RouteInfo info;
    info.method = std::move(method);
    info.path = std::move(path);
    info.scopes = std::move(scopes);
    info.is_public = is_public;
    info.owner = "host";
    info.summary = std::move(summary);
    return pipeline.add_route(std::move(info), HandlerEntry{nullptr, nullptr, std::move(fn)});
  };
  std::string err;
  auto check = [&](std::string e) {
    if (err.empty()) err = std::move(e);
  };
  check(add("GET", "/health/live", "", true, "Liveness: the process serves", [](Exchange& ex) {
    ex.staged = json_response(200, {{"status", "live"}});
  }));
  check(add(
      "GET", "/health/ready", "", true, "Readiness: started and not draining",
      [&state = sources.state](Exchange& ex) {
        bool ready = state.ready.load();
        ex.staged = json_response(ready ? 200 : 503, {{"status", ready ? "ready" : "not_ready"}});
      }));
  check(add("GET", "/health", "", true, "Health of the host, the store and every plugin",
            [&health = sources.health, &pool = sources.pool](Exchange& ex) {
              answer_on_pool(pool, ex, [&health] {
                auto doc = health.document();
                return json_response(doc["status"] == "unhealthy" ? 503 : 200, doc);
              });
            }));
  check(add("GET", "/admin/plugins", "admin", false, "The loaded plugins",
            [&plugins = sources.plugins](Exchange& ex) {
              ex.staged = json_response(200, {{"plugins", plugins.describe()}});
            }));
  check(add("GET", "/openapi.json", "", true, "This document",
            [&pipeline](Exchange& ex) { ex.staged = json_response(200, openapi(pipeline)); }));
  return err;
}

}  // namespace kghost
