#include "store/provider_store.hpp"

#include <fmt/format.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include <array>
#include <cstring>
#include <new>

// One operation in flight at the provider: the caller's callback and, in the same allocation,
// the key and value bytes the provider reads until it completes (and the fallback needs when
// it completes as unavailable). The one allocation a provider call makes.
struct kg_store_op {
  kghost::ProviderStore* store;
  kghost::StoreDone done;
  kghost::StoreOp op;
  uint32_t key_len;
  uint32_t value_len;
  int64_t delta;
  int64_t ttl_ms;

  char* bytes() { return reinterpret_cast<char*>(this + 1); }
  std::string_view key() { return {bytes(), key_len}; }
  std::string_view value() { return {bytes() + key_len, value_len}; }
};

namespace kghost {
namespace {

kg_str view(std::string_view s) { return {s.data(), s.size()}; }

// Widens a provider's result to the host's own layout: fields past its struct_size stay zero.
kg_store_result widen(const kg_store_result* r) {
  kg_store_result out{};
  if (r) std::memcpy(&out, r, std::min<std::size_t>(r->struct_size, sizeof out));
  out.struct_size = sizeof out;
  return out;
}

void release(kg_store_op* op) {
  op->~kg_store_op();
  ::operator delete(op);
}

}  // namespace

ProviderStore::ProviderStore(std::string plugin, prometheus::Registry& registry, Logger& log)
    : plugin_(std::move(plugin)), registry_(registry), log_(log), fallback_(registry, 16, {}) {}

ProviderStore::~ProviderStore() { stop(); }

std::string ProviderStore::attach(const kg_store_provider& table, void* provider) {
  if (attached()) return "a store provider is already registered";
  kg_store_provider t{};
  std::memcpy(&t, &table, std::min<std::size_t>(table.struct_size, sizeof t));
  if (!KG_HAS_FIELD(&table, kg_store_provider, status) || !t.check_and_set || !t.incr || !t.get ||
      !t.put || !t.del || !t.status)
    return "the kg_store_provider table must set every operation and status";
  std::string backend(t.backend.ptr ? std::string_view(t.backend.ptr, t.backend.len) : "");
  bool ok = !backend.empty() && backend.size() <= 64;
  for (char ch : backend)
    ok = ok && ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_');
  if (!ok) return "kg_store_provider.backend must be a name of [a-z0-9_] (e.g. \"redis\")";
  table_ = t;
  provider_ = provider;
  backend_ = std::move(backend);
  table_.backend = view(backend_);
  metrics_ = std::make_unique<StoreMetrics>(registry_, backend_);
  metrics_->up->Set(0);
  attached_.store(true, std::memory_order_release);
  provider_changed();
  return "";
}

void ProviderStore::provider_changed() {
  if (!attached() || stopped_.load()) return;
  std::lock_guard lock(change_mutex_);
  std::string detail;
  const kg_health_status now = table_.status(
      provider_, [](void* ud, kg_str d) { static_cast<std::string*>(ud)->append(d.ptr, d.len); },
      &detail);
  const kg_health_status before = status_.exchange(now);
  metrics_->up->Set(now == KG_HEALTHY ? 1 : 0);
  if (now == before) return;
  if (now == KG_HEALTHY) {
    log_.info(was_up_ ? fmt::format("store: {} reachable again ({}); the memory fallback is no "
                                    "longer used",
                                    backend_, detail.empty() ? "healthy" : detail)
                      : fmt::format("store: connected to {} ({})", backend_,
                                    detail.empty() ? "healthy" : detail));
    was_up_ = true;
  } else if (before == KG_HEALTHY) {
    log_.warn(
        fmt::format("store: {} unreachable or degraded ({}); answering from the memory "
                    "fallback until it recovers",
                    backend_, detail));
  }
}

void ProviderStore::stop() {
  if (stopped_.exchange(true)) return;
  fallback_.stop();
  if (metrics_) metrics_->up->Set(0);
}

// --- calls ---------------------------------------------------------------------------------

std::optional<StoreReply> ProviderStore::submit(const Call& call, StoreDone&& done) {
  if (!attached() || stopped_.load(std::memory_order_relaxed) ||
      status_.load(std::memory_order_relaxed) == KG_UNHEALTHY)
    return answer_from_fallback(call);
  void* mem = ::operator new(sizeof(kg_store_op) + call.key.size() + call.value.size());
  auto* op = new (mem) kg_store_op{this,
                                   std::move(done),
                                   call.op,
                                   static_cast<uint32_t>(call.key.size()),
                                   static_cast<uint32_t>(call.value.size()),
                                   call.delta,
                                   call.ttl_ms};
  if (!call.key.empty()) std::memcpy(op->bytes(), call.key.data(), call.key.size());
  if (!call.value.empty())
    std::memcpy(op->bytes() + call.key.size(), call.value.data(), call.value.size());
  kg_store_result now{};
  now.struct_size = sizeof now;
  const kg_str key = view(op->key());
  kg_status st = KG_ERR_INTERNAL;
  switch (call.op) {
    case StoreOp::check_and_set:
      st = table_.check_and_set(provider_, key, call.ttl_ms, &now, op);
      break;
    case StoreOp::incr:
      st = table_.incr(provider_, key, call.delta, call.ttl_ms, &now, op);
      break;
    case StoreOp::get:
      st = table_.get(provider_, key, &now, op);
      break;
    case StoreOp::put:
      st = table_.put(provider_, key, view(op->value()), call.ttl_ms, &now, op);
      break;
    case StoreOp::del:
      st = table_.del(provider_, key, &now, op);
      break;
  }
  if (st == KG_PENDING) return std::nullopt;  // the op is the provider's until it completes
  release(op);
  if (st == KG_OK) return to_reply(call.op, now);
  if (st == KG_ERR_UNAVAILABLE) return answer_from_fallback(call);
  metrics_->errors->Increment();
  return StoreReply::error(
      fmt::format("store backend {} refused the operation (status {})", backend_, st));
}

void ProviderStore::complete(kg_store_op* op, const kg_store_result* result) {
  if (!op) return;
  ProviderStore& self = *op->store;
  const kg_store_result r = widen(result);
  const StoreReply reply =
      !result || r.status == KG_ERR_UNAVAILABLE
          ? self.answer_from_fallback({op->op, op->key(), op->value(), op->delta, op->ttl_ms})
          : self.to_reply(op->op, r);
  self.call_done(op->done, reply);
  release(op);
}

// Operations are counted per thread and added to the shared counters every kCountBatch, as the
// old Redis backend did per pipelined batch: one contended atomic per operation would cost
// more than the rest of the host's side of the call. A thread's last < kCountBatch operations
// show up with its next batch.
void ProviderStore::count(StoreOp op) {
  constexpr uint32_t kCountBatch = 64;
  struct Tally {
    const ProviderStore* owner = nullptr;
    std::array<uint32_t, kStoreOpCount> ops{};
    uint32_t total = 0;
  };
  thread_local Tally tally;
  if (tally.owner != this) tally = Tally{this, {}, 0};
  ++tally.ops[static_cast<std::size_t>(op)];
  if (++tally.total < kCountBatch) return;
  for (std::size_t i = 0; i < kStoreOpCount; ++i)
    if (tally.ops[i]) metrics_->operations[i]->Increment(static_cast<double>(tally.ops[i]));
  tally = Tally{this, {}, 0};
}

StoreReply ProviderStore::to_reply(StoreOp op, const kg_store_result& r) {
  count(op);
  StoreReply out;
  if (r.status == KG_ERR_NOT_FOUND) {
    out.code = StoreCode::not_found;
    return out;
  }
  if (r.status != KG_OK) {
    metrics_->errors->Increment();
    return StoreReply::error(r.data.len ? std::string(r.data.ptr, r.data.len)
                                        : "store backend " + backend_ + " answered an error");
  }
  out.created = r.created != 0;
  out.value = r.value;
  out.ttl_ms = r.ttl_ms;
  if (op == StoreOp::get && r.data.len) out.data.assign(r.data.ptr, r.data.len);
  return out;
}

StoreReply ProviderStore::answer_from_fallback(const Call& call) {
  if (metrics_) metrics_->fallback->Increment();
  const std::chrono::milliseconds ttl(call.ttl_ms);
  switch (call.op) {
    case StoreOp::check_and_set:
      return fallback_.do_check_and_set(call.key, ttl);
    case StoreOp::incr:
      return fallback_.do_incr(call.key, call.delta, ttl);
    case StoreOp::get:
      return fallback_.do_get(call.key);
    case StoreOp::put:
      return fallback_.do_put(call.key, call.value, ttl);
    case StoreOp::del:
      return fallback_.do_del(call.key);
  }
  return StoreReply::error("unknown operation");
}

void ProviderStore::call_done(const StoreDone& done, const StoreReply& reply) const {
  if (!done) return;
  try {
    done(reply);
  } catch (const std::exception& e) {
    log_.error(fmt::format("store: a completion callback threw ({}); ignored", e.what()));
  } catch (...) {
    log_.error("store: a completion callback threw; ignored");
  }
}

std::optional<StoreReply> ProviderStore::check_and_set(std::string_view key,
                                                       std::chrono::milliseconds ttl,
                                                       StoreDone done) {
  return submit({StoreOp::check_and_set, key, {}, 0, ttl.count()}, std::move(done));
}
std::optional<StoreReply> ProviderStore::incr(std::string_view key, int64_t delta,
                                              std::chrono::milliseconds ttl, StoreDone done) {
  return submit({StoreOp::incr, key, {}, delta, ttl.count()}, std::move(done));
}
std::optional<StoreReply> ProviderStore::get(std::string_view key, StoreDone done) {
  return submit({StoreOp::get, key, {}, 0, 0}, std::move(done));
}
std::optional<StoreReply> ProviderStore::put(std::string_view key, std::string_view value,
                                             std::chrono::milliseconds ttl, StoreDone done) {
  return submit({StoreOp::put, key, value, 0, ttl.count()}, std::move(done));
}
std::optional<StoreReply> ProviderStore::del(std::string_view key, StoreDone done) {
  return submit({StoreOp::del, key, {}, 0, 0}, std::move(done));
}

StoreHealth ProviderStore::health() const {
  if (!attached())
    return {HealthStatus::degraded, plugin_,
            "the store provider plugin " + plugin_ +
                " has not registered its provider; answering from the memory fallback"};
  if (stopped_.load()) return {HealthStatus::degraded, backend_, "store stopped"};
  std::string detail;
  const kg_health_status st = table_.status(
      provider_, [](void* ud, kg_str d) { static_cast<std::string*>(ud)->append(d.ptr, d.len); },
      &detail);
  if (st == KG_HEALTHY) return {HealthStatus::healthy, backend_, ""};
  return {
      HealthStatus::degraded, backend_,
      (detail.empty() ? backend_ + " is down" : detail) + "; answering from the memory fallback"};
}

}  // namespace kghost
