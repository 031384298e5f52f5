// A plugin's shared library: the file, the descriptor it exports, and the ABI check. Opening
// one runs no plugin code but its entry point; instances are made from it (instance.hpp).
#pragma once

#include <kghost/plugin.h>

#include <boost/dll/shared_library.hpp>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace kghost {

class PluginLibrary {
 public:
  struct Opened {
    // Never null: what could be read of the descriptor stays readable (for describe).
    std::shared_ptr<const PluginLibrary> library;
    std::string error;  // empty, or why it cannot be used (and what would fix it)
  };
  // Loads `path` and checks it is the plugin `name` of an ABI this host speaks: entry symbol,
  // descriptor, ABI major and minor, create function, declared name. `origin` is where the
  // config names it ("file:line"), for the error text.
  static Opened open(const std::filesystem::path& path, std::string_view name,
                     std::string_view origin);

  // Copied from the plugin, zero-filled past its struct_size.
  const kg_plugin_descriptor& descriptor() const { return desc_; }
  const std::filesystem::path& path() const { return path_; }
  std::string abi_version() const;  // "1.0"
  std::string version() const { return desc_.version ? desc_.version : ""; }
  bool dev_only() const { return (desc_.flags & KG_PLUGIN_DEV_ONLY) != 0; }

 private:
  std::string load(std::string_view name, std::string_view origin);

  std::filesystem::path path_;
  boost::dll::shared_library library_;
  kg_plugin_descriptor desc_{};
};

// "major.minor"
std::string abi_text(uint16_t major, uint16_t minor);

}  // namespace kghost
