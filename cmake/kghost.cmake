# Shared build helpers for kghost targets.

# Warnings as errors on our own code only (third-party headers come in as SYSTEM).
# -Wno-restrict: GCC 12 at -O3 reports false positives inside std::string (GCC bug 105329).
# Under ASan, GCC's -Wmaybe-uninitialized fires inside the standard library (std::regex,
# std::function), so the sanitizer build leaves that one warning out.
function(kg_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Werror -Wno-unused-parameter
                         $<$<CXX_COMPILER_ID:GNU>:-Wno-restrict>)
  if(KG_SANITIZE)
    target_compile_options(${target} PRIVATE $<$<CXX_COMPILER_ID:GNU>:-Wno-maybe-uninitialized>)
  endif()
endfunction()

if(KG_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

# kg_add_plugin(NAME SOURCES...): a plugin .so built against the plugin API only. The file is
# bin/plugins/kg_<NAME>.so; symbols are hidden except the entry point.
function(kg_add_plugin name)
  add_library(kg_${name} MODULE ${ARGN})
  target_link_libraries(kg_${name} PRIVATE kghost::plugin-api)
  set_target_properties(kg_${name} PROPERTIES
    PREFIX ""
    LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin/plugins
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  kg_warnings(kg_${name})
  install(TARGETS kg_${name} LIBRARY DESTINATION lib/kghost/plugins)
endfunction()
