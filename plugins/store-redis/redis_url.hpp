// redis:// URLs: parsed once when the plugin is created, masked whenever they are shown.
#pragma once

#include <string>
#include <string_view>

namespace store_redis {

struct RedisEndpoint {
  std::string host;
  int port = 6379;
  int db = 0;
  std::string user;
  std::string password;
};

inline constexpr std::string_view kUrlForm = "redis://[[user]:password@]host[:port][/db]";

// Throws std::invalid_argument naming the URL (password masked) and the expected form.
RedisEndpoint parse_redis_url(std::string_view url);

// The URL with any password replaced, safe for messages and logs.
std::string mask_url(std::string_view url);

}  // namespace store_redis
