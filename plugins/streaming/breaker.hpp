// streaming: the circuit breaker in front of JetStream publishes. Pure and single-threaded (the
// publisher guards it with its lock); time is passed in so tests drive it without sleeping.
//
//   closed --(N consecutive failures)--> open --(open_for elapsed)--> half_open
//   half_open --(probe acked)--> closed;  half_open --(probe failed)--> open
//
// A failure is a negative or missing JetStream ack or an ack timeout, never a publish call's
// return code (cnats buffers while reconnecting and its calls return OK meanwhile).
#pragma once

#include <chrono>

namespace kghost::streaming {

class Breaker {
 public:
  using Clock = std::chrono::steady_clock;
  enum class State { closed = 0, open = 1, half_open = 2 };  // = kgents_nats_circuit_state

  Breaker(int threshold, std::chrono::milliseconds open_for)
      : threshold_(threshold < 1 ? 1 : threshold), open_for_(open_for) {}

  // The state at `now` (open turns half_open once open_for has passed).
  State state(Clock::time_point now) {
    if (state_ == State::open && now >= open_until_) state_ = State::half_open;
    return state_;
  }
  // Publishes allowed at once: unlimited when closed, one probe when half-open, none when open.
  bool closed(Clock::time_point now) { return state(now) == State::closed; }

  void on_success() {
    state_ = State::closed;
    failures_ = 0;
  }
  // Returns true when this failure opened the breaker.
  bool on_failure(Clock::time_point now) {
    ++failures_;
    State s = state(now);
    if (s == State::half_open || (s == State::closed && failures_ >= threshold_)) {
      state_ = State::open;
      open_until_ = now + open_for_;
      return true;
    }
    return false;
  }
  int consecutive_failures() const { return failures_; }
  Clock::time_point open_until() const { return open_until_; }

  static const char* name(State s) {
    switch (s) {
      case State::closed:
        return "closed";
      case State::open:
        return "open";
      case State::half_open:
        return "half_open";
    }
    return "closed";
  }

 private:
  int threshold_;
  std::chrono::milliseconds open_for_;
  State state_ = State::closed;
  int failures_ = 0;
  Clock::time_point open_until_{};
};

}  // namespace kghost::streaming
