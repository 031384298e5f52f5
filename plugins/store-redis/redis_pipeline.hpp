// How the Redis provider's requests become pipelined Redis commands and their replies become
// results: plain commands only (no scripts), the atomic ones inside MULTI/EXEC, and increments
// of one hot key coalesced into a single command.
#pragma once

#include <kghost/plugin.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <string_view>
#include <unordered_map>
#include <vector>

struct redisContext;
struct redisReply;

namespace store_redis {

enum class Op { check_and_set, incr, get, put, del };

// One queued store operation. The key and value stay valid until it is completed.
struct Request {
  Op op;
  kg_str key;
  kg_str value;
  int64_t delta = 0;
  int64_t ttl_ms = 0;
  kg_store_op* token = nullptr;
  std::chrono::steady_clock::time_point enqueued;
};

// Completes one request with its result (the result's bytes live only during the call).
using Complete = std::function<void(const Request&, const kg_store_result&)>;

// Writes requests to one connection and answers them from the replies. Owned by the
// connection's thread; reuses its buffers from one batch to the next.
class Pipeline {
 public:
  explicit Pipeline(Complete complete) : complete_(std::move(complete)) {}

  // Sends `reqs` on `ctx` (in as few round trips as the plan allows) and completes every one
  // answered by Redis. Returns false on an I/O error: the requests whose outcome is unknown
  // (or that were never sent) are moved to `unanswered`, for the caller to hand back.
  bool send(redisContext* ctx, std::vector<Request>& reqs, std::vector<Request>& unanswered,
            bool coalesce = true);

 private:
  static constexpr std::size_t kEnd = static_cast<std::size_t>(-1);

  // One command written to Redis: one request, or several coalesced increments of one key.
  struct Command {
    std::size_t first = 0;  // index of the first member in the requests
    std::size_t last = 0;   // the last member; members are linked through next_
    std::size_t count = 1;
    int64_t delta = 0;  // incr: the members' summed delta
  };

  std::size_t plan(const std::vector<Request>& reqs, std::size_t begin, bool coalesce);
  static bool joins(const Command& cmd, const Request& head, const Request& req);
  static void append(redisContext* ctx, const Request& head, int64_t delta);
  void answer(const std::vector<Request>& reqs, const Command& cmd, const redisReply* r,
              std::vector<Request>& retry) const;
  void answer_incr(const std::vector<Request>& reqs, const Command& cmd, const redisReply* r,
                   std::vector<Request>& retry) const;
  void give_up(std::vector<Request>& reqs, std::size_t from_command, std::size_t end,
               std::vector<Request>& retry, std::vector<Request>& unanswered) const;

  Complete complete_;
  std::vector<Command> commands_;
  std::vector<std::size_t> next_;  // the next member of the same command, kEnd after the last
  std::unordered_map<std::string_view, std::size_t> last_;  // key -> its latest command
};

}  // namespace store_redis
