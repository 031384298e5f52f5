#include "http/route_table.hpp"

#include <algorithm>

namespace kghost {

bool FilterEntry::runs_on(const RouteInfo& route, std::string_view path) const {
  switch (scope) {
    case FilterScope::own_routes:
      return route.owner == owner;
    case FilterScope::path_prefix: {
      std::string_view prefix = path_prefix;
      return path.substr(0, prefix.size()) == prefix &&
             (path.size() == prefix.size() || prefix.back() == '/' || path[prefix.size()] == '/');
    }
    default:
      return true;
  }
}

std::string RouteTable::Builder::add_route(RouteInfo info, HandlerEntry handler) {
  info.handler = table_->handlers_.size();
  std::string err = table_->router_.add(std::move(info));
  if (err.empty()) table_->handlers_.push_back(std::move(handler));
  return err;
}

void RouteTable::Builder::add_filter(FilterEntry filter) {
  auto& filters = table_->filters_;
  auto pos = std::upper_bound(filters.begin(), filters.end(), filter.order,
                              [](int32_t o, const FilterEntry& f) { return o < f.order; });
  filters.insert(pos, std::move(filter));
}

void RouteTable::Builder::add_observer(ObserverEntry observer) {
  table_->observers_.push_back(std::move(observer));
}

void RouteTable::Builder::add_stream_observer(ObserverEntry observer) {
  table_->stream_observers_.push_back(std::move(observer));
}

void RouteTable::Builder::take_out_of_service(const std::string& owner) {
  for (const RouteInfo* r : table_->router_.routes()) {
    if (r->owner == owner) table_->handlers_[r->handler].unavailable = true;
  }
  auto owned = [&](const auto& e) { return e.owner == owner; };
  std::erase_if(table_->filters_, owned);
  std::erase_if(table_->observers_, owned);
  std::erase_if(table_->stream_observers_, owned);
}

std::shared_ptr<const RouteTable> RouteTable::Builder::build() {
  return std::shared_ptr<const RouteTable>(std::exchange(table_, std::make_unique<RouteTable>()));
}

}  // namespace kghost
