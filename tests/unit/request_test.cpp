// Pure request-path helpers: target safety, request ids, trace context, error bodies.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "http/pipeline.hpp"

using namespace kghost;

TEST(UnsafeTarget, RejectsDotDotSegmentsRawAndEncoded) {
  EXPECT_TRUE(unsafe_target("/a/../b"));
  EXPECT_TRUE(unsafe_target("/.."));
  EXPECT_TRUE(unsafe_target("/a/%2e%2e/b"));
  EXPECT_TRUE(unsafe_target("/a/%2E%2E"));
  EXPECT_FALSE(unsafe_target("/a/..b/c"));
  EXPECT_FALSE(unsafe_target("/a/b?x=.."));
}

TEST(UnsafeTarget, RejectsNulRawOrEncodedAndBadEscapes) {
  EXPECT_TRUE(unsafe_target(std::string_view("/a\0b", 4)));
  EXPECT_TRUE(unsafe_target("/a%00b"));
  EXPECT_TRUE(unsafe_target("/a?x=%00"));
  EXPECT_TRUE(unsafe_target("/a%zz"));
  EXPECT_FALSE(unsafe_target("/a%20b?q=1"));
}

TEST(RequestId, AcceptsSafeIdsOnly) {
  EXPECT_TRUE(valid_request_id("abc-DEF_1.2"));
  EXPECT_FALSE(valid_request_id(""));
  EXPECT_FALSE(valid_request_id("has space"));
  EXPECT_FALSE(valid_request_id("new\nline"));
  EXPECT_FALSE(valid_request_id(std::string(129, 'a')));
  auto a = new_request_id(), b = new_request_id();
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
  EXPECT_TRUE(valid_request_id(a));
}

TEST(TraceParent, ContinuesAValidTraceAndStartsOtherwise) {
  std::string in = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  auto out = continue_traceparent(in);
  EXPECT_EQ(out.substr(0, 36), in.substr(0, 36));    // same trace id
  EXPECT_NE(out.substr(36, 16), in.substr(36, 16));  // our own span id
  EXPECT_EQ(out.substr(52), "-01");
  for (auto bad : {"", "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                   "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "garbage"}) {
    auto fresh = continue_traceparent(std::string_view(bad));
    EXPECT_EQ(fresh.size(), 55u);
    EXPECT_NE(fresh.substr(3, 32),
              std::string(bad).size() > 35 ? std::string(bad).substr(3, 32) : "");
  }
  EXPECT_EQ(continue_traceparent(std::nullopt).size(), 55u);
}

TEST(ErrorResponse, HasTheContractShape) {
  auto r = error_response(429, "rate_limited", "slow \"down\"", "rid-1");
  EXPECT_EQ(r.status, 429);
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["error"]["code"], "rate_limited");
  EXPECT_EQ(j["error"]["message"], "slow \"down\"");
  EXPECT_EQ(j["error"]["request_id"], "rid-1");
}
