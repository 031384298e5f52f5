// The /openapi.json document.
#pragma once

#include <nlohmann/json.hpp>

#include "http/router.hpp"

namespace kghost {

// An OpenAPI 3.1 document of every route in `router` (the table a request is served by):
// parameters, scopes, body schemas, and the contract's error JSON as one shared component.
nlohmann::json openapi(const Router& router);

}  // namespace kghost
