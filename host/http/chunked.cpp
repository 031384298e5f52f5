#include "http/chunked.hpp"

#include <algorithm>

namespace kghost {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

ChunkedDecoder::Result ChunkedDecoder::size_char(char c, std::size_t body_size) {
  if (++line_ > kMaxLine) return Result::line_too_long;
  int h = hex_value(c);
  if (h >= 0) {
    size_ = size_ * 16 + static_cast<uint64_t>(h);
    digits_ = true;
    // max_body is far below 2^60, so this also keeps size_ from overflowing.
    if (size_ > max_body_ - body_size) return Result::body_too_large;
  } else if (digits_ && (c == ';' || c == ' ' || c == '\t')) {
    state_ = State::ext;
  } else if (digits_ && c == '\r') {
    state_ = State::size_lf;
  } else {
    return Result::bad_framing;
  }
  return Result::more;
}

ChunkedDecoder::Result ChunkedDecoder::feed(const char* p, std::size_t n, std::string& body,
                                            std::size_t& used) {
  std::size_t i = 0;
  auto stop = [&](Result r) {
    used = i;
    return r;
  };
  while (i < n) {
    if (state_ == State::data) {  // the bulk: copy the run, no per-byte work
      std::size_t take = static_cast<std::size_t>(std::min<uint64_t>(size_, n - i));
      body.append(p + i, take);
      i += take;
      size_ -= take;
      if (size_ == 0) state_ = State::data_cr;
      continue;
    }
    char c = p[i++];
    switch (state_) {
      case State::size:
        if (Result r = size_char(c, body.size()); r != Result::more) return stop(r);
        break;
      case State::ext:
        if (++line_ > kMaxLine) return stop(Result::line_too_long);
        if (++framing_ > max_framing_) return stop(Result::framing_too_large);
        if (c == '\r')
          state_ = State::size_lf;
        else if (c == '\n')
          return stop(Result::bad_framing);
        break;
      case State::size_lf:
        if (c != '\n') return stop(Result::bad_framing);
        line_ = 0;
        digits_ = false;
        state_ = size_ == 0 ? State::trailer_start : State::data;
        break;
      case State::data_cr:
        if (c != '\r') return stop(Result::bad_framing);
        state_ = State::data_lf;
        break;
      case State::data_lf:
        if (c != '\n') return stop(Result::bad_framing);
        state_ = State::size;
        break;
      case State::trailer_start:
        if (c == '\r') {
          state_ = State::final_lf;
          break;
        }
        state_ = State::trailer;
        [[fallthrough]];
      case State::trailer:
        if (++framing_ > max_framing_) return stop(Result::framing_too_large);
        if (c == '\r')
          state_ = State::trailer_lf;
        else if (c == '\n')
          return stop(Result::bad_framing);
        break;
      case State::trailer_lf:
        if (c != '\n') return stop(Result::bad_framing);
        state_ = State::trailer_start;
        break;
      case State::final_lf:
        if (c != '\n') return stop(Result::bad_framing);
        return stop(Result::done);
      case State::data:
        break;  // handled above
    }
  }
  return stop(Result::more);
}

}  // namespace kghost
