#include "redis_pipeline.hpp"

#include <hiredis/hiredis.h>

#include <charconv>
#include <memory>

namespace store_redis {
namespace {

// Commands written before the replies are read.
constexpr std::size_t kMaxCommands = 1024;

std::string_view sv(kg_str s) { return {s.ptr, s.len}; }

struct ReplyDeleter {
  void operator()(redisReply* r) const {
    if (r) freeReplyObject(r);
  }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

// The replies one command produces: the atomic ones are MULTI, each queued command, EXEC.
int reply_count(const Request& head) {
  switch (head.op) {
    case Op::incr:
      return head.ttl_ms > 0 ? 5 : 4;
    case Op::get:
      return 4;
    default:
      return 1;
  }
}

kg_store_result fresh_result() {
  kg_store_result out{};
  out.struct_size = sizeof out;
  return out;
}

int64_t ttl_of(const redisReply* pttl) { return pttl->integer < 0 ? -1 : pttl->integer; }

constexpr std::string_view kUnexpected = "unexpected reply from redis";

}  // namespace

bool Pipeline::send(redisContext* ctx, std::vector<Request>& reqs, std::vector<Request>& unanswered,
                    bool coalesce) {
  std::vector<Request> retry;
  std::size_t begin = 0;
  while (begin < reqs.size()) {
    const std::size_t end = plan(reqs, begin, coalesce);
    for (const Command& cmd : commands_) append(ctx, reqs[cmd.first], cmd.delta);
    for (std::size_t k = 0; k < commands_.size(); ++k) {
      // The last reply is the command's (EXEC's for a transaction; MULTI's +OK and the
      // +QUEUED ones say nothing more), unless one before it was an error: a command refused
      // while queueing (OOM, READONLY) aborts the transaction, and its text says why.
      ReplyPtr reply;
      for (int n = reply_count(reqs[commands_[k].first]); n > 0; --n) {
        void* raw = nullptr;
        if (redisGetReply(ctx, &raw) != REDIS_OK) {
          // Lost or timed out: the outcome of the unanswered commands is unknown; the host
          // answers them from its fallback. They are never sent again, so never counted twice.
          give_up(reqs, k, end, retry, unanswered);
          return false;
        }
        ReplyPtr next(static_cast<redisReply*>(raw));
        if (!reply || reply->type != REDIS_REPLY_ERROR) reply = std::move(next);
      }
      answer(reqs, commands_[k], reply.get(), retry);
    }
    // Coalesced increments Redis refused (overflow, not a number) run again one by one, so each
    // gets what it would have had alone; the plan put nothing else on their keys before that.
    if (!retry.empty()) {
      if (!send(ctx, retry, unanswered, false)) {
        for (std::size_t i = end; i < reqs.size(); ++i) unanswered.push_back(reqs[i]);
        return false;
      }
      retry.clear();
    }
    begin = end;
  }
  return true;
}

void Pipeline::give_up(std::vector<Request>& reqs, std::size_t from_command, std::size_t end,
                       std::vector<Request>& retry, std::vector<Request>& unanswered) const {
  for (std::size_t k = from_command; k < commands_.size(); ++k)
    for (std::size_t m = commands_[k].first; m != kEnd; m = next_[m]) unanswered.push_back(reqs[m]);
  for (Request& r : retry) unanswered.push_back(r);  // refused by Redis, so not applied
  for (std::size_t i = end; i < reqs.size(); ++i) unanswered.push_back(reqs[i]);
}

// Turns reqs[begin..] into commands_ and returns where it stopped. With `coalesce`, an incr
// joins the previous command on its key when that is an incr it can be summed with (see joins).
// Why the sum is exact: the members were queued consecutively for their key, nothing else on
// the key comes between them, and one atomic INCRBY of their sum moves the counter exactly as
// running them back to back would; so with final value v, member i (deltas d1..dn in queue
// order) gets v - (d_{i+1} + ... + d_n), every intermediate value of that sequential run. All
// get the one PTTL. The plan stops before anything else on the key of a coalesced command, so
// a refused sum can be retried one by one (see send) in the same order as sequential calls.
std::size_t Pipeline::plan(const std::vector<Request>& reqs, std::size_t begin, bool coalesce) {
  commands_.clear();
  last_.clear();
  next_.assign(reqs.size(), kEnd);
  std::size_t i = begin;
  for (; i < reqs.size() && commands_.size() < kMaxCommands; ++i) {
    const Request& req = reqs[i];
    if (coalesce) {
      auto [it, fresh] = last_.try_emplace(sv(req.key), commands_.size());
      if (!fresh) {
        Command& prev = commands_[it->second];
        if (joins(prev, reqs[prev.first], req)) {
          next_[prev.last] = i;
          prev.last = i;
          ++prev.count;
          prev.delta += req.delta;
          continue;
        }
        if (prev.count > 1) break;
        it->second = commands_.size();
      }
    }
    commands_.push_back(Command{i, i, 1, req.delta});
  }
  return i;
}

// An incr joins an incr of the same key and TTL when the sum keeps one sign and fits: then
// every intermediate value lies between the first and the final one, so none can overflow
// where the sequential run would not have.
bool Pipeline::joins(const Command& cmd, const Request& head, const Request& req) {
  if (req.op != Op::incr || head.op != Op::incr || req.ttl_ms != head.ttl_ms) return false;
  int64_t sum = 0;
  if (__builtin_add_overflow(cmd.delta, req.delta, &sum)) return false;
  return (req.delta >= 0 && cmd.delta >= 0) || (req.delta <= 0 && cmd.delta <= 0);
}

// incr: MULTI, SET key 0 NX PX ttl (creates the key with its TTL only when it does not exist,
// so a running window is never extended and a key without TTL never gets one), INCRBY, PTTL,
// EXEC. get: MULTI, GET, PTTL, EXEC. The others are single atomic commands.
void Pipeline::append(redisContext* ctx, const Request& head, int64_t delta) {
  char num[2][24];
  auto text = [&](int slot, int64_t v) {
    auto [p, ec] = std::to_chars(num[slot], num[slot] + 24, v);
    (void)ec;
    return std::string_view(num[slot], static_cast<std::size_t>(p - num[slot]));
  };
  auto cmd = [&](std::initializer_list<std::string_view> args) {
    const char* argv[6];
    size_t lens[6];
    int argc = 0;
    for (auto a : args) {
      argv[argc] = a.data();
      lens[argc++] = a.size();
    }
    redisAppendCommandArgv(ctx, argc, argv, lens);
  };
  const std::string_view key = sv(head.key);
  const bool ttl = head.ttl_ms > 0;
  switch (head.op) {
    case Op::check_and_set:
      if (ttl) return cmd({"SET", key, "1", "NX", "PX", text(0, head.ttl_ms)});
      return cmd({"SET", key, "1", "NX"});
    case Op::incr:
      cmd({"MULTI"});
      if (ttl) cmd({"SET", key, "0", "NX", "PX", text(0, head.ttl_ms)});
      cmd({"INCRBY", key, text(1, delta)});
      cmd({"PTTL", key});
      return cmd({"EXEC"});
    case Op::get:
      cmd({"MULTI"}), cmd({"GET", key}), cmd({"PTTL", key});
      return cmd({"EXEC"});
    case Op::put:
      if (ttl) return cmd({"SET", key, sv(head.value), "PX", text(0, head.ttl_ms)});
      return cmd({"SET", key, sv(head.value)});
    case Op::del:
      return cmd({"DEL", key});
  }
}

void Pipeline::answer(const std::vector<Request>& reqs, const Command& cmd, const redisReply* r,
                      std::vector<Request>& retry) const {
  const Request& req = reqs[cmd.first];
  if (req.op == Op::incr) return answer_incr(reqs, cmd, r, retry);
  kg_store_result out = fresh_result();
  auto fail = [&](std::string_view why) {
    out.status = KG_ERR_INTERNAL;
    out.data = {why.data(), why.size()};
    complete_(req, out);
  };
  // Redis error texts name the problem, never the stored value.
  if (r->type == REDIS_REPLY_ERROR) return fail({r->str, r->len});
  switch (req.op) {
    case Op::check_and_set:
      if (r->type == REDIS_REPLY_STATUS)
        out.created = 1;
      else if (r->type != REDIS_REPLY_NIL)
        return fail(kUnexpected);
      break;
    case Op::get: {
      if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
          r->element[1]->type != REDIS_REPLY_INTEGER)
        return fail(kUnexpected);
      const redisReply* value = r->element[0];
      if (value->type == REDIS_REPLY_ERROR) return fail({value->str, value->len});
      if (value->type == REDIS_REPLY_NIL) {
        out.status = KG_ERR_NOT_FOUND;
        break;
      }
      if (value->type != REDIS_REPLY_STRING) return fail(kUnexpected);
      out.data = {value->str, value->len};
      out.ttl_ms = ttl_of(r->element[1]);
      break;
    }
    case Op::put:
      if (r->type != REDIS_REPLY_STATUS) return fail(kUnexpected);
      break;
    case Op::del:
      if (r->type != REDIS_REPLY_INTEGER) return fail(kUnexpected);
      if (r->integer == 0) out.status = KG_ERR_NOT_FOUND;
      break;
    case Op::incr:
      break;
  }
  complete_(req, out);
}

// EXEC's reply to [SET NX PX,] INCRBY, PTTL: the final value and TTL; each member's value is
// the final one minus the deltas queued after it (see plan).
void Pipeline::answer_incr(const std::vector<Request>& reqs, const Command& cmd,
                           const redisReply* r, std::vector<Request>& retry) const {
  kg_store_result out = fresh_result();
  auto fail = [&](std::string_view why) {
    out.status = KG_ERR_INTERNAL;
    out.data = {why.data(), why.size()};
    for (std::size_t m = cmd.first; m != kEnd; m = next_[m]) complete_(reqs[m], out);
  };
  if (r->type == REDIS_REPLY_ERROR) return fail({r->str, r->len});
  const std::size_t n = reqs[cmd.first].ttl_ms > 0 ? 3 : 2;
  if (r->type != REDIS_REPLY_ARRAY || r->elements != n) return fail(kUnexpected);
  const redisReply* value = r->element[n - 2];
  const redisReply* pttl = r->element[n - 1];
  if (value->type == REDIS_REPLY_ERROR && cmd.count > 1) {
    for (std::size_t m = cmd.first; m != kEnd; m = next_[m]) retry.push_back(reqs[m]);
    return;
  }
  if (value->type == REDIS_REPLY_ERROR) return fail({value->str, value->len});
  if (value->type != REDIS_REPLY_INTEGER || pttl->type != REDIS_REPLY_INTEGER)
    return fail(kUnexpected);
  out.ttl_ms = ttl_of(pttl);
  int64_t after = cmd.delta;  // the deltas of the members after m
  for (std::size_t m = cmd.first; m != kEnd; m = next_[m]) {
    after -= reqs[m].delta;
    out.value = value->integer - after;
    complete_(reqs[m], out);
  }
}

}  // namespace store_redis
