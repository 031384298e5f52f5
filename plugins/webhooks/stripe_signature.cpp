#include "stripe_signature.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <array>
#include <charconv>
#include <kghost/sdk/text.hpp>
#include <stdexcept>

namespace kghost::webhooks {
namespace {

using Digest = SigningSecrets::Digest;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// False unless `hex` is exactly 64 hex digits.
bool decode_digest(std::string_view hex, Digest& out) {
  if (hex.size() != out.size() * 2) return false;
  for (std::size_t i = 0; i < out.size(); ++i) {
    int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<unsigned char>(hi << 4 | lo);
  }
  return true;
}

}  // namespace

void SigningSecrets::FreeCtx::operator()(EVP_MAC_CTX* ctx) const { EVP_MAC_CTX_free(ctx); }

// HMAC-SHA256 through OpenSSL 3's EVP_MAC (the HMAC_CTX calls are deprecated there).
SigningSecrets::SigningSecrets(const std::vector<std::string>& secrets) {
  // Fetched once; an EVP_MAC is immutable and safe to share between threads.
  static EVP_MAC* const mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  for (const auto& secret : secrets) {
    std::unique_ptr<EVP_MAC_CTX, FreeCtx> ctx(mac ? EVP_MAC_CTX_new(mac) : nullptr);
    char digest_name[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest_name, 0),
                           OSSL_PARAM_construct_end()};
    if (!ctx || EVP_MAC_init(ctx.get(), reinterpret_cast<const unsigned char*>(secret.data()),
                             secret.size(), params) != 1)
      throw std::runtime_error("OpenSSL cannot key HMAC-SHA256 with webhook secret #" +
                               std::to_string(keyed_.size() + 1));
    keyed_.push_back(std::move(ctx));
  }
}

bool SigningSecrets::digest(std::size_t i, int64_t timestamp, std::string_view body,
                            Digest& out) const {
  std::unique_ptr<EVP_MAC_CTX, FreeCtx> ctx(EVP_MAC_CTX_dup(keyed_[i].get()));
  char prefix[24];
  auto [end, ec] = std::to_chars(prefix, prefix + sizeof prefix - 1, timestamp);
  if (!ctx || ec != std::errc()) return false;
  *end++ = '.';
  std::size_t len = 0;
  return EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(prefix),
                        static_cast<std::size_t>(end - prefix)) == 1 &&
         EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(body.data()),
                        body.size()) == 1 &&
         EVP_MAC_final(ctx.get(), out.data(), &len, out.size()) == 1 && len == out.size();
}

std::string_view to_string(SignatureResult r) {
  switch (r) {
    case SignatureResult::ok:
      return "ok";
    case SignatureResult::missing_header:
      return "missing_header";
    case SignatureResult::malformed:
      return "malformed";
    case SignatureResult::no_signature:
      return "no_signature";
    case SignatureResult::mismatch:
      return "mismatch";
    case SignatureResult::too_old:
      return "too_old";
    case SignatureResult::too_new:
      return "too_new";
  }
  return "unknown";
}

SignatureHeader parse_signature_header(std::string_view header) {
  SignatureHeader h;
  while (true) {
    auto comma = header.find(',');
    std::string_view item = trim(header.substr(0, comma));
    auto eq = item.find('=');
    if (eq != std::string_view::npos) {
      std::string_view key = trim(item.substr(0, eq)), value = trim(item.substr(eq + 1));
      if (key == "t") {
        ++h.t_count;
        // Digits only (from_chars would take a sign); out of range is invalid, not a wrap.
        int64_t v = 0;
        auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
        h.t_valid = !value.empty() && value[0] >= '0' && value[0] <= '9' && ec == std::errc() &&
                    end == value.data() + value.size();
        h.timestamp = h.t_valid ? v : 0;
      } else if (key == "v1") {
        h.v1.push_back(value);
      }  // v0 and unknown schemes: ignored on purpose (no downgrade)
    }
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  return h;
}

SignatureResult verify(std::string_view header, std::string_view raw_body,
                       const SigningSecrets& secrets, int64_t now, std::chrono::seconds tolerance) {
  if (trim(header).empty()) return SignatureResult::missing_header;
  SignatureHeader h = parse_signature_header(header);
  if (h.t_count != 1 || !h.t_valid) return SignatureResult::malformed;
  if (h.v1.empty()) return SignatureResult::no_signature;

  std::vector<Digest> given;
  for (auto v : h.v1) {
    Digest d;
    if (decode_digest(v, d)) given.push_back(d);
  }
  // Every secret against every v1, without stopping early: the time taken does not depend on
  // which pair matched (CRYPTO_memcmp is constant time for each comparison).
  bool matched = false;
  for (std::size_t i = 0; i < secrets.size(); ++i) {
    Digest expected;
    if (!secrets.digest(i, h.timestamp, raw_body, expected)) continue;
    for (const auto& d : given) matched |= CRYPTO_memcmp(expected.data(), d.data(), d.size()) == 0;
  }
  if (!matched) return SignatureResult::mismatch;

  if (tolerance.count() >= 0) {
    if (h.timestamp < now - tolerance.count()) return SignatureResult::too_old;
    if (h.timestamp > now + tolerance.count()) return SignatureResult::too_new;
  }
  return SignatureResult::ok;
}

std::string sign(std::string_view secret, int64_t timestamp, std::string_view raw_body) {
  Digest d{};
  if (!SigningSecrets({std::string(secret)}).digest(0, timestamp, raw_body, d)) return {};
  return kghost::sdk::to_hex(std::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

}  // namespace kghost::webhooks
