#include "reload/plugin_file.hpp"

#include <openssl/evp.h>

#include <array>
#include <fstream>
#include <memory>

#include "common/text.hpp"

namespace kghost {
namespace {

struct FileStat {
  std::uintmax_t size;
  std::int64_t mtime_ns;
};

std::optional<FileStat> stat_file(const std::filesystem::path& file) {
  std::error_code ec;
  auto size = std::filesystem::file_size(file, ec);
  if (ec) return std::nullopt;
  auto mtime = std::filesystem::last_write_time(file, ec);
  if (ec) return std::nullopt;
  return FileStat{
      size, std::chrono::duration_cast<std::chrono::nanoseconds>(mtime.time_since_epoch()).count()};
}

std::optional<std::string> sha256_of(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return std::nullopt;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) return std::nullopt;
  std::array<char, 1 << 16> buf;
  while (in) {
    in.read(buf.data(), buf.size());
    if (in.gcount() > 0 &&
        EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<std::size_t>(in.gcount())) != 1)
      return std::nullopt;
  }
  if (in.bad()) return std::nullopt;
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest;
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), digest.data(), &len) != 1) return std::nullopt;
  return to_hex(std::string_view(reinterpret_cast<const char*>(digest.data()), len));
}

}  // namespace

std::optional<PluginFileIdentity> identify_plugin_file(const std::filesystem::path& file) {
  auto st = stat_file(file);
  if (!st) return std::nullopt;
  auto hash = sha256_of(file);
  if (!hash) return std::nullopt;
  return PluginFileIdentity{st->size, st->mtime_ns, std::move(*hash)};
}

bool plugin_file_changed(const std::filesystem::path& file, const PluginFileIdentity& loaded) {
  auto st = stat_file(file);
  if (!st) return true;  // gone or unreadable: certainly not the build that is loaded
  if (st->size == loaded.size && st->mtime_ns == loaded.mtime_ns) return false;
  auto hash = sha256_of(file);
  return !hash || *hash != loaded.sha256;
}

}  // namespace kghost
