// The durable queue's facade, metrics, appends, dead letters and stop. See durable_queue_impl.hpp
// for where the other parts live.
#include "runtime/durable_queue.hpp"

#include <prometheus/family.h>
#include <prometheus/registry.h>
#include <unistd.h>

#include <algorithm>

#include "common/thread_name.hpp"
#include "runtime/durable_queue_impl.hpp"

namespace kghost {

namespace fs = std::filesystem;
namespace qf = queue_format;
using namespace queue_files;
using Clock = std::chrono::steady_clock;

namespace {
constexpr std::size_t kListBatch = 64;
}  // namespace

DurableQueue::Impl::Impl(QueueOptions o, WorkerPool& p, prometheus::Registry& registry, Logger& l)
    : opts(std::move(o)), pool(p), log(l) {
  if (opts.max_attempts == 0) opts.max_attempts = 5;
  if (opts.segment_bytes == 0) opts.segment_bytes = 64ull << 20;
  label = "durable queue '" + opts.name + "' (" + opts.dir.string() + ")";
  prometheus::Labels labels{{"queue", opts.name}};
  depth_gauge = &prometheus::BuildGauge()
                     .Name("kgents_queue_depth")
                     .Help("Durable queue entries waiting for delivery, excluding dead letters")
                     .Register(registry)
                     .Add(labels);
  bytes_gauge = &prometheus::BuildGauge()
                     .Name("kgents_queue_bytes")
                     .Help("Durable queue payload bytes not yet acknowledged (incl. dead)")
                     .Register(registry)
                     .Add(labels);
  fsyncs_counter = &prometheus::BuildCounter()
                        .Name("kgents_queue_fsyncs_total")
                        .Help("Durable queue group commits (one write + one fdatasync each)")
                        .Register(registry)
                        .Add(labels);
  latency_histogram = &prometheus::BuildHistogram()
                           .Name("kgents_queue_append_latency_seconds")
                           .Help("Time from append to the record being durable")
                           .Register(registry)
                           .Add(labels, prometheus::Histogram::BucketBoundaries{
                                            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                            0.025, 0.05, 0.1, 0.25, 0.5, 1.0});
  dead_gauge = &prometheus::BuildGauge()
                    .Name("kgents_queue_dead_letters")
                    .Help("Durable queue dead letters (failed max attempts), kept until replay")
                    .Register(registry)
                    .Add(labels);
}

DurableQueue::Impl::~Impl() {
  if (fd >= 0) ::close(fd);
  if (lock_fd >= 0) ::close(lock_fd);
}

void DurableQueue::Impl::start_threads() {
  committer = std::thread([this] {
    name_this_thread("kg-q-commit");
    committer_loop();
  });
  dispatcher = std::thread([this] {
    name_this_thread("kg-q-deliver");
    dispatcher_loop();
  });
}

AppendStatus DurableQueue::Impl::append(std::string_view data, AppendDone done) {
  uint64_t size = data.size();
  if (size > qf::kMaxRecordPayload - 64) return AppendStatus::full;
  uint64_t before = live_bytes.fetch_add(size);
  if (before + size > opts.max_bytes) {
    live_bytes.fetch_sub(size);
    return AppendStatus::full;
  }
  PendingAppend pending{0, std::string(data), std::move(done), Clock::now()};
  {
    std::lock_guard lock(commit_mu);
    if (commit_stop || broken) {
      live_bytes.fetch_sub(size);
      return AppendStatus::io_error;
    }
    pending.id = next_id++;
    qf::encode_append(pending_append_buf, pending.id, data);
    pending_appends.push_back(std::move(pending));
  }
  commit_cv.notify_one();
  bytes_gauge->Set(static_cast<double>(live_bytes.load()));
  return AppendStatus::ok;
}

uint64_t DurableQueue::Impl::depth() const { return depth_now.load(std::memory_order_relaxed); }

void DurableQueue::Impl::list_dead(const std::function<bool(const QueueEntry&)>& visit) const {
  uint64_t cursor = 0;
  while (true) {
    std::vector<QueueEntry> batch;
    {
      std::lock_guard lock(mu);
      for (auto it = dead.upper_bound(cursor); it != dead.end() && batch.size() < kListBatch;
           ++it) {
        const Entry& e = entries.at(*it);
        batch.push_back(QueueEntry{*it, e.failures, e.data, e.last_error});
      }
    }
    if (batch.empty()) return;
    for (const auto& entry : batch) {
      cursor = entry.id;
      if (!visit(entry)) return;
    }
  }
}

bool DurableQueue::Impl::replay(uint64_t id) {
  {
    std::lock_guard lock(mu);
    if (dead.erase(id) == 0) return false;
    Entry& e = entries.at(id);
    e.dead = false;
    e.failures = 0;
    segments[e.segment].dead--;
    ready.insert(id);
    {
      std::lock_guard commit_lock(commit_mu);
      qf::encode_replay(pending_meta_buf, id);
    }
    update_gauges_locked();
  }
  commit_cv.notify_one();
  dispatch_cv.notify_one();
  return true;
}

void DurableQueue::Impl::update_gauges_locked() {
  const uint64_t depth = entries.size() - dead.size();
  depth_now.store(depth, std::memory_order_relaxed);
  depth_gauge->Set(static_cast<double>(depth));
  dead_gauge->Set(static_cast<double>(dead.size()));
  bytes_gauge->Set(static_cast<double>(live_bytes.load()));
}

void DurableQueue::Impl::stop() {
  {
    std::lock_guard lock(mu);
    if (stopped) return;
    stopped = stopping = true;
  }
  dispatch_cv.notify_all();
  if (dispatcher.joinable()) dispatcher.join();
  {
    std::unique_lock lock(mu);
    idle_cv.wait(lock, [&] { return !in_flight; });
  }
  {
    std::lock_guard lock(commit_mu);
    commit_stop = true;
  }
  commit_cv.notify_all();
  if (committer.joinable()) committer.join();
  if (fd >= 0) ::close(fd);
  fd = -1;
  if (lock_fd >= 0) ::close(lock_fd);  // releases the directory lock
  lock_fd = -1;
}

std::unique_ptr<DurableQueue> DurableQueue::open(QueueOptions options, WorkerPool& pool,
                                                 prometheus::Registry& registry, Logger& log) {
  auto impl = std::make_unique<Impl>(std::move(options), pool, registry, log);
  impl->open_dir();
  impl->recover();
  impl->start_threads();
  return std::unique_ptr<DurableQueue>(new DurableQueue(std::move(impl)));
}

DurableQueue::DurableQueue(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DurableQueue::~DurableQueue() { impl_->stop(); }

AppendStatus DurableQueue::append(std::string_view data, AppendDone done) {
  return impl_->append(data, std::move(done));
}
void DurableQueue::consume(Consumer consumer) { impl_->consume(std::move(consumer)); }
void DurableQueue::consume_batch(std::size_t max_batch, BatchConsumer consumer) {
  impl_->consume_batch(max_batch, std::move(consumer));
}
void DurableQueue::set_max_batch(std::size_t max_batch) {
  std::lock_guard lock(impl_->mu);
  impl_->max_batch = std::max<std::size_t>(max_batch, 1);
}
uint64_t DurableQueue::depth() const { return impl_->depth(); }
void DurableQueue::list_dead(const std::function<bool(const QueueEntry&)>& visit) const {
  impl_->list_dead(visit);
}
bool DurableQueue::replay(uint64_t id) { return impl_->replay(id); }
void DurableQueue::stop() { impl_->stop(); }

}  // namespace kghost
