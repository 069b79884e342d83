// TransitionTracker: finds when users go idle or offline, for the
// presence_transitions extension, without anyone re-ageing a whole list.
//
// Zulip's data has no "went offline" moment: clients age timestamps against
// a threshold T (200 s). The tracker keeps a min-heap of deadlines, one or
// two per write: A + T (the user stops being active) and C + T + grace (the
// user is offline). Tick(now) pops the due deadlines, re-reads the row and
// announces a status only when it differs from the last one announced for
// that user; stale heap entries (a newer write moved the deadline) find
// nothing to say.
//
//   active:  now - A < T, or the user just stopped reporting (C == A) and
//            the grace window has not passed yet (nothing decided)
//   idle:    not active, the user reported since its last active report
//            (C > A), and now - C < T + grace
//   offline: now - C >= T + grace
//
// The grace window delays "offline" so that a server restart or a
// reconnect wave, where pings arrive late by a few seconds, does not make
// users flap offline and back.
//
// Thread safety: all methods may be called from any thread; each locks mu_,
// which guards heap_ and announced_ (checked by the clang-tsa build). Seed
// and Tick read the service's realms with mu_ released, and Tick returns the
// work to do instead of calling out with the lock held.
#ifndef PRESENCE_CORE_TRANSITION_TRACKER_H_
#define PRESENCE_CORE_TRANSITION_TRACKER_H_

#include <boost/unordered/unordered_flat_map.hpp>
#include <cstdint>
#include <queue>
#include <string_view>
#include <vector>

#include "core/presence_service.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace presence {

enum class TrackedStatus : std::uint8_t { kActive, kIdle, kOffline };

std::string_view TrackedStatusName(TrackedStatus s);

// The status of a row at `now` with the tracker's rules.
TrackedStatus StatusAt(const PresenceTimes& t, Micros date_joined, Micros now,
                       Micros grace);

struct Transition {
  PresenceChange change;  // the user's current row
  TrackedStatus status;   // kIdle or kOffline
};

class TransitionTracker {
 public:
  explicit TransitionTracker(Micros grace);

  // A row was written (any write).
  void OnWrite(const PresenceChange& change) EXCLUDES(mu_);

  // Seeds the tracker with every row of the service (at start), so users
  // who stop reporting after a restart are still announced.
  void Seed(const PresenceService& service, Micros now) EXCLUDES(mu_);

  // Pops every deadline up to `now` and returns the transitions to announce.
  std::vector<Transition> Tick(const PresenceService& service, Micros now)
      EXCLUDES(mu_);

  std::size_t pending() const EXCLUDES(mu_);
  // Users whose last announced status is not offline (the only ones the
  // tracker keeps a status for).
  std::size_t tracked() const EXCLUDES(mu_);

 private:
  struct Deadline {
    Micros at;
    RealmId realm;
    UserId user;
    bool operator>(const Deadline& o) const { return at > o.at; }
  };
  void ScheduleLocked(RealmId realm, UserId user, const PresenceTimes& t,
                      Micros date_joined, Micros now) REQUIRES(mu_);
  // The status last announced for `user` (kOffline if none is stored).
  TrackedStatus AnnouncedLocked(UserId user) const REQUIRES(mu_);
  void SetAnnouncedLocked(UserId user, TrackedStatus status) REQUIRES(mu_);

  const Micros grace_;
  // Guards heap_ and announced_.
  mutable Mutex mu_;
  std::priority_queue<Deadline, std::vector<Deadline>, std::greater<>> heap_
      GUARDED_BY(mu_);
  // The status last announced (or found at a write or the seed), stored only
  // when it is not kOffline: absence means offline. Every deadline in heap_
  // is pushed after its user's status was stored, so "offline" and "never
  // seen" need no distinction; and most users of a big realm are offline,
  // which now costs nothing (issue #4).
  boost::unordered_flat_map<UserId, TrackedStatus> announced_ GUARDED_BY(mu_);
};

}  // namespace presence

#endif  // PRESENCE_CORE_TRANSITION_TRACKER_H_
