// webhooks: the plugin's configuration (the `config` object of its entry in the host config).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kghost::webhooks {

using std::chrono::milliseconds;
using std::chrono::seconds;

struct Config {
  std::vector<std::string> secrets;
  seconds tolerance{300};
  milliseconds idempotency_ttl{72LL * 3600 * 1000};
  int64_t rate_limit = 1000;  // requests per source IP per window; 0: off
  milliseconds rate_window{1000};
  uint32_t max_attempts = 8;
  milliseconds retry_backoff{500};
  uint64_t max_queue_bytes = 0;       // 0: the host's default bound
  uint64_t max_queue_depth = 200000;  // entries waiting to be processed; past it: 503
  int retry_after_s = 5;
  milliseconds claim_lease{10000};
  milliseconds store_timeout{5000};     // consumer waits for a store answer at most this long
  milliseconds confirm_timeout{10000};  // consumer waits for bus subscribers at most this long
  std::string journal_dir;              // empty: <host data_dir>/webhooks
  uint64_t journal_rotate = 100000;     // ids per journal generation (two are kept)
  uint32_t process_batch = 128;         // events processed at once (store round trips shared)
};

// Parses and checks the config JSON; throws std::runtime_error naming the field and the fix.
Config parse_config(std::string_view text);

}  // namespace kghost::webhooks
