#include "http/response_head.hpp"

#include <algorithm>
#include <boost/beast/http.hpp>

#include "common/text.hpp"

namespace kghost {
namespace {

// Headers the response writer sets itself; a plugin's copy of one is dropped (never sent twice).
bool writer_owned(std::string_view name) {
  switch (name.size()) {
    case 10:
      return iequals(name, "Connection");
    case 12:
      return iequals(name, "X-Request-Id") || iequals(name, "Content-Type");
    case 14:
      return iequals(name, "Content-Length");
    case 17:
      return iequals(name, "Transfer-Encoding");
    default:
      return false;
  }
}

}  // namespace

// ASCII case-insensitive equality (Beast 1.74's iequals takes boost::string_view).
bool iequals(std::string_view a, std::string_view b) {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [&](char x, char y) { return lower(x) == lower(y); });
}

void write_head(std::string& out, uint16_t status, std::string_view content_type,
                const HeaderList& headers, std::string_view request_id) {
  out += "HTTP/1.1 ";
  char code[4] = {static_cast<char>('0' + status / 100 % 10),
                  static_cast<char>('0' + status / 10 % 10), static_cast<char>('0' + status % 10),
                  ' '};
  out.append(code, 4);
  auto reason =
      boost::beast::http::obsolete_reason(static_cast<boost::beast::http::status>(status));
  out.append(reason.data(), reason.size());
  for (auto [name, value] : headers) {
    if (content_type.empty() && name.size() == 12 && iequals(name, "Content-Type"))
      content_type = value;
  }
  out += "\r\nContent-Type: ";
  out += content_type.empty() ? std::string_view("application/json") : content_type;
  out += "\r\nX-Request-Id: ";
  out += request_id;
  for (auto [name, value] : headers) {
    if (writer_owned(name) || name.empty() || name.find(':') != std::string::npos ||
        has_line_break(name) || has_line_break(value))
      continue;  // never let a header split the response or repeat one of ours
    out += "\r\n";
    out += name;
    out += ": ";
    out += value;
  }
}

}  // namespace kghost
