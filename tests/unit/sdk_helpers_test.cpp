// The SDK's small helpers every plugin shares: the typed config reader (one rule for
// "${N}" integers across plugins), hex encoding and scope lists.
#include <gtest/gtest.h>

#include <kghost/sdk/config.hpp>
#include <kghost/sdk/text.hpp>

#include "common/text.hpp"

namespace {

using kghost::sdk::Config;
using kghost::sdk::ConfigError;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(SdkConfig, IntegersComeAsNumbersOrAsTheStringsEnvExpansionMakes) {
  Config c(R"({"a": 5, "b": "42", "c": "-3"})");
  EXPECT_EQ(c.integer("a", 0, 0, 10), 5);
  EXPECT_EQ(c.integer("b", 0, 0, 100), 42);  // rate_limit = "${WH_RATE:-42}"
  EXPECT_EQ(c.integer("c", 0, -5, 5), -3);
  EXPECT_EQ(c.integer("absent", 7, 0, 10), 7);
}

TEST(SdkConfig, BadValuesNameTheKey) {
  Config c(R"({"a": "4x", "b": "", "c": 2.5, "d": 11, "e": 1, "f": {"g": 1}})");
  EXPECT_EQ(error_of([&] { c.integer("a", 0, 0, 10); }), "'a': must be an integer, got \"4x\"");
  EXPECT_EQ(error_of([&] { c.integer("b", 0, 0, 10); }), "'b': must be an integer, got \"\"");
  EXPECT_EQ(error_of([&] { c.integer("c", 0, 0, 10); }), "'c': must be an integer");
  EXPECT_EQ(error_of([&] { c.integer("d", 0, 0, 10); }), "'d': must be between 0 and 10");
  EXPECT_EQ(error_of([&] { c.string("e"); }), "'e': must be a string");
  EXPECT_EQ(error_of([&] { c.list("f"); }),
            "'f': must be a comma-separated string or an array of strings");
  EXPECT_EQ(error_of([&] {
              c.allow_only({"a", "b", "c", "d", "e"});
            }),
            "'f': is not a known key (known: a, b, c, d, e)");
  EXPECT_EQ(error_of([&] { Config("[1]"); }), "the config is not a table");
  EXPECT_EQ(error_of([&] { Config("{"); }), "the config is not a table");
  EXPECT_EQ(error_of([&] { Config(""); }), "(no error)");
}

TEST(SdkConfig, ListsAreCommaStringsOrArraysTrimmedWithoutEmptyItems) {
  Config c(R"({"a": " x, y ,,z ", "b": ["p,q", " r "], "c": ""})");
  EXPECT_EQ(*c.list("a"), (std::vector<std::string>{"x", "y", "z"}));
  EXPECT_EQ(*c.list("b"), (std::vector<std::string>{"p", "q", "r"}));
  EXPECT_TRUE(c.list("c")->empty());
  EXPECT_FALSE(c.list("absent").has_value());
}

TEST(SdkText, HexIsLowerCaseUnlessAskedAndBothSidesAgree) {
  const std::string bytes("\x00\x7f\xa0\xff", 4);
  EXPECT_EQ(kghost::sdk::to_hex(bytes), "007fa0ff");
  EXPECT_EQ(kghost::sdk::to_hex(bytes, true), "007FA0FF");
  EXPECT_EQ(kghost::to_hex(bytes), "007fa0ff");
  EXPECT_EQ(kghost::to_hex(uint64_t{0x0123456789abcdef}), "0123456789abcdef");
  EXPECT_EQ(kghost::to_hex(uint64_t{1}), "0000000000000001");
}

TEST(SdkText, ScopeListsSkipEmptyItemsAndStopEarly) {
  std::vector<std::string> seen;
  EXPECT_TRUE(kghost::sdk::for_each_scope(" read  write ", [&](std::string_view s) {
    seen.emplace_back(s);
    return true;
  }));
  EXPECT_EQ(seen, (std::vector<std::string>{"read", "write"}));
  EXPECT_FALSE(kghost::for_each_scope("a b c", [](std::string_view s) { return s != "b"; }));
  EXPECT_TRUE(kghost::sdk::has_scope("read write", "write"));
  EXPECT_FALSE(kghost::sdk::has_scope("read write", "writ"));
  EXPECT_FALSE(kghost::has_scope("read", ""));
  EXPECT_TRUE(kghost::has_scope("admin read", "admin"));
}

}  // namespace
