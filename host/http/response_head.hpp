// The one place a response head is formatted (status line, Content-Type, X-Request-Id and
// the caller's headers), for plain and chunked responses alike.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "http/protocol.hpp"

namespace kghost {

// ASCII case-insensitive equality (Beast 1.74's iequals takes boost::string_view).
bool iequals(std::string_view a, std::string_view b);

// Writes the head without its final CRLF; the caller adds the framing headers. Headers the
// writer sets itself, and any that would split the response, are dropped from `headers`.
void write_head(std::string& out, uint16_t status, std::string_view content_type,
                const HeaderList& headers, std::string_view request_id);

}  // namespace kghost
