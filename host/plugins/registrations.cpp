#include "plugins/registrations.hpp"

#include <chrono>

namespace kghost {
namespace {

// The plugin's callback, holding what it needs alive (its generation) for as long as a route
// table that reaches it does.
class KeptHandler final : public Handler {
 public:
  KeptHandler(std::shared_ptr<Handler> inner, std::shared_ptr<const void> keep)
      : inner_(std::move(inner)), keep_(std::move(keep)) {}
  Verdict handle(Exchange& ex) override { return inner_->handle(ex); }

 private:
  std::shared_ptr<Handler> inner_;
  std::shared_ptr<const void> keep_;
};

class KeptFilter final : public Filter {
 public:
  KeptFilter(std::shared_ptr<Filter> inner, std::shared_ptr<const void> keep)
      : inner_(std::move(inner)), keep_(std::move(keep)) {}
  Verdict filter(Exchange& ex) override { return inner_->filter(ex); }

 private:
  std::shared_ptr<Filter> inner_;
  std::shared_ptr<const void> keep_;
};

class KeptObserver final : public Observer {
 public:
  KeptObserver(std::shared_ptr<Observer> inner, std::shared_ptr<const void> keep)
      : inner_(std::move(inner)), keep_(std::move(keep)) {}
  void observe(Exchange& ex, const Observation& what) override { inner_->observe(ex, what); }

 private:
  std::shared_ptr<Observer> inner_;
  std::shared_ptr<const void> keep_;
};

ObserverEntry kept(const ObserverEntry& o, const std::shared_ptr<const void>& keep) {
  return ObserverEntry{o.owner, std::make_shared<KeptObserver>(o.observer, keep)};
}

}  // namespace

std::string Registrations::add_to(RouteTable::Builder& table,
                                  const std::shared_ptr<const void>& keep) const {
  std::string conflict;
  for (const auto& [info, handler] : routes) {
    HandlerEntry entry = handler;
    entry.handler = std::make_shared<KeptHandler>(handler.handler, keep);
    std::string err = table.add_route(info, std::move(entry));
    if (conflict.empty()) conflict = std::move(err);
  }
  for (const auto& f : filters) {
    FilterEntry entry = f;
    entry.filter = std::make_shared<KeptFilter>(f.filter, keep);
    table.add_filter(std::move(entry));
  }
  for (const auto& o : observers) table.add_observer(kept(o, keep));
  for (const auto& o : stream_observers) table.add_stream_observer(kept(o, keep));
  return conflict;
}

void Registrations::subscribe_all(EventBus& bus, const std::string& owner,
                                  std::vector<uint64_t>& ids) {
  for (auto& sub : subscriptions)
    if (uint64_t id = subscribe(bus, owner, sub.pattern, sub.fn, sub.user_data)) ids.push_back(id);
  subscriptions.clear();
}

void Registrations::schedule(TaskRunner& runner, const std::string& owner) {
  for (auto& t : tasks) {
    std::string name = owner + "." + t.name;
    if (t.interval_ms > 0) {
      runner.every(name, std::chrono::milliseconds(t.interval_ms),
                   [fn = t.fn, ud = t.user_data] { fn(ud, nullptr); });
    } else {
      runner.run(name, [fn = t.fn, ud = t.user_data](StopToken& stop) {
        fn(ud, reinterpret_cast<kg_stop*>(&stop));
      });
    }
  }
  tasks.clear();
}

uint64_t subscribe(EventBus& bus, const std::string& owner, std::string_view pattern, kg_bus_fn fn,
                   void* user_data) {
  return bus.subscribe(pattern, owner, [fn, user_data](const BusEvent& e) {
    kg_bus_event ev{sizeof(kg_bus_event), kg_str{e.topic.data(), e.topic.size()},
                    kg_str{e.data.data(), e.data.size()}, kg_str{e.id.data(), e.id.size()}};
    return fn(user_data, &ev) == KG_OK;
  });
}

}  // namespace kghost
