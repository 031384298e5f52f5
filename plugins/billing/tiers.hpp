// Stripe subscriptions → tenant tiers: reading the event, and the tier book kept under the
// plugin's data directory so a tier survives a restart with the memory store too.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace kghost::billing {

struct TierChange {
  std::string tenant, tier, event_id;
  int64_t created = 0;  // the Stripe event's `created` (unix s); orders out-of-order deliveries
};

// What a customer.subscription.created|updated|deleted event asks for: the tenant from
// data.object.metadata.tenant_id; the first item's price lookup_key through `prices`;
// deleted → FREE. On failure `why` names the reason ("no_tenant", "unknown_price",
// "malformed") and `detail` a human text.
struct Reading {
  std::optional<TierChange> change;
  std::string why, detail;
};
Reading read_subscription_event(std::string_view topic, std::string_view data,
                                std::string_view event_id,
                                const std::map<std::string, std::string, std::less<>>& prices);

class TierBook {
 public:
  // Loads <dir>/tiers.json (creating dir). Throws naming the file when it cannot be read.
  explicit TierBook(std::filesystem::path dir);

  enum class Outcome { applied, duplicate, stale };
  // Records the change durably (write, fsync, rename) before returning `applied`. The same
  // event id again is a `duplicate`; an event older than the tenant's last one is `stale`.
  // Throws std::runtime_error when the file cannot be written (the caller retries).
  Outcome apply(const TierChange& change, std::string* previous_tier);

  std::map<std::string, TierChange> snapshot() const;

 private:
  void save_locked();

  std::filesystem::path file_;
  mutable std::mutex mu_;  // guards tenants_ and the file
  std::map<std::string, TierChange> tenants_;
};

}  // namespace kghost::billing
