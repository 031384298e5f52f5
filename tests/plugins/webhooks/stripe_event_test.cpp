// Stripe event parsing: which bodies are usable events, and the id/type rules that keep store
// keys and bus topics clean.
#include "stripe_event.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

using kghost::webhooks::has_data_object;
using kghost::webhooks::parse_event;
using kghost::webhooks::valid_event_id;
using kghost::webhooks::valid_event_type;

TEST(StripeEvent, ParsesIdAndType) {
  nlohmann::json doc;
  auto e = parse_event(R"({"id":"evt_1","type":"invoice.paid","data":{"object":{}}})", &doc);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->id, "evt_1");
  EXPECT_EQ(e->type, "invoice.paid");
  EXPECT_TRUE(doc.is_object());
  EXPECT_TRUE(has_data_object(doc));
}

TEST(StripeEvent, RefusesNonObjectsAndMissingFields) {
  for (const char* body : {"", "[]", "42", "\"evt\"", "{", R"({"id":"evt_1"})", R"({"type":"a.b"})",
                           R"({"id":1,"type":"a.b"})", R"({"id":"evt_1","type":["a"]})", "null"})
    EXPECT_FALSE(parse_event(body)) << body;
}

TEST(StripeEvent, LeavesTheDocumentAloneWhenRefused) {
  nlohmann::json doc = 7;
  EXPECT_FALSE(parse_event(R"({"id":"bad id","type":"a"})", &doc));
  EXPECT_EQ(doc, 7);
}

TEST(StripeEvent, IdRules) {
  EXPECT_TRUE(valid_event_id("evt_1Abc-9"));
  EXPECT_TRUE(valid_event_id(std::string(255, 'a')));
  EXPECT_FALSE(valid_event_id(std::string(256, 'a')));
  EXPECT_FALSE(valid_event_id(""));
  for (const char* bad : {"evt 1", "evt:1", "evt.1", "évt", "evt\n", "a*"})
    EXPECT_FALSE(valid_event_id(bad)) << bad;
}

TEST(StripeEvent, TypeRules) {
  EXPECT_TRUE(valid_event_type("invoice.payment_succeeded"));
  EXPECT_TRUE(valid_event_type("a"));
  EXPECT_TRUE(valid_event_type(std::string(200, 'a')));
  EXPECT_FALSE(valid_event_type(std::string(201, 'a')));
  for (const char* bad : {"", ".a", "a.", "a..b", "a b", "a>b", "a*", "a/b"})
    EXPECT_FALSE(valid_event_type(bad)) << bad;
}

TEST(StripeEvent, DataObjectMustBeAnObject) {
  auto has = [](const char* body) {
    nlohmann::json doc;
    return parse_event(body, &doc) && has_data_object(doc);
  };
  EXPECT_TRUE(has(R"({"id":"e","type":"t","data":{"object":{"id":"in_1"}}})"));
  EXPECT_FALSE(has(R"({"id":"e","type":"t"})"));
  EXPECT_FALSE(has(R"({"id":"e","type":"t","data":[]})"));
  EXPECT_FALSE(has(R"({"id":"e","type":"t","data":{}})"));
  EXPECT_FALSE(has(R"({"id":"e","type":"t","data":{"object":"in_1"}})"));
  EXPECT_FALSE(has(R"({"id":"e","type":"t","data":{"object":null}})"));
}

// The processing path reads events without building a document; it must see what the
// document sees, duplicate keys (last wins) and nesting included.
TEST(StripeEvent, StreamingParseAgreesWithTheDocument) {
  for (const char* body : {
           R"({"id":"e","type":"t","data":{"object":{"id":"in_1"}}})",
           R"({"id":"e","type":"t","data":{"object":{}},"data":{"object":1}})",
           R"({"id":"e","type":"t","data":{"object":1},"data":{"object":{}}})",
           R"({"id":"e","type":"t","data":{"object":{},"object":[]}})",
           R"({"id":"e","type":"t","data":[{"object":{}}]})",
           R"({"id":"e","type":"t","x":{"data":{"object":{}}}})",
           R"({"id":"e","type":"t","data":{"x":{"object":{}}}})",
           R"({"id":"e","id":"f","type":"t"})",
           R"({"id":"e","id":7,"type":"t"})",
           R"({"id":7,"id":"e","type":"t"})",
           R"({"id":{"id":"e"},"type":"t"})",
           R"({"id":"e","type":"t","data":{"object":{}}} x)",
           R"({"id":"e","type":"t","n":1e999})",
           R"({"id":"eA","type":"t"})",
           R"([{"id":"e","type":"t"}])",
       }) {
    nlohmann::json doc;
    auto dom = parse_event(body, &doc);
    auto streamed = parse_event(body);
    ASSERT_EQ(dom.has_value(), streamed.has_value()) << body;
    if (!dom) continue;
    EXPECT_EQ(dom->id, streamed->id) << body;
    EXPECT_EQ(dom->type, streamed->type) << body;
    EXPECT_EQ(dom->data_object, streamed->data_object) << body;
    EXPECT_EQ(has_data_object(doc), streamed->data_object) << body;
  }
  auto e = parse_event(R"({"id":"e","id":"f","type":"t","data":{"object":{}}})");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->id, "f");
  EXPECT_TRUE(e->data_object);
}

}  // namespace
