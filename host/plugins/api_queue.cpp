// Durable queue slots: open (per plugin, under the data dir), append, consume, dead letters.
// A kg_queue is the instance's handle on a queue of the shelf (shared_queues.hpp), so that an
// old and a new instance of one plugin reach the same queue across a reload.
#include "plugins/abi_support.hpp"
#include "plugins/host_api.hpp"
#include "plugins/instance.hpp"

namespace kghost {
namespace {

using abi::copy_in;
using abi::ks;
using abi::sv;
using abi::token;

QueueHandle* handle_of(kg_queue* q) { return reinterpret_cast<QueueHandle*>(q); }
DurableQueue* q_of(kg_queue* q) { return &handle_of(q)->shared->queue(); }
kg_queue* api_queue_open(kg_plugin_ctx* c, kg_str name, const kg_queue_options* options) {
  if (!c || !c->setting_up()) return nullptr;
  std::string n(sv(name));
  if (!token(n) || n.find("..") != std::string::npos || n.find('.') == 0) {
    c->error = "queue name \"" + n + "\" must be [A-Za-z0-9_-]";
    return nullptr;
  }
  kg_queue_options o = copy_in(options);  // zero (host defaults) past the plugin's struct_size
  QueueOptions opts;
  opts.dir = c->services.data_dir / "queues" / c->name / n;
  opts.name = c->name + "." + n;
  if (o.max_attempts) opts.max_attempts = o.max_attempts;
  if (o.max_bytes) opts.max_bytes = o.max_bytes;
  if (o.retry_backoff_ms) opts.retry_backoff = std::chrono::milliseconds(o.retry_backoff_ms);
  try {
    auto shared = c->services.queues.open(opts.name, [&] {
      return DurableQueue::open(opts, c->services.pool, c->services.metrics.registry(),
                                c->services.log);
    });
    c->queues.push_back(std::make_unique<QueueHandle>(QueueHandle{c, std::move(shared)}));
  } catch (const std::exception& e) {
    c->error = std::string("cannot open durable queue ") + opts.name + ": " + e.what();
    c->services.log.log(LogLevel::error, c->name, c->error);
    return nullptr;
  }
  return reinterpret_cast<kg_queue*>(c->queues.back().get());
}
kg_status api_queue_append(kg_queue* q, kg_str data, kg_append_fn done, void* ud) {
  if (!q) return KG_ERR_INVALID;
  auto st = q_of(q)->append(sv(data), [done, ud](AppendStatus s, uint64_t id) {
    if (done) done(ud, s == AppendStatus::ok ? KG_OK : KG_ERR_UNAVAILABLE, id);
  });
  switch (st) {
    case AppendStatus::ok:
      return KG_PENDING;
    case AppendStatus::full:
      return KG_ERR_FULL;
    case AppendStatus::io_error:
      return KG_ERR_UNAVAILABLE;
  }
  return KG_ERR_INTERNAL;
}
thread_local std::string consumer_reason;  // set by queue_fail_reason during a consumer call
void api_queue_fail_reason(kg_str reason) { consumer_reason = sv(reason); }
kg_status api_queue_consume(kg_queue* q, kg_consume_fn fn, void* ud) {
  if (!q || !fn) return KG_ERR_INVALID;
  auto* handle = handle_of(q);
  handle->shared->offer(handle->owner, [fn, ud](const QueueEntry& e, std::string& error) {
    kg_queue_entry ce{sizeof(kg_queue_entry), e.id, e.attempt, ks(e.data), ks(e.last_error)};
    consumer_reason.clear();
    kg_status st = fn(ud, &ce);
    if (st == KG_OK) return DurableQueue::Outcome::ack;
    error = consumer_reason.empty() ? "consumer returned status " + std::to_string(st)
                                    : std::move(consumer_reason);
    return DurableQueue::Outcome::retry;
  });
  if (handle->owner->live) handle->shared->activate(handle->owner);  // consumes from now on
  return KG_OK;
}
void deliver_batch(kg_consume_batch_fn fn, void* ud, const std::vector<QueueEntry>& batch,
                   std::vector<DurableQueue::Delivery>& out) {
  std::vector<kg_queue_entry> entries;
  entries.reserve(batch.size());
  for (const QueueEntry& e : batch)
    entries.push_back({sizeof(kg_queue_entry), e.id, e.attempt, ks(e.data), ks(e.last_error)});
  std::vector<kg_status> statuses(batch.size(), KG_ERR_RETRY);
  std::vector<kg_str> reasons(batch.size(), kg_str{nullptr, 0});
  fn(ud, entries.data(), entries.size(), statuses.data(), reasons.data());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (statuses[i] == KG_OK) {
      out[i].outcome = DurableQueue::Outcome::ack;
      continue;
    }
    out[i].outcome = DurableQueue::Outcome::retry;
    out[i].error = reasons[i].len ? std::string(sv(reasons[i]))
                                  : "consumer returned status " + std::to_string(statuses[i]);
  }
}
// Through the shelf like queue_consume, so a reload's new instance takes the queue over from
// the old one (and the old instance's fn/ud is never called once it has been released).
kg_status api_queue_consume_batch(kg_queue* q, uint32_t max_batch, kg_consume_batch_fn fn,
                                  void* ud) {
  if (!q || !fn || max_batch == 0) return KG_ERR_INVALID;
  auto* handle = handle_of(q);
  handle->shared->offer(
      handle->owner, max_batch,
      [fn, ud](const std::vector<QueueEntry>& batch, std::vector<DurableQueue::Delivery>& out) {
        deliver_batch(fn, ud, batch, out);
      });
  if (handle->owner->live) handle->shared->activate(handle->owner);  // consumes from now on
  return KG_OK;
}
uint64_t api_queue_depth(kg_queue* q) { return q ? q_of(q)->depth() : 0; }
kg_status api_queue_list_dead(kg_queue* q, kg_entry_visit_fn visit, void* ud) {
  if (!q || !visit) return KG_ERR_INVALID;
  q_of(q)->list_dead([&](const QueueEntry& e) {
    kg_queue_entry ce{sizeof(kg_queue_entry), e.id, e.attempt, ks(e.data), ks(e.last_error)};
    return visit(ud, &ce) == 0;
  });
  return KG_OK;
}
kg_status api_queue_replay(kg_queue* q, uint64_t id) {
  if (!q) return KG_ERR_INVALID;
  return q_of(q)->replay(id) ? KG_OK : KG_ERR_NOT_FOUND;
}

}  // namespace

void fill_queue_api(kg_host_api& t) {
  t.queue_open = api_queue_open;
  t.queue_append = api_queue_append;
  t.queue_consume = api_queue_consume;
  t.queue_depth = api_queue_depth;
  t.queue_list_dead = api_queue_list_dead;
  t.queue_replay = api_queue_replay;
  t.queue_fail_reason = api_queue_fail_reason;
  t.queue_consume_batch = api_queue_consume_batch;
}

}  // namespace kghost
