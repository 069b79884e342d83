// StatusDeadlines: when user statuses end on their own (issue #18's
// extensions: a status's scheduled_end_time, the end of do-not-disturb).
//
// Like the transition tracker (core/transition_tracker.h), a min-heap of
// deadlines, so nobody re-reads every status to find the due ones. A user
// has at most one deadline of each kind that counts: current_ holds the end
// (UNIX seconds) it counts on, and a heap entry whose end is no longer the
// user's (a newer write moved or removed it) is stale and dropped when it
// pops. The ends are part of the persisted user record, so after a restart
// SeedNewRealms rebuilds the heap from the loaded directory; it also seeds
// a realm a node of a group loads later.
//
// TakeDue only says which ends came; clearing them is the service's
// (PresenceService::ExpireUserStatus), which re-reads the user and clears
// only if the end is still the one due, then writes as any status update
// (its OnStatus here then finds nothing left to schedule).
//
// Thread safety: every method may be called from any thread; each locks
// mu_, which guards heap_, current_ and seeded_. SeedNewRealms reads the
// realms with mu_ released.
#ifndef PRESENCE_CORE_STATUS_DEADLINES_H_
#define PRESENCE_CORE_STATUS_DEADLINES_H_

#include <boost/unordered/unordered_flat_map.hpp>
#include <boost/unordered/unordered_flat_set.hpp>
#include <cstdint>
#include <queue>
#include <vector>

#include "core/store.h"
#include "core/types.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace presence {

class PresenceService;

// One end that came.
struct DueStatusEnd {
  RealmId realm = 0;
  UserId user = 0;
  StatusEndKind kind = StatusEndKind::kStatus;
  std::int64_t end = 0;  // UNIX seconds
  friend bool operator==(const DueStatusEnd&, const DueStatusEnd&) = default;
};

class StatusDeadlines {
 public:
  // The status of `user` as written (any write, local or from a group's
  // feed): its deadlines follow it (an end of 0 removes one).
  void OnStatus(RealmId realm, UserId user, const store::UserStatus& status)
      EXCLUDES(mu_);

  // Adds the ends of every realm of `service` not seen before (all of them
  // at start), without replacing an end a write set meanwhile.
  void SeedNewRealms(const PresenceService& service) EXCLUDES(mu_);

  // Removes and returns every end at or before `now_seconds`, earliest
  // first. Each comes out once; Retry puts back one whose clearing failed.
  std::vector<DueStatusEnd> TakeDue(std::int64_t now_seconds) EXCLUDES(mu_);

  // `due` could not be cleared (the store was unavailable): due again at
  // `retry_at`, unless a write changed the user's end meanwhile.
  void Retry(const DueStatusEnd& due, std::int64_t retry_at) EXCLUDES(mu_);

  // Ends that count (one per user and kind).
  std::size_t pending() const EXCLUDES(mu_);

 private:
  struct Key {
    RealmId realm;
    UserId user;
    StatusEndKind kind;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const noexcept;
  };
  struct Deadline {
    std::int64_t at;  // when it pops
    Key key;
    std::int64_t end;  // the end it is for (stale unless current_ has it)
    bool operator>(const Deadline& o) const { return at > o.at; }
  };
  // Sets (or with end 0 removes) the end of `key`; `replace`: also when one
  // is set.
  void SetLocked(const Key& key, std::int64_t end, bool replace) REQUIRES(mu_);

  mutable Mutex mu_;
  std::priority_queue<Deadline, std::vector<Deadline>, std::greater<>> heap_
      GUARDED_BY(mu_);
  boost::unordered_flat_map<Key, std::int64_t, KeyHash> current_
      GUARDED_BY(mu_);
  boost::unordered_flat_set<RealmId> seeded_ GUARDED_BY(mu_);
};

// The housekeeping's step (once a second): seeds the realms not seen yet,
// then clears every end due by the service's clock through
// PresenceService::ExpireUserStatus; one the store could not take is tried
// again `retry_seconds` later. Returns how many this call cleared (in a
// group, a node that finds another node cleared it first counts none).
// Blocks on the store: never on an I/O thread in scale-out mode.
std::size_t ExpireDueStatuses(StatusDeadlines& deadlines,
                              PresenceService& service,
                              std::int64_t retry_seconds = 5);

}  // namespace presence

#endif  // PRESENCE_CORE_STATUS_DEADLINES_H_
