// The chunked body decoder: byte-at-a-time feeding, extensions and trailers skipped, and every
// kind of unbounded framing cut off by a limit.
#include "http/chunked.hpp"

#include <gtest/gtest.h>

using kghost::ChunkedDecoder;
using Result = ChunkedDecoder::Result;

namespace {

// Feeds `in` in pieces of `step` bytes; returns the last result and the body.
std::pair<Result, std::string> decode(const std::string& in, std::size_t step,
                                      std::size_t max_body = 1 << 20,
                                      std::size_t max_framing = 16 << 10) {
  ChunkedDecoder d(max_body, max_framing);
  std::string body;
  Result r = Result::more;
  for (std::size_t i = 0; i < in.size() && r == Result::more; i += step) {
    std::size_t used = 0;
    std::size_t n = std::min(step, in.size() - i);
    r = d.feed(in.data() + i, n, body, used);
    if (r == Result::more) {
      EXPECT_EQ(used, n);
    }
  }
  return {r, body};
}

}  // namespace

TEST(Chunked, DecodesWholeAndByteAtATime) {
  std::string in = "5;a=b\r\nhello\r\n0006\r\n world\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n";
  for (std::size_t step : {in.size(), std::size_t{1}, std::size_t{3}}) {
    auto [r, body] = decode(in, step);
    EXPECT_EQ(r, Result::done) << step;
    EXPECT_EQ(body, "hello world0123456789") << step;
  }
}

TEST(Chunked, StopsRightAfterTheLastCrlf) {
  ChunkedDecoder d(100, 100);
  std::string body, in = "0\r\n\r\nGET / HTTP/1.1\r\n";
  std::size_t used = 0;
  EXPECT_EQ(d.feed(in.data(), in.size(), body, used), Result::done);
  EXPECT_EQ(used, 5u);  // the pipelined request is left for the next parse
}

TEST(Chunked, RejectsBadSyntax) {
  for (std::string bad : {"x\r\n", "\r\n", ";ext\r\n", "5\nhello\r\n", "5\r\nhelloX\r\n",
                          "0\r\nX-T: 1\n\r\n", "-1\r\n"}) {
    EXPECT_EQ(decode(bad, 1).first, Result::bad_framing) << bad;
  }
}

TEST(Chunked, LimitsEveryKindOfFraming) {
  EXPECT_EQ(decode(std::string(5000, '0') + "1\r\n", 7).first, Result::line_too_long);
  EXPECT_EQ(decode("1;" + std::string(5000, 'e') + "\r\n", 7).first, Result::line_too_long);
  std::string many_ext;
  for (int i = 0; i < 200; ++i) many_ext += "1;" + std::string(100, 'e') + "\r\nx\r\n";
  EXPECT_EQ(decode(many_ext, 64).first, Result::framing_too_large);
  std::string trailers = "0\r\n";
  for (int i = 0; i < 200; ++i) trailers += "X-T: " + std::string(100, 'a') + "\r\n";
  EXPECT_EQ(decode(trailers, 64).first, Result::framing_too_large);
  EXPECT_EQ(decode("401\r\n", 1, 1024).first, Result::body_too_large);
  EXPECT_EQ(decode("200\r\n" + std::string(512, 'x') + "\r\n201\r\n", 1, 1024).first,
            Result::body_too_large);
  EXPECT_EQ(decode("ffffffffffffffffffff\r\n", 1).first, Result::body_too_large);  // no overflow
}
