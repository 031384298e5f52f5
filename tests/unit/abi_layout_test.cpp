// Pins the layout of every struct and host-table slot that crosses the ABI (LP64). A reorder or
// an insertion breaks this build instead of a plugin in production: fields are only appended.
// abi_1_0_layout.inc is the frozen 1.0 list; abi_1_0_layout.c checks it against the kept copy
// of the 1.0 header, this file against the current one, plus everything 1.1 and 1.2 appended.
#include <gtest/gtest.h>
#include <kghost/plugin.h>

#include <cstddef>
#include <iterator>
#include <string_view>

#include "abi_1_0_layout.inc"

// 1.0 offsets never move; a 1.0 struct only grows.
#define KG_GROWN(type, size) static_assert(sizeof(type) >= (size), #type " shrank below 1.0");
#define KG_AT(type, field, offset) \
  static_assert(offsetof(type, field) == (offset), #type "." #field " moved");
KG_ABI_1_0_LAYOUT(KG_GROWN, KG_AT)
#define KG_SAME(name, value) static_assert((name) == (value), #name " changed");
KG_ABI_1_0_CONSTANTS(KG_SAME)

// --- 1.1 (2026-12): appended after every 1.0 field and slot --------------------------------
#define KG_ABI_1_1_LAYOUT(SIZE, FIELD)              \
  SIZE(kg_observation, 80)                          \
  FIELD(kg_observation, kind, 72)                   \
  FIELD(kg_observation, end_reason, 76)             \
  SIZE(kg_route, 152)                               \
  FIELD(kg_route, description, 96)                  \
  FIELD(kg_route, request_schema, 112)              \
  FIELD(kg_route, response_schema, 128)             \
  FIELD(kg_route, timeout_ms, 144)                  \
  SIZE(kg_filter, 72)                               \
  FIELD(kg_filter, scope, 48)                       \
  FIELD(kg_filter, path_prefix, 56)                 \
  SIZE(kg_error, 56)                                \
  FIELD(kg_error, struct_size, 0)                   \
  FIELD(kg_error, status, 4)                        \
  FIELD(kg_error, code, 8)                          \
  FIELD(kg_error, message, 24)                      \
  FIELD(kg_error, headers, 40)                      \
  FIELD(kg_error, header_count, 48)                 \
  FIELD(kg_host_api, reply_error, 496)              \
  FIELD(kg_host_api, register_stream_observer, 504) \
  FIELD(kg_host_api, store_shared, 512)             \
  FIELD(kg_host_api, shared_check_and_set, 520)     \
  FIELD(kg_host_api, shared_incr, 528)              \
  FIELD(kg_host_api, shared_get, 536)               \
  FIELD(kg_host_api, shared_put, 544)               \
  FIELD(kg_host_api, shared_del, 552)               \
  FIELD(kg_host_api, bus_publish_confirmed, 560)    \
  FIELD(kg_host_api, log_fields, 568)               \
  SIZE(kg_host_api, 576)
// 1.1 sizes are where 1.2 starts: the host table grew in 1.2, the other 1.1 structs did not.
#define KG_SIZE_AT_LEAST(type, size) static_assert(sizeof(type) >= (size), #type " shrank");
KG_ABI_1_1_LAYOUT(KG_SIZE_AT_LEAST, KG_AT)

// --- 1.2 (2026-12): store providers, appended after every 1.1 slot ------------------------
#define KG_ABI_1_2_LAYOUT(SIZE, FIELD)             \
  SIZE(kg_observation, 80)                         \
  SIZE(kg_route, 152)                              \
  SIZE(kg_filter, 72)                              \
  SIZE(kg_error, 56)                               \
  SIZE(kg_store_provider, 72)                      \
  FIELD(kg_store_provider, struct_size, 0)         \
  FIELD(kg_store_provider, backend, 8)             \
  FIELD(kg_store_provider, check_and_set, 24)      \
  FIELD(kg_store_provider, incr, 32)               \
  FIELD(kg_store_provider, get, 40)                \
  FIELD(kg_store_provider, put, 48)                \
  FIELD(kg_store_provider, del, 56)                \
  FIELD(kg_store_provider, status, 64)             \
  FIELD(kg_host_api, register_store_provider, 576) \
  FIELD(kg_host_api, store_complete, 584)          \
  FIELD(kg_host_api, store_provider_changed, 592)  \
  FIELD(kg_host_api, queue_consume_batch, 600)     \
  SIZE(kg_host_api, 608)
#define KG_SIZE_IS(type, size) static_assert(sizeof(type) == (size), #type " size changed");
KG_ABI_1_2_LAYOUT(KG_SIZE_IS, KG_AT)
#define KG_1_1_CONSTANTS(CONST)                                          \
  CONST(KG_OBSERVED_RESPONSE, 0)                                         \
  CONST(KG_OBSERVED_STREAM_START, 1)                                     \
  CONST(KG_OBSERVED_STREAM_END, 2)                                       \
  CONST(KG_STREAM_CLIENT_GONE, 1)                                        \
  CONST(KG_STREAM_CLOSED_BY_PLUGIN, 2) CONST(KG_STREAM_HOST_SHUTDOWN, 3) \
      CONST(KG_FILTER_ALL_ROUTES, 0) CONST(KG_FILTER_OWN_ROUTES, 1)      \
          CONST(KG_FILTER_PATH_PREFIX, 2)
KG_1_1_CONSTANTS(KG_SAME)

namespace {

// Sizes of the 1.0 structs, for the runtime checks below.
#define KG_SIZE_ENTRY(type, size) {#type, sizeof(type), (size)},
#define KG_NO_FIELD(type, field, offset)
struct SizeEntry {
  const char* type;
  std::size_t now, v1_0;
};
const SizeEntry kSizes[] = {KG_ABI_1_0_LAYOUT(KG_SIZE_ENTRY, KG_NO_FIELD)};

// Where each 1.1 field sits, to check it lies past the end of the 1.0 struct.
#define KG_NO_SIZE(type, size)
#define KG_FIELD_ENTRY(type, field, offset) {#type, #field, (offset)},
struct FieldEntry {
  const char* type;
  const char* field;
  std::size_t offset;
};
const FieldEntry kAppended[] = {KG_ABI_1_1_LAYOUT(KG_NO_SIZE, KG_FIELD_ENTRY)};

}  // namespace

TEST(AbiLayout, VersionIsOnePointTwo) {
  EXPECT_EQ(KG_ABI_MAJOR, 1);
  EXPECT_EQ(KG_ABI_MINOR, 2);
}

TEST(AbiLayout, EveryOnePointTwoSlotIsAppendedAfterTheOnePointOneTable) {
  EXPECT_GE(offsetof(kg_host_api, register_store_provider), 576u);  // 1.1's sizeof
  kg_host_api v1_1{};
  v1_1.struct_size = 576;  // a 1.1 host: a 1.2 plugin sees no store-provider slots
  v1_1.register_store_provider = reinterpret_cast<decltype(v1_1.register_store_provider)>(1);
  EXPECT_FALSE(KG_HOST_HAS(&v1_1, register_store_provider));
}

TEST(AbiLayout, EveryOnePointOneFieldIsAppendedAfterTheOnePointZeroStruct) {
  for (const FieldEntry& f : kAppended) {
    for (const SizeEntry& s : kSizes) {
      if (std::string_view(s.type) == f.type) {
        EXPECT_GE(f.offset, s.v1_0) << f.type << "." << f.field << " sits inside the 1.0 struct";
      }
    }
  }
  EXPECT_EQ(std::size(kSizes), 15u);  // every struct of 1.0 is listed
}

TEST(AbiLayout, HasFieldChecksStructSize) {
  kg_route old_route{};
  old_route.struct_size = offsetof(kg_route, summary);  // built before `summary` existed
  EXPECT_FALSE(KG_HAS_FIELD(&old_route, kg_route, summary));
  EXPECT_TRUE(KG_HAS_FIELD(&old_route, kg_route, user_data));
  kg_route v1_0{};
  v1_0.struct_size = 96;  // a 1.0 plugin's route
  EXPECT_TRUE(KG_HAS_FIELD(&v1_0, kg_route, summary));
  EXPECT_FALSE(KG_HAS_FIELD(&v1_0, kg_route, description));
  EXPECT_FALSE(KG_HAS_FIELD(&v1_0, kg_route, timeout_ms));
  kg_host_api api{};
  api.struct_size = sizeof api;
  EXPECT_FALSE(KG_HOST_HAS(&api, log));  // NULL slot means "not provided"
  api.struct_size = 496;                 // a 1.0 host
  api.reply_error = reinterpret_cast<decltype(api.reply_error)>(1);
  EXPECT_FALSE(KG_HOST_HAS(&api, reply_error));
}
