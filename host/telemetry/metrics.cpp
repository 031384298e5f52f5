#include "telemetry/metrics.hpp"

#include <prometheus/check_names.h>
#include <prometheus/text_serializer.h>

#include <sstream>

namespace kghost {

void MetricSeries::add(double v) {
  if (counter && v >= 0) counter->Increment(v);
  if (gauge) gauge->Increment(v);
}
void MetricSeries::set(double v) {
  if (gauge) gauge->Set(v);
}
void MetricSeries::observe(double v) {
  if (histogram) histogram->Observe(v);
}

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {}

const std::vector<double>& Metrics::default_latency_buckets() {
  static const std::vector<double> b{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                     0.1,    0.25,  0.5,    1,     2.5,  5,     10};
  return b;
}

MetricFamily* Metrics::family(MetricKind kind, const std::string& name, const std::string& help,
                              const std::vector<std::string>& labels,
                              const std::vector<double>& buckets, std::string& error) {
  if (!prometheus::CheckMetricName(name)) {
    error = "invalid metric name \"" + name + "\" (use [a-zA-Z_:][a-zA-Z0-9_:]*)";
    return nullptr;
  }
  for (auto& l : labels) {
    if (!prometheus::CheckLabelName(l)) {
      error = "invalid label name \"" + l + "\" on metric " + name;
      return nullptr;
    }
  }
  std::lock_guard lock(mutex_);
  if (auto it = families_.find(name); it != families_.end()) {
    if (it->second->kind != kind || it->second->label_names != labels) {
      error = "metric " + name + " already exists with another type or other labels";
      return nullptr;
    }
    return it->second.get();
  }
  auto f = std::make_unique<MetricFamily>();
  f->kind = kind;
  f->name = name;
  f->label_names = labels;
  f->buckets = buckets.empty() ? default_latency_buckets() : buckets;
  try {
    switch (kind) {
      case MetricKind::counter:
        f->family = &prometheus::BuildCounter().Name(name).Help(help).Register(*registry_);
        break;
      case MetricKind::gauge:
        f->family = &prometheus::BuildGauge().Name(name).Help(help).Register(*registry_);
        break;
      case MetricKind::histogram:
        f->family = &prometheus::BuildHistogram().Name(name).Help(help).Register(*registry_);
        break;
    }
  } catch (const std::exception& e) {
    error = "cannot register metric " + name + ": " + e.what();
    return nullptr;
  }
  auto* raw = f.get();
  families_.emplace(name, std::move(f));
  return raw;
}

MetricSeries* Metrics::series(MetricFamily& f, const std::vector<std::string>& values) {
  if (values.size() != f.label_names.size()) return nullptr;
  std::lock_guard lock(f.mutex);
  auto& slot = f.series[values];
  if (slot) return slot.get();
  std::map<std::string, std::string> labels;
  for (std::size_t i = 0; i < values.size(); ++i) labels[f.label_names[i]] = values[i];
  auto s = std::make_unique<MetricSeries>();
  s->kind = f.kind;
  switch (f.kind) {
    case MetricKind::counter:
      s->counter = &static_cast<prometheus::Family<prometheus::Counter>*>(f.family)->Add(labels);
      break;
    case MetricKind::gauge:
      s->gauge = &static_cast<prometheus::Family<prometheus::Gauge>*>(f.family)->Add(labels);
      break;
    case MetricKind::histogram:
      s->histogram = &static_cast<prometheus::Family<prometheus::Histogram>*>(f.family)->Add(
          labels, prometheus::Histogram::BucketBoundaries(f.buckets));
      break;
  }
  slot = std::move(s);
  return slot.get();
}

std::string Metrics::render() const {
  std::ostringstream os;
  prometheus::TextSerializer().Serialize(os, registry_->Collect());
  return os.str();
}

}  // namespace kghost
