#include "keys.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <fstream>
#include <kghost/sdk/text.hpp>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace kghost::auth {
namespace {

bool is_hex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

bool valid_ident(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  for (unsigned char c : s)
    if (c < 0x21 || c > 0x7e || c == '"' || c == '\\') return false;
  return true;
}

}  // namespace

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 failed (OpenSSL)");
  return kghost::sdk::to_hex(std::string_view(reinterpret_cast<const char*>(md), len));
}

std::string key_id_for(std::string_view hash) { return "key_" + std::string(hash.substr(0, 12)); }

std::string normalize_tier(std::string_view tier) {
  if (tier.empty() || tier.size() > 32) return {};
  std::string out;
  for (char c : tier) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return {};
    out += c;
  }
  return out;
}

std::vector<std::string> split_scopes(std::string_view scopes) {
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    if (cur.empty()) return;
    if (cur.size() > 64) throw std::invalid_argument("scope '" + cur + "' is longer than 64");
    for (char c : cur)
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == ':' || c == '.' ||
            c == '-'))
        throw std::invalid_argument("scope '" + cur + "' must match [a-z0-9_:.-]+");
    bool dup = false;
    for (auto& s : out) dup = dup || s == cur;
    if (!dup) out.push_back(cur);
    cur.clear();
  };
  for (char c : scopes) {
    if (c == ' ' || c == ',' || c == '\t') {
      flush();
    } else {
      cur += c;
    }
  }
  flush();
  return out;
}

std::string join_scopes(const std::vector<std::string>& scopes) {
  std::string out;
  for (auto& s : scopes) out += (out.empty() ? "" : " ") + s;
  return out;
}

std::vector<KeyRecord> parse_keys(std::string_view text, const std::string& source,
                                  const std::vector<std::string>& known_tiers) {
  std::vector<KeyRecord> out;
  std::set<std::string> hashes;
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::size_t first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos || line[first] == '#') continue;

    auto fail = [&](const std::string& why) -> KeysFileError {
      return KeysFileError(source + ":" + std::to_string(line_no) + ": " + why);
    };
    nlohmann::json j = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
    if (j.is_discarded() || !j.is_object())
      throw fail(
          "not a JSON object; each line is "
          "{\"sha256\":…,\"tenant_id\":…,\"user_id\":…,\"tier\":…}");
    KeyRecord r;
    auto str_field = [&](const char* name, bool required) -> std::string {
      auto it = j.find(name);
      if (it == j.end()) {
        if (required) throw fail(std::string("missing field \"") + name + "\"");
        return {};
      }
      if (!it->is_string()) throw fail(std::string("field \"") + name + "\" must be a string");
      return it->get<std::string>();
    };
    for (auto& [k, v] : j.items()) {
      static const std::set<std::string> kKnown = {
          "sha256", "tenant_id", "user_id", "tier", "scopes", "revoked", "id", "created", "note"};
      if (!kKnown.count(k))
        throw fail(
            "unknown field \"" + k +
            "\" (known: sha256, tenant_id, user_id, tier, scopes, revoked, id, created, note)");
    }
    r.sha256 = str_field("sha256", true);
    if (!is_hex64(r.sha256)) throw fail("\"sha256\" must be 64 lower-case hex digits");
    if (!hashes.insert(r.sha256).second) throw fail("this sha256 is listed twice; keep one line");
    r.tenant_id = str_field("tenant_id", true);
    if (!valid_ident(r.tenant_id))
      throw fail("\"tenant_id\" must be 1..128 printable ASCII characters");
    r.user_id = str_field("user_id", true);
    if (!valid_ident(r.user_id))
      throw fail("\"user_id\" must be 1..128 printable ASCII characters");
    std::string tier = str_field("tier", true);
    r.tier = normalize_tier(tier);
    if (r.tier.empty()) throw fail("\"tier\" must match [A-Za-z0-9_]{1,32}, got \"" + tier + "\"");
    if (!known_tiers.empty()) {
      bool known = false;
      for (auto& t : known_tiers) known = known || t == r.tier;
      if (!known) throw fail("tier \"" + r.tier + "\" is not configured in [plugins.config.tiers]");
    }
    try {
      if (auto it = j.find("scopes"); it != j.end() && it->is_array()) {
        std::vector<std::string> list;
        for (auto& s : *it) {
          if (!s.is_string()) throw std::invalid_argument("\"scopes\" must hold strings");
          list.push_back(s.get<std::string>());
        }
        r.scopes = join_scopes(split_scopes(join_scopes(list)));
      } else {
        r.scopes = join_scopes(split_scopes(str_field("scopes", false)));
      }
    } catch (const std::invalid_argument& e) {
      throw fail(e.what());
    }
    if (auto it = j.find("revoked"); it != j.end()) {
      if (!it->is_boolean()) throw fail("\"revoked\" must be true or false");
      r.revoked = it->get<bool>();
    }
    r.id = str_field("id", false);
    if (r.id.empty()) r.id = key_id_for(r.sha256);
    str_field("created", false);
    str_field("note", false);
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<KeyRecord> load_keys_file(const std::string& path,
                                      const std::vector<std::string>& known_tiers) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw KeysFileError(path +
                        ": cannot read the keys file (does it exist? check keys_file in "
                        "[plugins.config] of auth)");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_keys(ss.str(), path, known_tiers);
}

std::string format_key_line(const KeyRecord& r, std::string_view created) {
  nlohmann::ordered_json j;
  j["id"] = r.id;
  j["sha256"] = r.sha256;
  j["tenant_id"] = r.tenant_id;
  j["user_id"] = r.user_id;
  j["tier"] = r.tier;
  if (!r.scopes.empty()) j["scopes"] = r.scopes;
  j["revoked"] = r.revoked;
  if (!created.empty()) j["created"] = std::string(created);
  return j.dump();
}

std::string mint_key() {
  static constexpr char kAlphabet[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string key = "kg_live_";
  // Rejection sampling keeps every character uniform: 62*4 = 248 < 256.
  while (key.size() < 8 + 43) {
    unsigned char buf[64];
    if (RAND_bytes(buf, sizeof buf) != 1) throw std::runtime_error("RAND_bytes failed (OpenSSL)");
    for (unsigned char b : buf) {
      if (b >= 248) continue;
      key += kAlphabet[b % 62];
      if (key.size() == 8 + 43) break;
    }
  }
  return key;
}

}  // namespace kghost::auth
