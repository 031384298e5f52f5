// One usage event as OpenMeter ingests it: a CloudEvents 1.0 JSON object, built by hand
// because it is made on the request thread for every authenticated request.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace kghost::billing {

// 32 lowercase hex characters from OpenSSL's CSPRNG: unique without coordination between
// replicas, and fixed at creation so every retry resends the same id. Empty if RAND fails.
std::string new_event_id();

// RFC 3339 UTC with milliseconds, e.g. "2026-12-02T01:02:03.004Z".
std::string rfc3339_utc(int64_t unix_ms);

// {"specversion":"1.0","id":…,"source":"kghost","type":"api.request","subject":<tenant>,
//  "time":…,"datacontenttype":"application/json",
//  "data":{"route":<template>,"method":…,"status_code":N}} appended to `out`.
void append_usage_event(std::string& out, std::string_view id, std::string_view tenant,
                        std::string_view route, std::string_view method, int status,
                        int64_t unix_ms);

}  // namespace kghost::billing
