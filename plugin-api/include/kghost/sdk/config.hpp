// Typed reading of a plugin's [plugins.config] table (Host::config_json()), with one set of
// rules for every plugin. Header-only; needs nlohmann/json, which the plugin links itself.
//
// Rules
// - An integer is a TOML integer or a string holding one in decimal, because "${NAME}" and
//   "${NAME:-8}" always expand to strings: `rate_limit = "${WH_RATE:-1000}"` must work.
// - A list is a comma-separated string (as an environment variable carries it) or an array of
//   such strings; items are trimmed and empty ones dropped.
// - Every error is a ConfigError whose message starts with the key: "'rate_limit': must be
//   between 0 and 1000000000". Plugins add their own prefix ("[plugins.config] of auth: ").
#pragma once

#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace kghost::sdk {

struct ConfigError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// Splits a comma-separated list, trimming spaces and tabs and dropping empty items.
inline std::vector<std::string> split_list(std::string_view list) {
  std::vector<std::string> out;
  while (!list.empty()) {
    const auto comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

class Config {
 public:
  // Throws ConfigError unless `json_text` is a JSON object; "" reads as an empty table.
  explicit Config(std::string_view json_text)
      : table_(nlohmann::json::parse(json_text.empty() ? std::string_view("{}") : json_text,
                                     nullptr, false)) {
    if (!table_.is_object()) throw ConfigError("the config is not a table");
  }

  [[noreturn]] static void fail(std::string_view key, std::string_view why) {
    throw ConfigError("'" + std::string(key) + "': " + std::string(why));
  }

  // Throws ConfigError for the first key not in `known` (a typo must not pass silently).
  void allow_only(std::initializer_list<std::string_view> known) const {
    for (auto& [key, value] : table_.items()) {
      bool ok = false;
      for (auto k : known) ok = ok || k == key;
      if (ok) continue;
      std::string list;
      for (auto k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      fail(key, "is not a known key (known: " + list + ")");
    }
  }

  bool has(std::string_view key) const { return table_.contains(key); }
  const nlohmann::json& table() const { return table_; }

  // An integer in [min, max], or `def` when the key is absent.
  int64_t integer(std::string_view key, int64_t def, int64_t min, int64_t max) const {
    return has(key) ? integer_value(table_[std::string(key)], key, min, max) : def;
  }
  // A string, or `def` when the key is absent.
  std::string string(std::string_view key, std::string def = {}) const {
    return has(key) ? string_value(table_[std::string(key)], key) : def;
  }
  // A list (see the rules above), or nullopt when the key is absent.
  std::optional<std::vector<std::string>> list(std::string_view key) const {
    if (!has(key)) return std::nullopt;
    return list_value(table_[std::string(key)], key);
  }

  // The same rules for a value found elsewhere, e.g. in a nested table; `key` names it in
  // errors ("tiers.PRO.limit").
  static int64_t integer_value(const nlohmann::json& v, std::string_view key, int64_t min,
                               int64_t max) {
    int64_t out = 0;
    if (v.is_number_integer()) {
      out = v.get<int64_t>();
    } else if (v.is_string()) {
      const auto& s = v.get_ref<const std::string&>();
      auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
      if (s.empty() || ec != std::errc() || end != s.data() + s.size())
        fail(key, "must be an integer, got \"" + s + "\"");
    } else {
      fail(key, "must be an integer");
    }
    if (out < min || out > max)
      fail(key, "must be between " + std::to_string(min) + " and " + std::to_string(max));
    return out;
  }
  static std::string string_value(const nlohmann::json& v, std::string_view key) {
    if (!v.is_string()) fail(key, "must be a string");
    return v.get<std::string>();
  }
  static std::vector<std::string> list_value(const nlohmann::json& v, std::string_view key) {
    if (v.is_string()) return split_list(v.get_ref<const std::string&>());
    if (!v.is_array()) fail(key, "must be a comma-separated string or an array of strings");
    std::vector<std::string> out;
    for (auto& item : v) {
      auto part = split_list(string_value(item, key));
      out.insert(out.end(), part.begin(), part.end());
    }
    return out;
  }

 private:
  nlohmann::json table_;
};

}  // namespace kghost::sdk
