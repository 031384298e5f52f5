// Pins the layout of every struct that crosses the ABI (LP64). A reorder or insertion breaks
// this build instead of a plugin in production: fields are only ever appended.
#include <gtest/gtest.h>
#include <kghost/plugin.h>

#include <cstddef>

#define PIN(type, field, offset) static_assert(offsetof(type, field) == (offset), #type "." #field)

static_assert(sizeof(kg_str) == 16);
PIN(kg_str, len, 8);
static_assert(sizeof(kg_header) == 32);
static_assert(sizeof(kg_response) == 56);
PIN(kg_response, status, 4);
PIN(kg_response, content_type, 8);
PIN(kg_response, body, 24);
PIN(kg_response, headers, 40);
PIN(kg_response, header_count, 48);
static_assert(sizeof(kg_principal) == 72);
PIN(kg_principal, scopes, 56);
static_assert(sizeof(kg_observation) == 72);
PIN(kg_observation, route, 24);
PIN(kg_observation, status, 40);
PIN(kg_observation, response_bytes, 64);
static_assert(sizeof(kg_bus_event) == 56);
static_assert(sizeof(kg_store_result) == 48);
PIN(kg_store_result, value, 16);
PIN(kg_store_result, data, 32);
static_assert(sizeof(kg_queue_entry) == 56);
static_assert(sizeof(kg_route) == 96);
PIN(kg_route, flags, 56);
PIN(kg_route, handler, 64);
PIN(kg_route, summary, 80);
static_assert(sizeof(kg_filter) == 48);
static_assert(sizeof(kg_task) == 48);
static_assert(sizeof(kg_metric_desc) == 72);
static_assert(sizeof(kg_queue_options) == 24);
static_assert(sizeof(kg_plugin_descriptor) == 72);
PIN(kg_plugin_descriptor, abi_major, 4);
PIN(kg_plugin_descriptor, abi_minor, 6);
PIN(kg_plugin_descriptor, name, 8);
PIN(kg_plugin_descriptor, flags, 32);
PIN(kg_plugin_descriptor, create, 40);
PIN(kg_plugin_descriptor, destroy, 64);

// The host table: header, then 8-byte slots in declaration order.
PIN(kg_host_api, abi_major, 4);
PIN(kg_host_api, log, 8);
PIN(kg_host_api, register_route, 48);
PIN(kg_host_api, request_method, 112);
PIN(kg_host_api, respond, 240);
PIN(kg_host_api, defer, 256);
PIN(kg_host_api, stream_begin, 280);
PIN(kg_host_api, metric_new, 304);
PIN(kg_host_api, bus_publish, 344);
PIN(kg_host_api, store_check_and_set, 360);
PIN(kg_host_api, queue_open, 400);
PIN(kg_host_api, metrics_render, 448);
PIN(kg_host_api, health_render, 456);
PIN(kg_host_api, data_dir, 464);
PIN(kg_host_api, store_status, 472);
PIN(kg_host_api, queue_fail_reason, 480);
PIN(kg_host_api, error_body, 488);
// 1.1 (2026-12), appended after the frozen 1.0 table (which ends at 496).
PIN(kg_host_api, bus_publish_confirmed, 496);
static_assert(sizeof(kg_host_api) == 504);

TEST(AbiLayout, VersionIsOnePointZero) {
  EXPECT_EQ(KG_ABI_MAJOR, 1);
  EXPECT_EQ(KG_ABI_MINOR, 0);
}

TEST(AbiLayout, HasFieldChecksStructSize) {
  kg_route old_route{};
  old_route.struct_size = offsetof(kg_route, summary);  // built before `summary` existed
  EXPECT_FALSE(KG_HAS_FIELD(&old_route, kg_route, summary));
  EXPECT_TRUE(KG_HAS_FIELD(&old_route, kg_route, user_data));
  kg_host_api api{};
  api.struct_size = sizeof api;
  EXPECT_FALSE(KG_HOST_HAS(&api, log));  // NULL slot means "not provided"
}
