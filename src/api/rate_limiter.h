// RateLimiter: Zulip's per-user API rate limit (200 requests per 60 s by
// default), as Zulip counts it: a request is refused when the user already
// made `limit` requests in the last `window` seconds (a sliding log).
//
// Memory is proportional to the requests made in the last window (a ping a
// minute costs one entry per user); idle users are forgotten.
//
// Thread safety: Check may be called from any thread. Users are spread over
// 16 shards; each shard's mutex guards that shard's logs and sweep time
// (checked by the clang-tsa build). The other members are immutable.
#ifndef PRESENCE_API_RATE_LIMITER_H_
#define PRESENCE_API_RATE_LIMITER_H_

#include <array>
#include <cstdint>
#include <deque>
#include <unordered_map>

#include "core/types.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

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
    // Guards log and last_sweep.
    Mutex mu;
    std::unordered_map<UserId, std::deque<std::int64_t>> log GUARDED_BY(mu);
    std::int64_t last_sweep GUARDED_BY(mu) = 0;
  };
  const std::int64_t limit_;
  const std::int64_t window_us_;
  std::array<Shard, 16> shards_;
};

}  // namespace presence::api

#endif  // PRESENCE_API_RATE_LIMITER_H_
