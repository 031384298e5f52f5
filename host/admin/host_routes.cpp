#include "admin/host_routes.hpp"

#include <optional>

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

// The reload's answer: 200 with what changed, or 422 reload_failed saying why (the contract's
// error JSON, with the outcome beside it).
HttpResponse reload_answer(bool ok, const nlohmann::json& outcome, std::string_view request_id) {
  if (ok) return json_response(200, outcome);
  HttpResponse r =
      error_response(422, "reload_failed", outcome.value("reason", "reload failed"), request_id);
  auto body = nlohmann::json::parse(r.body);
  body["reload"] = outcome;
  r.body = body.dump();
  return r;
}

}  // namespace

std::string register_host_routes(RouteTable::Builder& table, const HostRouteSources& sources) {
  auto add = [&](std::string method, std::string path, std::string scopes, bool is_public,
                 std::string summary, std::function<void(Exchange&)> fn) {
    RouteInfo info;
    info.method = std::move(method);
    info.path = std::move(path);
    info.scopes = std::move(scopes);
    info.is_public = is_public;
    info.owner = "host";
    info.summary = std::move(summary);
    return table.add_route(std::move(info),
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
      [&state = sources.state](Exchange& ex) {
        bool ready = state.ready.load();
        ex.respond(json_response(ready ? 200 : 503, {{"status", ready ? "ready" : "not_ready"}}));
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
              ex.respond(json_response(200, {{"plugins", plugins()}}));
            }));
  check(add("POST", "/admin/reload", "admin", false,
            "Reload the config (as SIGHUP): what changed, or why nothing did",
            [&reload = sources.reload](Exchange& ex) {
              std::optional<Responder> deferred = ex.defer();
              if (!deferred) return;
              auto responder = std::make_shared<Responder>(std::move(*deferred));
              reload([responder](bool ok, const nlohmann::json& outcome) {
                responder->complete(reload_answer(ok, outcome, responder->request_id()));
              });
            }));
  check(add("GET", "/openapi.json", "", true, "This document",
            [](Exchange& ex) { ex.respond(json_response(200, openapi(ex.routes().router()))); }));
  return err;
}

}  // namespace kghost
