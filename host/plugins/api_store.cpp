// Store slots: the plugin's own keys ("plugin/<name>/...") and the shared key spaces it opens
// ("shared/<name>/..."), each answered now or later through a completion.
#include "plugins/abi_support.hpp"
#include "plugins/host_api.hpp"
#include "plugins/instance.hpp"

namespace kghost {
namespace {

using abi::ks;
using abi::sv;

kg_status to_status(StoreCode code) {
  switch (code) {
    case StoreCode::ok:
      return KG_OK;
    case StoreCode::not_found:
      return KG_ERR_NOT_FOUND;
    case StoreCode::error:
      return KG_ERR_UNAVAILABLE;
  }
  return KG_ERR_INTERNAL;
}
// Fills the fields of the caller's result that its struct_size covers; never struct_size.
void fill(kg_store_result* out, const StoreReply& r, std::string_view data) {
  KG_PUT(out, kg_store_result, status, to_status(r.code));
  KG_PUT(out, kg_store_result, created, r.created);
  KG_PUT(out, kg_store_result, value, r.value);
  KG_PUT(out, kg_store_result, ttl_ms, r.ttl_ms);
  KG_PUT(out, kg_store_result, data, r.code == StoreCode::ok ? ks(data) : kg_str());
}
// Adapts one store call: answer now into *now, or later through done.
template <class Call>
kg_status store_call(kg_store_result* now, kg_store_fn done, void* ud, Call&& call) {
  StoreDone later = [done, ud](const StoreReply& r) {
    if (!done) return;
    kg_store_result res{};
    res.struct_size = sizeof res;  // the host's own struct: the plugin reads what it knows
    fill(&res, r, r.data);
    done(ud, &res);
  };
  std::optional<StoreReply> reply = call(std::move(later));
  if (!reply) return KG_PENDING;
  thread_local std::string data;  // now->data: valid until the next store call on this thread
  data = std::move(reply->data);
  if (now) fill(now, *reply, data);
  return KG_OK;
}
std::chrono::milliseconds ms(int64_t v) { return std::chrono::milliseconds(v); }

// Every key lives under a prefix: the plugin's own ("plugin/<name>/") or a shared space's
// ("shared/<name>/"). Names hold no '/', so no two prefixes overlap.
struct KeySpace {
  kg_plugin_ctx* c;
  std::string_view prefix;
  std::string key(kg_str k) const { return std::string(prefix).append(sv(k)); }
  Store& store() const { return c->services.store; }
};
KeySpace own(kg_plugin_ctx* c) { return {c, c->store_prefix}; }
KeySpace shared(kg_store_space* s) { return {s->owner, s->prefix}; }

kg_status check_and_set_in(KeySpace space, kg_str key, int64_t ttl, kg_store_result* now,
                           kg_store_fn done, void* ud) {
  return store_call(now, done, ud, [&](StoreDone d) {
    return space.store().check_and_set(space.key(key), ms(ttl), std::move(d));
  });
}
kg_status incr_in(KeySpace space, kg_str key, int64_t delta, int64_t ttl, kg_store_result* now,
                  kg_store_fn done, void* ud) {
  return store_call(now, done, ud, [&](StoreDone d) {
    return space.store().incr(space.key(key), delta, ms(ttl), std::move(d));
  });
}
kg_status get_in(KeySpace space, kg_str key, kg_store_result* now, kg_store_fn done, void* ud) {
  return store_call(now, done, ud,
                    [&](StoreDone d) { return space.store().get(space.key(key), std::move(d)); });
}
kg_status put_in(KeySpace space, kg_str key, kg_str value, int64_t ttl, kg_store_result* now,
                 kg_store_fn done, void* ud) {
  return store_call(now, done, ud, [&](StoreDone d) {
    return space.store().put(space.key(key), sv(value), ms(ttl), std::move(d));
  });
}
kg_status del_in(KeySpace space, kg_str key, kg_store_result* now, kg_store_fn done, void* ud) {
  return store_call(now, done, ud,
                    [&](StoreDone d) { return space.store().del(space.key(key), std::move(d)); });
}

kg_status api_check_and_set(kg_plugin_ctx* c, kg_str key, int64_t ttl, kg_store_result* now,
                            kg_store_fn done, void* ud) {
  return check_and_set_in(own(c), key, ttl, now, done, ud);
}
kg_status api_incr(kg_plugin_ctx* c, kg_str key, int64_t delta, int64_t ttl, kg_store_result* now,
                   kg_store_fn done, void* ud) {
  return incr_in(own(c), key, delta, ttl, now, done, ud);
}
kg_status api_get(kg_plugin_ctx* c, kg_str key, kg_store_result* now, kg_store_fn done, void* ud) {
  return get_in(own(c), key, now, done, ud);
}
kg_status api_put(kg_plugin_ctx* c, kg_str key, kg_str value, int64_t ttl, kg_store_result* now,
                  kg_store_fn done, void* ud) {
  return put_in(own(c), key, value, ttl, now, done, ud);
}
kg_status api_del(kg_plugin_ctx* c, kg_str key, kg_store_result* now, kg_store_fn done, void* ud) {
  return del_in(own(c), key, now, done, ud);
}

kg_store_space* api_store_shared(kg_plugin_ctx* c, kg_str name) {
  if (!c || !c->setting_up()) return nullptr;
  std::string n(sv(name));
  bool ok = !n.empty() && n.size() <= 64 && std::all_of(n.begin(), n.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' ||
           ch == '-';
  });
  if (!ok) return nullptr;
  std::string prefix = "shared/" + n + "/";
  for (auto& s : c->spaces) {
    if (s.prefix == prefix) return &s;
  }
  return &c->spaces.emplace_back(kg_store_space{c, std::move(prefix)});
}
kg_status api_shared_check_and_set(kg_store_space* s, kg_str key, int64_t ttl, kg_store_result* now,
                                   kg_store_fn done, void* ud) {
  return s ? check_and_set_in(shared(s), key, ttl, now, done, ud) : KG_ERR_INVALID;
}
kg_status api_shared_incr(kg_store_space* s, kg_str key, int64_t delta, int64_t ttl,
                          kg_store_result* now, kg_store_fn done, void* ud) {
  return s ? incr_in(shared(s), key, delta, ttl, now, done, ud) : KG_ERR_INVALID;
}
kg_status api_shared_get(kg_store_space* s, kg_str key, kg_store_result* now, kg_store_fn done,
                         void* ud) {
  return s ? get_in(shared(s), key, now, done, ud) : KG_ERR_INVALID;
}
kg_status api_shared_put(kg_store_space* s, kg_str key, kg_str value, int64_t ttl,
                         kg_store_result* now, kg_store_fn done, void* ud) {
  return s ? put_in(shared(s), key, value, ttl, now, done, ud) : KG_ERR_INVALID;
}
kg_status api_shared_del(kg_store_space* s, kg_str key, kg_store_result* now, kg_store_fn done,
                         void* ud) {
  return s ? del_in(shared(s), key, now, done, ud) : KG_ERR_INVALID;
}
kg_health_status api_store_status(kg_plugin_ctx* c) {
  return static_cast<kg_health_status>(c->services.store.health().status);
}

}  // namespace

void fill_store_api(kg_host_api& t) {
  t.store_check_and_set = api_check_and_set;
  t.store_incr = api_incr;
  t.store_get = api_get;
  t.store_put = api_put;
  t.store_del = api_del;
  t.store_status = api_store_status;
  // 1.1
  t.store_shared = api_store_shared;
  t.shared_check_and_set = api_shared_check_and_set;
  t.shared_incr = api_shared_incr;
  t.shared_get = api_shared_get;
  t.shared_put = api_shared_put;
  t.shared_del = api_shared_del;
}

}  // namespace kghost
