#include "core/transition_tracker.h"

#include "core/constants.h"

namespace presence {
namespace {

constexpr Micros kThreshold = SecondsToMicros(kOfflineThresholdSeconds);

Micros Or(Micros t, Micros fallback) { return t == kNoTime ? fallback : t; }

// The first whole second at or after `t`.
std::int64_t CeilSecond(Micros t) {
  const std::int64_t s = t / 1'000'000;
  return s * 1'000'000 < t ? s + 1 : s;
}

}  // namespace

std::string_view TrackedStatusName(TrackedStatus s) {
  switch (s) {
    case TrackedStatus::kActive:
      return "active";
    case TrackedStatus::kIdle:
      return "idle";
    case TrackedStatus::kOffline:
      return "offline";
  }
  return "offline";
}

TrackedStatus StatusAt(const PresenceTimes& t, Micros date_joined, Micros now,
                       Micros grace) {
  const Micros a = Or(t.last_active, date_joined);
  const Micros c = Or(t.last_connected, date_joined);
  if (now - a < kThreshold) return TrackedStatus::kActive;
  if (now - c >= kThreshold + grace) return TrackedStatus::kOffline;
  // Reported since the last active report: idle. Otherwise the user simply
  // stopped reporting; within the grace window nothing is decided yet.
  return c > a ? TrackedStatus::kIdle : TrackedStatus::kActive;
}

TransitionTracker::TransitionTracker(Micros grace) : grace_(grace) {}

void TransitionTracker::ScheduleLocked(RealmId realm, UserId user,
                                       const PresenceTimes& t,
                                       Micros date_joined, Micros now) {
  const Micros a = Or(t.last_active, date_joined);
  const Micros c = Or(t.last_connected, date_joined);
  // A + T decides something only for a user who reported idle since (C >
  // A: idle from then), or whose offline deadline comes before it (then A +
  // T is when it goes offline). For an active report (C == A, what nearly
  // every ping writes) nothing changes at A + T, and the deadline would
  // only cost an entry per write (issue #17: memory per online user).
  if (a + kThreshold > now && (c > a || a > c + grace_)) {
    PushLocked(a + kThreshold, realm, user);
  }
  ScheduleOfflineLocked(realm, user, c, now);
}

void TransitionTracker::ScheduleOfflineLocked(RealmId realm, UserId user,
                                              Micros c, Micros now) {
  const Micros offline = c + kThreshold + grace_;
  if (offline <= now) return;
  Tracked* tracked = FindLocked(user);
  // Deadlines pop by whole seconds (rounded up): a pending one in the same
  // second as the new one pops with it.
  const auto second = static_cast<std::uint32_t>(CeilSecond(offline));
  if (tracked != nullptr && tracked->offline_second != 0 &&
      tracked->offline_second <= second) {
    return;  // an earlier one is pending; it reschedules when it pops
  }
  PushLocked(offline, realm, user);
  if (tracked != nullptr) tracked->offline_second = second;
}

std::int64_t TransitionTracker::PushLocked(Micros at, RealmId realm,
                                           UserId user) {
  const std::int64_t second = CeilSecond(at);
  Bucket& bucket = calendar_[{second, realm}];
  if (user >= 0 && user <= std::int64_t{UINT32_MAX}) {
    std::vector<std::uint32_t>& users = bucket.narrow;
    // A big bucket grows by a quarter, not double: it is filled over the
    // minutes before it is due, and its spare room is memory per user.
    if (users.size() == users.capacity() && users.capacity() >= 64) {
      users.reserve(users.capacity() + users.capacity() / 4);
    }
    users.push_back(static_cast<std::uint32_t>(user));
  } else {
    bucket.wide.push_back(user);
  }
  ++pending_;
  return second;
}

UserId TransitionTracker::Bucket::Pop() {
  if (!wide.empty()) {
    const UserId user = wide.back();
    wide.pop_back();
    return user;
  }
  const UserId user = narrow.back();
  narrow.pop_back();
  return user;
}

TransitionTracker::Tracked* TransitionTracker::FindLocked(UserId user) {
  auto it = announced_.find(user >> kPageShift);
  if (it == announced_.end()) return nullptr;
  Tracked& t =
      it->second->users[static_cast<std::size_t>(user & (kPageUsers - 1))];
  return t.status == TrackedStatus::kOffline ? nullptr : &t;
}

TrackedStatus TransitionTracker::AnnouncedLocked(UserId user) const {
  auto it = announced_.find(user >> kPageShift);
  if (it == announced_.end()) return TrackedStatus::kOffline;
  return it->second->users[static_cast<std::size_t>(user & (kPageUsers - 1))]
      .status;
}

void TransitionTracker::SetAnnouncedLocked(UserId user, TrackedStatus status) {
  const std::int64_t page_no = user >> kPageShift;
  const auto index = static_cast<std::size_t>(user & (kPageUsers - 1));
  auto it = announced_.find(page_no);
  if (status == TrackedStatus::kOffline) {
    if (it == announced_.end()) return;
    Page& page = *it->second;
    if (page.users[index].status == TrackedStatus::kOffline) return;
    page.users[index] = Tracked{};
    --tracked_;
    if (--page.used == 0) announced_.erase(it);
    return;
  }
  if (it == announced_.end()) {
    it = announced_.emplace(page_no, std::make_unique<Page>()).first;
  }
  Page& page = *it->second;
  Tracked& t = page.users[index];
  if (t.status == TrackedStatus::kOffline) {
    ++page.used;
    ++tracked_;
  }
  t.status = status;
}

void TransitionTracker::OnWrite(const PresenceChange& change) {
  const Micros now = change.written_at;
  MutexLock lock(mu_);
  SetAnnouncedLocked(change.user_id,
                     StatusAt(change.times, change.date_joined, now, grace_));
  ScheduleLocked(change.realm_id, change.user_id, change.times,
                 change.date_joined, now);
}

void TransitionTracker::Seed(const PresenceService& service, Micros now) {
  for (const Realm* realm : service.Realms()) {
    std::vector<std::pair<UserId, std::pair<PresenceTimes, Micros>>> rows;
    realm->ForEachMember([&](const Member& m) {
      // An offline row has no deadline ahead (offline is where both lead)
      // and offline is what an absent status means: nothing to keep.
      if (m.has_row && m.listed() &&
          StatusAt(m.times, m.date_joined, now, grace_) !=
              TrackedStatus::kOffline) {
        rows.push_back({m.id, {m.times, m.date_joined}});
      }
    });
    MutexLock lock(mu_);
    for (auto& [user, row] : rows) {
      SetAnnouncedLocked(user, StatusAt(row.first, row.second, now, grace_));
      ScheduleLocked(realm->id(), user, row.first, row.second, now);
    }
  }
}

std::vector<Transition> TransitionTracker::Tick(const PresenceService& service,
                                                Micros now,
                                                std::size_t max_deadlines) {
  std::vector<Deadline> due;
  {
    MutexLock lock(mu_);
    while (due.size() < max_deadlines && !calendar_.empty()) {
      auto bucket = calendar_.begin();
      const auto [second, realm] = bucket->first;
      if (second * 1'000'000 > now) break;
      // (A bucket's users are due in the same second: any order will do.)
      Bucket& users = bucket->second;
      while (due.size() < max_deadlines && !users.empty()) {
        const UserId user = users.Pop();
        --pending_;
        // The offline deadline a user counted on is gone: the next write, or
        // the rescheduling below, pushes another.
        Tracked* tracked = FindLocked(user);
        if (tracked != nullptr &&
            tracked->offline_second == static_cast<std::uint32_t>(second)) {
          tracked->offline_second = 0;
        }
        due.push_back({second, realm, user});
      }
      if (users.empty()) calendar_.erase(bucket);
    }
  }
  std::vector<Transition> out;
  for (const Deadline& d : due) {
    const Realm* realm = service.FindRealmById(d.realm);
    if (realm == nullptr || realm->presence_disabled()) continue;
    std::optional<PresenceChange> row;
    realm->WithMember(d.user, [&](const Member* m) {
      if (m == nullptr || !m->has_row || !m->listed()) return;
      PresenceChange c;
      c.realm_id = d.realm;
      c.user_id = m->id;
      c.email = m->email();
      c.date_joined = m->date_joined;
      c.times = m->times;
      c.update_id = m->last_update_id;
      c.written_at = now;
      row = std::move(c);
    });
    if (!row) continue;
    const TrackedStatus status =
        StatusAt(row->times, row->date_joined, now, grace_);
    {
      MutexLock lock(mu_);
      const bool same = AnnouncedLocked(d.user) == status;
      if (!same) SetAnnouncedLocked(d.user, status);
      // The user wrote since this deadline was pushed: its current one.
      if (status != TrackedStatus::kOffline) {
        ScheduleOfflineLocked(d.realm, d.user,
                              Or(row->times.last_connected, row->date_joined),
                              now);
      }
      if (same) continue;
    }
    if (status != TrackedStatus::kActive) out.push_back({*row, status});
  }
  return out;
}

bool TransitionTracker::Due(Micros now) const {
  MutexLock lock(mu_);
  return !calendar_.empty() &&
         calendar_.begin()->first.first * 1'000'000 <= now;
}

std::size_t TransitionTracker::pending() const {
  MutexLock lock(mu_);
  return pending_;
}

std::size_t TransitionTracker::tracked() const {
  MutexLock lock(mu_);
  return tracked_;
}

}  // namespace presence
