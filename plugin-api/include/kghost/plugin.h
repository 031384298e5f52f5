/* kghost plugin ABI, version 1.2 — the whole binary contract between the host and a plugin.
 *
 * A plugin is a shared object that exports one C function, `kghost_plugin_entry`, returning a
 * static descriptor (name, version, ABI version, flags, lifecycle hooks). The host calls
 * `create` with a table of host functions (`kg_host_api`) and a per-plugin context; through
 * them the plugin registers routes, filters, observers, tasks and a health reporter, and uses
 * the shared primitives (store, event bus, durable queue, metrics, logging).
 *
 * Reading order: version, base types, opaque handles, callback types, the host API table,
 * the plugin descriptor, the entry symbol.
 *
 * Rules that hold everywhere:
 * - Only C types cross. Strings and bytes are `kg_str` views (pointer + length, not
 *   NUL-terminated). A view handed to a callback is BORROWED: valid until that callback
 *   returns. Whoever keeps data copies it. Nothing allocated by one side is freed by the other.
 * - Every struct that crosses starts with `uint32_t struct_size`. Set it with `sizeof`. Fields
 *   and host-table slots are only ever appended; a reader checks a field lies within
 *   `struct_size` before using it (see KG_HAS_FIELD), and a NULL slot means "not provided".
 * - Versioning: the host refuses a plugin of another major version and loads a plugin built
 *   against an older (or equal) minor version of the same major. 1.0 is frozen: its structs
 *   and slots never move or change meaning. Each later group is marked `--- 1.1 (2026-12) ---`
 *   where it starts; a plugin that declares KG_ABI_MINOR 1 may use everything up to 1.1,
 *   one that declares 2 everything up to 1.2 (`--- 1.2 (2026-12) ---`).
 * - The host writes into a plugin's out-struct (kg_principal, kg_store_result) only the fields
 *   that lie within the struct_size the plugin set, never struct_size itself, and reads a
 *   plugin's struct only up to min(struct_size, its own sizeof).
 * - No exceptions or longjmp may cross. A failing callback returns an error status; the host
 *   turns a failing request callback into a 500 for that request only and keeps serving.
 *
 * Thread tags (as in CLAP):
 *   [main]    the host's main thread, during create/start/stop/destroy.
 *   [request] the I/O thread that owns the request. Never block here: no network round trip,
 *             no fsync, no lock held long. Wait with kg_host_api.defer and complete later.
 *   [task]    a host worker thread running a task, bus delivery or queue consumer; may block
 *             briefly (a network call with a timeout is fine).
 *   [any]     any thread, including threads the plugin created itself.
 */
#ifndef KGHOST_PLUGIN_H
#define KGHOST_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------
 * Version
 * ------------------------------------------------------------------------------------- */
#define KG_ABI_MAJOR 1
#define KG_ABI_MINOR 2

/* True when a struct whose size is `size` includes `field` of `type`. */
#define KG_HAS_FIELD(ptr, type, field) \
  ((ptr)->struct_size >= offsetof(type, field) + sizeof(((type*)0)->field))
/* True when the host table provides a (non-NULL) slot. Check before calling newer slots. */
#define KG_HOST_HAS(host, slot) (KG_HAS_FIELD(host, kg_host_api, slot) && (host)->slot != NULL)

#if defined(_WIN32)
#define KG_EXPORT __declspec(dllexport)
#else
#define KG_EXPORT __attribute__((visibility("default")))
#endif

/* ---------------------------------------------------------------------------------------
 * Base types
 * ------------------------------------------------------------------------------------- */

/* A byte view. Not NUL-terminated. Ownership is stated by whoever hands it over. */
typedef struct kg_str {
  const char* ptr;
  size_t len;
} kg_str;

/* Status codes. Fixed width; values never change. */
typedef int32_t kg_status;
#define KG_OK 0              /* done */
#define KG_PENDING 1         /* answer comes later through the callback or responder */
#define KG_CONTINUE 2        /* filter: pass the request on to the next filter/handler */
#define KG_ERR_INTERNAL (-1) /* unexpected failure; a request gets 500 internal_error */
#define KG_ERR_INVALID (-2)  /* an argument is malformed (bad name, bad status, NULL) */
#define KG_ERR_NOT_FOUND (-3)
#define KG_ERR_EXISTS (-4)      /* e.g. a route registered twice */
#define KG_ERR_FULL (-5)        /* a bounded queue or buffer is full; retry later / answer 503 */
#define KG_ERR_CLOSED (-6)      /* the client or stream is gone */
#define KG_ERR_UNAVAILABLE (-7) /* backend unreachable; feature not enabled */
#define KG_ERR_RETRY (-8)       /* queue/bus consumer: not processed now, deliver again later */
#define KG_ERR_STATE (-9)       /* called at the wrong time (e.g. registering after start) */

typedef int32_t kg_log_level;
#define KG_LOG_DEBUG 0
#define KG_LOG_INFO 1
#define KG_LOG_WARN 2
#define KG_LOG_ERROR 3

typedef int32_t kg_health_status;
#define KG_HEALTHY 0
#define KG_DEGRADED 1
#define KG_UNHEALTHY 2

/* A response header (name, value): borrowed for the duration of the call it is passed to. */
typedef struct kg_header {
  kg_str name;
  kg_str value;
} kg_header;

/* A response to send, or — from a filter — headers to add before passing the request on.
 * Borrowed: the host copies everything before the call returns. */
typedef struct kg_response {
  uint32_t struct_size;
  /* HTTP status 100..599. From a deferred filter, 0 means "continue with the next filter". */
  uint16_t status;
  kg_str content_type; /* empty: application/json */
  kg_str body;
  const kg_header* headers; /* may be NULL when header_count is 0 */
  size_t header_count;
} kg_response;

/* Who made the request, as established by an authenticator filter. Borrowed when passed in;
 * when read back, valid until the current [request] callback returns. */
typedef struct kg_principal {
  uint32_t struct_size;
  kg_str user_id;
  kg_str tenant_id;
  kg_str tier;
  kg_str scopes; /* space-separated, e.g. "read write" */
} kg_principal;

/* ---------------------------------------------------------------------------------------
 * Opaque handles (all host-owned)
 * ------------------------------------------------------------------------------------- */

/* One plugin instance as the host knows it. Valid from create until destroy returns. */
typedef struct kg_plugin_ctx kg_plugin_ctx;
/* One HTTP request. Valid only during the [request] callback it is passed to. */
typedef struct kg_request kg_request;
/* A deferred answer. Complete it exactly once, from any thread (see defer/complete). */
typedef struct kg_responder kg_responder;
/* A streamed (chunked) response, e.g. Server-Sent Events. Close it exactly once. */
typedef struct kg_stream kg_stream;
/* 1.1: a named store key space shared by the plugins that open it. Valid until destroy. */
typedef struct kg_store_space kg_store_space;
/* Stop signal handed to a long-running task. */
typedef struct kg_stop kg_stop;
/* Health report being filled in by a reporter. */
typedef struct kg_health kg_health;
/* A metric family and one labelled series of it. Valid until the plugin is destroyed. */
typedef struct kg_metric kg_metric;
typedef struct kg_series kg_series;
/* A durable queue opened by this plugin. Valid until the plugin is destroyed. */
typedef struct kg_queue kg_queue;

/* ---------------------------------------------------------------------------------------
 * Callbacks the plugin implements
 * ------------------------------------------------------------------------------------- */

/* Route handler. [request]
 * Returns KG_OK after answering with kg_host_api.respond (or respond_error); KG_PENDING after
 * kg_host_api.defer or stream_begin; any error status gives the client 500 internal_error.
 * Returning KG_OK without having answered is a plugin bug, also answered with 500. */
typedef kg_status (*kg_handler_fn)(void* user_data, kg_request* req);

/* Request filter. [request] Runs before the handler, in ascending `order`.
 * Returns KG_CONTINUE to pass the request on, KG_OK after answering (the chain stops, e.g.
 * 401/429), KG_PENDING after defer (complete with status 0 to continue, or with a response). */
typedef kg_status (*kg_filter_fn)(void* user_data, kg_request* req);

/* 1.1: what an observation is about. */
typedef uint32_t kg_observation_kind;
#define KG_OBSERVED_RESPONSE 0u     /* a response was handed to the socket (duration to then) */
#define KG_OBSERVED_STREAM_START 1u /* a stream's head was sent (response_bytes is 0) */
#define KG_OBSERVED_STREAM_END 2u   /* a stream ended: duration from first byte to the end */

/* 1.1: why a stream ended. */
typedef uint32_t kg_stream_end_reason;
#define KG_STREAM_CLIENT_GONE 1u      /* the client disconnected or stopped reading */
#define KG_STREAM_CLOSED_BY_PLUGIN 2u /* the plugin called stream_close */
#define KG_STREAM_HOST_SHUTDOWN 3u    /* the host ended it while shutting down */

/* What an observer sees of a finished request or stream. Borrowed for the call. */
typedef struct kg_observation {
  uint32_t struct_size;
  kg_str method;
  kg_str route; /* the route template, e.g. "/api/v1/streams/{channel}/events"; empty if none */
  uint16_t status;
  uint64_t duration_ns; /* from first byte read to response queued */
  uint64_t request_bytes;
  uint64_t response_bytes; /* STREAM_END: body bytes the stream accepted (stream_write KG_OK) */
  /* --- 1.1 (2026-12) --- */
  kg_observation_kind kind;        /* what was observed (above); 1.0 observers see no STREAM_END */
  kg_stream_end_reason end_reason; /* STREAM_END only: why the stream ended; 0 otherwise */
} kg_observation;

/* Response observer. [request] Called after the response is handed to the socket, for every
 * request (also 404s and errors). `req` may be read (headers, principal, request id) but not
 * answered. Must not block: queue work for a task instead. */
typedef void (*kg_observer_fn)(void* user_data, kg_request* req, const kg_observation* obs);

/* Periodic task body. [task] `stop` is NULL for periodic tasks. A long-running task (interval
 * 0) runs once on its own thread and must return soon after stop_requested(stop) turns true. */
typedef void (*kg_task_fn)(void* user_data, kg_stop* stop);

/* Health reporter. [any] Fill `out` with kg_host_api.health_set; must not block. */
typedef void (*kg_health_fn)(void* user_data, kg_health* out);

/* Called exactly once per stream: when its client goes away, when the host shuts the stream
 * down, or — if neither happened first — from within stream_close. Never after stream_close
 * returns, so the plugin may free what user_data points to once stream_close is back. [any]
 * After it, stream_write returns KG_ERR_CLOSED; the plugin still calls stream_close (it may do
 * so from inside this callback). */
typedef void (*kg_stream_closed_fn)(void* user_data);

/* An event-bus message. Borrowed for the call. */
typedef struct kg_bus_event {
  uint32_t struct_size;
  kg_str topic;
  kg_str data;
  kg_str id; /* unique per published event; use it to de-duplicate */
} kg_bus_event;

/* Bus subscriber. [task] Events of one subscription arrive in publish order, one at a time.
 * Return KG_OK; anything else is logged and counted (the event is not redelivered). */
typedef kg_status (*kg_bus_fn)(void* user_data, const kg_bus_event* event);

/* Result of a store operation. Views are borrowed for the call they are passed to. */
typedef struct kg_store_result {
  uint32_t struct_size;
  kg_status status; /* KG_OK, KG_ERR_NOT_FOUND (get/del of a missing key), or an error */
  int32_t created;  /* check_and_set: 1 if this call set the key, 0 if it existed */
  int64_t value;    /* incr: the new value */
  int64_t ttl_ms;   /* incr/get: remaining time to live; -1 when the key has none */
  kg_str data;      /* get: the stored bytes */
} kg_store_result;

/* Store completion. [any] Called exactly once for an operation that returned KG_PENDING. */
typedef void (*kg_store_fn)(void* user_data, const kg_store_result* result);

/* Durable append completion. [any] status KG_OK once the entry is on disk, with its id. */
typedef void (*kg_append_fn)(void* user_data, kg_status status, uint64_t entry_id);

/* A durable queue entry. Borrowed for the call. */
typedef struct kg_queue_entry {
  uint32_t struct_size;
  uint64_t id;      /* unique in the queue, stable across restarts and retries */
  uint32_t attempt; /* 1 on the first delivery */
  kg_str data;
  kg_str last_error; /* dead letters: why the last attempt failed */
} kg_queue_entry;

/* Queue consumer. [task] Return KG_OK to acknowledge (never delivered again), KG_ERR_RETRY
 * or any error to have it delivered again after a backoff; after the queue's max attempts
 * it becomes a dead letter (say why with kg_host_api.queue_fail_reason). Delivery is
 * at-least-once: de-duplicate by entry id. */
typedef kg_status (*kg_consume_fn)(void* user_data, const kg_queue_entry* entry);

/* Receives a rendered document in pieces (metrics text, health JSON). [any] Borrowed. */
typedef void (*kg_sink_fn)(void* user_data, kg_str data);

/* 1.2: batch queue consumer. [task] Receives `count` entries (borrowed for the call, oldest
 * ids first) and decides each one's outcome in `statuses[i]` like a kg_consume_fn's return
 * (preset to KG_ERR_RETRY); for a failed entry `reasons[i]` may say why (preset empty). The
 * host copies the reasons after fn returns, before it calls fn again for this queue: the
 * plugin keeps their bytes valid until then. The entries of one batch may be worked on
 * concurrently and finished in any order. */
typedef void (*kg_consume_batch_fn)(void* user_data, const kg_queue_entry* entries, size_t count,
                                    kg_status* statuses, kg_str* reasons);

/* Visitor for listings (dead letters). Return 0 to go on, non-zero to stop. [any] */
typedef int32_t (*kg_entry_visit_fn)(void* user_data, const kg_queue_entry* entry);

/* ---------------------------------------------------------------------------------------
 * Registration structs (borrowed: the host copies them)
 * ------------------------------------------------------------------------------------- */

typedef uint32_t kg_route_flags;
#define KG_ROUTE_PUBLIC 1u /* no principal needed: filters may still run, nothing is enforced */

typedef struct kg_route {
  uint32_t struct_size;
  kg_str method; /* "GET", "POST", … */
  kg_str path;   /* template: literal segments and "{name}" segments, e.g. "/a/{id}/b" */
  kg_str scopes; /* space-separated scopes all required; empty: any authenticated caller */
  kg_route_flags flags;
  kg_handler_fn handler;
  void* user_data;
  kg_str summary; /* one line for /openapi.json; may be empty */
  /* --- 1.1 (2026-12) --- documentation for /openapi.json, and a deadline */
  kg_str description;     /* longer text (CommonMark); may be empty */
  kg_str request_schema;  /* JSON Schema of the request body, as JSON text; empty: no body */
  kg_str response_schema; /* JSON Schema of the success (2xx) response body; empty: undocumented */
  /* A deferred answer not completed within this many ms gets 504 gateway_timeout (the late
   * complete is then a safe no-op). 0: the host's default (30 s). */
  uint32_t timeout_ms;
} kg_route;

/* 1.1: which requests a filter runs on (filters only ever see requests that matched a route). */
typedef uint32_t kg_filter_scope;
#define KG_FILTER_ALL_ROUTES 0u /* every route: the default, and what every 1.0 filter gets */
#define KG_FILTER_OWN_ROUTES 1u /* only the routes the registering plugin registered */
/* Only paths equal to path_prefix or below it, segment-wise: "/api/v1" runs on "/api/v1" and
 * "/api/v1/x", not on "/api/v10". */
#define KG_FILTER_PATH_PREFIX 2u

typedef struct kg_filter {
  uint32_t struct_size;
  kg_str name;
  int32_t order; /* ascending; authenticators use 100..199, enforcers 200..299 */
  kg_filter_fn fn;
  void* user_data;
  /* --- 1.1 (2026-12) --- */
  kg_filter_scope scope;
  kg_str path_prefix; /* KG_FILTER_PATH_PREFIX only; starts with '/' */
} kg_filter;

/* 1.1: an error answer in the contract's JSON {"error":{"code","message","request_id"}},
 * with extra headers (e.g. Retry-After). Borrowed: the host copies it. */
typedef struct kg_error {
  uint32_t struct_size;
  uint16_t status;          /* an HTTP error status, 4xx or 5xx */
  kg_str code;              /* machine-readable, e.g. "rate_limited" */
  kg_str message;           /* for humans; never a secret */
  const kg_header* headers; /* may be NULL when header_count is 0 */
  size_t header_count;
} kg_error;

typedef struct kg_task {
  uint32_t struct_size;
  kg_str name;
  uint32_t interval_ms; /* > 0: run every interval on the worker pool; 0: long-running */
  kg_task_fn fn;
  void* user_data;
} kg_task;

typedef uint32_t kg_metric_kind;
#define KG_METRIC_COUNTER 0u
#define KG_METRIC_GAUGE 1u
#define KG_METRIC_HISTOGRAM 2u

typedef struct kg_metric_desc {
  uint32_t struct_size;
  kg_metric_kind kind;
  kg_str name; /* Prometheus name, e.g. "kgents_stripe_webhooks_total" */
  kg_str help;
  const kg_str* label_names;
  size_t label_count;
  const double* buckets; /* histograms; NULL: the host's default latency buckets */
  size_t bucket_count;
} kg_metric_desc;

typedef struct kg_queue_options {
  uint32_t struct_size;
  uint32_t max_attempts;     /* 0: host default (5) */
  uint64_t max_bytes;        /* 0: host default; past it, append fails with KG_ERR_FULL */
  uint32_t retry_backoff_ms; /* first retry delay, doubled each attempt; 0: host default */
} kg_queue_options;

/* ---------------------------------------------------------------------------------------
 * 1.2 (2026-12): store providers
 *
 * A store provider plugin implements the shared store's operations behind the same store_* and
 * shared_* calls every plugin uses (plugins/store-redis is one). The operator selects it by
 * naming the plugin in the config: [store] backend = "store_redis". The host keeps the memory
 * backend (the default, no plugin) and wraps every provider in its failover: whenever the
 * provider cannot answer, the caller is answered from a per-process memory store, the store's
 * health is degraded, and it recovers by itself as soon as the provider answers again.
 *
 * Lifecycle: the host creates and starts the selected provider plugin before every other
 * plugin (whatever its place in [[plugins]]), and stops and destroys it after all of them, so
 * other plugins may use the store from their create on. Register the table in create
 * (register_store_provider), connect to the backend in start, close it in stop.
 * Operations reach the provider only between register_store_provider and the host's shutdown
 * of the store, which comes after every plugin's stop and before any destroy; before start and
 * after stop the provider answers KG_ERR_UNAVAILABLE (the fallback takes the call).
 * ------------------------------------------------------------------------------------- */

/* One store operation in flight. Host-owned; the provider completes it exactly once with
 * kg_host_api.store_complete. Until then the key (and put's value) views handed with it stay
 * valid, so the provider need not copy them. */
typedef struct kg_store_op kg_store_op;

/* The operations of a store provider, registered with register_store_provider (copied). The
 * host calls them on [any] thread, [request] threads included: they must never block (no
 * network round trip on the caller's thread, no lock held long).
 * Keys arrive complete (the host has already put them in the calling plugin's namespace).
 * TTLs: <= 0 means no expiry. The semantics are those of the store_* calls above.
 * Each operation returns one of:
 * - KG_OK: answered now. The provider filled *now (a host struct; status KG_OK,
 *   KG_ERR_NOT_FOUND or an error, and the fields of the operation). now->data must stay valid
 *   after the call returns until the provider's next call on the same thread (keep it in a
 *   thread-local buffer). `op` is released by the host: never complete it.
 * - KG_PENDING: the provider calls store_complete(op, result) exactly once later, from any
 *   thread, never from inside this call. A result with status KG_ERR_UNAVAILABLE (backend
 *   lost, operation timed out) has the host answer the caller from its memory fallback.
 * - KG_ERR_UNAVAILABLE: cannot take it now (not connected, queue full, not started, stopped):
 *   the host answers from its memory fallback at once.
 * - any other error: the caller gets that error (a backend's refusal, e.g. incr of text).
 * A provider bounds every operation by its own timeout (it owns the sockets): an operation it
 * neither answers nor completes would leave its caller waiting until the route's deadline. */
typedef struct kg_store_provider {
  uint32_t struct_size;
  /* Short backend name for /health ("store.backend") and the metrics' backend label, e.g.
   * "redis". [a-z0-9_]+, copied. */
  kg_str backend;
  kg_status (*check_and_set)(void* provider, kg_str key, int64_t ttl_ms, kg_store_result* now,
                             kg_store_op* op);
  kg_status (*incr)(void* provider, kg_str key, int64_t delta, int64_t ttl_ms, kg_store_result* now,
                    kg_store_op* op);
  kg_status (*get)(void* provider, kg_str key, kg_store_result* now, kg_store_op* op);
  kg_status (*put)(void* provider, kg_str key, kg_str value, int64_t ttl_ms, kg_store_result* now,
                   kg_store_op* op);
  kg_status (*del)(void* provider, kg_str key, kg_store_result* now, kg_store_op* op);
  /* The backend's state: KG_HEALTHY; KG_DEGRADED when some operations go to the fallback
   * (e.g. one connection of a pool down); KG_UNHEALTHY when it answers nothing (the host then
   * sends every operation to the fallback without calling the provider). When `detail` is
   * not NULL, also writes one line for /health saying why (never a secret). [any] Must be
   * cheap and never block. Call kg_host_api.store_provider_changed whenever it changes. */
  kg_health_status (*status)(void* provider, kg_sink_fn detail, void* detail_ud);
} kg_store_provider;

/* ---------------------------------------------------------------------------------------
 * The host API table. Host-owned, valid from create until destroy returns. Append-only.
 * ------------------------------------------------------------------------------------- */
typedef struct kg_host_api {
  uint32_t struct_size;
  uint16_t abi_major;
  uint16_t abi_minor;

  /* --- plugin-wide --------------------------------------------------------------------- */

  /* Writes one log line tagged with the plugin's name, and with the request id and trace id
   * when `req` is not NULL. [any] Never blocks. msg is copied. Never log secrets. */
  void (*log)(kg_plugin_ctx* ctx, kg_request* req, kg_log_level level, kg_str msg);

  /* The plugin's own config table as JSON text (env-expanded). [any] Borrowed, valid until
   * destroy. An empty object "{}" when the config has none. */
  kg_str (*config_json)(kg_plugin_ctx* ctx);

  /* Reads one config value by dotted path ("limits.free") as text (numbers and booleans are
   * formatted). [main] Returns KG_ERR_NOT_FOUND when absent. *out borrowed until destroy. */
  kg_status (*config_get)(kg_plugin_ctx* ctx, kg_str path, kg_str* out);

  /* Explains why create/start failed; shown in the host's exit-2 message. [main] Copied. */
  void (*set_error)(kg_plugin_ctx* ctx, kg_str reason);

  /* "dev" or "production". [any] Borrowed, static. */
  kg_str (*mode)(kg_plugin_ctx* ctx);

  /* --- registration: [main], during create only ---------------------------------------- */
  kg_status (*register_route)(kg_plugin_ctx* ctx, const kg_route* route);
  kg_status (*register_filter)(kg_plugin_ctx* ctx, const kg_filter* filter);
  kg_status (*register_observer)(kg_plugin_ctx* ctx, kg_observer_fn fn, void* user_data);
  kg_status (*register_task)(kg_plugin_ctx* ctx, const kg_task* task);
  kg_status (*set_health_reporter)(kg_plugin_ctx* ctx, kg_health_fn fn, void* user_data);

  /* Fills a health report. [any] details_json: a JSON object merged into this plugin's entry
   * in /health (may be empty). Copied. */
  void (*health_set)(kg_health* out, kg_health_status status, kg_str details_json);

  /* Long-running tasks: true once the host is stopping. [task] */
  int32_t (*stop_requested)(kg_stop* stop);
  /* Sleeps up to timeout_ms or until stop is requested; returns true if stopped. [task] */
  int32_t (*stop_wait)(kg_stop* stop, uint32_t timeout_ms);

  /* --- the request: [request], valid only inside the callback that got `req` ------------ */
  kg_str (*request_method)(kg_request* req);
  kg_str (*request_path)(kg_request* req);         /* without the query */
  kg_str (*request_query)(kg_request* req);        /* after '?', raw; may be empty */
  kg_str (*request_route)(kg_request* req);        /* matched template; empty if none matched */
  kg_str (*request_route_scopes)(kg_request* req); /* scopes the matched route requires */
  int32_t (*request_route_public)(kg_request* req);
  kg_str (*request_body)(kg_request* req);
  kg_str (*request_id)(kg_request* req);
  kg_str (*request_remote_addr)(kg_request* req); /* peer IP, text form */
  /* The W3C traceparent of this request (continued from the client's or started here); pass
   * it on outgoing calls (NATS headers, HTTP requests). */
  kg_str (*request_traceparent)(kg_request* req);
  /* The index-th value of a header (case-insensitive name), 0-based, so repeated headers can
   * be seen. KG_ERR_NOT_FOUND past the last one. */
  kg_status (*request_header)(kg_request* req, kg_str name, size_t index, kg_str* out);
  /* A path parameter of the matched template ("{channel}"), already percent-decoded. */
  kg_status (*request_param)(kg_request* req, kg_str name, kg_str* out);
  /* A query parameter, percent-decoded. First occurrence. */
  kg_status (*request_query_param)(kg_request* req, kg_str name, kg_str* out);

  /* Attaches the caller's identity (copied). Filters run after it and the handler see it;
   * the host enforces the route's scopes against it. */
  kg_status (*set_principal)(kg_request* req, const kg_principal* principal);
  /* KG_ERR_NOT_FOUND when nobody authenticated the request. */
  kg_status (*get_principal)(kg_request* req, kg_principal* out);

  /* Adds a header to whatever response this request gets (also errors, also from another
   * plugin's handler), e.g. rate-limit headers from a filter. Copied. */
  kg_status (*add_response_header)(kg_request* req, kg_str name, kg_str value);

  /* Answers now. Copied. Then return KG_OK. */
  kg_status (*respond)(kg_request* req, const kg_response* response);
  /* Answers with the contract's error JSON {"error":{"code","message","request_id"}}. */
  kg_status (*respond_error)(kg_request* req, uint16_t status, kg_str code, kg_str message);

  /* Takes a responder to answer later; then return KG_PENDING. [request]
   * Ownership: the plugin owns the responder until it calls complete, exactly once, from
   * any thread. Completing after the client left is a safe no-op. */
  kg_responder* (*defer)(kg_request* req);
  /* [any] Copies the response, then releases the responder. From a filter, status 0 means
   * "continue"; its headers are added to the eventual response. */
  void (*complete)(kg_responder* responder, const kg_response* response);
  /* [any] Completes with the contract's error JSON. Releases the responder. */
  void (*complete_error)(kg_responder* responder, uint16_t status, kg_str code, kg_str message);

  /* Starts a chunked response (status, content type and headers from `head`; body ignored);
   * then return KG_PENDING. [request] on_closed may be NULL.
   * Ownership: the plugin owns the stream until stream_close, exactly once, from any thread. */
  kg_stream* (*stream_begin)(kg_request* req, const kg_response* head,
                             kg_stream_closed_fn on_closed, void* user_data);
  /* Queues bytes on the stream. [any] Never blocks. KG_ERR_FULL when the stream's buffer is
   * over its bound (a slow client: drop data or close), KG_ERR_CLOSED when the client left. */
  kg_status (*stream_write)(kg_stream* stream, kg_str data);
  /* Ends the response and releases the stream. [any] */
  void (*stream_close)(kg_stream* stream);

  /* --- metrics ----------------------------------------------------------------------- */
  /* Creates or finds a metric family. [main] Returns NULL (with a log line) when the name is
   * invalid or registered with another kind or labels. */
  kg_metric* (*metric_new)(kg_plugin_ctx* ctx, const kg_metric_desc* desc);
  /* The series for these label values (count must match). [any] Look it up once and keep it;
   * valid until destroy. */
  kg_series* (*metric_series)(kg_metric* metric, const kg_str* label_values, size_t count);
  void (*series_add)(kg_series* series, double delta);     /* counters, gauges [any] */
  void (*series_set)(kg_series* series, double value);     /* gauges [any] */
  void (*series_observe)(kg_series* series, double value); /* histograms [any] */

  /* --- event bus (topics are dot-separated; patterns use `*` for one token, `>` for the
   * rest, like NATS subjects) ----------------------------------------------------------- */
  /* Publishes a copy to every matching subscription. [any] Never blocks: a subscriber whose
   * bounded queue is full loses the event (counted). id may be empty (the host makes one). */
  kg_status (*bus_publish)(kg_plugin_ctx* ctx, kg_str topic, kg_str data, kg_str id);
  /* [main] during create or start. */
  kg_status (*bus_subscribe)(kg_plugin_ctx* ctx, kg_str pattern, kg_bus_fn fn, void* user_data);

  /* --- shared store (memory or Redis) --------------------------------------------------
   * Keys live in the plugin's own key space: the host prefixes them with the plugin's name,
   * so two plugins using the same key never see each other's value (since 1.1, for every
   * plugin, 1.0-built ones included). For a key space shared between plugins see
   * store_shared (1.1).
   * Each call either answers at once — returns KG_OK and fills *now — or returns KG_PENDING
   * and calls `done` exactly once later from another thread. Any other return is an error
   * and `done` is not called. `done` may be NULL (fire and forget). now->data stays valid
   * until the next store call on the same thread. [any] Never blocks an I/O thread. */
  /* Sets key (value "1") with a TTL only if absent; result.created says whether it did. */
  kg_status (*store_check_and_set)(kg_plugin_ctx* ctx, kg_str key, int64_t ttl_ms,
                                   kg_store_result* now, kg_store_fn done, void* user_data);
  /* Atomically adds delta and, when the key was new, sets its TTL. Returns the new value and
   * the remaining TTL. */
  kg_status (*store_incr)(kg_plugin_ctx* ctx, kg_str key, int64_t delta, int64_t ttl_ms,
                          kg_store_result* now, kg_store_fn done, void* user_data);
  kg_status (*store_get)(kg_plugin_ctx* ctx, kg_str key, kg_store_result* now, kg_store_fn done,
                         void* user_data);
  /* ttl_ms 0: no expiry. */
  kg_status (*store_put)(kg_plugin_ctx* ctx, kg_str key, kg_str value, int64_t ttl_ms,
                         kg_store_result* now, kg_store_fn done, void* user_data);
  kg_status (*store_del)(kg_plugin_ctx* ctx, kg_str key, kg_store_result* now, kg_store_fn done,
                         void* user_data);

  /* --- durable queue --------------------------------------------------------------------
   * Opens (creating if needed) the plugin's queue `name` under the host's data directory.
   * [main] NULL on failure, with the reason logged and set as the plugin's error. */
  kg_queue* (*queue_open)(kg_plugin_ctx* ctx, kg_str name, const kg_queue_options* options);
  /* Appends a copy of data. [any] Never blocks: returns KG_PENDING and calls done once the
   * entry is on disk (or failed); KG_ERR_FULL at once when over the bound (answer 503). */
  kg_status (*queue_append)(kg_queue* queue, kg_str data, kg_append_fn done, void* user_data);
  /* Starts delivering entries to fn on the worker pool, one at a time, in order. [main]
   * during start. */
  kg_status (*queue_consume)(kg_queue* queue, kg_consume_fn fn, void* user_data);
  /* Entries waiting for delivery or retry. [any] */
  uint64_t (*queue_depth)(kg_queue* queue);
  /* Visits the dead letters, oldest first. [any] May block briefly (reads disk): not on an
   * I/O thread for large queues. */
  kg_status (*queue_list_dead)(kg_queue* queue, kg_entry_visit_fn visit, void* user_data);
  /* Moves a dead letter back to the queue with a fresh attempt count. [any] */
  kg_status (*queue_replay)(kg_queue* queue, uint64_t entry_id);

  /* --- host introspection (for observability plugins) --------------------------------- */
  /* Renders every metric of the host and all plugins in Prometheus text format. [any] */
  kg_status (*metrics_render)(kg_plugin_ctx* ctx, kg_sink_fn sink, void* user_data);
  /* Renders the /health document (host, store and every plugin's report) as JSON. [any] */
  kg_status (*health_render)(kg_plugin_ctx* ctx, kg_sink_fn sink, void* user_data);

  /* --- more host state ------------------------------------------------------------------ */
  /* The host's data directory (absolute or relative to the working directory). [any]
   * Borrowed, static. Durable state of a plugin belongs under <data_dir>/<plugin name>. */
  kg_str (*data_dir)(kg_plugin_ctx* ctx);
  /* The shared store's state: KG_HEALTHY, or KG_DEGRADED while its backend (Redis) is
   * unreachable and answers come from the per-process memory fallback. [any] */
  kg_health_status (*store_status)(kg_plugin_ctx* ctx);
  /* Inside a queue consumer call: why this attempt failed. Kept with the entry and shown
   * as last_error if it becomes a dead letter. [task] Copied. */
  void (*queue_fail_reason)(kg_str reason);
  /* Renders the contract's error JSON {"error":{"code","message","request_id"}} so that a
   * deferred answer can carry it together with its own headers (e.g. Retry-After). [any] */
  kg_status (*error_body)(kg_str code, kg_str message, kg_str request_id, kg_sink_fn sink,
                          void* user_data);

  /* --- 1.1 (2026-12) ---------------------------------------------------------------------- */

  /* The one way to answer with an error (status, code, message, headers), now or later.
   * Pass exactly one of `req` or `responder`:
   * - req: answers now, like respond; then return KG_OK. [request]
   * - responder: completes the deferred answer and releases the responder, like complete;
   *   from a filter too (the chain stops). [any]
   * KG_ERR_INVALID for a NULL error, a status outside 100..599, or both or neither of req and
   * responder (a responder is then still released, answered 500 internal_error). respond_error,
   * complete_error and error_body + complete remain for 1.0 plugins and do the same without
   * headers. */
  kg_status (*reply_error)(kg_request* req, kg_responder* responder, const kg_error* error);

  /* Registers an observer of stream ends: called once per stream when it ends, with
   * obs->kind KG_OBSERVED_STREAM_END, its duration, the body bytes it accepted and
   * obs->end_reason (meter SSE with it). [main] during create. The callback runs on [any]
   * thread (the one that ended the stream: an I/O thread, or the plugin's inside
   * stream_close); `req` may be read (headers, principal, request id) but not answered.
   * Must not block. Stream heads still reach register_observer observers (STREAM_START). */
  kg_status (*register_stream_observer)(kg_plugin_ctx* ctx, kg_observer_fn fn, void* user_data);

  /* Opens the store key space `name` ([a-z0-9_.-]+, 1..64), shared with every plugin that
   * opens the same name and separate from every plugin's own keys. [main] during create or
   * start; NULL for a bad name. Use it with the shared_* calls below, which
   * behave exactly like the store_* calls above. */
  kg_store_space* (*store_shared)(kg_plugin_ctx* ctx, kg_str name);
  kg_status (*shared_check_and_set)(kg_store_space* space, kg_str key, int64_t ttl_ms,
                                    kg_store_result* now, kg_store_fn done, void* user_data);
  kg_status (*shared_incr)(kg_store_space* space, kg_str key, int64_t delta, int64_t ttl_ms,
                           kg_store_result* now, kg_store_fn done, void* user_data);
  kg_status (*shared_get)(kg_store_space* space, kg_str key, kg_store_result* now, kg_store_fn done,
                          void* user_data);
  kg_status (*shared_put)(kg_store_space* space, kg_str key, kg_str value, int64_t ttl_ms,
                          kg_store_result* now, kg_store_fn done, void* user_data);
  kg_status (*shared_del)(kg_store_space* space, kg_str key, kg_store_result* now, kg_store_fn done,
                          void* user_data);

  /* Publishes like bus_publish, and calls done(ud, status) exactly once, from any thread,
   * after every matching subscriber's callback has returned for this event: KG_OK when all
   * returned KG_OK, KG_ERR_INTERNAL when one failed or the event was dropped for it (a full
   * subscriber queue, the bus stopping). At once, on the caller's thread, when nothing
   * matches. These deliveries never queue behind busy worker threads, so a queue consumer may
   * wait for done (with a bound) before it acknowledges its entry. Returns KG_OK, or
   * KG_ERR_INVALID for a bad topic (done is then not called). [any] */
  kg_status (*bus_publish_confirmed)(kg_plugin_ctx* ctx, kg_str topic, kg_str data, kg_str id,
                                     void (*done)(void* ud, kg_status status), void* ud);

  /* Writes one log line like log, with the members of `fields_json` (a JSON object, e.g.
   * {"status":200,"route":"/x"}) as fields of the line beside msg. A member never replaces
   * ts, level, plugin, msg, request_id or trace_id (it is dropped); fields_json that is not a
   * JSON object is ignored (the line is still written). [any] Never blocks. Copied. */
  void (*log_fields)(kg_plugin_ctx* ctx, kg_request* req, kg_log_level level, kg_str msg,
                     kg_str fields_json);
  /* --- 1.2 (2026-12): store providers (see kg_store_provider) ---------------------------- */

  /* Offers this plugin's store provider; the host uses it when [store] backend names this
   * plugin, and otherwise never calls it. [main] during create. The table is copied;
   * `provider` is passed back to every call and must stay valid until destroy. */
  kg_status (*register_store_provider)(kg_plugin_ctx* ctx, const kg_store_provider* table,
                                       void* provider);
  /* Completes an operation the provider answered with KG_PENDING, exactly once, and releases
   * `op`. [any] The result is copied; the caller's callback runs on this thread before it
   * returns, and may call the store again. */
  void (*store_complete)(kg_store_op* op, const kg_store_result* result);
  /* Tells the host the provider's status() changed: it reads it again, logs the outage or the
   * recovery and updates /health and kgents_store_backend_up. [any] Never blocks. */
  void (*store_provider_changed)(kg_plugin_ctx* ctx);

  /* --- 1.2 (2026-12): batch queue delivery --------------------------------------------- */

  /* Like queue_consume, but hands fn up to max_batch (>= 1) entries per call, so a consumer
   * can keep several in flight (e.g. pipeline its store round trips). One call at a time per
   * queue; at-least-once as with queue_consume. Use one or the other, once. [main] during
   * start. */
  kg_status (*queue_consume_batch)(kg_queue* queue, uint32_t max_batch, kg_consume_batch_fn fn,
                                   void* user_data);
} kg_host_api;

/* ---------------------------------------------------------------------------------------
 * The plugin descriptor
 * ------------------------------------------------------------------------------------- */
typedef uint32_t kg_plugin_flags;
#define KG_PLUGIN_DEV_ONLY 1u /* the host refuses to start with it in production mode */

typedef struct kg_plugin_descriptor {
  uint32_t struct_size;
  uint16_t abi_major; /* set to KG_ABI_MAJOR */
  uint16_t abi_minor; /* set to KG_ABI_MINOR */
  const char* name;   /* NUL-terminated, static: [a-z0-9_]+ */
  const char* version;
  const char* description;
  kg_plugin_flags flags;

  /* Creates an instance: read config, register routes/filters/tasks, open queues. [main]
   * `host` and `ctx` stay valid until destroy returns. Return KG_OK and set *instance, or an
   * error after host->set_error. */
  kg_status (*create)(const kg_host_api* host, kg_plugin_ctx* ctx, void** instance);
  /* Called after every plugin is created, in declared order, before traffic. [main] May be
   * NULL. Connect to backends here; an error fails start-up, or — for an optional plugin —
   * marks it unhealthy and takes it out of service: its routes answer 503 unavailable, its
   * filters, observers and tasks never run. */
  kg_status (*start)(void* instance);
  /* Called in reverse order when the host drains: flush what you can, quickly. [main] May be
   * NULL. No request callback runs after it returns; tasks are already stopped. */
  void (*stop)(void* instance);
  /* Frees the instance. [main] May be NULL. */
  void (*destroy)(void* instance);
} kg_plugin_descriptor;

/* The one exported symbol. Returns a descriptor with static lifetime. [main] */
#define KG_PLUGIN_ENTRY_SYMBOL "kghost_plugin_entry"
typedef const kg_plugin_descriptor* (*kg_plugin_entry_fn)(void);
KG_EXPORT const kg_plugin_descriptor* kghost_plugin_entry(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* KGHOST_PLUGIN_H */
