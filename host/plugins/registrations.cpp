#include "plugins/registrations.hpp"

#include <chrono>

namespace kghost {

std::string Registrations::commit(Pipeline& pipeline, EventBus& bus, const std::string& owner) {
  std::string conflict;
  for (auto& [info, handler] : routes) {
    std::string err = pipeline.add_route(info, handler);
    if (conflict.empty()) conflict = std::move(err);
  }
  for (auto& f : filters) pipeline.add_filter(f);
  for (auto& o : observers) pipeline.add_observer(o);
  for (auto& o : stream_observers) pipeline.add_stream_observer(o);
  for (auto& sub : subscriptions) subscribe(bus, owner, sub.pattern, sub.fn, sub.user_data);
  routes.clear();
  filters.clear();
  observers.clear();
  stream_observers.clear();
  subscriptions.clear();
  return conflict;
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

bool subscribe(EventBus& bus, const std::string& owner, std::string_view pattern, kg_bus_fn fn,
               void* user_data) {
  return bus.subscribe(pattern, owner, [fn, user_data](const BusEvent& e) {
    kg_bus_event ev{sizeof(kg_bus_event), kg_str{e.topic.data(), e.topic.size()},
                    kg_str{e.data.data(), e.data.size()}, kg_str{e.id.data(), e.id.size()}};
    return fn(user_data, &ev) == KG_OK;
  }) != 0;
}

}  // namespace kghost
