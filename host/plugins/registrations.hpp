// What a plugin instance registers while it is being created: routes, filters, observers,
// tasks and bus subscriptions. They are held here and committed only when create succeeds, so
// a failed create leaves nothing behind; tasks are scheduled only once the instance started.
// Routes, filters and observers stay: every generation that holds the instance puts them into
// its own route table.
#pragma once

#include <kghost/plugin.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/route_table.hpp"
#include "runtime/event_bus.hpp"
#include "runtime/task_runner.hpp"

namespace kghost {

struct Registrations {
  struct Task {
    std::string name;
    uint32_t interval_ms;  // 0: a long-running task with a stop token
    kg_task_fn fn;
    void* user_data;
  };
  struct Subscription {
    std::string pattern;
    kg_bus_fn fn;
    void* user_data;
  };
  std::vector<std::pair<RouteInfo, HandlerEntry>> routes;
  std::vector<FilterEntry> filters;
  std::vector<ObserverEntry> observers;
  std::vector<ObserverEntry> stream_observers;
  std::vector<Subscription> subscriptions;
  std::vector<Task> tasks;

  // Adds the routes, filters and observers to `table`, each holding `keep` (what must stay
  // alive while a request may still call them). Returns the first route conflict's text, or "".
  std::string add_to(RouteTable::Builder& table, const std::shared_ptr<const void>& keep) const;
  // Subscribes on `bus` (as `owner`), appends the ids to `ids`, and forgets them.
  void subscribe_all(EventBus& bus, const std::string& owner, std::vector<uint64_t>& ids);
  // Schedules the tasks on `tasks` as "<owner>.<task>" and forgets them.
  void schedule(TaskRunner& tasks, const std::string& owner);
};

// Subscribes a plugin's bus callback for `owner` (at commit, or directly while it is being set
// up). Returns the subscription id, or 0 when the bus refuses the pattern.
uint64_t subscribe(EventBus& bus, const std::string& owner, std::string_view pattern, kg_bus_fn fn,
                   void* user_data);

}  // namespace kghost
