// Which build of a plugin file was loaded. The host never unloads a library, and dlopen of a
// path already loaded returns the code loaded first, so a new build copied over the same path
// would be silently ignored by a reload: the identity lets the reload say so instead.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace kghost {

struct PluginFileIdentity {
  std::uintmax_t size = 0;
  std::int64_t mtime_ns = 0;
  std::string sha256;  // hex of the content
};

// Reads size, mtime and a SHA-256 of the file; nullopt when it cannot be read.
std::optional<PluginFileIdentity> identify_plugin_file(const std::filesystem::path& file);

// True when `file` no longer holds the build `loaded` describes. Size and mtime decide when they
// match; a touched file with the same content is not a change.
bool plugin_file_changed(const std::filesystem::path& file, const PluginFileIdentity& loaded);

}  // namespace kghost
