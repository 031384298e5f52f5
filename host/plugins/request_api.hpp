// The seam between the plugin ABI and host/http: plugins' handlers, filters and observers as
// http/handler.hpp objects, kg_request as an Exchange, and the request half of the host API
// table (request_api.cpp). The only place that knows both the ABI structs and the host's
// request types.
#pragma once

#include <kghost/plugin.h>

#include <memory>

#include "http/exchange.hpp"
#include "http/handler.hpp"
#include "http/route_table.hpp"

namespace kghost {

// A kg_request is an Exchange; the handle a plugin gets is its address.
inline kg_request* request_of(Exchange* ex) { return reinterpret_cast<kg_request*>(ex); }
inline Exchange* exchange_of(kg_request* r) { return reinterpret_cast<Exchange*>(r); }

std::shared_ptr<Handler> plugin_handler(kg_handler_fn fn, void* user_data);
std::shared_ptr<Filter> plugin_filter(kg_filter_fn fn, void* user_data);
std::shared_ptr<Observer> plugin_observer(kg_observer_fn fn, void* user_data);
// A kg_filter_scope the host checked (at most KG_FILTER_PATH_PREFIX).
inline FilterScope filter_scope(kg_filter_scope scope) { return static_cast<FilterScope>(scope); }

}  // namespace kghost
