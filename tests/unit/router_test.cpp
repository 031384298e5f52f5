#include "http/router.hpp"

#include <gtest/gtest.h>

using kghost::RouteInfo;
using kghost::RouteMatch;
using kghost::Router;

namespace {

RouteInfo route(std::string method, std::string path, std::string owner = "p") {
  RouteInfo r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.owner = std::move(owner);
  return r;
}

}  // namespace

TEST(Router, MatchesLiteralAndParamSegments) {
  Router r;
  ASSERT_EQ(r.add(route("GET", "/api/v1/streams/{channel}/events")), "");
  ASSERT_EQ(r.add(route("GET", "/api/v1/health")), "");
  auto m = r.match("GET", "/api/v1/streams/orders/events");
  ASSERT_EQ(m.kind, RouteMatch::found);
  EXPECT_EQ(m.route->path, "/api/v1/streams/{channel}/events");
  ASSERT_EQ(m.params.size(), 1u);
  EXPECT_EQ(m.params[0].first, "channel");
  EXPECT_EQ(m.params[0].second, "orders");
  EXPECT_EQ(r.match("GET", "/api/v1/health").kind, RouteMatch::found);
}

TEST(Router, LiteralWinsOverParamAndBacktracks) {
  Router r;
  ASSERT_EQ(r.add(route("GET", "/a/{x}/c")), "");
  ASSERT_EQ(r.add(route("GET", "/a/b/d")), "");
  auto m = r.match("GET", "/a/b/c");  // literal "b" leads nowhere for "c": backtrack to {x}
  ASSERT_EQ(m.kind, RouteMatch::found);
  EXPECT_EQ(m.route->path, "/a/{x}/c");
  EXPECT_EQ(r.match("GET", "/a/b/d").route->path, "/a/b/d");
}

TEST(Router, UnknownPathIs404AndWrongMethodIs405WithAllow) {
  Router r;
  ASSERT_EQ(r.add(route("GET", "/x")), "");
  ASSERT_EQ(r.add(route("POST", "/x")), "");
  EXPECT_EQ(r.match("GET", "/y").kind, RouteMatch::not_found);
  auto m = r.match("DELETE", "/x");
  EXPECT_EQ(m.kind, RouteMatch::method_not_allowed);
  EXPECT_EQ(m.allow, "GET, HEAD, POST");  // HEAD comes with GET
  EXPECT_EQ(r.match("BREW", "/x").kind, RouteMatch::method_not_allowed);
}

TEST(Router, HeadIsServedByTheGetRouteUnlessItHasItsOwn) {
  Router r;
  ASSERT_EQ(r.add(route("GET", "/x")), "");
  ASSERT_EQ(r.add(route("POST", "/p")), "");
  auto m = r.match("HEAD", "/x");
  ASSERT_EQ(m.kind, RouteMatch::found);
  EXPECT_EQ(m.route->method, "GET");
  auto p = r.match("HEAD", "/p");
  EXPECT_EQ(p.kind, RouteMatch::method_not_allowed);
  EXPECT_EQ(p.allow, "POST");
  ASSERT_EQ(r.add(route("HEAD", "/x")), "");
  EXPECT_EQ(r.match("HEAD", "/x").route->method, "HEAD");
  EXPECT_EQ(r.match("PUT", "/x").allow, "GET, HEAD");
}

TEST(Router, EmptyParamSegmentDoesNotMatch) {
  Router r;
  ASSERT_EQ(r.add(route("GET", "/s/{id}")), "");
  EXPECT_EQ(r.match("GET", "/s/").kind, RouteMatch::not_found);
}

TEST(Router, DecodesParamsAndRejectsBadEscapes) {
  Router r;
  ASSERT_EQ(r.add(route("GET", "/s/{id}")), "");
  auto m = r.match("GET", "/s/a%20b");
  ASSERT_EQ(m.kind, RouteMatch::found);
  EXPECT_EQ(m.params[0].second, "a b");
  EXPECT_EQ(r.match("GET", "/s/a%2").kind, RouteMatch::not_found);
}

TEST(Router, RefusesConflictsNamingTheOwner) {
  Router r;
  ASSERT_EQ(r.add(route("GET", "/x/{a}", "first")), "");
  auto err = r.add(route("GET", "/x/{a}", "second"));
  EXPECT_NE(err.find("already registered by first"), std::string::npos) << err;
  err = r.add(route("POST", "/x/{b}", "second"));
  EXPECT_NE(err.find("conflicts with {a}"), std::string::npos) << err;
  EXPECT_EQ(r.add(route("POST", "/x/{a}", "second")), "");
}

TEST(Router, RefusesMalformedTemplates) {
  Router r;
  EXPECT_NE(r.add(route("GET", "no-slash")), "");
  EXPECT_NE(r.add(route("GET", "/a{b}")), "");
  EXPECT_NE(r.add(route("GET", "/{}")), "");
  EXPECT_NE(r.add(route("", "/a")), "");
}

TEST(PercentDecode, DecodesAndRejects) {
  std::string out;
  EXPECT_TRUE(kghost::percent_decode("a%2Fb%41", out));
  EXPECT_EQ(out, "a/bA");
  EXPECT_FALSE(kghost::percent_decode("%G1", out));
  EXPECT_FALSE(kghost::percent_decode("abc%", out));
  EXPECT_FALSE(kghost::percent_decode("abc%4", out));
}
