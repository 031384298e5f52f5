#include "plugins/library.hpp"

#include <dlfcn.h>

#include <cstring>

namespace kghost {

std::string abi_text(uint16_t major, uint16_t minor) {
  return std::to_string(major) + "." + std::to_string(minor);
}

std::string PluginLibrary::abi_version() const {
  return abi_text(desc_.abi_major, desc_.abi_minor);
}

PluginLibrary::Opened PluginLibrary::open(const std::filesystem::path& path, std::string_view name,
                                          std::string_view origin) {
  auto library = std::make_shared<PluginLibrary>();
  library->path_ = path;
  std::string error = library->load(name, origin);
  return {std::move(library), std::move(error)};
}

std::string PluginLibrary::load(std::string_view name, std::string_view origin) {
  std::error_code fec;
  if (!std::filesystem::exists(path_, fec))
    return "no such file; build it, fix [[plugins]] path at " + std::string(origin) +
           ", or set plugin_dir";
  // RTLD_LOCAL keeps plugins' symbols apart; RTLD_NODELETE because unloading code that may
  // still have threads or callbacks in flight is never worth the risk.
  boost::system::error_code ec;
  library_.load(path_.string(),
                static_cast<boost::dll::load_mode::type>(RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE),
                ec);
  if (ec) {
    const char* why = dlerror();
    return why ? why : ec.message();
  }
  if (!library_.has(KG_PLUGIN_ENTRY_SYMBOL))
    return "no entry symbol " + std::string(KG_PLUGIN_ENTRY_SYMBOL) +
           " (export it with KG_EXPORT, or use KGHOST_PLUGIN in C++)";
  auto entry_fn = library_.get<const kg_plugin_descriptor*()>(KG_PLUGIN_ENTRY_SYMBOL);
  const kg_plugin_descriptor* d = entry_fn();
  if (!d || d->struct_size < offsetof(kg_plugin_descriptor, create) + sizeof(d->create))
    return "its entry point returned no valid descriptor";
  if (d->abi_major != KG_ABI_MAJOR)
    return "ABI mismatch: the plugin was built against ABI " +
           abi_text(d->abi_major, d->abi_minor) + ", this host speaks ABI " +
           abi_text(KG_ABI_MAJOR, KG_ABI_MINOR) + "; rebuild the plugin against kghost/plugin.h " +
           std::to_string(KG_ABI_MAJOR) + ".x";
  if (d->abi_minor > KG_ABI_MINOR)
    return "the plugin needs ABI " + abi_text(d->abi_major, d->abi_minor) +
           " but this host speaks ABI " + abi_text(KG_ABI_MAJOR, KG_ABI_MINOR) +
           "; upgrade the host";
  // Copy what the plugin's (possibly older, smaller) descriptor has; the rest stays zero.
  std::memcpy(&desc_, d, std::min<std::size_t>(d->struct_size, sizeof desc_));
  desc_.struct_size = sizeof desc_;
  if (!desc_.create) return "its descriptor has no create function";
  if (!desc_.name || name != desc_.name)
    return std::string("the file declares the plugin name \"") + (desc_.name ? desc_.name : "") +
           "\" but the config calls it \"" + std::string(name) + "\"";
  return "";
}

}  // namespace kghost
