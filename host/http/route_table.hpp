// Everything a request is served by: the routes and their handlers, the filter chain, the
// observers. Immutable once built; the pipeline swaps a whole new table in (Pipeline::publish)
// and every exchange keeps the table it started with alive until it completes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "http/handler.hpp"
#include "http/router.hpp"

namespace kghost {

struct HandlerEntry {
  std::shared_ptr<Handler> handler;
  bool unavailable = false;  // its plugin failed to start: answer 503
};

// Which requests a filter runs on (the values are the ABI's kg_filter_scope).
enum class FilterScope : uint8_t { all_routes = 0, own_routes = 1, path_prefix = 2 };

struct FilterEntry {
  std::string name;
  std::string owner;
  int32_t order = 0;
  std::shared_ptr<Filter> filter;
  FilterScope scope = FilterScope::all_routes;
  std::string path_prefix;  // FilterScope::path_prefix
  // Whether this filter's scope covers a request for `path` that matched `route`.
  bool runs_on(const RouteInfo& route, std::string_view path) const;
};

struct ObserverEntry {
  std::string owner;
  std::shared_ptr<Observer> observer;
};

class RouteTable {
 public:
  class Builder;

  const Router& router() const { return router_; }
  const HandlerEntry& handler(const RouteInfo& route) const { return handlers_[route.handler]; }
  const std::vector<FilterEntry>& filters() const { return filters_; }  // in order
  const std::vector<ObserverEntry>& observers() const { return observers_; }
  const std::vector<ObserverEntry>& stream_observers() const { return stream_observers_; }

 private:
  Router router_;
  std::vector<HandlerEntry> handlers_;  // by RouteInfo::handler
  std::vector<FilterEntry> filters_;
  std::vector<ObserverEntry> observers_;
  std::vector<ObserverEntry> stream_observers_;
};

// Set-up: collects routes, filters and observers, then builds the immutable table.
class RouteTable::Builder {
 public:
  Builder() : table_(std::make_unique<RouteTable>()) {}
  // Returns an error text (conflict, bad template) or "".
  std::string add_route(RouteInfo info, HandlerEntry handler);
  void add_filter(FilterEntry filter);  // kept sorted by order, stable
  void add_observer(ObserverEntry observer);
  void add_stream_observer(ObserverEntry observer);  // called when a stream ends
  // A plugin that failed to start: its routes answer 503 unavailable; its filters and
  // observers are dropped.
  void take_out_of_service(const std::string& owner);
  const Router& router() const { return table_->router_; }
  // The table as built so far; the builder starts over empty.
  std::shared_ptr<const RouteTable> build();

 private:
  std::unique_ptr<RouteTable> table_;
};

}  // namespace kghost
