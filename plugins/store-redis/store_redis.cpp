// store_redis: the shared store's Redis backend as a store provider plugin (ABI 1.2). Selected
// with [store] backend = "store_redis" (or REDIS_URL); the host wraps it in its memory
// fallback. hiredis is linked here only, never into the host.
#include <kghost/plugin.hpp>
#include <kghost/sdk/config.hpp>
#include <stdexcept>

#include "redis_provider.hpp"

namespace {

using kghost::sdk::Config;
using store_redis::Op;
using store_redis::RedisProvider;

store_redis::RedisOptions read_options(std::string_view config_json) {
  try {
    Config cfg(config_json);
    cfg.allow_only({"url", "pool", "timeout_ms", "reconnect_ms"});
    store_redis::RedisOptions o;
    o.url = cfg.string("url");  // checked by RedisProvider (parse_redis_url)
    o.pool_size = static_cast<std::size_t>(cfg.integer("pool", 4, 1, 64));
    o.timeout = std::chrono::milliseconds(cfg.integer("timeout_ms", 500, 1, 60000));
    o.reconnect_interval = std::chrono::milliseconds(cfg.integer("reconnect_ms", 1000, 10, 60000));
    return o;
  } catch (const kghost::sdk::ConfigError& e) {
    throw std::invalid_argument(std::string("[plugins.config] of store_redis: ") + e.what());
  }
}

class StoreRedis final : public kghost::sdk::Plugin {
 public:
  explicit StoreRedis(kghost::sdk::Host host)
      : Plugin(host), provider_(read_options(host.config_json()), provider_host(host)) {
    const kg_host_api* api = host.api();
    if (!KG_HOST_HAS(api, register_store_provider))
      throw std::runtime_error("this host has no store providers (it speaks ABI < 1.2)");
    static const kg_store_provider table = {
        sizeof(kg_store_provider),
        {"redis", 5},
        [](void* p, kg_str key, int64_t ttl, kg_store_result*, kg_store_op* op) {
          return self(p).submit(Op::check_and_set, key, {}, 0, ttl, op);
        },
        [](void* p, kg_str key, int64_t delta, int64_t ttl, kg_store_result*, kg_store_op* op) {
          return self(p).submit(Op::incr, key, {}, delta, ttl, op);
        },
        [](void* p, kg_str key, kg_store_result*, kg_store_op* op) {
          return self(p).submit(Op::get, key, {}, 0, 0, op);
        },
        [](void* p, kg_str key, kg_str value, int64_t ttl, kg_store_result*, kg_store_op* op) {
          return self(p).submit(Op::put, key, value, 0, ttl, op);
        },
        [](void* p, kg_str key, kg_store_result*, kg_store_op* op) {
          return self(p).submit(Op::del, key, {}, 0, 0, op);
        },
        [](void* p, kg_sink_fn sink, void* ud) {
          std::string detail;
          const kg_health_status st = self(p).status(sink ? &detail : nullptr);
          if (sink && !detail.empty()) sink(ud, {detail.data(), detail.size()});
          return st;
        }};
    if (kg_status st = api->register_store_provider(host.ctx(), &table, &provider_); st != KG_OK)
      throw std::runtime_error("register_store_provider failed with status " + std::to_string(st));
  }

  void start() override { provider_.start(); }
  void stop() override { provider_.stop(); }

 private:
  static RedisProvider& self(void* p) { return *static_cast<RedisProvider*>(p); }

  static store_redis::ProviderHost provider_host(kghost::sdk::Host host) {
    const kg_host_api* api = host.api();
    kg_plugin_ctx* ctx = host.ctx();
    return {[api](kg_store_op* op, const kg_store_result* r) { api->store_complete(op, r); },
            [api, ctx] { api->store_provider_changed(ctx); },
            [api, ctx](kg_log_level level, const std::string& msg) {
              api->log(ctx, nullptr, level, {msg.data(), msg.size()});
            }};
  }

  RedisProvider provider_;
};

}  // namespace

KGHOST_PLUGIN(StoreRedis, "store_redis", "1.2.0",
              "Shared store backend: Redis (pipelined pool, MULTI/EXEC, coalesced increments)", 0)
