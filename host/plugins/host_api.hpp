// The host API table handed to every plugin. Each domain's slots live in their own file and
// fill their part of the table; nothing in them throws across the boundary.
#pragma once

#include <kghost/plugin.h>

namespace kghost {

// The table (built once; the same for every plugin).
const kg_host_api& host_api();

// Each fills its slots of `t`.
void fill_plugin_api(kg_host_api& t);        // api_plugin.cpp: log, config, mode, data dir
void fill_registration_api(kg_host_api& t);  // api_registration.cpp: routes, filters, tasks, health
void fill_request_api(kg_host_api& t);       // request_api.cpp: the request, answers, streams
void fill_metrics_api(kg_host_api& t);       // api_metrics.cpp: metrics, metrics/health render
void fill_bus_api(kg_host_api& t);           // api_bus.cpp
void fill_store_api(kg_host_api& t);         // api_store.cpp: own keys and shared spaces
void fill_queue_api(kg_host_api& t);         // api_queue.cpp: durable queues

}  // namespace kghost
