// Plugin-wide slots: logging, the plugin's config, its error text, the host's mode, data dir.
#include "plugins/abi_support.hpp"
#include "plugins/host_api.hpp"
#include "plugins/instance.hpp"
#include "plugins/request_api.hpp"

namespace kghost {
namespace {

using abi::ks;
using abi::sv;

void api_log_fields(kg_plugin_ctx* c, kg_request* req, kg_log_level level, kg_str msg,
                    kg_str fields_json) {
  if (!c) return;
  auto lvl = static_cast<LogLevel>(std::clamp<int32_t>(level, 0, 3));
  if (req) {
    auto* ex = exchange_of(req);
    c->services.log.log(lvl, c->name, sv(msg), ex->request_id(), ex->trace_id(), sv(fields_json));
  } else {
    c->services.log.log(lvl, c->name, sv(msg), {}, {}, sv(fields_json));
  }
}
void api_log(kg_plugin_ctx* c, kg_request* req, kg_log_level level, kg_str msg) {
  api_log_fields(c, req, level, msg, kg_str{nullptr, 0});
}
kg_str api_config_json(kg_plugin_ctx* c) { return ks(c->config_text); }
kg_status api_config_get(kg_plugin_ctx* c, kg_str path, kg_str* out) {
  const nlohmann::json* node = &c->config;
  std::string_view rest = sv(path);
  while (!rest.empty()) {
    auto dot = rest.find('.');
    std::string key(rest.substr(0, dot));
    if (!node->is_object() || !node->contains(key)) return KG_ERR_NOT_FOUND;
    node = &(*node)[key];
    rest = dot == std::string_view::npos ? std::string_view() : rest.substr(dot + 1);
  }
  c->kept.push_back(node->is_string() ? node->get<std::string>() : node->dump());
  *out = ks(c->kept.back());
  return KG_OK;
}
void api_set_error(kg_plugin_ctx* c, kg_str reason) { c->error = sv(reason); }
kg_str api_mode(kg_plugin_ctx* c) { return ks(c->services.mode); }
kg_str api_data_dir(kg_plugin_ctx* c) { return ks(c->services.data_dir_text); }

}  // namespace

void fill_plugin_api(kg_host_api& t) {
  t.log = api_log;
  t.config_json = api_config_json;
  t.config_get = api_config_get;
  t.set_error = api_set_error;
  t.mode = api_mode;
  t.data_dir = api_data_dir;
  t.log_fields = api_log_fields;  // 1.1
}

}  // namespace kghost
