// The one metrics registry (prometheus-cpp core) and the metric handles plugins get.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace kghost {

enum class MetricKind { counter = 0, gauge = 1, histogram = 2 };

// One labelled series; handed to plugins as kg_series*. Lives as long as the Metrics object.
struct MetricSeries {
  MetricKind kind;
  prometheus::Counter* counter = nullptr;
  prometheus::Gauge* gauge = nullptr;
  prometheus::Histogram* histogram = nullptr;
  void add(double v);
  void set(double v);
  void observe(double v);
};

// A family; handed to plugins as kg_metric*.
struct MetricFamily {
  MetricKind kind;
  std::string name;
  std::vector<std::string> label_names;
  std::vector<double> buckets;
  void* family = nullptr;  // prometheus::Family<Counter|Gauge|Histogram>*
  std::mutex mutex;        // guards series
  std::map<std::vector<std::string>, std::unique_ptr<MetricSeries>> series;
};

class Metrics {
 public:
  Metrics();
  prometheus::Registry& registry() { return *registry_; }
  // Creates or finds a family. Returns nullptr and sets `error` on an invalid name or label,
  // or when the name exists with another kind or other labels.
  MetricFamily* family(MetricKind kind, const std::string& name, const std::string& help,
                       const std::vector<std::string>& labels, const std::vector<double>& buckets,
                       std::string& error);
  // nullptr when the number of values does not match the family's labels.
  static MetricSeries* series(MetricFamily& family, const std::vector<std::string>& values);
  // Prometheus text exposition of everything registered.
  std::string render() const;

  static const std::vector<double>& default_latency_buckets();

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::mutex mutex_;  // guards families_
  std::map<std::string, std::unique_ptr<MetricFamily>> families_;
};

}  // namespace kghost
