// Test fixture for the auth tests: publishes on the host's event bus from HTTP, and offers a
// route that needs the `write` scope.
//   POST /test/publish/{topic}  (public)  publishes the body on `topic`, answers 202
//   GET  /test/write            (scope write)  answers 200
#include <kghost/plugin.hpp>

namespace {

using kghost::sdk::Request;

class TierPublisher final : public kghost::sdk::Plugin {
 public:
  explicit TierPublisher(kghost::sdk::Host h) : Plugin(h) {
    route({.method = "POST", .path = "/test/publish/{topic}", .is_public = true},
          [this](Request& req) {
            std::string topic(req.param("topic").value_or(""));
            kg_status st = host().publish(topic, req.body());
            if (st != KG_OK) return req.error(500, "internal_error", "publish failed");
            req.respond(202, R"({"published":true})");
          });
    route({.method = "GET", .path = "/test/write", .scopes = "write"},
          [](Request& req) { req.respond(200, R"({"wrote":true})"); });
  }
};

}  // namespace

KGHOST_PLUGIN(TierPublisher, "tier_publisher", "1.0.0", "auth test fixture: bus publisher", 0)
