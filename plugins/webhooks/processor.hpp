// webhooks: processing of the spooled events (the queue's batch consumer).
//
// A batch of up to `process_batch` entries is worked on at once, each store and bus step
// issued for the whole batch before waiting, so the store's round trips are pipelined (one
// round trip per step per batch, not per event). Per event, in this order:
//   a. done already here? (the local processed journal) → ack, skip
//   b. validate the event shape: `data.object` must be an object. A signed event without it
//      is a sender bug we cannot process: it fails, is retried with backoff, and after
//      max_attempts lands in the dead-letter store for an operator (never dropped silently).
//   c. claim `whk:state:<id>` (check_and_set with a short lease). The key existed: its value
//      says whether the event is done (→ ack, skip) or claimed by a replica sharing the Redis
//      store that is processing it right now (→ retry later, by which time it is done).
//   d. publish on the bus as `stripe.<type>`, bus event id = Stripe event id (subscribers
//      de-duplicate with it), and wait until every subscriber has handled it (confirmed
//      publish, ABI 1.1; a failure or timeout retries the entry), then write the done marks
//      (journal, and `whk:state:<id>` = done over the claim), then ack.
//   A crash after (d)'s publish and before its done marks is the one window in which an event
//   can be published twice: at most one batch (process_batch events) per crash. Everything
//   else is exactly once. Subscribers that need strict exactly-once use the bus event id.
//
// Threads: process() runs on a host worker ([task]); it blocks on its own waits, each bounded
// by store_timeout_ms or confirm_timeout_ms. Counters are read from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <kghost/plugin.hpp>
#include <string>
#include <vector>

#include "config.hpp"
#include "journal.hpp"

namespace kghost::webhooks {

class Processor {
 public:
  using Count = std::function<void(const char* result)>;  // the results counter
  Processor(kghost::sdk::Host host, const Config& cfg, Journal* journal, Count count,
            kghost::sdk::Metric::Series errors);

  void process(std::vector<kghost::sdk::Plugin::BatchItem>& batch);

  uint64_t processed() const { return processed_.load(); }
  uint64_t skipped() const { return skipped_.load(); }
  uint64_t failed() const { return failed_.load(); }

 private:
  struct Work;
  void claim(std::vector<Work>& work);
  void publish(std::vector<Work>& work, std::chrono::steady_clock::time_point claimed_at);
  void mark_done(std::vector<Work>& work);
  void fail(kghost::sdk::Plugin::BatchItem& item, const std::string& event_id,
            const std::string& reason);
  void skip(kghost::sdk::Plugin::BatchItem& item);

  kghost::sdk::Host host_;
  const Config& cfg_;
  Journal* journal_;
  Count count_;
  kghost::sdk::Metric::Series errors_;
  std::atomic<uint64_t> processed_{0}, skipped_{0}, failed_{0};
};

}  // namespace kghost::webhooks
