// observability: the plugin's [plugins.config] table, parsed once at create.
#pragma once

#include <string_view>

namespace kghost::observability {

struct Settings {
  bool access_log = true;
  double access_log_sample_rate = 1.0;  // fraction of requests logged; 5xx are always logged
};

// Throws std::invalid_argument naming the key on a bad or unknown key.
Settings parse_settings(std::string_view json_text);

}  // namespace kghost::observability
