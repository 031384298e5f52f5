// devkeys: the three well-known development keys of CONTRACT §4, dev mode only.
//
//   filter  devkeys.authenticate  order 100  kg_dev_alice / kg_dev_bob / kg_dev_carol
//
// Marked KG_PLUGIN_DEV_ONLY: the host refuses to start with it in production mode (exit 2).
// As a second line of defence it never accepts a key while host().production() is true.
// It only authenticates; the auth plugin's enforcer (order 200) applies tiers and rate limits,
// so dev setups load both (config/dev.toml does).
#include <array>
#include <kghost/plugin.hpp>
#include <string_view>

#include "key_input.hpp"

namespace kghost::auth {
namespace {

using sdk::Flow;
using sdk::Request;

struct DevUser {
  std::string_view key, user_id, tier, scopes;
};

// Each dev user's tenant id is its user id. Scopes are the contract's defaults for the tier;
// auth.enforce re-derives them from its tier table when a tenant's tier changes at run time.
constexpr std::array<DevUser, 3> kDevUsers{{
    {"kg_dev_alice", "user_alice", "FREE", "read"},
    {"kg_dev_bob", "user_bob", "PRO", "read write"},
    {"kg_dev_carol", "user_carol", "ENTERPRISE", "read write admin"},
}};

class DevKeys final : public sdk::Plugin {
 public:
  explicit DevKeys(sdk::Host h) : Plugin(h), production_(host().production()) {
    if (production_)
      host().warn("devkeys: loaded in production mode; every kg_dev_ key will be refused");
    filter("devkeys.authenticate", 100, [this](Request& req) {
      if (production_ || req.route_is_public() || req.principal()) return Flow::next;
      KeyInput in = extract_key([&](std::string_view n, size_t i) { return req.header(n, i); });
      if (in.kind != KeyInputKind::key) return Flow::next;  // none or invalid: auth decides
      for (const DevUser& u : kDevUsers) {
        if (in.key == u.key) {
          req.set_principal({u.user_id, u.user_id, u.tier, u.scopes});
          break;
        }
      }
      return Flow::next;
    });
  }

 private:
  const bool production_;
};

}  // namespace
}  // namespace kghost::auth

KGHOST_PLUGIN(kghost::auth::DevKeys, "devkeys", "1.0.0",
              "Development API keys kg_dev_alice/bob/carol (dev mode only)", KG_PLUGIN_DEV_ONLY)
