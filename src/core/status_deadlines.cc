#include "core/status_deadlines.h"

#include <functional>
#include <utility>

#include "core/presence_service.h"

namespace presence {
namespace {

// The end of `kind` a status counts on (0: none).
std::int64_t EndOf(const store::UserStatus& status, StatusEndKind kind) {
  if (kind == StatusEndKind::kStatus) return status.scheduled_end_time;
  return status.dnd ? status.dnd_end_time : 0;
}

constexpr StatusEndKind kKinds[] = {StatusEndKind::kStatus,
                                    StatusEndKind::kDnd};

}  // namespace

std::size_t StatusDeadlines::KeyHash::operator()(const Key& k) const noexcept {
  std::size_t h = std::hash<std::int64_t>()(k.user);
  h ^= std::hash<std::int64_t>()(k.realm) + 0x9e3779b97f4a7c15ULL + (h << 6) +
       (h >> 2);
  return h * 2 + static_cast<std::size_t>(k.kind);
}

void StatusDeadlines::SetLocked(const Key& key, std::int64_t end,
                                bool replace) {
  auto it = current_.find(key);
  if (end == 0) {
    if (it != current_.end() && replace) current_.erase(it);
    return;
  }
  if (it != current_.end()) {
    if (!replace || it->second == end) return;
    it->second = end;
  } else {
    current_.emplace(key, end);
  }
  heap_.push(Deadline{end, key, end});
}

void StatusDeadlines::OnStatus(RealmId realm, UserId user,
                               const store::UserStatus& status) {
  MutexLock lock(mu_);
  for (StatusEndKind kind : kKinds) {
    SetLocked(Key{realm, user, kind}, EndOf(status, kind), /*replace=*/true);
  }
}

void StatusDeadlines::SeedNewRealms(const PresenceService& service) {
  for (const Realm* realm : service.Realms()) {
    {
      MutexLock lock(mu_);
      if (!seeded_.insert(realm->id()).second) continue;
    }
    std::vector<std::pair<Key, std::int64_t>> ends;
    realm->ForEachStatus([&](UserId user, const store::UserStatus& status) {
      for (StatusEndKind kind : kKinds) {
        if (std::int64_t end = EndOf(status, kind)) {
          ends.emplace_back(Key{realm->id(), user, kind}, end);
        }
      }
    });
    MutexLock lock(mu_);
    // A write since the read above already set (or removed) the user's end:
    // a stale one added here is found changed when it comes, and clears
    // nothing.
    for (const auto& [key, end] : ends) SetLocked(key, end, /*replace=*/false);
  }
}

std::vector<DueStatusEnd> StatusDeadlines::TakeDue(std::int64_t now_seconds) {
  std::vector<DueStatusEnd> due;
  MutexLock lock(mu_);
  while (!heap_.empty() && heap_.top().at <= now_seconds) {
    const Deadline d = heap_.top();
    heap_.pop();
    auto it = current_.find(d.key);
    if (it == current_.end() || it->second != d.end) continue;  // stale
    current_.erase(it);
    due.push_back(DueStatusEnd{d.key.realm, d.key.user, d.key.kind, d.end});
  }
  return due;
}

void StatusDeadlines::Retry(const DueStatusEnd& due, std::int64_t retry_at) {
  MutexLock lock(mu_);
  const Key key{due.realm, due.user, due.kind};
  if (current_.contains(key)) return;  // a write set a new end meanwhile
  current_.emplace(key, due.end);
  heap_.push(Deadline{retry_at, key, due.end});
}

std::size_t StatusDeadlines::pending() const {
  MutexLock lock(mu_);
  return current_.size();
}

std::size_t ExpireDueStatuses(StatusDeadlines& deadlines,
                              PresenceService& service,
                              std::int64_t retry_seconds) {
  deadlines.SeedNewRealms(service);
  const std::int64_t now = service.Now() / 1'000'000;
  std::size_t cleared = 0;
  for (const DueStatusEnd& due : deadlines.TakeDue(now)) {
    auto wrote =
        service.ExpireUserStatus(due.realm, due.user, due.kind, due.end);
    if (!wrote) {
      deadlines.Retry(due, now + retry_seconds);
    } else if (*wrote == WriteIf::kWritten) {
      ++cleared;
    }
  }
  return cleared;
}

}  // namespace presence
