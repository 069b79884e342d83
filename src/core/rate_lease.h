// RateLease: a node's local budget of Zulip's shared per-user rate limit
// (scale-out), so that most requests are let through without a store round
// trip.
//
// When a request of a user goes to the store to be counted, the store counts
// up to Lease(limit) requests at once (this one and a lease), all at that
// request's time (SharedStore GateRequest::rate_charge). The node keeps the
// lease and lets that many of the user's following requests through without
// asking, while the counted requests are still in the store's window (until
// the charge's time + the window). Only one charge per user is asked for at
// a time; a request that finds one in flight is counted alone.
//
// Bounds, per user, per node, per window: the store never counts fewer
// requests than were let through, so the limit is never passed by more than
// the leases still unspent when the window slides (k - 1 per node: a lease's
// requests leave the window with the charge that counted them, up to a
// window before they were made), and a user can be refused once the
// requests counted reach the limit while up to k - 1 of them are still
// unspent on each node (over-charge).
//
// Memory: one slot of an open-addressing table per user with a lease or a
// charge in flight (48 bytes; a node-based map took about twice that), and
// entries that hold nothing are pruned now and then.
//
// Thread safety: any thread; mu_ guards the map.
#ifndef PRESENCE_CORE_RATE_LEASE_H_
#define PRESENCE_CORE_RATE_LEASE_H_

#include <boost/unordered/unordered_flat_map.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "core/shared_store.h"
#include "core/types.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace presence {

class RateLease {
 public:
  // The most requests counted at once.
  static constexpr std::int64_t kMaxLease = 8;
  // A lease is at most this fraction of the limit (so a low limit stays
  // exact): limit / kLimitShare, between 1 and kMaxLease.
  static constexpr std::int64_t kLimitShare = 25;

  // k: how many requests one charge counts for `limit`, at most `most`.
  static std::int64_t Lease(std::int64_t limit, std::int64_t most = kMaxLease);

  // Takes one of the user's leased requests at real time `now`: the rate
  // count to answer with (allowed, and the window as the charge left it),
  // or nullopt if none is left or its charge has left the window.
  std::optional<store::RateCount> Spend(RealmId realm, UserId user, Micros now)
      EXCLUDES(mu_);

  // How many to count for a request of the user about to go to the store:
  // `lease` (a Lease() value), or 1 if a charge of this user is in flight
  // already. Every call is followed by one Settle with its result.
  std::int64_t Charge(RealmId realm, UserId user, std::int64_t lease)
      EXCLUDES(mu_);

  // The store's answer to a Charge of `asked` made at real time `now` (null:
  // the store failed): keeps count->charged - 1 requests to spend before
  // now + window.
  void Settle(RealmId realm, UserId user, std::int64_t asked,
              const store::RateCount* count, Micros now, Micros window)
      EXCLUDES(mu_);

  // Users with a lease or a charge in flight (for tests).
  std::size_t size() const EXCLUDES(mu_);

 private:
  struct Key {
    RealmId realm;
    UserId user;
    friend bool operator==(const Key&, const Key&) = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const {
      return std::hash<std::int64_t>()(k.realm * 1'000'003 + k.user);
    }
  };
  struct Entry {
    Micros until = 0;  // spendable while now < until
    Micros oldest = 0;
    std::int64_t in_window = 0;
    std::int32_t left = 0;  // leased requests not spent yet (< 64)
    bool charging = false;  // a Charge of Lease(limit) is in flight
  };

  // Drops the entries that hold nothing, now and then (amortised O(1)).
  void PruneLocked(Micros now) REQUIRES(mu_);

  mutable Mutex mu_;
  boost::unordered_flat_map<Key, Entry, KeyHash> entries_ GUARDED_BY(mu_);
  std::size_t settled_ GUARDED_BY(mu_) = 0;  // since the last prune
};

}  // namespace presence

#endif  // PRESENCE_CORE_RATE_LEASE_H_
