// RateLimiter: Zulip's per-user API rate limit (200 requests per 60 s by
// default), as Zulip counts it: a request is refused when the user already
// made `limit` requests in the last `window` seconds (a sliding log).
//
// Memory (issue #17): a realm where everyone pings once a minute keeps a log
// for every user, so a log must be small. Users are grouped in pages of 256
// consecutive ids (Zulip's ids are dense); a page holds one 8-byte slot a
// user: up to two request times as 32-bit microsecond offsets from the
// page's base time (empty, or "spilled", markers otherwise). A page exists
// while one of its users has a request in the window, so when everyone is
// online a user costs 8 bytes (plus 1/256 of a page's header); a user who
// pings once a minute never needs more. Only a user with more than two
// requests in the window (or a time the offsets cannot hold: a clock that
// jumped) gets a heap log (a ring of full times, in the shard's `spilled`
// map); it goes back in place as soon as its requests fit again. A ring is
// allocated as large as the limit (at most kRingStart) when the user first
// spills, so a steady user's memory does not grow while its window fills:
// the server's memory is flat as soon as its users are active, not a
// window later. Beyond kRingStart a ring doubles, up to the limit. Once per
// window each shard forgets the requests that left it, frees the pages that
// emptied out, and moves each page's base up before offsets would overflow.
//
// A wall clock that steps back: a request is logged at the newest time
// already logged for its user, never before it (so the log stays ordered);
// it is still judged at its own time.
//
// Thread safety: Check may be called from any thread. Pages are spread over
// 16 shards; each shard's mutex guards that shard's pages, heap logs and
// sweep time (checked by the clang-tsa build). The other members are
// immutable.
#ifndef PRESENCE_API_RATE_LIMITER_H_
#define PRESENCE_API_RATE_LIMITER_H_

#include <array>
#include <boost/unordered/unordered_flat_map.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
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

  // What the limiter holds, summed over the shards (/metrics, tests,
  // benchmarks). Takes each shard's lock in turn, for a walk of its pages
  // (a page per 256 users with a log), not of its users.
  struct Usage {
    std::size_t users = 0;       // users with a log
    std::size_t pages = 0;       // pages allocated
    std::size_t spilled = 0;     // of them, users whose log is on the heap
    std::size_t bytes = 0;       // table slots and heap logs, approximately
    std::size_t ring_bytes = 0;  // of them, the heap logs' rings
  };
  Usage usage() const;
  // The heap logs' ring slots counted one by one (usage() keeps a count of
  // them as they are allocated and freed): tests check the two agree.
  std::size_t RingSlotsByWalkForTesting() const;

  // Requests a log holds in place before it spills to the heap.
  static constexpr int kInline = 2;
  // Users a page holds (consecutive ids).
  static constexpr int kPageUsers = 256;
  // Times a heap log holds when it is first allocated (or the limit, if
  // that is less).
  static constexpr std::size_t kRingStart = 256;

 private:
  // A user's log while it holds at most kInline requests: their offsets
  // from the page's base, in order (kEmpty when absent). first == kSpilled:
  // the log is in Shard::spilled.
  struct Slot {
    std::uint32_t first = kEmpty;
    std::uint32_t second = kEmpty;
  };
  static constexpr std::uint32_t kEmpty = 0xffff'fffe;
  static constexpr std::uint32_t kSpilled = 0xffff'ffff;
  // Offsets below this are times; the sweep moves a base older than half of
  // it up.
  static constexpr std::int64_t kOffsetRange = kEmpty;
  struct Page {
    std::int64_t base = 0;   // the time offset 0 stands for
    std::uint32_t used = 0;  // slots that are not empty
    std::array<Slot, kPageUsers> slots;
  };
  // A heap log: a ring of `size` request times in order, the oldest at
  // `head`; it never holds more than the limit. The oldest and the newest
  // time are also kept beside the ring (valid while size > 0): a heavy
  // user's ring is read once a request, long after its oldest time was
  // written, so reading it there cost a cache miss or two a request
  // (RateLimiter::Check was the largest user-space symbol of a
  // keep-alive ping at 10k users, issue #17). Now the ring is read only
  // when a time leaves the window.
  struct HeapLog {
    std::unique_ptr<std::int64_t[]> ring;
    std::size_t capacity = 0;
    std::size_t head = 0;
    std::size_t size = 0;
    std::int64_t oldest = 0;  // ring[head]
    std::int64_t newest = 0;  // ring[Index(size - 1)]

    std::int64_t front() const { return oldest; }
    std::int64_t back() const { return newest; }
    std::int64_t at(std::size_t i) const { return ring[Index(i)]; }
    void pop_front() {
      head = head + 1 == capacity ? 0 : head + 1;
      --size;
      if (size > 0) oldest = ring[head];
    }
    // Adds `t` at the back; doubles the ring (up to `max_capacity`) when it
    // is full.
    void push_back(std::int64_t t, std::size_t max_capacity);
    // Replaces the log with `times[0..n)`, in a ring of at least
    // `min_capacity` (and n).
    void Assign(const std::int64_t* times, std::size_t n,
                std::size_t min_capacity);

   private:
    std::size_t Index(std::size_t i) const {
      const std::size_t at = head + i;
      return at >= capacity ? at - capacity : at;
    }
  };
  struct Shard {
    // Guards pages, spilled, last_sweep and ring_slots.
    mutable Mutex mu;
    boost::unordered_flat_map<std::int64_t, std::unique_ptr<Page>> pages
        GUARDED_BY(mu);
    boost::unordered_flat_map<UserId, HeapLog> spilled GUARDED_BY(mu);
    std::int64_t last_sweep GUARDED_BY(mu) = 0;
    // The capacities of the heap logs in `spilled`, summed.
    std::size_t ring_slots GUARDED_BY(mu) = 0;
  };

  // Stores the log `times[0..n)` (n >= 1, in order) of the user in `slot` of
  // `page`: in place when it fits, else as a heap log.
  void StoreLocked(Shard& shard, Page& page, Slot& slot, UserId user,
                   const std::int64_t* times, std::size_t n) REQUIRES(shard.mu);
  // Forgets the requests of `shard` at or before `horizon`, frees the pages
  // left empty and moves old bases up (to `horizon`).
  void SweepLocked(Shard& shard, std::int64_t horizon) REQUIRES(shard.mu);

  const std::int64_t limit_;
  const std::int64_t window_us_;
  // kInline, or 0 when the window is too long for 32-bit offsets.
  const std::size_t inline_capacity_;
  // The most times a log may hold (the limit), and what a ring starts with.
  const std::size_t max_ring_;
  const std::size_t first_ring_;
  std::array<Shard, 16> shards_;
};

}  // namespace presence::api

#endif  // PRESENCE_API_RATE_LIMITER_H_
