#include "config.hpp"

#include <kghost/sdk/config.hpp>
#include <stdexcept>

namespace kghost::webhooks {

Config parse_config(std::string_view text) try {
  kghost::sdk::Config cfg(text);
  cfg.allow_only({"secrets", "tolerance_s", "idempotency_ttl_s", "rate_limit", "rate_window_ms",
                  "max_attempts", "retry_backoff_ms", "max_queue_bytes", "max_queue_depth",
                  "retry_after_s", "claim_lease_ms", "store_timeout_ms", "confirm_timeout_ms",
                  "journal_dir", "journal_rotate", "process_batch"});
  Config c;
  // Secrets: a comma list (as STRIPE_WEBHOOK_SECRET carries it) or an array of strings.
  auto secrets = cfg.list("secrets");
  if (!secrets) cfg.fail("secrets", "is required (e.g. \"${STRIPE_WEBHOOK_SECRET}\")");
  c.secrets = std::move(*secrets);
  if (c.secrets.empty()) cfg.fail("secrets", "holds no secret");
  c.tolerance = seconds(cfg.integer("tolerance_s", 300, 1, 86400));
  c.idempotency_ttl = seconds(cfg.integer("idempotency_ttl_s", 72 * 3600, 60, 90LL * 86400));
  c.rate_limit = cfg.integer("rate_limit", 1000, 0, 1'000'000'000);
  c.rate_window = milliseconds(cfg.integer("rate_window_ms", 1000, 100, 3'600'000));
  c.max_attempts = static_cast<uint32_t>(cfg.integer("max_attempts", 8, 1, 100));
  c.retry_backoff = milliseconds(cfg.integer("retry_backoff_ms", 500, 1, 600'000));
  c.max_queue_bytes = static_cast<uint64_t>(cfg.integer("max_queue_bytes", 0, 0, int64_t{1} << 40));
  c.max_queue_depth =
      static_cast<uint64_t>(cfg.integer("max_queue_depth", 200000, 1, int64_t{1} << 40));
  c.retry_after_s = static_cast<int>(cfg.integer("retry_after_s", 5, 1, 3600));
  c.claim_lease = milliseconds(cfg.integer("claim_lease_ms", 10000, 100, 3'600'000));
  c.store_timeout = milliseconds(cfg.integer("store_timeout_ms", 5000, 10, 600'000));
  c.confirm_timeout = milliseconds(cfg.integer("confirm_timeout_ms", 10000, 10, 600'000));
  c.journal_dir = cfg.string("journal_dir");
  c.journal_rotate =
      static_cast<uint64_t>(cfg.integer("journal_rotate", 100000, 10, int64_t{1} << 32));
  c.process_batch = static_cast<uint32_t>(cfg.integer("process_batch", 128, 1, 4096));
  return c;
} catch (const kghost::sdk::ConfigError& e) {
  throw std::runtime_error(std::string("webhooks config: ") + e.what());
}

}  // namespace kghost::webhooks
