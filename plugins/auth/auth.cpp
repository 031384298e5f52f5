// auth: production API keys, tiers, scopes and fixed-window rate limits (CONTRACT §4).
//
//   filter  auth.authenticate  order 110  production keys (SHA-256 hashes from keys_file)
//   filter  auth.enforce       order 200  401 missing_api_key, tier changes, 429 + headers
//   route   GET /api/v1/health            the caller's identity
//   bus     billing.tier_changed          {"tenant_id":…,"tier":…} changes a tenant's tier
//   store   tiers/<tenant> (shared space)  the same, as billing keeps it in the shared store:
//                                         re-read at most every tier_refresh_ms per tenant, in
//                                         the background, so a replica that did not see the bus
//                                         event (the bus is per process) follows within ~1 s
//
// Other authenticators (devkeys, order 100) run first and set the principal; auth.authenticate
// then leaves the request alone, and auth.enforce rate-limits every principal the same way.
// Public routes are skipped entirely: nothing to enforce, and no cost on them.
#include <atomic>
#include <chrono>
#include <kghost/plugin.hpp>
#include <kghost/sdk/config.hpp>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <shared_mutex>
#include <string>
#include <unordered_map>

#include "key_input.hpp"
#include "keys.hpp"
#include "rate_limit.hpp"

namespace kghost::auth {
namespace {

using nlohmann::json;
using sdk::Flow;
using sdk::Header;
using sdk::Principal;
using sdk::Request;
using sdk::Responder;
using sdk::Response;
using sdk::StoreResult;

struct Tier {
  std::string name;
  int64_t limit = 0;
  std::string scopes;      // space-separated
  RateLimitPolicy policy;  // the fixed parts of its rate-limit headers (set with window_s)
  std::string limited_message;
};

// Parsed once in the constructor; read-only afterwards.
// Requests per window a tier may allow; far above any real limit.
constexpr int64_t kMaxTierLimit = 1'000'000'000'000;

struct Settings {
  std::string keys_file;  // empty: no production keys (dev setups with devkeys only)
  int64_t window_s = 60;
  int64_t tier_refresh_ms = 500;  // 0: tiers change only through the bus
  std::unordered_map<std::string, Tier> tiers;
};

std::unordered_map<std::string, Tier> default_tiers() {
  return {{"FREE", {"FREE", 100, "read", {}, {}}},
          {"PRO", {"PRO", 1000, "read write", {}, {}}},
          {"ENTERPRISE", {"ENTERPRISE", 10000, "read write admin", {}, {}}}};
}

std::string scopes_from_json(const json& v, const std::string& where) {
  std::string joined;
  if (v.is_string()) {
    joined = v.get<std::string>();
  } else if (v.is_array()) {
    for (auto& s : v) {
      if (!s.is_string()) throw std::invalid_argument(where + ": scopes must be strings");
      joined += s.get<std::string>() + " ";
    }
  } else {
    throw std::invalid_argument(where + ": scopes must be a string or an array of strings");
  }
  try {
    return join_scopes(split_scopes(joined));
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(where + ": " + e.what());
  }
}

// Throws std::invalid_argument naming the offending key.
Settings parse_settings(std::string_view config_json) {
  Settings s;
  s.tiers = default_tiers();
  sdk::Config cfg(config_json);
  cfg.allow_only({"keys_file", "window_s", "tier_refresh_ms", "tiers"});
  s.keys_file = cfg.string("keys_file");
  s.window_s = cfg.integer("window_s", s.window_s, 1, 86400);
  s.tier_refresh_ms = cfg.integer("tier_refresh_ms", s.tier_refresh_ms, 0, 3'600'000);  // 0: off
  if (cfg.has("tiers")) {
    const json& v = cfg.table()["tiers"];
    if (!v.is_object())
      throw std::invalid_argument("tiers must be a table [plugins.config.tiers.NAME]");
    for (auto& [name, t] : v.items()) {
      std::string tier = normalize_tier(name);
      std::string where = "tiers." + name;
      if (tier.empty())
        throw std::invalid_argument(where + ": tier names match [A-Za-z0-9_]{1,32}");
      if (!t.is_object())
        throw std::invalid_argument(where + ": expected a table with limit and scopes");
      Tier out{tier, 0, "", {}, {}};
      if (auto it = s.tiers.find(tier); it != s.tiers.end()) out = it->second;
      for (auto& [tk, tv] : t.items()) {
        if (tk == "limit") {
          out.limit = sdk::Config::integer_value(tv, where + ".limit", 0, kMaxTierLimit);
        } else if (tk == "scopes") {
          out.scopes = scopes_from_json(tv, where + ".scopes");
        } else {
          throw std::invalid_argument(where + ": unknown key '" + tk + "' (known: limit, scopes)");
        }
      }
      if (!t.contains("limit") && !s.tiers.count(tier))
        throw std::invalid_argument(where + ": a new tier needs limit = N");
      s.tiers[tier] = out;
    }
  }
  for (auto& [name, t] : s.tiers) {
    t.policy = RateLimitPolicy(t.name, t.limit, s.window_s);
    t.limited_message = "rate limit of " + std::to_string(t.limit) + " requests per " +
                        std::to_string(s.window_s) + " s for tier " + t.name +
                        " exceeded; retry after Retry-After seconds";
  }
  return s;
}

// Scopes in both lists, in the order of `wanted`.
std::string intersect_scopes(std::string_view wanted, std::string_view allowed) {
  std::string out;
  sdk::for_each_scope(wanted, [&](std::string_view s) {
    if (sdk::has_scope(allowed, s)) {
      if (!out.empty()) out += ' ';
      out.append(s);
    }
    return true;
  });
  return out;
}

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The store space billing writes tenants' tiers to (shared by name, see Host::shared_store).
constexpr std::string_view kTierSpace = "tiers";

class Auth final : public sdk::Plugin {
 public:
  explicit Auth(sdk::Host h) : Plugin(h), tiers_(h.shared_store(kTierSpace)) {
    try {
      settings_ = parse_settings(host().config_json());
    } catch (const std::invalid_argument& e) {
      throw std::runtime_error(std::string("[plugins.config] of auth: ") + e.what());
    }
    if (!settings_.keys_file.empty()) {
      std::vector<std::string> known;
      for (auto& [name, t] : settings_.tiers) known.push_back(name);
      // KeysFileError's message is "FILE:LINE: reason"; the host shows it in its exit-2 line.
      for (auto& r : load_keys_file(settings_.keys_file, known)) {
        if (r.revoked) ++revoked_count_;
        std::string hash = r.sha256;
        keys_.emplace(std::move(hash), std::move(r));
      }
    }
    auto decisions =
        host().metric(KG_METRIC_COUNTER, "kgents_auth_decisions_total",
                      "API requests by authentication / rate-limit outcome", {"result"});
    m_ok_ = decisions.series({"ok"});
    m_missing_ = decisions.series({"missing_api_key"});
    m_invalid_ = decisions.series({"invalid_api_key"});
    m_limited_ = decisions.series({"rate_limited"});
    m_store_error_ = decisions.series({"store_error"});

    filter("auth.authenticate", 110, [this](Request& req) { return authenticate(req); });
    filter("auth.enforce", 200, [this](Request& req) { return enforce(req); });
    route({.method = "GET",
           .path = "/api/v1/health",
           .summary = "The caller's identity and tier",
           .description = "Answers who the API key belongs to; any valid key may call it.",
           .response_schema =
               R"({"type":"object","required":["status","user_id","tenant_id","tier","scopes"],)"
               R"("properties":{"status":{"const":"ok"},"user_id":{"type":"string"},)"
               R"("tenant_id":{"type":"string"},"tier":{"type":"string"},)"
               R"("scopes":{"type":"array","items":{"type":"string"}}}})"},
          [](Request& req) { api_health(req); });
    subscribe("billing.tier_changed", [this](std::string_view, std::string_view data,
                                             std::string_view) { on_tier_changed(data); });
    health([this] {
      std::size_t overrides = 0;
      {
        std::shared_lock lock(overrides_mu_);
        overrides = overrides_.size();
      }
      json tiers = json::object();
      for (auto& [name, t] : settings_.tiers)
        tiers[name] = {{"limit", t.limit}, {"scopes", t.scopes}};
      json d = {{"keys", keys_.size()},
                {"revoked_keys", revoked_count_},
                {"window_s", settings_.window_s},
                {"tiers", tiers},
                {"tier_overrides", overrides}};
      return std::pair<kg_health_status, std::string>{KG_HEALTHY, d.dump()};
    });
    host().info("auth: " + std::to_string(keys_.size()) + " production keys (" +
                std::to_string(revoked_count_) + " revoked), " +
                std::to_string(settings_.tiers.size()) + " tiers, window " +
                std::to_string(settings_.window_s) + " s");
  }

 private:
  // --- authentication of production keys ---------------------------------------------------
  Flow authenticate(Request& req) {
    if (req.route_is_public() || req.principal()) return Flow::next;
    KeyInput in = extract_key([&](std::string_view n, size_t i) { return req.header(n, i); });
    if (in.kind == KeyInputKind::none) return Flow::next;  // auth.enforce answers 401 missing
    if (in.kind == KeyInputKind::invalid) return reject_invalid(req, in.reason, {});
    if (in.key.substr(0, kDevKeyPrefix.size()) == kDevKeyPrefix)
      return reject_invalid(req,
                            host().production()
                                ? "a kg_dev_ key in production mode"
                                : "a kg_dev_ key that no loaded plugin (devkeys) accepted",
                            in.key);
    auto it = keys_.find(sha256_hex(in.key));
    if (it == keys_.end()) return reject_invalid(req, "unknown key", in.key);
    const KeyRecord& k = it->second;
    if (k.revoked) return reject_invalid(req, "revoked key " + k.id, {});
    std::string tier = effective_tier(k.tenant_id, k.tier);
    auto t = settings_.tiers.find(tier);
    std::string tier_scopes = t == settings_.tiers.end() ? std::string() : t->second.scopes;
    // A key may narrow its tenant's scopes, never widen them.
    std::string scopes = k.scopes.empty() ? tier_scopes : intersect_scopes(k.scopes, tier_scopes);
    req.set_principal({k.user_id, k.tenant_id, tier, scopes});
    return Flow::next;
  }

  Flow reject_invalid(Request& req, std::string_view why, std::string_view key) {
    m_invalid_.add();
    std::string msg = "auth: rejected an API key (" + std::string(why) + ")";
    if (!key.empty()) msg += ", key prefix '" + std::string(loggable_prefix(key)) + "'";
    host().log(KG_LOG_DEBUG, msg, &req);
    req.error(401, "invalid_api_key", "the API key is not valid");
    return Flow::done;
  }

  // --- enforcement: every non-public route ---------------------------------------------------
  Flow enforce(Request& req) {
    if (req.route_is_public()) return Flow::next;
    auto p = req.principal();
    if (!p) {
      m_missing_.add();
      req.error(401, "missing_api_key",
                "this route needs an API key (X-API-Key or Authorization: Bearer)");
      return Flow::done;
    }
    std::string tenant(p->tenant_id);
    const int64_t now_ms = unix_ms();
    refresh_stored_tier(tenant, now_ms);
    std::string tier_name = effective_tier(tenant, p->tier);
    auto t = settings_.tiers.find(tier_name);
    if (t == settings_.tiers.end()) {
      host().log(KG_LOG_WARN,
                 "auth: tier '" + tier_name + "' of tenant '" + tenant +
                     "' is not configured; add it to [plugins.config.tiers]",
                 &req);
      req.error(403, "insufficient_scope", "the caller's tier is not configured");
      return Flow::done;
    }
    const Tier& tier = t->second;
    if (tier_name != p->tier || p->scopes.empty()) {
      // The tier changed at run time (or the authenticator left scopes to the tier).
      std::string user(p->user_id);
      req.set_principal({user, tenant, tier.name, tier.scopes});
    }

    // The tier table is read-only after construction: the callback may keep a pointer to it.
    const Window w = window_at(now_ms, settings_.window_s);
    thread_local std::string key;  // reused: no allocation per request for the counter key
    key.clear();
    append_counter_key(key, tenant, w.start_s);
    return sdk::store_in_filter(
        req,
        [&](sdk::Host::StoreDone later) {
          return host().incr(key, 1, std::chrono::milliseconds(w.ttl_ms), std::move(later));
        },
        [&](Request& r, const StoreResult& res) {
          RateLimitHeaders headers(verdict(res, tier.limit, w, &r), tier.policy);
          headers.for_each([&](std::string_view n, std::string_view v) { r.add_header(n, v); });
          if (headers.allowed()) return Flow::next;
          r.error(429, "rate_limited", tier.limited_message);
          return Flow::done;
        },
        [this, t = &tier, w](Responder& responder, const StoreResult& res) {
          RateLimitHeaders headers(verdict(res, t->limit, w, nullptr), t->policy);
          sdk::HeaderRef refs[6];
          std::size_t n = 0;
          headers.for_each([&](std::string_view name, std::string_view v) {
            refs[n++] = {name, v};
          });
          if (headers.allowed()) return responder.proceed({refs, n});
          responder.error(429, "rate_limited", t->limited_message, {refs, n});
        });
  }

  Verdict verdict(const StoreResult& res, int64_t limit, const Window& w, const Request* req) {
    if (res.status != KG_OK) {
      // The Redis backend already falls back to per-replica memory counts; an error here is
      // unexpected. Fail open (no 5xx, CONTRACT §4) and say so.
      m_store_error_.add();
      host().log(KG_LOG_WARN,
                 "auth: rate-limit counter unavailable (store status " +
                     std::to_string(res.status) + "); letting the request through",
                 req);
      return judge(0, limit, w);
    }
    Verdict v = judge(res.value, limit, w);
    (v.allowed ? m_ok_ : m_limited_).add();
    return v;
  }

  // {"scopes":[...],"status":"ok","tenant_id":…,"tier":…,"user_id":…}: keys in sorted order,
  // written by hand (a JSON document built per request cost more than the rest of the route).
  static void api_health(Request& req) {
    auto p = req.principal();
    if (!p) return req.error(401, "missing_api_key", "this route needs an API key");
    std::string body;
    body.reserve(96 + p->scopes.size() + p->tenant_id.size() + p->tier.size() + p->user_id.size());
    body += R"({"scopes":[)";
    bool first = true;
    sdk::for_each_scope(p->scopes, [&](std::string_view s) {
      body += first ? "\"" : ",\"";
      first = false;
      sdk::append_json_escaped(body, s);
      body += '"';
      return true;
    });
    body += R"(],"status":"ok","tenant_id":")";
    sdk::append_json_escaped(body, p->tenant_id);
    body += R"(","tier":")";
    sdk::append_json_escaped(body, p->tier);
    body += R"(","user_id":")";
    sdk::append_json_escaped(body, p->user_id);
    body += "\"}";
    req.respond(200, std::move(body));
  }

  // --- run-time tier changes --------------------------------------------------------------
  std::string effective_tier(std::string_view tenant, std::string_view tier) const {
    if (has_overrides_.load(std::memory_order_acquire)) {
      std::shared_lock lock(overrides_mu_);
      if (auto it = overrides_.find(std::string(tenant)); it != overrides_.end()) return it->second;
    }
    return std::string(tier);
  }

  // Starts a background read of the tenant's stored tier when the last one is older than
  // tier_refresh_ms; this request goes on with what is known now.
  void refresh_stored_tier(const std::string& tenant, int64_t now) {
    if (settings_.tier_refresh_ms <= 0) return;
    {
      std::lock_guard lock(refresh_mu_);
      int64_t& due = refresh_due_[tenant];
      if (now < due) return;
      due = now + settings_.tier_refresh_ms;
    }
    auto result =
        tiers_.get(tenant, [this, tenant](const StoreResult& r) { apply_stored_tier(tenant, r); });
    if (result) apply_stored_tier(tenant, *result);
  }

  void apply_stored_tier(const std::string& tenant, const StoreResult& r) {
    if (r.status != KG_OK) return;  // none stored (or the store is away): keep what we have
    std::string tier = normalize_tier(r.data);
    if (tier.empty() || !settings_.tiers.count(tier)) return;
    {
      std::unique_lock lock(overrides_mu_);
      auto it = overrides_.find(tenant);
      if (it != overrides_.end() && it->second == tier) return;
      overrides_[tenant] = tier;
    }
    has_overrides_.store(true, std::memory_order_release);
    host().info("auth: tenant '" + tenant + "' is now on tier " + tier + " (shared store)");
  }

  void on_tier_changed(std::string_view data) {
    json j = json::parse(data.begin(), data.end(), nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("tenant_id") || !j.contains("tier") ||
        !j["tenant_id"].is_string() || !j["tier"].is_string() ||
        j["tenant_id"].get<std::string>().empty()) {
      host().warn("auth: ignored a billing.tier_changed event without string tenant_id and tier");
      return;
    }
    std::string tenant = j["tenant_id"].get<std::string>();
    std::string tier = normalize_tier(j["tier"].get<std::string>());
    if (tier.empty() || !settings_.tiers.count(tier)) {
      host().warn("auth: ignored billing.tier_changed for tenant '" + tenant + "': tier '" +
                  j["tier"].get<std::string>() + "' is not configured");
      return;
    }
    {
      std::unique_lock lock(overrides_mu_);
      overrides_[tenant] = tier;
    }
    has_overrides_.store(true, std::memory_order_release);
    host().info("auth: tenant '" + tenant + "' is now on tier " + tier);
  }

  Settings settings_;
  sdk::SharedStore tiers_;                           // tenant -> tier, as billing stores it
  std::unordered_map<std::string, KeyRecord> keys_;  // by sha256 hex; read-only after create
  std::size_t revoked_count_ = 0;

  mutable std::shared_mutex overrides_mu_;                  // guards overrides_
  std::unordered_map<std::string, std::string> overrides_;  // tenant -> tier (bus)
  std::atomic<bool> has_overrides_{false};
  std::mutex refresh_mu_;                                 // guards refresh_due_
  std::unordered_map<std::string, int64_t> refresh_due_;  // tenant -> next store read (unix ms)

  sdk::Metric::Series m_ok_, m_missing_, m_invalid_, m_limited_, m_store_error_;
};

}  // namespace
}  // namespace kghost::auth

KGHOST_PLUGIN(kghost::auth::Auth, "auth", "1.0.0",
              "API keys, tiers, scopes and fixed-window rate limits", 0)
