#include "api/rate_limiter.h"

#include <algorithm>

namespace presence::api {

RateLimiter::RateLimiter(std::int64_t limit, std::int64_t window_seconds)
    : limit_(limit), window_us_(window_seconds * 1'000'000) {}

RateDecision RateLimiter::Check(UserId user, std::int64_t now_us) {
  RateDecision d;
  d.limit = limit_;
  if (limit_ <= 0) return d;
  Shard& shard = shards_[static_cast<std::size_t>(user) % shards_.size()];
  MutexLock lock(shard.mu);
  const std::int64_t horizon = now_us - window_us_;
  // Forget users with nothing in the window, once per window.
  if (now_us - shard.last_sweep > window_us_) {
    std::erase_if(shard.log, [&](const auto& kv) {
      return kv.second.empty() || kv.second.back() <= horizon;
    });
    shard.last_sweep = now_us;
  }
  auto& log = shard.log[user];
  while (!log.empty() && log.front() <= horizon) log.pop_front();
  const bool allowed = static_cast<std::int64_t>(log.size()) < limit_;
  if (allowed) log.push_back(now_us);
  return MakeRateDecision(limit_, window_us_, now_us, allowed,
                          static_cast<std::int64_t>(log.size()), log.front());
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
