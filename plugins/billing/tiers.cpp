#include "tiers.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace kghost::billing {
namespace {

using nlohmann::json;

bool valid_tenant(std::string_view t) {
  if (t.empty() || t.size() > 128) return false;
  for (char c : t)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'))
      return false;
  return true;
}

void write_durably(const std::filesystem::path& file, const std::string& text) {
  const std::filesystem::path tmp = file.string() + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("billing: cannot write " + tmp.string());
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), file.c_str()) != 0)
    throw std::runtime_error("billing: cannot write " + file.string());
  int dfd = ::open(file.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace

Reading read_subscription_event(std::string_view topic, std::string_view data,
                                std::string_view event_id,
                                const std::map<std::string, std::string, std::less<>>& prices) {
  Reading r;
  json doc = json::parse(data, nullptr, false);
  const json* obj = nullptr;
  if (doc.is_object() && doc.contains("data") && doc["data"].is_object() &&
      doc["data"].contains("object") && doc["data"]["object"].is_object())
    obj = &doc["data"]["object"];
  if (!obj) {
    r.why = "malformed";
    r.detail = "the event has no data.object";
    return r;
  }
  const json* meta =
      obj->contains("metadata") && (*obj)["metadata"].is_object() ? &(*obj)["metadata"] : nullptr;
  if (!meta || !meta->contains("tenant_id") || !(*meta)["tenant_id"].is_string() ||
      !valid_tenant((*meta)["tenant_id"].get<std::string>())) {
    r.why = "no_tenant";
    r.detail = "data.object.metadata.tenant_id is missing or not a tenant id";
    return r;
  }
  TierChange c;
  c.tenant = (*meta)["tenant_id"].get<std::string>();
  c.event_id = std::string(event_id);
  if (doc.contains("created") && doc["created"].is_number_integer())
    c.created = doc["created"].get<int64_t>();
  if (topic.ends_with(".deleted")) {
    c.tier = "FREE";
    r.change = std::move(c);
    return r;
  }
  std::string key;
  try {
    const json& item = obj->at("items").at("data").at(0);
    key = item.at("price").at("lookup_key").get<std::string>();
  } catch (const std::exception&) {
    r.why = "unknown_price";
    r.detail = "the first item has no price.lookup_key";
    return r;
  }
  auto it = prices.find(key);
  if (it == prices.end()) {
    r.why = "unknown_price";
    r.detail = "price lookup_key '" + key.substr(0, 100) +
               "' is not in [plugins.config.prices] of billing";
    return r;
  }
  c.tier = it->second;
  r.change = std::move(c);
  return r;
}

TierBook::TierBook(std::filesystem::path dir) : file_(dir / "tiers.json") {
  std::filesystem::create_directories(dir);
  std::ifstream in(file_);
  if (!in) return;
  std::stringstream ss;
  ss << in.rdbuf();
  json doc = json::parse(ss.str(), nullptr, false);
  if (!doc.is_object() || !doc.contains("tenants") || !doc["tenants"].is_object())
    throw std::runtime_error("billing: " + file_.string() +
                             " is not a tier book; move it away to start with none");
  for (auto& [tenant, v] : doc["tenants"].items()) {
    if (!v.is_object()) continue;
    tenants_[tenant] = TierChange{tenant, v.value("tier", "FREE"), v.value("event_id", ""),
                                  v.value("created", int64_t{0})};
  }
}

TierBook::Outcome TierBook::apply(const TierChange& c, std::string* previous_tier) {
  std::lock_guard lock(mu_);
  auto it = tenants_.find(c.tenant);
  if (it != tenants_.end()) {
    if (previous_tier) *previous_tier = it->second.tier;
    if (it->second.event_id == c.event_id) return Outcome::duplicate;
    if (c.created < it->second.created) return Outcome::stale;
  }
  auto before = tenants_;
  tenants_[c.tenant] = c;
  try {
    save_locked();
  } catch (...) {
    tenants_ = std::move(before);
    throw;
  }
  return Outcome::applied;
}

std::map<std::string, TierChange> TierBook::snapshot() const {
  std::lock_guard lock(mu_);
  return tenants_;
}

void TierBook::save_locked() {
  json t = json::object();
  for (auto& [tenant, c] : tenants_)
    t[tenant] = {{"tier", c.tier}, {"event_id", c.event_id}, {"created", c.created}};
  write_durably(file_, json{{"tenants", t}}.dump(1));
}

}  // namespace kghost::billing
