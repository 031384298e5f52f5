#include "tokens.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <kghost/sdk/text.hpp>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace kghost::streaming {

bool valid_channel(std::string_view channel) {
  if (channel.empty() || channel.size() > 64) return false;
  for (unsigned char c : channel) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string subject_token(std::string_view tenant_id) {
  std::string out;
  out.reserve(tenant_id.size());
  for (unsigned char c : tenant_id) {
    bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-';
    if (plain) {
      out.push_back(static_cast<char>(c));
    } else {
      out += '%';
      out += kghost::sdk::to_hex(std::string_view(reinterpret_cast<const char*>(&c), 1), true);
    }
  }
  if (out.empty()) out = "%";  // never an empty token
  return out;
}

std::string tenant_subject(std::string_view tenant_id, std::string_view channel) {
  return "kgent.tenant." + subject_token(tenant_id) + "." + std::string(channel);
}

std::string base64url(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (auto& c : out) {
    if (c == '+')
      c = '-';
    else if (c == '/')
      c = '_';
  }
  return out;
}

std::optional<std::string> unbase64url(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string in(text);
  for (auto& c : in) {
    if (c == '-')
      c = '+';
    else if (c == '_')
      c = '/';
    else if (c == '+' || c == '/' || c == '=')
      return std::nullopt;
  }
  std::size_t pad = (4 - in.size() % 4) % 4;
  in.append(pad, '=');
  std::string out(in.size() / 4 * 3 + 1, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  if (n < 0) return std::nullopt;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

TokenSigner::TokenSigner(std::string secret) : secret_(std::move(secret)) {
  if (secret_.empty()) {
    secret_.resize(32);
    if (RAND_bytes(reinterpret_cast<unsigned char*>(secret_.data()), 32) != 1)
      throw std::runtime_error("cannot draw a random token secret");
  }
}

std::string TokenSigner::mac(std::string_view payload) const {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
       reinterpret_cast<const unsigned char*>(payload.data()), payload.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string TokenSigner::mint(const TokenClaims& c) const {
  nlohmann::json j = {{"v", 1},      {"t", c.tenant_id}, {"u", c.user_id},
                      {"r", c.tier}, {"c", c.channel},   {"e", c.expires_unix_s}};
  std::string payload = base64url(j.dump());
  return payload + "." + base64url(mac(payload));
}

std::optional<TokenClaims> TokenSigner::verify(std::string_view token, int64_t now_unix_s) const {
  if (token.size() > 4096) return std::nullopt;
  auto dot = token.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  std::string_view payload = token.substr(0, dot);
  auto sig = unbase64url(token.substr(dot + 1));
  if (!sig) return std::nullopt;
  std::string expect = mac(payload);
  if (sig->size() != expect.size() || CRYPTO_memcmp(sig->data(), expect.data(), expect.size()) != 0)
    return std::nullopt;
  auto text = unbase64url(payload);
  if (!text) return std::nullopt;
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (!j.is_object() || j.value("v", 0) != 1) return std::nullopt;
  try {
    TokenClaims c{j.at("t").get<std::string>(), j.at("u").get<std::string>(),
                  j.at("r").get<std::string>(), j.at("c").get<std::string>(),
                  j.at("e").get<int64_t>()};
    if (now_unix_s >= c.expires_unix_s) return std::nullopt;
    return c;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

}  // namespace kghost::streaming
