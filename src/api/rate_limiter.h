// RateLimiter: Zulip's per-user API rate limit (200 requests per 60 s by
// default), as Zulip counts it: a request is refused when the user already
// made `limit` requests in the last `window` seconds (a sliding log).
//
// Memory is proportional to the requests made in the last window (a ping a
// minute costs one entry per user); idle users are forgotten.
//
// Thread safety: Check may be called from any thread (sharded mutexes).
#ifndef PRESENCE_API_RATE_LIMITER_H_
#define PRESENCE_API_RATE_LIMITER_H_

#include <array>
#include <cstdint>
#include <deque>
#include <mutex>
#include <unordered_map>

#include "core/types.h"

namespace presence::api {

struct RateDecision {
  bool allowed = true;
  std::int64_t limit = 0;
  std::int64_t remaining = 0;
  double reset_unix = 0;   // when the full limit is available again
  double retry_after = 0;  // seconds to wait when refused
};

// The decision for one request given the user's log after counting it (or
// refusing it): `in_window` requests in the window, the oldest at
// `oldest_us`.
RateDecision MakeRateDecision(std::int64_t limit, std::int64_t window_us,
                              std::int64_t now_us, bool allowed,
                              std::int64_t in_window, std::int64_t oldest_us);

class RateLimiter {
 public:
  // `limit` requests per `window_seconds`; a limit of 0 disables limiting.
  RateLimiter(std::int64_t limit, std::int64_t window_seconds);

  // Counts one request of `user` at `now_us` (real time, unix microseconds).
  // A refused request is not counted.
  RateDecision Check(UserId user, std::int64_t now_us);

  bool enabled() const { return limit_ > 0; }
  std::int64_t limit() const { return limit_; }
  std::int64_t window_us() const { return window_us_; }

 private:
  struct Shard {
    std::mutex mu;
    std::unordered_map<UserId, std::deque<std::int64_t>> log;
    std::int64_t last_sweep = 0;
  };
  const std::int64_t limit_;
  const std::int64_t window_us_;
  std::array<Shard, 16> shards_;
};

}  // namespace presence::api

#endif  // PRESENCE_API_RATE_LIMITER_H_
