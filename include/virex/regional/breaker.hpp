// A circuit breaker for the regional tier (sans-IO, time passed in): `failures` consecutive failed commands
// (errors, timeouts, lost connections) open it; while open every request skips the tier; after `open_for` one
// request is let through as a probe (half-open) and its outcome closes or re-opens the breaker.
// Single-threaded: one per regional client, on its worker.
#pragma once

#include <chrono>
#include <cstdint>

namespace virex::regional {

struct BreakerOptions {
  unsigned failures = 5;                                      // consecutive failures that open it (>= 1)
  std::chrono::milliseconds open_for{1000};                   // open this long before the half-open probe
};

class Breaker {
 public:
  enum class State : std::uint8_t { closed = 0, open = 1, half_open = 2 };
  using Clock = std::chrono::steady_clock;

  explicit Breaker(BreakerOptions o = {}) : o_(o) {}

  // May a request use the tier now? Closed: yes. Open: no, until open_for has passed; then the breaker goes
  // half-open and this call (only this one) returns true — the probe. Half-open with the probe out: no.
  bool allow(Clock::time_point now) noexcept {
    switch (state_) {
      case State::closed: return true;
      case State::open:
        if (now < reopen_at_) return false;
        state_ = State::half_open;
        probing_ = true;
        return true;
      case State::half_open:
        if (probing_) return false;
        probing_ = true;
        return true;
    }
    return false;
  }
  void success() noexcept {
    consecutive_ = 0;
    probing_ = false;
    state_ = State::closed;
  }
  void failure(Clock::time_point now) noexcept {
    probing_ = false;
    if (state_ == State::half_open || ++consecutive_ >= o_.failures) {
      state_ = State::open;
      reopen_at_ = now + o_.open_for;
      consecutive_ = 0;
    }
  }
  State state() const noexcept { return state_; }

 private:
  BreakerOptions o_;
  State state_ = State::closed;
  bool probing_ = false;
  unsigned consecutive_ = 0;
  Clock::time_point reopen_at_{};
};

}  // namespace virex::regional
