// Test fixture for the streaming tests (independent of the auth plugin):
//  - filter order 110: `X-Test-Tenant: t1` authenticates as tenant t1 (user u_t1, tier PRO) with
//    scopes from `X-Test-Scopes` (default "read write");
//  - GET /test/metrics (public): the host's Prometheus text, as an observability plugin would
//  serve;
//  - POST /test/bus/{topic} (public): publishes the body on the event bus (id from X-Event-Id).
#include <kghost/plugin.hpp>
#include <string>

namespace {

using kghost::sdk::Flow;
using kghost::sdk::Request;

class TestAuth final : public kghost::sdk::Plugin {
 public:
  explicit TestAuth(kghost::sdk::Host h) : Plugin(h) {
    filter("test.auth", 110, [](Request& req) {
      auto tenant = req.header("x-test-tenant");
      if (!tenant || req.principal()) return Flow::next;
      std::string t(*tenant);
      std::string scopes(req.header("x-test-scopes").value_or("read write"));
      std::string user = "u_" + t;
      req.set_principal({user, t, "PRO", scopes});
      return Flow::next;
    });
    route({.method = "GET", .path = "/test/metrics", .is_public = true}, [this](Request& req) {
      std::string text;
      host().api()->metrics_render(
          host().ctx(),
          [](void* ud, kg_str s) { static_cast<std::string*>(ud)->append(s.ptr, s.len); }, &text);
      req.respond(200, text, "text/plain");
    });
    route({.method = "POST", .path = "/test/bus/{topic}", .is_public = true}, [this](Request& req) {
      std::string topic(req.param("topic").value_or(""));
      std::string id(req.header("x-event-id").value_or(""));
      kg_status st = host().publish(topic, req.body(), id);
      req.respond(st == KG_OK ? 200 : 500, "{\"status\":" + std::to_string(st) + "}");
    });
  }
};

}  // namespace

KGHOST_PLUGIN(TestAuth, "test_auth", "1.0.0", "streaming tests: header authenticator, metrics, bus",
              0)
