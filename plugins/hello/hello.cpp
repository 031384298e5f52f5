// hello: the smallest useful plugin. A public route and a filter, written with the C++ SDK.
// It is what config/dev.toml loads out of the box and what the host-core benchmark measures.
#include <kghost/plugin.hpp>

namespace {

using kghost::sdk::FilterScope;
using kghost::sdk::Flow;
using kghost::sdk::json_escape;
using kghost::sdk::Request;

constexpr std::string_view kStatusSchema =
    R"({"type":"object","required":["status"],"properties":{"status":{"const":"ok"}}})";
constexpr std::string_view kHelloSchema =
    R"({"type":"object","required":["hello"],"properties":{"hello":{"type":"string","maxLength":64}}})";

class Hello final : public kghost::sdk::Plugin {
 public:
  explicit Hello(kghost::sdk::Host host) : Plugin(host) {
    route({.method = "GET",
           .path = "/hello",
           .is_public = true,
           .summary = "Says hello",
           .response_schema = kStatusSchema},
          [](Request& req) { req.respond(200, R"({"status":"ok"})"); });
    route({.method = "GET",
           .path = "/hello/{name}",
           .is_public = true,
           .summary = "Says hello to someone",
           .description = "Echoes the (percent-decoded) name, at most 64 bytes, as JSON.",
           .response_schema = kHelloSchema},
          [](Request& req) {
            std::string_view name = req.param("name").value_or("");
            if (name.size() > 64)
              return req.error(400, "bad_request", "name must be at most 64 characters");
            req.respond(200, R"({"hello":")" + json_escape(name) + "\"}");
          });
    // A cheap filter in front of this plugin's own routes: refuses a request that asks to be
    // refused. Other plugins' routes (webhooks, streams) never see it.
    filter(
        "hello.guard", 50,
        [](Request& req) {
          if (req.header("x-hello-refuse")) {
            req.error(403, "refused", "the request asked to be refused");
            return Flow::done;
          }
          return Flow::next;
        },
        FilterScope::own_routes());
  }
};

}  // namespace

KGHOST_PLUGIN(Hello, "hello", "1.1.0", "Example plugin: a public route and a filter", 0)
