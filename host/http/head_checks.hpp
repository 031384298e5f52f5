// The request head checks Beast leaves to us (RFC 9110/9112): obs-fold, Host, and
// Transfer-Encoding. Pure functions over the parsed fields; the connection refuses with them.
#pragma once

#include <boost/beast/http.hpp>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace kghost {

// The reason a request must be refused.
struct Refusal {
  uint16_t status = 0;  // 0: acceptable
  std::string_view code;
  std::string_view message;
};

// obs-fold (RFC 9112 §5.2): a line of the header section that starts with SP or HTAB.
bool has_obs_fold(const char* p, std::size_t n);
// Exactly one valid Host (none allowed before HTTP/1.1).
Refusal check_host(const boost::beast::http::fields& req, unsigned version);
// Transfer-Encoding (RFC 9112 §6.1): only "chunked", as the final and only coding, frames a
// body we can read; anything else would be read differently by someone, so it is refused.
// Sets `chunked` when the body is chunked.
Refusal check_transfer_encoding(const boost::beast::http::fields& req, unsigned version,
                                bool& chunked);

}  // namespace kghost
