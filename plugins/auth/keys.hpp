// Production API keys: the keys file (JSON lines, hashes only), SHA-256 and key minting.
// Pure functions: no plugin API, so the kghost-keys tool and unit tests use them too.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace kghost::auth {

// One line of the keys file. The key itself is never stored, only its SHA-256.
struct KeyRecord {
  std::string id;      // public key id, "key_" + first 12 hex of the hash: safe to log
  std::string sha256;  // 64 lower-case hex digits
  std::string tenant_id;
  std::string user_id;
  std::string tier;    // upper case, e.g. "PRO"
  std::string scopes;  // space-separated; empty: the tier's scopes
  bool revoked = false;
};

// A keys-file problem; what() is "FILE:LINE: reason".
class KeysFileError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Lower-case hex SHA-256 of `data` (OpenSSL).
std::string sha256_hex(std::string_view data);

// The key id derived from a hash: "key_" + its first 12 hex digits.
std::string key_id_for(std::string_view sha256_hex);

// Parses keys-file text. Blank lines and lines starting with '#' are skipped. Each other line
// is one JSON object:
//   {"sha256":"<64 hex>","tenant_id":"t","user_id":"u","tier":"PRO","scopes":"read write",
//    "revoked":false,"id":"key_…","created":"2024-…"}
// sha256, tenant_id, user_id and tier are required; scopes, revoked, id, created and "note" are
// optional; any other field is an error (a typo must not silently widen access). A hash listed
// twice is an error. `known_tiers` (when not empty) must contain every tier used.
// Throws KeysFileError naming source:line.
std::vector<KeyRecord> parse_keys(std::string_view text, const std::string& source,
                                  const std::vector<std::string>& known_tiers = {});

// Reads and parses a keys file; a missing file is an error naming it.
std::vector<KeyRecord> load_keys_file(const std::string& path,
                                      const std::vector<std::string>& known_tiers = {});

// The JSON line written for a record (no trailing newline).
std::string format_key_line(const KeyRecord& r, std::string_view created);

// A fresh random key: "kg_live_" + 43 base62 characters (256 bits), from OpenSSL's RAND_bytes.
std::string mint_key();

// A tier name as stored: upper case, [A-Z0-9_]{1,32}; empty if not valid.
std::string normalize_tier(std::string_view tier);

// Splits and validates a scope list ("read write" or "read,write"); throws
// std::invalid_argument for a bad scope name ([a-z0-9_:.-]{1,64}).
std::vector<std::string> split_scopes(std::string_view scopes);
std::string join_scopes(const std::vector<std::string>& scopes);

}  // namespace kghost::auth
