#include "client/backoff.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>

namespace presence::client {

Backoff::Backoff(BackoffPolicy policy, Uniform uniform)
    : policy_(policy), uniform_(std::move(uniform)) {
  if (!uniform_) {
    auto rng = std::make_shared<std::mt19937_64>(std::random_device{}());
    uniform_ = [rng] {
      return std::uniform_real_distribution<double>(0.0, 1.0)(*rng);
    };
  }
}

Micros Backoff::Ceiling() const {
  const double ceiling = static_cast<double>(policy_.initial) *
                         std::pow(policy_.multiplier, failures_);
  if (!(ceiling < static_cast<double>(policy_.max))) return policy_.max;
  return static_cast<Micros>(ceiling);
}

Micros Backoff::NextDelay() {
  const Micros ceiling = Ceiling();
  ++failures_;
  // Once the ceiling is reached the exponent stops mattering; capping the
  // count keeps pow() finite however long the outage.
  failures_ = std::min(failures_, 64);
  const double u = std::clamp(uniform_(), 0.0, 1.0);
  return std::min(static_cast<Micros>(u * static_cast<double>(ceiling)),
                  ceiling > 0 ? ceiling - 1 : 0);
}

}  // namespace presence::client
