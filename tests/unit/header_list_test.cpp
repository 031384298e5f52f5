// The response header list: entries come back in order, byte for byte, through appends and
// moves, whatever their length.
#include "http/header_list.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace kghost {
namespace {

using Entries = std::vector<std::pair<std::string, std::string>>;

Entries entries(const HeaderList& list) {
  Entries out;
  for (auto [name, value] : list) out.emplace_back(name, value);
  return out;
}

TEST(HeaderList, KeepsEntriesInOrderWithEmptyAndLongValues) {
  HeaderList list;
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(list.begin(), list.end());
  const std::string long_value(70000, 'v');  // past the first reserve and 16-bit lengths
  list.emplace_back("X-RateLimit-Remaining", "41");
  list.emplace_back("X-Empty", "");
  list.emplace_back("Link", long_value);
  list.emplace_back("X-RateLimit-Remaining", "40");  // a repeated name stays a second entry
  EXPECT_EQ(entries(list), (Entries{{"X-RateLimit-Remaining", "41"},
                                    {"X-Empty", ""},
                                    {"Link", long_value},
                                    {"X-RateLimit-Remaining", "40"}}));
  list.clear();
  EXPECT_TRUE(list.empty());
  EXPECT_EQ(list.begin(), list.end());
}

TEST(HeaderList, AppendAddsAfterAndAMoveIntoAnEmptyListTakesItWhole) {
  HeaderList filters{{"A", "1"}, {"B", "2"}};
  HeaderList response{{"Allow", "GET"}};
  response.append(filters);  // copied: filters keeps its entries
  EXPECT_EQ(entries(response), (Entries{{"Allow", "GET"}, {"A", "1"}, {"B", "2"}}));
  EXPECT_EQ(entries(filters).size(), 2u);

  HeaderList empty;
  empty.append(std::move(filters));
  EXPECT_EQ(entries(empty), (Entries{{"A", "1"}, {"B", "2"}}));
  empty.append(HeaderList{{"C", "3"}});
  EXPECT_EQ(entries(empty), (Entries{{"A", "1"}, {"B", "2"}, {"C", "3"}}));
}

}  // namespace
}  // namespace kghost
