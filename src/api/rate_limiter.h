// RateLimiter: Zulip's per-user API rate limit (200 requests per 60 s by
// default), as Zulip counts it: a request is refused when the user already
// made `limit` requests in the last `window` seconds (a sliding log).
//
// Memory (issue #17): a realm where everyone pings once a minute keeps a log
// for every user, so a log must be small. Each shard keeps one open-addressing
// map from user to a 16-byte inline log that holds up to three request
// times (the oldest in full, the two newer ones as 32-bit offsets from it):
// 24 bytes a slot, 29 to 57 bytes a user with the table's free slots (50
// measured at a million users, bench/memory.sh).
// Only a user with more than three requests in the window gets a heap log
// (a vector of times, in the shard's `spilled` map); it goes back inline
// when its requests leave the window. Users with nothing left in the window
// are forgotten once per window (the sweep), and a table that emptied out
// gives its memory back.
//
// A wall clock that steps back: a request is logged at the newest time
// already logged for its user, never before it (so the log stays ordered);
// it is still judged at its own time.
//
// Thread safety: Check may be called from any thread. Users are spread over
// 16 shards; each shard's mutex guards that shard's logs and sweep time
// (checked by the clang-tsa build). The other members are immutable.
#ifndef PRESENCE_API_RATE_LIMITER_H_
#define PRESENCE_API_RATE_LIMITER_H_

#include <array>
#include <boost/unordered/unordered_flat_map.hpp>
#include <cstddef>
#include <cstdint>
#include <vector>

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

  // What the limiter holds, summed over the shards (tests, benchmarks).
  struct Usage {
    std::size_t users = 0;    // users with a log
    std::size_t spilled = 0;  // of them, users whose log is on the heap
    std::size_t bytes = 0;    // table slots and heap logs, approximately
  };
  Usage usage() const;

  // Requests a log holds in place before it spills to the heap.
  static constexpr int kInline = 3;

 private:
  // A user's log while it holds at most kInline requests: the oldest time
  // and the others' offsets from it (kEmpty when absent), in order. A log
  // with more has first == kSpilled and its times in Shard::spilled.
  struct Log {
    std::int64_t oldest = 0;
    std::uint32_t first = kEmpty;
    std::uint32_t second = kEmpty;
  };
  static constexpr std::uint32_t kEmpty = 0xffff'fffe;
  static constexpr std::uint32_t kSpilled = 0xffff'ffff;
  // A heap log: times[head..] are the requests in order (the prefix before
  // head has left the window and is dropped now and then).
  struct HeapLog {
    std::vector<std::int64_t> times;
    std::size_t head = 0;
  };
  struct Shard {
    // Guards logs, spilled and last_sweep.
    mutable Mutex mu;
    boost::unordered_flat_map<UserId, Log> logs GUARDED_BY(mu);
    boost::unordered_flat_map<UserId, HeapLog> spilled GUARDED_BY(mu);
    std::int64_t last_sweep GUARDED_BY(mu) = 0;
  };

  // Forgets the users of `shard` with nothing after `horizon` and gives
  // back the memory of a table that emptied out.
  static void SweepLocked(Shard& shard, std::int64_t horizon)
      REQUIRES(shard.mu);

  const std::int64_t limit_;
  const std::int64_t window_us_;
  // kInline, or 1 when the window is too long for 32-bit offsets.
  const int inline_capacity_;
  std::array<Shard, 16> shards_;
};

}  // namespace presence::api

#endif  // PRESENCE_API_RATE_LIMITER_H_
