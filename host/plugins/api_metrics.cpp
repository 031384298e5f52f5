// Metrics slots (families, series, the Prometheus text) and the /health document.
#include "plugins/abi_support.hpp"
#include "plugins/host_api.hpp"
#include "plugins/instance.hpp"

namespace kghost {
namespace {

using abi::copy_in;
using abi::sv;
using abi::to_sink;

kg_metric* api_metric_new(kg_plugin_ctx* c, const kg_metric_desc* desc) {
  if (!desc) return nullptr;
  kg_metric_desc d = copy_in(desc);
  if (d.kind > KG_METRIC_HISTOGRAM) return nullptr;
  std::vector<std::string> labels;
  for (size_t i = 0; i < d.label_count; ++i) labels.emplace_back(sv(d.label_names[i]));
  std::vector<double> buckets;
  if (d.buckets) buckets.assign(d.buckets, d.buckets + d.bucket_count);
  std::string error;
  auto* f = c->services.metrics.family(static_cast<MetricKind>(d.kind), std::string(sv(d.name)),
                                       std::string(sv(d.help)), labels, buckets, error);
  if (!f) c->services.log.log(LogLevel::error, c->name, error);
  return reinterpret_cast<kg_metric*>(f);
}
kg_series* api_metric_series(kg_metric* m, const kg_str* values, size_t count) {
  if (!m) return nullptr;
  std::vector<std::string> v;
  for (size_t i = 0; i < count; ++i) v.emplace_back(sv(values[i]));
  return reinterpret_cast<kg_series*>(Metrics::series(*reinterpret_cast<MetricFamily*>(m), v));
}
void api_series_add(kg_series* s, double v) {
  if (s) reinterpret_cast<MetricSeries*>(s)->add(v);
}
void api_series_set(kg_series* s, double v) {
  if (s) reinterpret_cast<MetricSeries*>(s)->set(v);
}
void api_series_observe(kg_series* s, double v) {
  if (s) reinterpret_cast<MetricSeries*>(s)->observe(v);
}
kg_status api_metrics_render(kg_plugin_ctx* c, kg_sink_fn sink, void* ud) {
  return sink ? to_sink(sink, ud, c->services.metrics.render()) : KG_ERR_INVALID;
}
kg_status api_health_render(kg_plugin_ctx* c, kg_sink_fn sink, void* ud) {
  return sink ? to_sink(sink, ud, c->services.health.document().dump()) : KG_ERR_INVALID;
}

}  // namespace

void fill_metrics_api(kg_host_api& t) {
  t.metric_new = api_metric_new;
  t.metric_series = api_metric_series;
  t.series_add = api_series_add;
  t.series_set = api_series_set;
  t.series_observe = api_series_observe;
  t.metrics_render = api_metrics_render;
  t.health_render = api_health_render;
}

}  // namespace kghost
