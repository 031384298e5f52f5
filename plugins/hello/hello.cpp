// hello: the smallest useful plugin. A public route and a filter, written with the C++ SDK.
// It is what config/dev.toml loads out of the box and what the host-core benchmark measures.
#include <kghost/plugin.hpp>

namespace {

using kghost::sdk::Flow;
using kghost::sdk::Request;

class Hello final : public kghost::sdk::Plugin {
 public:
  explicit Hello(kghost::sdk::Host host) : Plugin(host) {
    route({.method = "GET", .path = "/hello", .is_public = true, .summary = "Says hello"},
          [](Request& req) { req.respond(200, R"({"status":"ok"})"); });
    route({.method = "GET",
           .path = "/hello/{name}",
           .is_public = true,
           .summary = "Says hello to someone"},
          [](Request& req) {
            std::string name(req.param("name").value_or(""));
            if (name.size() > 64 || name.find_first_of("\"\\") != std::string::npos)
              return req.error(400, "bad_request", "name must be at most 64 plain characters");
            req.respond(200, R"({"hello":")" + name + "\"}");
          });
    // A cheap filter in front of every route: refuses a request that asks to be refused.
    filter("hello.guard", 50, [](Request& req) {
      if (req.header("x-hello-refuse")) {
        req.error(403, "refused", "the request asked to be refused");
        return Flow::done;
      }
      return Flow::next;
    });
  }
};

}  // namespace

KGHOST_PLUGIN(Hello, "hello", "1.0.0", "Example plugin: a public route and a filter", 0)
