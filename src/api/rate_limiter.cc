#include "api/rate_limiter.h"

#include <algorithm>

namespace presence::api {

RateLimiter::RateLimiter(std::int64_t limit, std::int64_t window_seconds)
    : limit_(limit),
      window_us_(window_seconds * 1'000'000),
      // Offsets inside the window must stay below the two markers.
      inline_capacity_(window_us_ < kEmpty ? kInline : 1) {}

RateDecision RateLimiter::Check(UserId user, std::int64_t now_us) {
  RateDecision d;
  d.limit = limit_;
  if (limit_ <= 0) return d;
  Shard& shard = shards_[static_cast<std::size_t>(user) % shards_.size()];
  MutexLock lock(shard.mu);
  const std::int64_t horizon = now_us - window_us_;
  // Forget users with nothing in the window, once per window.
  if (now_us - shard.last_sweep > window_us_) {
    SweepLocked(shard, horizon);
    shard.last_sweep = now_us;
  }
  auto [it, fresh] = shard.logs.try_emplace(user);
  Log& log = it->second;

  if (log.first == kSpilled) {
    HeapLog& heap = shard.spilled.find(user)->second;
    std::vector<std::int64_t>& t = heap.times;
    while (heap.head < t.size() && t[heap.head] <= horizon) ++heap.head;
    auto n = static_cast<std::int64_t>(t.size() - heap.head);
    const bool allowed = n < limit_;
    if (allowed) {
      t.push_back(std::max(now_us, t.back()));  // t is never empty
      ++n;
    }
    const std::int64_t oldest = t[heap.head];
    if (n < inline_capacity_) {
      // Few enough left to go back inline (one short of full, so that a
      // user hovering at the edge does not move back and forth).
      log.oldest = oldest;
      log.first = n > 1 ? static_cast<std::uint32_t>(t[heap.head + 1] - oldest)
                        : kEmpty;
      log.second = kEmpty;
      shard.spilled.erase(user);
    } else if (heap.head * 2 >= t.size()) {
      // Drop the prefix that left the window (amortised O(1) a request),
      // and give back a buffer that a burst made large.
      t.erase(t.begin(), t.begin() + static_cast<std::ptrdiff_t>(heap.head));
      heap.head = 0;
      if (t.capacity() > 16 && t.capacity() > 4 * t.size()) t.shrink_to_fit();
    }
    return MakeRateDecision(limit_, window_us_, now_us, allowed, n, oldest);
  }

  // Zeroed: gcc -O3 cannot see that n >= 1 below (limit_ > 0) and warns.
  std::int64_t times[kInline + 1] = {};
  int n = 0;
  if (!fresh) {
    times[n++] = log.oldest;
    if (log.first != kEmpty) times[n++] = log.oldest + log.first;
    if (log.second != kEmpty) times[n++] = log.oldest + log.second;
  }
  int gone = 0;
  while (gone < n && times[gone] <= horizon) ++gone;
  std::copy(times + gone, times + n, times);
  n -= gone;
  const bool allowed = n < limit_;
  if (allowed) {
    times[n] = n > 0 ? std::max(now_us, times[n - 1]) : now_us;
    ++n;
  }
  // limit_ > 0, so an empty log always takes the request: n >= 1.
  if (n <= inline_capacity_) {
    log.oldest = times[0];
    log.first =
        n > 1 ? static_cast<std::uint32_t>(times[1] - times[0]) : kEmpty;
    log.second =
        n > 2 ? static_cast<std::uint32_t>(times[2] - times[0]) : kEmpty;
  } else {
    HeapLog& heap = shard.spilled[user];
    heap.times.assign(times, times + n);
    heap.head = 0;
    log.first = kSpilled;
  }
  return MakeRateDecision(limit_, window_us_, now_us, allowed, n, times[0]);
}

void RateLimiter::SweepLocked(Shard& shard, std::int64_t horizon) {
  // (The lambdas touch only their arguments and locals: the lock analysis
  // does not see that they run under shard.mu.)
  std::vector<UserId> dropped;
  boost::unordered::erase_if(shard.spilled, [&](const auto& kv) {
    if (kv.second.times.back() > horizon) return false;
    dropped.push_back(kv.first);
    return true;
  });
  for (UserId user : dropped) shard.logs.erase(user);
  boost::unordered::erase_if(shard.logs, [&](const auto& kv) {
    const Log& log = kv.second;
    if (log.first == kSpilled) return false;  // its heap log is still live
    const std::uint32_t newest = log.second != kEmpty  ? log.second
                                 : log.first != kEmpty ? log.first
                                                       : 0;
    return log.oldest + newest <= horizon;
  });
  // Open-addressing tables never shrink by themselves: after a burst of
  // users has left, give the memory back (with room to spare, so a table
  // that merely breathes is not rebuilt every window).
  if (shard.logs.size() * 4 < shard.logs.bucket_count()) shard.logs.rehash(0);
  if (shard.spilled.size() * 4 < shard.spilled.bucket_count()) {
    shard.spilled.rehash(0);
  }
}

RateLimiter::Usage RateLimiter::usage() const {
  Usage u;
  for (const Shard& shard : shards_) {
    MutexLock lock(shard.mu);
    u.users += shard.logs.size();
    u.spilled += shard.spilled.size();
    // A slot and its one byte of metadata.
    u.bytes += shard.logs.bucket_count() * (sizeof(std::pair<UserId, Log>) + 1);
    u.bytes +=
        shard.spilled.bucket_count() * (sizeof(std::pair<UserId, HeapLog>) + 1);
    for (const auto& [user, heap] : shard.spilled) {
      u.bytes += heap.times.capacity() * sizeof(std::int64_t);
    }
  }
  return u;
}

RateDecision MakeRateDecision(std::int64_t limit, std::int64_t window_us,
                              std::int64_t now_us, bool allowed,
                              std::int64_t in_window, std::int64_t oldest_us) {
  RateDecision d;
  d.limit = limit;
  d.allowed = allowed;
  if (!allowed) {
    d.retry_after = static_cast<double>(oldest_us + window_us - now_us) / 1e6;
  }
  d.remaining = std::max<std::int64_t>(limit - in_window, 0);
  d.reset_unix = static_cast<double>(oldest_us + window_us) / 1e6;
  return d;
}

}  // namespace presence::api
