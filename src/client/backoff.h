// Backoff: exponential backoff with full jitter, for reconnecting.
//
// The n-th consecutive failure (n = 0, 1, ...) waits a uniformly random time
// in [0, min(max, initial * multiplier^n)) ("full jitter", as in AWS's
// "Exponential Backoff And Jitter"). When a server restarts, every client
// loses its connection at the same instant; without jitter they would all
// come back in the same instant again, and again after each failure. Full
// jitter spreads them evenly over the whole window. Success calls Reset().
//
// The random source is injected (a function returning values in [0, 1)) so
// that tests can pin it.
//
// Thread safety: none; one owner.
#ifndef PRESENCE_CLIENT_BACKOFF_H_
#define PRESENCE_CLIENT_BACKOFF_H_

#include <functional>

#include "util/clock.h"

namespace presence::client {

struct BackoffPolicy {
  Micros initial = SecondsToMicros(1);
  Micros max = SecondsToMicros(60);
  double multiplier = 2.0;
};

class Backoff {
 public:
  // Returns values in [0, 1).
  using Uniform = std::function<double()>;

  // `uniform` may be empty: a std::mt19937_64 seeded from std::random_device
  // is used then.
  explicit Backoff(BackoffPolicy policy = {}, Uniform uniform = {});

  // The delay before the next attempt; counts one more failure.
  Micros NextDelay();

  // The window the next NextDelay() draws from: min(max, initial * m^n).
  Micros Ceiling() const;

  // After a success: the next failure starts from `initial` again.
  void Reset() { failures_ = 0; }

  int failures() const { return failures_; }
  const BackoffPolicy& policy() const { return policy_; }

 private:
  BackoffPolicy policy_;
  Uniform uniform_;
  int failures_ = 0;
};

}  // namespace presence::client

#endif  // PRESENCE_CLIENT_BACKOFF_H_
