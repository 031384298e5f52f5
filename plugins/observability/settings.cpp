#include "settings.hpp"

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace kghost::observability {

Settings parse_settings(std::string_view json_text) {
  auto cfg =
      nlohmann::json::parse(json_text.empty() ? std::string_view("{}") : json_text, nullptr, false);
  if (!cfg.is_object()) throw std::invalid_argument("the config is not a table");
  Settings s;
  for (auto& [key, v] : cfg.items()) {
    if (key == "access_log") {
      if (!v.is_boolean()) throw std::invalid_argument("'access_log': expected true or false");
      s.access_log = v.get<bool>();
    } else if (key == "access_log_sample_rate") {
      if (!v.is_number() || v.get<double>() < 0 || v.get<double>() > 1)
        throw std::invalid_argument(
            "'access_log_sample_rate': expected a number from 0 to 1 (1.0 logs every request)");
      s.access_log_sample_rate = v.get<double>();
    } else {
      throw std::invalid_argument("'" + key +
                                  "': unknown key (known: access_log, access_log_sample_rate)");
    }
  }
  return s;
}

}  // namespace kghost::observability
