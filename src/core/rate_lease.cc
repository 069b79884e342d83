#include "core/rate_lease.h"

#include <algorithm>

namespace presence {

std::int64_t RateLease::Lease(std::int64_t limit, std::int64_t most) {
  return std::clamp<std::int64_t>(limit / kLimitShare, 1,
                                  std::max<std::int64_t>(most, 1));
}

std::optional<store::RateCount> RateLease::Spend(RealmId realm, UserId user,
                                                 Micros now) {
  MutexLock lock(mu_);
  auto it = entries_.find(Key{realm, user});
  if (it == entries_.end()) return std::nullopt;
  Entry& e = it->second;
  if (e.left <= 0 || now >= e.until) {
    e.left = 0;  // what is left of an old charge is over-charge, not credit
    return std::nullopt;
  }
  --e.left;
  return store::RateCount{.allowed = true,
                          .in_window = e.in_window,
                          .oldest = e.oldest,
                          .charged = 0};
}

std::int64_t RateLease::Charge(RealmId realm, UserId user, std::int64_t lease) {
  const std::int64_t k = lease;
  if (k <= 1) return 1;
  MutexLock lock(mu_);
  Entry& e = entries_[Key{realm, user}];
  if (e.charging) return 1;
  e.charging = true;
  return k;
}

void RateLease::Settle(RealmId realm, UserId user, std::int64_t asked,
                       const store::RateCount* count, Micros now,
                       Micros window) {
  if (asked <= 1) return;
  MutexLock lock(mu_);
  Entry& e = entries_[Key{realm, user}];
  e.charging = false;
  if (count != nullptr && count->allowed && count->charged > 1) {
    // Spend never leaves credit behind a newer charge: Charge is asked for
    // only when Spend found nothing, so `left` is 0 here.
    // charged <= the lease asked for (--rate-lease is at most 64).
    e.left = static_cast<std::int32_t>(count->charged - 1);
    e.until = now + window;
    e.in_window = count->in_window;
    e.oldest = count->oldest;
  }
  if (++settled_ >= std::max<std::size_t>(1024, entries_.size())) {
    PruneLocked(now);
  }
}

void RateLease::PruneLocked(Micros now) {
  settled_ = 0;
  boost::unordered::erase_if(entries_, [now](const auto& kv) {
    const Entry& e = kv.second;
    return !e.charging && (e.left <= 0 || now >= e.until);
  });
}

std::size_t RateLease::size() const {
  MutexLock lock(mu_);
  return entries_.size();
}

}  // namespace presence
