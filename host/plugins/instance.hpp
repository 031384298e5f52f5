// One plugin instance (opaque to plugins as kg_plugin_ctx): the library it was made from, its
// lifecycle state and config, the primitives it opened, and what it registered while being
// created. Generations drive it: create → start → go live → stop → destroy. An instance kept
// by a reload belongs to several generations at once (shared_ptr); the last one to go stops
// and destroys it.
#pragma once

#include <kghost/plugin.h>

#include <atomic>
#include <deque>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "plugins/library.hpp"
#include "plugins/registrations.hpp"
#include "plugins/services.hpp"
#include "plugins/shared_queues.hpp"
#include "runtime/task_runner.hpp"
#include "telemetry/health_board.hpp"

// A health report being filled in by a plugin's reporter.
struct kg_health {
  kghost::HealthStatus status = kghost::HealthStatus::healthy;
  nlohmann::json details = nlohmann::json::object();
};

// A named key space of the shared store (see kg_host_api.store_shared).
struct kg_store_space {
  struct kg_plugin_ctx* owner;  // the plugin that opened it (its store and services)
  std::string prefix;           // "shared/<name>/"
};

// An instance's hold on a queue of the shelf; handed to the plugin as kg_queue*.
struct QueueHandle {
  struct kg_plugin_ctx* owner;
  std::shared_ptr<kghost::SharedQueue> shared;
};

struct kg_plugin_ctx {
  enum class State { loaded, creating, created, started, failed, stopped };

  kg_plugin_ctx(const kghost::HostServices& services, const kghost::PluginEntry& entry,
                std::filesystem::path path);
  kg_plugin_ctx(const kg_plugin_ctx&) = delete;
  kg_plugin_ctx& operator=(const kg_plugin_ctx&) = delete;

  // Each returns "" or why it failed (the plugin's set_error text, else its status).
  std::string create();  // registrations are held in `pending` until it returns ""
  std::string start();   // from created
  // Once its generation serves: its tasks run, its queue consumers take over. Idempotent.
  void go_live();
  // Stops its tasks and bus subscriptions, then the plugin (from started), then its queue
  // consumers. Idempotent.
  void stop();
  void destroy();    // lets go of its queues and destroys the plugin instance. Idempotent.
  ~kg_plugin_ctx();  // destroy()
  kghost::HealthReport health() const;  // failed: unhealthy with its error; else its reporter
  const kg_plugin_descriptor& descriptor() const { return library->descriptor(); }

  // Registration calls are taken only during create; primitives open during create or
  // between create and start.
  bool registering() const { return state == State::creating; }
  bool setting_up() const { return state == State::creating || state == State::created; }

  const kghost::HostServices& services;
  const std::string name;
  const std::filesystem::path path;
  bool required;
  std::shared_ptr<const kghost::PluginLibrary> library;  // set before create
  State state = State::loaded;
  std::string error;  // why it failed (shown at exit 2, and in /health)
  const nlohmann::json config;
  const std::string config_text;
  std::deque<std::string> kept;  // strings handed out as borrowed views until destroy

  // The plugin's primitives.
  const std::string store_prefix;     // "plugin/<name>/": the plugin's own store keys
  std::deque<kg_store_space> spaces;  // shared key spaces it opened (stable addresses)
  std::vector<std::unique_ptr<QueueHandle>> queues;
  std::vector<uint64_t> subscriptions;  // bus subscription ids, unsubscribed at stop
  kghost::TaskRunner tasks;             // its own, so that retiring it stops only its tasks
  std::atomic<bool> live{false};        // go_live ran (a later queue consumer takes over at once)
  kg_health_fn health_fn = nullptr;
  void* health_ud = nullptr;

  // Made during create. Routes, filters and observers go into the route table of every
  // generation holding the instance; subscriptions and tasks are taken once.
  kghost::Registrations pending;

 private:
  void* instance_ = nullptr;
};
