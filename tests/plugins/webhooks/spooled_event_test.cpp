// The spooled entry of an accepted event: what ingress learnt travels in a header, the body
// stays byte for byte what Stripe signed, and entries from before the header still read.
#include "spooled_event.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

using kghost::webhooks::parse_event;
using kghost::webhooks::read_spooled;
using kghost::webhooks::spool_entry;

const std::string kBody = R"({"id":"evt_1","type":"invoice.paid","data":{"object":{}}})";

TEST(SpooledEvent, AnEntryReadsBackAsItsEventAndTheUntouchedBody) {
  std::string entry;
  spool_entry(*parse_event(kBody), kBody, entry);
  EXPECT_EQ(entry, "kgwh1 evt_1 invoice.paid 1\n" + kBody);
  auto back = read_spooled(entry);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->event.id, "evt_1");
  EXPECT_EQ(back->event.type, "invoice.paid");
  EXPECT_TRUE(back->event.data_object);
  EXPECT_EQ(back->body, kBody);

  const std::string no_object = R"({"id":"evt_2","type":"a.b","data":{"object":[]}})";
  spool_entry(*parse_event(no_object), no_object, entry);  // reuses the buffer
  back = read_spooled(entry);
  ASSERT_TRUE(back);
  EXPECT_FALSE(back->event.data_object);
  EXPECT_EQ(back->body, no_object);
}

TEST(SpooledEvent, AnEntryFromBeforeTheHeaderIsParsed) {
  auto back = read_spooled(kBody);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->event.id, "evt_1");
  EXPECT_TRUE(back->event.data_object);
  EXPECT_EQ(back->body, kBody);
  EXPECT_FALSE(read_spooled(R"({"id":"evt_1"})"));
}

TEST(SpooledEvent, AMalformedHeaderIsNoEvent) {
  for (const char* entry :
       {"kgwh1 ", "kgwh1 evt_1 a.b 1", "kgwh1 evt_1 a.b 2\n{}", "kgwh1 evt_1 a.b\n{}",
        "kgwh1 evt 1 a.b 1\n{}", "kgwh1  a.b 1\n{}", "kgwh1 evt_1 a..b 1\n{}",
        "kgwh1 evt_1 a.b 1 extra\n{}", "kgwh1 evt_1\ta.b 1\n{}"})
    EXPECT_FALSE(read_spooled(entry)) << entry;
}

}  // namespace
