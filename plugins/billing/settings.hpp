// billing's [plugins.config], parsed once in create.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace kghost::billing {

enum class Sink { openmeter, log, none };

struct Settings {
  Sink sink = Sink::openmeter;
  std::string url;      // OpenMeter base URL, e.g. http://openmeter:8888
  std::string api_key;  // sent as Authorization: Bearer; never logged
  // A batch is one spool entry: sent at batch_size events or flush_interval after its first
  // event, whichever comes first. The interval is capped at 80 ms because an entry is only
  // written when it closes, and a request answered 100 ms before a crash must be on disk.
  std::size_t batch_size = 100;
  std::chrono::milliseconds flush_interval{25};
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds timeout{5000};
  std::chrono::milliseconds backoff_initial{200};
  std::chrono::milliseconds backoff_max{30000};
  std::chrono::milliseconds stop_flush{3000};  // SIGTERM: send what we can within this
  uint64_t max_spool_bytes = 64ull << 20;
  std::map<std::string, std::string, std::less<>> prices;  // price lookup_key -> tier
};

// Throws std::runtime_error("billing config: 'KEY' …") naming what to fix.
Settings parse_settings(std::string_view config_json);

}  // namespace kghost::billing
