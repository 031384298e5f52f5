// The /openapi.json document.
#pragma once

#include <nlohmann/json.hpp>

#include "http/pipeline.hpp"

namespace kghost {

// An OpenAPI 3.1 document of every route `pipeline` serves: parameters, scopes, body schemas,
// and the contract's error JSON as one shared component.
nlohmann::json openapi(const Pipeline& pipeline);

}  // namespace kghost
