// Test fixture: an authenticator that grants scope "admin" to requests carrying
// X-Test-Admin: yes (stands in for the auth plugin in the webhooks admin-route tests).
#include <kghost/plugin.hpp>

namespace {

class WhAdminAuth final : public kghost::sdk::Plugin {
 public:
  explicit WhAdminAuth(kghost::sdk::Host h) : Plugin(h) {
    filter("wh_admin_auth", 100, [](kghost::sdk::Request& req) {
      if (req.header("x-test-admin") == std::optional<std::string_view>("yes"))
        req.set_principal({"test_admin", "test_admin", "ENTERPRISE", "admin"});
      return kghost::sdk::Flow::next;
    });
  }
};

}  // namespace

KGHOST_PLUGIN(WhAdminAuth, "wh_admin_auth", "1.0.0", "Test fixture: admin scope from a header", 0)
