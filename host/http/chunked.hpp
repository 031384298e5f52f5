// An incremental decoder for chunked request bodies (RFC 9112 §7.1) with bounded state:
// chunk extensions and trailer fields are skipped, never buffered, and count against a
// framing budget; a chunk-size line (leading zeros included) has a small maximum length.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace kghost {

class ChunkedDecoder {
 public:
  enum class Result {
    more,               // consumed everything given; the body goes on
    done,               // the last chunk and the trailer section are complete
    bad_framing,        // not chunked syntax
    line_too_long,      // a chunk-size line over max_line bytes
    framing_too_large,  // extensions + trailers over the framing budget
    body_too_large,     // decoded data over max_body bytes
  };

  // The longest chunk-size line accepted (size, extensions, CRLF).
  static constexpr std::size_t kMaxLine = 1024;

  ChunkedDecoder(std::size_t max_body, std::size_t max_framing)
      : max_body_(max_body), max_framing_(max_framing) {}

  // Decodes from [p, p + n), appending data to `body`; `used` is how many bytes it consumed
  // (all of them unless the result is done or an error).
  Result feed(const char* p, std::size_t n, std::string& body, std::size_t& used);

 private:
  // One byte of a chunk-size line; Result::more when it fits.
  Result size_char(char c, std::size_t body_size);
  enum class State {
    size,
    ext,
    size_lf,
    data,
    data_cr,
    data_lf,
    trailer_start,
    trailer,
    trailer_lf,
    final_lf
  };
  std::size_t max_body_, max_framing_;
  State state_ = State::size;
  uint64_t size_ = 0;        // the chunk being parsed, then the data left in it
  std::size_t line_ = 0;     // bytes of the current chunk-size line
  std::size_t framing_ = 0;  // extension and trailer bytes so far
  bool digits_ = false;      // the size line has at least one hex digit
};

}  // namespace kghost
