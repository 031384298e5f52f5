// The processed-id journal: what it remembers (also after a restart), what rotation forgets, that
// a fingerprint collision never makes it claim an unprocessed id, and that its memory is bounded
// by `rotate`, not by the number of events (issue 14: RSS flat over a soak).
#include "journal.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "support.hpp"

namespace kghost::webhooks {
namespace {

using test::TempDir;

std::string id(int n) { return "evt_journal_" + std::to_string(n); }

TEST(WebhooksJournal, RemembersAddedIdsAcrossAReopen) {
  TempDir dir;
  {
    Journal j(dir.path(), 100);
    for (int i = 0; i < 50; ++i) j.add(id(i));
    for (int i = 0; i < 50; ++i) EXPECT_TRUE(j.contains(id(i))) << id(i);
    EXPECT_FALSE(j.contains(id(50)));
    EXPECT_FALSE(j.contains("evt_journal_"));  // a prefix of every id is none of them
  }
  Journal again(dir.path(), 100);
  for (int i = 0; i < 50; ++i) EXPECT_TRUE(again.contains(id(i))) << id(i);
  EXPECT_FALSE(again.contains(id(50)));
  EXPECT_EQ(again.failed_writes(), 0u);
}

TEST(WebhooksJournal, KeepsTwoGenerationsOfRotateIds) {
  TempDir dir;
  Journal j(dir.path(), 10);
  for (int i = 1; i <= 30; ++i) j.add(id(i));
  // 1..10 were rotated out twice; 11..20 are the previous generation, 21..30 the current one.
  for (int i = 1; i <= 10; ++i) EXPECT_FALSE(j.contains(id(i))) << id(i);
  for (int i = 11; i <= 30; ++i) EXPECT_TRUE(j.contains(id(i))) << id(i);
  Journal again(dir.path(), 10);
  for (int i = 1; i <= 10; ++i) EXPECT_FALSE(again.contains(id(i))) << id(i);
  for (int i = 11; i <= 30; ++i) EXPECT_TRUE(again.contains(id(i))) << id(i);
}

TEST(WebhooksJournal, AFingerprintCollisionNeverClaimsAnUnprocessedId) {
  TempDir dir;
  auto collide = [](std::string_view) { return uint64_t{42}; };  // every id collides
  {
    Journal j(dir.path(), 10, collide);
    for (int i = 0; i < 15; ++i) j.add(id(i));  // both generations hold fingerprint 42
    for (int i = 0; i < 15; ++i) EXPECT_TRUE(j.contains(id(i))) << id(i);
    EXPECT_FALSE(j.contains(id(15)));
    EXPECT_FALSE(j.contains("evt_other"));
  }
  Journal again(dir.path(), 10, collide);
  EXPECT_TRUE(again.contains(id(3)));
  EXPECT_TRUE(again.contains(id(14)));
  EXPECT_FALSE(again.contains(id(15)));
}

TEST(WebhooksJournal, ATornLastLineIsNotAnIdOfItsOwnPrefix) {
  TempDir dir;
  {
    Journal j(dir.path(), 100);
    j.add(id(1));
  }
  {
    std::ofstream out(dir.path() / "processed.log", std::ios::app);
    out << "evt_torn_12";  // a crash mid-line (no '\n')
  }
  Journal j(dir.path(), 100);
  EXPECT_TRUE(j.contains(id(1)));
  EXPECT_FALSE(j.contains("evt_torn_123"));
  j.add("evt_next");  // appended after the torn bytes: its own line must still be found
  EXPECT_TRUE(j.contains("evt_next"));
  Journal again(dir.path(), 100);
  EXPECT_TRUE(again.contains("evt_next"));
  EXPECT_TRUE(again.contains(id(1)));
}

TEST(WebhooksJournal, MemoryIsBoundedByRotateNotByEvents) {
  TempDir dir;
  constexpr uint64_t kRotate = 1000;
  Journal j(dir.path(), kRotate);
  std::size_t peak = 0;
  for (int i = 0; i < 20 * static_cast<int>(kRotate); ++i) {
    j.add(id(i));
    peak = std::max(peak, j.memory_bytes());
  }
  // Two generations of at most kRotate fingerprints (8 bytes), vector growth at most doubling.
  EXPECT_LE(peak, 4 * kRotate * sizeof(uint64_t));
  EXPECT_TRUE(j.contains(id(20 * kRotate - 1)));
  EXPECT_FALSE(j.contains(id(0)));
}

}  // namespace
}  // namespace kghost::webhooks
