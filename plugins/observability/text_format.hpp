// observability: the few pieces of the Prometheus text format the plugin writes itself.
#pragma once

#include <string>
#include <string_view>

namespace kghost::observability {

// A label value with \, " and newline escaped as the text format requires.
std::string escape_label(std::string_view value);

// A sample value: integers without a fraction, others in the shortest round-trip form.
std::string format_number(double value);

// "# HELP name help\n# TYPE name type\n".
void family_header(std::string& out, std::string_view name, std::string_view type,
                   std::string_view help);

}  // namespace kghost::observability
