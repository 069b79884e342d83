#include "api/rate_limiter.h"

#include <algorithm>

namespace presence::api {

RateLimiter::RateLimiter(std::int64_t limit, std::int64_t window_seconds)
    : limit_(limit),
      interval_us_(limit > 0 ? window_seconds * 1'000'000 / limit : 0),
      tolerance_us_(limit > 0 ? window_seconds * 1'000'000 - interval_us_ : 0) {
}

RateDecision RateLimiter::Check(UserId user, std::int64_t now_us) {
  RateDecision d;
  d.limit = limit_;
  if (limit_ <= 0) return d;
  Shard& shard = shards_[static_cast<std::size_t>(user) % shards_.size()];
  std::lock_guard lock(shard.mu);
  // Forget users whose allowance is full again, once per window, so the
  // map holds only recent callers.
  if (now_us - shard.last_sweep > tolerance_us_ + interval_us_) {
    std::erase_if(shard.tat,
                  [&](const auto& kv) { return kv.second <= now_us; });
    shard.last_sweep = now_us;
  }
  std::int64_t& tat = shard.tat.try_emplace(user, now_us).first->second;
  const std::int64_t base = std::max(tat, now_us);
  if (base - now_us > tolerance_us_) {
    d.allowed = false;
    d.retry_after = static_cast<double>(base - tolerance_us_ - now_us) / 1e6;
  } else {
    tat = base + interval_us_;
  }
  const std::int64_t used = std::max<std::int64_t>(tat - now_us, 0);
  d.remaining = std::max<std::int64_t>(
      (tolerance_us_ + interval_us_ - used) / interval_us_, 0);
  d.reset_unix = static_cast<double>(std::max(tat, now_us)) / 1e6;
  return d;
}

}  // namespace presence::api
