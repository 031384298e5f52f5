// Calling the host store from a request filter when the answer may come now or later.
//
// The store answers at once (memory backend: the SDK returns a value) or later (Redis: the SDK
// returns nullopt and runs `later` once, on another thread, possibly before the store call has
// even returned to us). A filter must defer BEFORE it returns Flow::pending, but deferring up
// front costs a responder and a post to the I/O thread on every request of the memory path.
//
// So the filter and the store callback meet in a small shared rendezvous guarded by its mutex:
//   - the store call answers now          -> handle it inline (`now`), no defer at all;
//   - it returns nullopt, callback not yet -> the filter defers and parks the responder; the
//                                             callback takes it and finishes (`later`);
//   - it returns nullopt, callback already -> the result is parked; the filter handles it
//     ran (raced ahead on another thread)     inline (`now`), still without deferring.
// Whoever comes second finishes; exactly one of `now` / `later` runs, exactly once. Completing
// the responder before the filter has returned Flow::pending is safe: the host posts the
// completion to the request's I/O thread (plugin.h: complete is [any]).
//
// Candidate for the SDK (kghost::sdk::Host::incr_in_filter or similar).
#pragma once

#include <functional>
#include <kghost/plugin.hpp>
#include <memory>
#include <mutex>
#include <optional>

namespace kghost::auth {

using sdk::Flow;
using sdk::Request;
using sdk::Responder;
using sdk::StoreResult;

// `call(later)` performs one store operation via the SDK (returning its optional result).
// `now(req, result)` runs on the request thread and returns the filter's Flow.
// `later(responder, result)` runs on the store's thread and must complete the responder.
template <class Call, class Now, class Later>
Flow store_in_filter(Request& req, Call&& call, Now&& now, Later later) {
  struct Rendezvous {
    std::mutex mu;                      // guards everything below
    std::optional<StoreResult> result;  // the callback came first: its result, for the filter
    Responder responder;                // the filter deferred first: its responder
    bool deferred = false;
  };
  auto rv = std::make_shared<Rendezvous>();
  std::optional<StoreResult> answer =
      call([rv, later = std::move(later)](const StoreResult& r) mutable {
        std::unique_lock lock(rv->mu);
        if (!rv->deferred) {
          rv->result = r;
          return;
        }
        Responder responder = std::move(rv->responder);
        lock.unlock();
        later(responder, r);
      });
  if (answer) return now(req, *answer);

  std::unique_lock lock(rv->mu);
  if (rv->result) {
    StoreResult r = std::move(*rv->result);
    lock.unlock();
    return now(req, r);
  }
  rv->responder = req.defer();
  rv->deferred = true;
  return Flow::pending;
}

}  // namespace kghost::auth
