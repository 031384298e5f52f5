// observability: GET /metrics, request metrics, GET /health/saas and the access log.
//
//   GET /metrics      public  the host's registry (every plugin's metrics), request counters and
//                             latency histograms, kgents_plugin_up, process_* from /proc
//   GET /health/saas  public  the SaaS view of /health: nats, store, openmeter, stripe
//
// Request metrics and the access log come from a response observer, which sees every request
// (404s and errors too) with its route template, status, duration and sizes.
//
// SSE streams: a stream's head reaches the response observer (kind STREAM_START: counted as
// a request and as an open stream); its end reaches the 1.1 stream-end observer with its
// duration, body bytes and why it ended (StreamMetrics).
#include <atomic>
#include <kghost/plugin.hpp>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "access_log.hpp"
#include "health_view.hpp"
#include "process_metrics.hpp"
#include "request_metrics.hpp"
#include "settings.hpp"
#include "stream_metrics.hpp"

namespace kghost::observability {
namespace {

using sdk::Request;

constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

void append_to(void* user_data, kg_str data) {
  if (data.len) static_cast<std::string*>(user_data)->append(data.ptr, data.len);
}

Settings settings_of(const sdk::Host& h) {
  try {
    return parse_settings(h.config_json());
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("[plugins.config] of observability: ") + e.what());
  }
}

class Observability final : public sdk::Plugin {
 public:
  explicit Observability(sdk::Host h)
      : Plugin(h), settings_(settings_of(h)), sampler_(settings_.access_log_sample_rate) {
    route({.method = "GET",
           .path = "/metrics",
           .is_public = true,
           .summary = "Prometheus metrics of the host, its plugins and the process"},
          [this](Request& req) { serve_metrics(req); });
    route({.method = "GET",
           .path = "/health/saas",
           .is_public = true,
           .summary = "Health of the SaaS dependencies: NATS, store, OpenMeter, Stripe webhooks"},
          [this](Request& req) { serve_saas_health(req); });
    observer([this](Request& req, const kg_observation& obs) { on_finished(req, obs); });
    stream_end_observer([this](Request&, const kg_observation& obs) {
      streams_.ended(stream_end_of(obs.end_reason), obs.duration_ns, obs.response_bytes);
    });
  }

 private:
  nlohmann::json health() {
    std::string text;
    host().api()->health_render(host().ctx(), append_to, &text);
    return nlohmann::json::parse(text, nullptr, false);
  }

  void serve_metrics(Request& req) {
    std::string text;
    text.reserve(last_size_.load(std::memory_order_relaxed) + 4096);
    host().api()->metrics_render(host().ctx(), append_to, &text);
    requests_.render(text);
    streams_.render(text);
    render_plugin_up(health(), text);
    if (auto p = sample_self()) render_process_metrics(*p, text);
    last_size_.store(text.size(), std::memory_order_relaxed);
    req.respond({.status = 200, .body = std::move(text), .content_type = kMetricsContentType});
  }

  void serve_saas_health(Request& req) {
    auto view = saas_health(health());
    req.respond(static_cast<uint16_t>(view.http_status), view.body.dump());
  }

  // [request] Every finished request: counted always, logged when sampled.
  void on_finished(Request& req, const kg_observation& obs) {
    std::string_view route = sdk::view(obs.route);
    std::string_view method = sdk::view(obs.method);
    requests_.record(route, method, obs.status, obs.duration_ns);
    if (obs.kind == KG_OBSERVED_STREAM_START) streams_.started();
    if (!settings_.access_log || !sampler_.should_log(obs.status)) return;
    AccessFields f{
        method, route, obs.status, obs.duration_ns, obs.request_bytes, obs.response_bytes, {}};
    auto principal = req.principal();
    if (principal) f.tenant = principal->tenant_id;
    thread_local std::string line;  // keeps its capacity: no allocation per request
    if (KG_HOST_HAS(host().api(), log_fields)) {
      format_access_fields(f, line);
      host().log(KG_LOG_INFO, kAccessMessage, line, &req);
    } else {
      format_access_line(f, line);
      host().log(KG_LOG_INFO, line, &req);
    }
  }

  Settings settings_;
  AccessSampler sampler_;
  RequestMetrics requests_;
  StreamMetrics streams_;
  std::atomic<std::size_t> last_size_{0};  // a hint for the next scrape's buffer size
};

}  // namespace
}  // namespace kghost::observability

KGHOST_PLUGIN(kghost::observability::Observability, "observability", "1.0.0",
              "Prometheus /metrics, request metrics, /health/saas and the access log", 0)
