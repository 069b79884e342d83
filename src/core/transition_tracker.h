// TransitionTracker: finds when users go idle or offline, for the
// presence_transitions extension, without anyone re-ageing a whole list.
//
// Zulip's data has no "went offline" moment: clients age timestamps against
// a threshold T (200 s). The tracker keeps a calendar of deadlines: A + T (the
// user stops being active; pushed only when it can change the status: after an
// idle report, or when it comes after the offline deadline) and C + T + grace
// (the user is offline). Tick(now) pops the due deadlines, re-reads the row and
// announces a status only when it differs from the last one announced for that
// user; stale entries (a newer write moved the deadline) find nothing to say.
// A user has one offline deadline in the calendar however often it writes: a
// write does not push one while an earlier (or same-second) one is pending,
// and that one, when it pops, pushes the user's current deadline.
//
// Memory (issue #17: a realm where everyone pings once a minute keeps one
// deadline for every user online): the calendar is a bucket queue keyed by
// (second, realm), each bucket a vector of 4-byte user ids (grown by a
// quarter once big; an id above 2^32 - 1 or below 0 goes to a second vector
// of 8-byte ids), so in a big realm a deadline costs about 4.5 bytes and no
// sift; a bucket's own cost (a map node, ~100 bytes) matters only for
// realms with few users online. A deadline is rounded up to its whole second
// (the housekeeping ticks once a second; a transition is announced at most
// a second later than its exact time, and its status is the one at the
// tick's time).
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
// which guards calendar_, pending_ and announced_ (checked by the clang-tsa
// build). Seed
// and Tick read the service's realms with mu_ released, and Tick returns the
// work to do instead of calling out with the lock held.
#ifndef PRESENCE_CORE_TRANSITION_TRACKER_H_
#define PRESENCE_CORE_TRANSITION_TRACKER_H_

#include <array>
#include <boost/unordered/unordered_flat_map.hpp>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string_view>
#include <utility>
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

  // Pops the deadlines up to `now`, at most `max_deadlines` of them (the
  // earliest first), and returns the transitions to announce. A caller that
  // must not stall (an I/O thread when a million users go offline at once)
  // ticks in bounded steps until Due(now) is false; the deadlines left wait
  // in the calendar, in order, and nothing is lost.
  std::vector<Transition> Tick(const PresenceService& service, Micros now,
                               std::size_t max_deadlines = SIZE_MAX)
      EXCLUDES(mu_);

  // True if a deadline at or before `now` is still in the calendar.
  bool Due(Micros now) const EXCLUDES(mu_);

  std::size_t pending() const EXCLUDES(mu_);
  // Users whose last announced status is not offline (the only ones the
  // tracker keeps a status for).
  std::size_t tracked() const EXCLUDES(mu_);

 private:
  struct Deadline {
    std::int64_t second;  // due at second * 1e6 (rounded up)
    RealmId realm;
    UserId user;
  };
  // What the tracker keeps for a user who is not offline: the status last
  // announced, and the second of the offline deadline it counts on in
  // calendar_ (0: none). 8 bytes.
  struct Tracked {
    std::uint32_t offline_second = 0;
    TrackedStatus status = TrackedStatus::kOffline;
  };
  // Pushes the deadlines that can change the user's status (call after
  // SetAnnouncedLocked). The offline deadline is pushed only when the user
  // has no earlier one in the calendar: a later write only moves it later, and
  // Tick pushes the new one when the earlier pops (so a user who pings
  // every minute has one entry, not one per write).
  void ScheduleLocked(RealmId realm, UserId user, const PresenceTimes& t,
                      Micros date_joined, Micros now) REQUIRES(mu_);
  // The offline deadline alone, for a last connection at `c`.
  void ScheduleOfflineLocked(RealmId realm, UserId user, Micros c, Micros now)
      REQUIRES(mu_);
  // The status last announced for `user` (kOffline if none is stored).
  TrackedStatus AnnouncedLocked(UserId user) const REQUIRES(mu_);
  // What is stored for `user`, or nullptr when it is offline.
  Tracked* FindLocked(UserId user) REQUIRES(mu_);
  void SetAnnouncedLocked(UserId user, TrackedStatus status) REQUIRES(mu_);

  // Adds a deadline at `at` (rounded up to its second); returns that second.
  std::int64_t PushLocked(Micros at, RealmId realm, UserId user) REQUIRES(mu_);

  const Micros grace_;
  // Guards calendar_, pending_ and announced_.
  mutable Mutex mu_;
  // The users due in one (second, realm): ids that fit in 4 bytes (all of
  // them in practice: Zulip's ids count from 1) in `narrow`, any other in
  // `wide`. Order within a bucket does not matter.
  struct Bucket {
    std::vector<std::uint32_t> narrow;
    std::vector<UserId> wide;
    bool empty() const { return narrow.empty() && wide.empty(); }
    // Removes and returns one user. Precondition: !empty().
    UserId Pop();
  };
  // Deadlines by (second, realm), earliest first; no bucket is empty.
  std::map<std::pair<std::int64_t, RealmId>, Bucket> calendar_ GUARDED_BY(mu_);
  std::size_t pending_ GUARDED_BY(mu_) = 0;  // deadlines in calendar_
  // The status last announced (or found at a write or the seed), stored only
  // when it is not kOffline: absence (a slot with status kOffline) means
  // offline. Every deadline in calendar_ is pushed after its user's status
  // was stored, so "offline" and "never seen" need no distinction; and most
  // users of a big realm are offline, which costs nothing (issue #4).
  // Issue #17: users sit in pages of kPageUsers consecutive ids (Zulip's ids
  // are dense), one 8-byte Tracked each, and a page exists while one of its
  // users is not offline: 8 bytes an online user where a flat map's slot
  // with its free room cost about 32 (a lone online user pays its page,
  // 512 bytes).
  static constexpr int kPageShift = 6;
  static constexpr int kPageUsers = 1 << kPageShift;
  struct Page {
    std::uint32_t used = 0;  // slots whose status is not kOffline
    std::array<Tracked, kPageUsers> users;
  };
  boost::unordered_flat_map<std::int64_t, std::unique_ptr<Page>> announced_
      GUARDED_BY(mu_);
  std::size_t tracked_ GUARDED_BY(mu_) = 0;  // slots used in all pages
};

}  // namespace presence

#endif  // PRESENCE_CORE_TRANSITION_TRACKER_H_
