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
  std::lock_guard lock(shard.mu);
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
  if (static_cast<std::int64_t>(log.size()) >= limit_) {
    d.allowed = false;
    d.retry_after =
        static_cast<double>(log.front() + window_us_ - now_us) / 1e6;
  } else {
    log.push_back(now_us);
  }
  d.remaining =
      std::max<std::int64_t>(limit_ - static_cast<std::int64_t>(log.size()), 0);
  d.reset_unix = static_cast<double>(log.front() + window_us_) / 1e6;
  return d;
}

}  // namespace presence::api
