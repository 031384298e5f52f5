// Pure cores of the auth plugin: key extraction, the keys file, fixed windows and headers.
#include <gtest/gtest.h>

#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "key_input.hpp"
#include "keys.hpp"
#include "rate_limit.hpp"

using namespace kghost::auth;

namespace {

using Headers = std::multimap<std::string, std::string>;

KeyInput extract(const Headers& h) {
  return extract_key([&](std::string_view name, size_t index) -> std::optional<std::string_view> {
    auto [b, e] = h.equal_range(std::string(name));
    for (size_t i = 0; b != e; ++b, ++i)
      if (i == index) return std::string_view(b->second);
    return std::nullopt;
  });
}

}  // namespace

TEST(KeyInput, ReadsEitherHeaderForm) {
  // The key is a view into the request's header: keep the headers alive while using it.
  const Headers api{{"x-api-key", "kg_dev_bob"}}, bearer{{"authorization", "Bearer kg_dev_bob"}},
      spaced{{"authorization", "bearer   kg_dev_bob"}},
      both{{"x-api-key", "k1"}, {"authorization", "Bearer k1"}};
  auto a = extract(api);
  EXPECT_EQ(a.kind, KeyInputKind::key);
  EXPECT_EQ(a.key, "kg_dev_bob");
  auto b = extract(bearer);
  EXPECT_EQ(b.kind, KeyInputKind::key);
  EXPECT_EQ(b.key, "kg_dev_bob");
  EXPECT_EQ(extract(spaced).key, "kg_dev_bob");
  EXPECT_EQ(extract(both).kind, KeyInputKind::key);
  EXPECT_EQ(extract(both).key, "k1");
}

TEST(KeyInput, NoKeyIsNone) {
  EXPECT_EQ(extract({}).kind, KeyInputKind::none);
  EXPECT_EQ(extract({{"authorization", "Basic dXNlcjpwYXNz"}}).kind, KeyInputKind::none);
}

TEST(KeyInput, BadInputIsInvalidNeverAKey) {
  std::string overlong(kMaxKeyLength + 1, 'a');
  std::vector<Headers> bad = {
      {{"x-api-key", ""}},
      {{"x-api-key", overlong}},
      {{"x-api-key", "kg_dev_b\xc3\xb6"}},
      {{"x-api-key",
        "kg\x01"
        "dev"}},
      {{"x-api-key", "two words"}},
      {{"x-api-key", "k1"}, {"x-api-key", "k1"}},
      {{"x-api-key", "k1"}, {"authorization", "Bearer k2"}},
      {{"authorization", "Bearer"}},
      {{"authorization", "Bearer " + overlong}},
      {{"authorization", "Bearer k1"}, {"authorization", "Bearer k1"}},
  };
  for (auto& h : bad) EXPECT_EQ(extract(h).kind, KeyInputKind::invalid) << h.begin()->second;
  EXPECT_EQ(extract({{"x-api-key", std::string(kMaxKeyLength, 'a')}}).kind, KeyInputKind::key);
}

TEST(KeyInput, LoggablePrefixIsShort) {
  EXPECT_EQ(loggable_prefix("kg_live_0123456789abcdef"), "kg_live_");
  EXPECT_EQ(loggable_prefix("abcd"), "ab");
}

TEST(KeysFile, ParsesLinesAndSkipsComments) {
  std::string h = sha256_hex("secret");
  auto keys = parse_keys("# comment\n\n{\"sha256\":\"" + h +
                             "\",\"tenant_id\":\"t1\",\"user_id\":\"u1\",\"tier\":\"pro\","
                             "\"scopes\":\"read\",\"revoked\":true}\n",
                         "keys.jsonl");
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0].tier, "PRO");
  EXPECT_EQ(keys[0].scopes, "read");
  EXPECT_TRUE(keys[0].revoked);
  EXPECT_EQ(keys[0].id, "key_" + h.substr(0, 12));
}

TEST(KeysFile, BadLineNamesFileAndLine) {
  std::string h = sha256_hex("x");
  std::string good =
      "{\"sha256\":\"" + h + "\",\"tenant_id\":\"t\",\"user_id\":\"u\",\"tier\":\"FREE\"}";
  auto expect_error = [&](const std::string& text, const std::string& where) {
    try {
      parse_keys(text, "k.jsonl", {"FREE", "PRO"});
      ADD_FAILURE() << "accepted: " << text;
    } catch (const KeysFileError& e) {
      EXPECT_EQ(std::string(e.what()).rfind(where, 0), 0u) << e.what();
    }
  };
  expect_error(good + "\nnot json\n", "k.jsonl:2:");
  expect_error("\n\n" + good + "\n" + good + "\n", "k.jsonl:4:");  // duplicate hash
  expect_error("{\"sha256\":\"abc\",\"tenant_id\":\"t\",\"user_id\":\"u\",\"tier\":\"FREE\"}",
               "k.jsonl:1:");
  expect_error("{\"sha256\":\"" + h + "\",\"tenant_id\":\"t\",\"user_id\":\"u\",\"tier\":\"GOLD\"}",
               "k.jsonl:1:");
  expect_error("{\"sha256\":\"" + h +
                   "\",\"tenant_id\":\"t\",\"user_id\":\"u\",\"tier\":\"FREE\",\"revokd\":true}",
               "k.jsonl:1:");
  expect_error("{\"sha256\":\"" + h + "\",\"user_id\":\"u\",\"tier\":\"FREE\"}", "k.jsonl:1:");
}

TEST(KeysFile, MintedKeysAreLongRandomAndRoundTrip) {
  std::string a = mint_key(), b = mint_key();
  EXPECT_NE(a, b);
  EXPECT_EQ(a.size(), 51u);
  EXPECT_EQ(a.rfind("kg_live_", 0), 0u);
  KeyRecord r{key_id_for(sha256_hex(a)), sha256_hex(a), "t", "u", "PRO", "read write", false};
  auto back = parse_keys(format_key_line(r, "2024-01-01T00:00:00Z"), "f");
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].sha256, r.sha256);
  EXPECT_EQ(back[0].scopes, "read write");
}

TEST(RateLimit, WindowsAreEpochAlignedAndResetIsADelta) {
  auto w = window_at(120'000 + 15'500, 60);  // 15.5 s into the window starting at 120 s
  EXPECT_EQ(w.start_s, 120);
  EXPECT_EQ(w.reset_s, 45);  // 44.5 s left, rounded up
  EXPECT_EQ(w.ttl_ms, 44'500 + 1000);
  EXPECT_EQ(window_at(180'000, 60).reset_s, 60);
  EXPECT_EQ(window_at(179'999, 60).reset_s, 1);
  EXPECT_EQ(counter_key("user_alice", 120), "rl:user_alice:120");
}

TEST(RateLimit, ExactLimitAndHeaders) {
  Window w{0, 42, 0};
  auto ok = judge(100, 100, w);
  EXPECT_TRUE(ok.allowed);
  EXPECT_EQ(ok.remaining, 0);
  auto over = judge(101, 100, w);
  EXPECT_FALSE(over.allowed);
  RateLimitPolicy policy("FREE", 100, 60);
  RateLimitHeaders h(over, policy);
  std::map<std::string, std::string> m;
  h.for_each([&](std::string_view n, std::string_view v) { m[std::string(n)] = v; });
  EXPECT_EQ(m.size(), h.size());
  EXPECT_EQ(m["X-RateLimit-Limit"], "100");
  EXPECT_EQ(m["X-RateLimit-Remaining"], "0");
  EXPECT_EQ(m["X-RateLimit-Reset"], "42");
  EXPECT_EQ(m["RateLimit-Policy"], "\"FREE\";q=100;w=60");
  EXPECT_EQ(m["RateLimit"], "\"FREE\";r=0;t=42");
  EXPECT_EQ(m["Retry-After"], "42");
  std::size_t allowed_headers = 0;
  RateLimitHeaders(ok, policy).for_each([&](std::string_view n, std::string_view) {
    EXPECT_NE(n, "Retry-After");
    ++allowed_headers;
  });
  EXPECT_EQ(allowed_headers, 5u);
  EXPECT_THROW(RateLimitPolicy(std::string(33, 'T'), 1, 60), std::invalid_argument);
}

TEST(RateLimit, LongestTierAndLargestNumbersFitTheHeaderBuffers) {
  const std::string tier(kMaxTierName, 'T');
  constexpr int64_t kBig = std::numeric_limits<int64_t>::max();
  RateLimitPolicy policy(tier, kBig, 86400);
  Verdict v{false, kBig, kBig, kBig};
  std::map<std::string, std::string> m;
  RateLimitHeaders(v, policy).for_each(
      [&](std::string_view n, std::string_view val) { m[std::string(n)] = val; });
  EXPECT_EQ(m["RateLimit"],
            "\"" + tier + "\";r=" + std::to_string(kBig) + ";t=" + std::to_string(kBig));
  EXPECT_EQ(m["RateLimit-Policy"], "\"" + tier + "\";q=" + std::to_string(kBig) + ";w=86400");
  EXPECT_EQ(m["Retry-After"], std::to_string(kBig));
}
