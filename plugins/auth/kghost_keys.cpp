// kghost-keys: operator tool for the auth plugin's keys file (JSON lines, hashes only).
//
//   kghost-keys new --tenant T --user U --tier PRO [--scopes "read write"] --file keys.jsonl
//       mints a key, prints it ONCE on stdout, appends only its SHA-256 line to the file
//   kghost-keys revoke --id key_0123456789ab --file keys.jsonl
//   kghost-keys list --file keys.jsonl
//   kghost-keys hash            reads a key on stdin, prints its sha256 and key id
//
// Exit codes: 0 done, 2 bad usage or a bad keys file, 1 anything else.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "keys.hpp"

namespace {

using namespace kghost::auth;

constexpr const char* kUsage = R"(usage:
  kghost-keys new --tenant TENANT --user USER --tier TIER [--scopes "read write"] --file FILE
  kghost-keys revoke --id KEY_ID --file FILE
  kghost-keys list --file FILE
  kghost-keys hash < key
The key is printed once by `new` and never stored: only its SHA-256 goes to FILE.
)";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::map<std::string, std::string> parse_flags(int argc, char** argv, int first) {
  std::map<std::string, std::string> out;
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0 || i + 1 >= argc) throw UsageError("unexpected argument '" + a + "'");
    out[a.substr(2)] = argv[++i];
  }
  return out;
}

std::string need(const std::map<std::string, std::string>& f, const std::string& name) {
  auto it = f.find(name);
  if (it == f.end() || it->second.empty()) throw UsageError("--" + name + " is required");
  return it->second;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string now_rfc3339() {
  std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

int cmd_new(const std::map<std::string, std::string>& f) {
  KeyRecord r;
  r.tenant_id = need(f, "tenant");
  r.user_id = need(f, "user");
  std::string tier = need(f, "tier");
  r.tier = normalize_tier(tier);
  if (r.tier.empty()) throw UsageError("--tier must match [A-Za-z0-9_]{1,32}");
  if (auto it = f.find("scopes"); it != f.end()) {
    try {
      r.scopes = join_scopes(split_scopes(it->second));
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("--scopes: ") + e.what());
    }
  }
  std::string file = need(f, "file");
  for (auto& [k, v] : f)
    if (k != "tenant" && k != "user" && k != "tier" && k != "scopes" && k != "file")
      throw UsageError("unknown option --" + k);

  std::string existing = read_all(file);
  parse_keys(existing, file);  // refuse to append to a broken file
  const std::string key = mint_key();
  r.sha256 = sha256_hex(key);
  r.id = key_id_for(r.sha256);
  // Validate the new line exactly as the plugin will read it.
  std::string line = format_key_line(r, now_rfc3339());
  parse_keys(existing + "\n" + line + "\n", file);

  int fd = ::open(file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error(file + ": cannot open for appending");
  std::string out = (existing.empty() || existing.back() == '\n' ? "" : "\n") + line + "\n";
  bool ok =
      ::write(fd, out.data(), out.size()) == static_cast<ssize_t>(out.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) throw std::runtime_error(file + ": write failed");

  std::cerr << "minted " << r.id << " for tenant " << r.tenant_id << ", user " << r.user_id
            << ", tier " << r.tier << "; its hash is in " << file
            << ". The key is shown once, below: store it now.\n";
  std::cout << key << "\n";
  return 0;
}

int cmd_revoke(const std::map<std::string, std::string>& f) {
  std::string id = need(f, "id"), file = need(f, "file");
  std::string text = read_all(file);
  auto records = parse_keys(text, file);
  bool found = false;
  std::string out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::ordered_json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("sha256") &&
        (j.value("id", "") == id || key_id_for(j["sha256"].get<std::string>()) == id)) {
      j["revoked"] = true;
      line = j.dump();
      found = true;
    }
    out += line + "\n";
  }
  if (!found) throw UsageError("no key with id " + id + " in " + file);
  // Atomic replace: a concurrent reader sees the old or the new file, never half of one.
  std::string tmp = file + ".tmp";
  {
    std::ofstream o(tmp, std::ios::binary | std::ios::trunc);
    o << out;
    if (!o) throw std::runtime_error(tmp + ": write failed");
  }
  std::filesystem::permissions(
      tmp, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  std::filesystem::rename(tmp, file);
  std::cerr << "revoked " << id << "; restart kghost (or roll the deployment) to apply it\n";
  return 0;
}

int cmd_list(const std::map<std::string, std::string>& f) {
  std::string file = need(f, "file");
  for (auto& r : load_keys_file(file))
    std::cout << r.id << "  tenant=" << r.tenant_id << "  user=" << r.user_id << "  tier=" << r.tier
              << "  scopes=" << (r.scopes.empty() ? "(tier)" : r.scopes)
              << (r.revoked ? "  REVOKED" : "") << "\n";
  return 0;
}

int cmd_hash() {
  std::string key;
  std::getline(std::cin, key);
  if (!key.empty() && key.back() == '\r') key.pop_back();
  std::string h = sha256_hex(key);
  std::cout << h << "  " << key_id_for(h) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 2) throw UsageError("missing command");
    std::string cmd = argv[1];
    if (cmd == "--help" || cmd == "-h" || cmd == "help") {
      std::cout << kUsage;
      return 0;
    }
    auto flags = parse_flags(argc, argv, 2);
    if (cmd == "new") return cmd_new(flags);
    if (cmd == "revoke") return cmd_revoke(flags);
    if (cmd == "list") return cmd_list(flags);
    if (cmd == "hash") return cmd_hash();
    throw UsageError("unknown command '" + cmd + "'");
  } catch (const UsageError& e) {
    std::cerr << "kghost-keys: " << e.what() << "\n" << kUsage;
    return 2;
  } catch (const KeysFileError& e) {
    std::cerr << "kghost-keys: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "kghost-keys: " << e.what() << "\n";
    return 1;
  }
}
