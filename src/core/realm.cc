#include "core/realm.h"

#include <algorithm>

#include "core/constants.h"

namespace presence {

std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

namespace {

char LowerAscii(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

}  // namespace

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (LowerAscii(a[i]) != LowerAscii(b[i])) return false;
  }
  return true;
}

std::size_t HashIgnoreCase(std::string_view s) {
  std::size_t h = 14695981039346656037ull;  // FNV-1a
  for (char c : s) {
    h ^= static_cast<unsigned char>(LowerAscii(c));
    h *= 1099511628211ull;
  }
  return h;
}

std::size_t Realm::EmailHash::operator()(std::uint32_t slot) const {
  return HashIgnoreCase((*members)[slot].email);
}

std::size_t Realm::EmailHash::operator()(std::string_view email) const {
  return HashIgnoreCase(email);
}

Realm::Realm(const store::RealmRecord& record, store::Store* store, bool fresh)
    : id_(record.id),
      store_(store),
      subdomain_(record.subdomain),
      name_(record.name),
      presence_disabled_(record.presence_disabled),
      deactivated_(record.deactivated),
      // Continue after the reservation: ids up to it may have been handed out
      // before a crash even if their rows never reached the disk.
      last_update_id_(
          fresh ? record.last_update_id
                : std::max(record.last_update_id, record.reserved_update_id)),
      reserved_update_id_(record.reserved_update_id) {}

std::string Realm::subdomain() const {
  std::shared_lock lock(mu_);
  return subdomain_;
}
std::string Realm::name() const {
  std::shared_lock lock(mu_);
  return name_;
}
bool Realm::presence_disabled() const {
  std::shared_lock lock(mu_);
  return presence_disabled_;
}
bool Realm::deactivated() const {
  std::shared_lock lock(mu_);
  return deactivated_;
}
UpdateId Realm::last_update_id() const {
  std::shared_lock lock(mu_);
  return last_update_id_;
}
std::size_t Realm::member_count() const {
  std::shared_lock lock(mu_);
  return members_.size();
}

std::size_t Realm::active_count() const {
  std::shared_lock lock(mu_);
  return active_members_;
}

void Realm::Reserve(std::size_t n) {
  std::unique_lock lock(mu_);
  members_.reserve(n);
  slot_by_id_.reserve(n);
  slot_by_email_.reserve(n);
}

std::uint32_t Realm::AddMember(const store::UserRecord& user) {
  std::unique_lock lock(mu_);
  if (user.is_active) ++active_members_;
  Member m;
  m.id = user.id;
  m.email = user.email;
  m.full_name = user.full_name;
  m.date_joined = user.date_joined;
  m.api_key_hash = user.api_key_hash;
  m.role = user.role;
  m.is_bot = user.is_bot;
  m.is_active = user.is_active;
  m.presence_enabled = user.presence_enabled;
  m.can_access_all_users = user.can_access_all_users;
  auto slot = static_cast<std::uint32_t>(members_.size());
  slot_by_id_.emplace(m.id, slot);
  members_.push_back(std::move(m));
  slot_by_email_.insert(slot);  // hashes members_[slot].email
  return slot;
}

void Realm::LoadPresence(const store::PresenceRecord& row) {
  std::unique_lock lock(mu_);
  auto it = slot_by_id_.find(row.user_id);
  if (it == slot_by_id_.end()) return;
  Member& m = members_[it->second];
  m.has_row = true;
  m.times = {row.last_connected, row.last_active};
  m.last_update_id = row.last_update_id;
}

void Realm::FinishLoad() {
  std::unique_lock lock(mu_);
  std::vector<std::uint32_t> slots;
  for (std::uint32_t i = 0; i < members_.size(); ++i) {
    members_[i].prev = members_[i].next = Member::kNil;
    if (members_[i].has_row) slots.push_back(i);
  }
  std::sort(slots.begin(), slots.end(), [&](auto a, auto b) {
    return members_[a].last_update_id < members_[b].last_update_id;
  });
  head_ = tail_ = Member::kNil;
  for (auto s : slots) AppendLocked(s);
  for (auto s : slots) {
    last_update_id_ = std::max(last_update_id_, members_[s].last_update_id);
  }
}

void Realm::LoadAccess(const store::AccessRecord& access) {
  SetAccess(access.viewer, access.visible);
}

void Realm::SetPresenceDisabled(bool disabled) {
  std::unique_lock lock(mu_);
  presence_disabled_ = disabled;
}

bool Realm::UpdateMember(const store::UserRecord& user) {
  std::unique_lock lock(mu_);
  auto it = slot_by_id_.find(user.id);
  if (it == slot_by_id_.end()) return false;
  Member& m = members_[it->second];
  if (m.is_active != user.is_active) {
    if (user.is_active) {
      ++active_members_;
    } else {
      --active_members_;
    }
  }
  m.full_name = user.full_name;
  m.role = user.role;
  m.is_bot = user.is_bot;
  m.is_active = user.is_active;
  m.can_access_all_users = user.can_access_all_users;
  m.api_key_hash = user.api_key_hash;
  return true;
}

void Realm::SetAccess(UserId viewer, std::vector<UserId> visible) {
  std::sort(visible.begin(), visible.end());
  visible.erase(std::unique(visible.begin(), visible.end()), visible.end());
  std::unique_lock lock(mu_);
  if (visible.empty()) {
    access_.erase(viewer);
  } else {
    access_[viewer] = std::move(visible);
  }
}

std::optional<store::UserRecord> Realm::UserRecordOf(UserId id) const {
  std::shared_lock lock(mu_);
  auto it = slot_by_id_.find(id);
  if (it == slot_by_id_.end()) return std::nullopt;
  const Member& m = members_[it->second];
  store::UserRecord r;
  r.id = m.id;
  r.realm_id = id_;
  r.email = m.email;
  r.full_name = m.full_name;
  r.role = m.role;
  r.is_bot = m.is_bot;
  r.is_active = m.is_active;
  r.presence_enabled = m.presence_enabled;
  r.can_access_all_users = m.can_access_all_users;
  r.date_joined = m.date_joined;
  r.api_key_hash = m.api_key_hash;
  return r;
}

std::optional<Member> Realm::MemberById(UserId id) const {
  std::shared_lock lock(mu_);
  auto it = slot_by_id_.find(id);
  if (it == slot_by_id_.end()) return std::nullopt;
  return members_[it->second];
}

std::optional<UserId> Realm::FindIdByEmail(std::string_view email) const {
  std::shared_lock lock(mu_);
  auto it = slot_by_email_.find(email);
  if (it == slot_by_email_.end()) return std::nullopt;
  return members_[*it].id;
}

bool Realm::EmailTaken(std::string_view email) const {
  return FindIdByEmail(email).has_value();
}

Result<UpdateId> Realm::NextUpdateIdLocked() {
  if (last_update_id_ + 1 > reserved_update_id_) {
    // Ran past the reservation before the flusher raised it: reserve now.
    // This holds the realm lock across one store call; it happens at most
    // once per kReserveAhead writes, and only under a write burst.
    UpdateId want = last_update_id_ + kReserveAhead;
    if (auto st = store_->ReserveUpdateIds(id_, want); !st) return st.error();
    reserved_update_id_ = want;
  }
  return ++last_update_id_;
}

void Realm::UnlinkLocked(std::uint32_t slot) {
  Member& m = members_[slot];
  if (m.prev != Member::kNil) {
    members_[m.prev].next = m.next;
  } else {
    head_ = m.next;
  }
  if (m.next != Member::kNil) {
    members_[m.next].prev = m.prev;
  } else {
    tail_ = m.prev;
  }
  m.prev = m.next = Member::kNil;
}

void Realm::AppendLocked(std::uint32_t slot) {
  Member& m = members_[slot];
  m.prev = tail_;
  m.next = Member::kNil;
  if (tail_ != Member::kNil) {
    members_[tail_].next = slot;
  } else {
    head_ = slot;
  }
  tail_ = slot;
}

void Realm::TouchLocked(std::uint32_t slot, const PresenceTimes& times,
                        UpdateId id) {
  Member& m = members_[slot];
  if (m.has_row) UnlinkLocked(slot);
  m.has_row = true;
  m.times = times;
  m.last_update_id = id;
  AppendLocked(slot);
  if (!m.dirty && !replica()) {
    m.dirty = true;
    dirty_.push_back(slot);
  }
}

PresenceChange Realm::ChangeOfLocked(const Member& m, Micros now,
                                     bool event_due, bool forced) const {
  PresenceChange c;
  c.realm_id = id_;
  c.user_id = m.id;
  c.email = m.email;
  c.date_joined = m.date_joined;
  c.times = m.times;
  c.update_id = m.last_update_id;
  c.written_at = now;
  c.event_due = event_due;
  c.forced = forced;
  return c;
}

Result<std::optional<PresenceChange>> Realm::RecordReport(UserId user,
                                                          Micros now,
                                                          ReportStatus status) {
  std::unique_lock lock(mu_);
  auto it = slot_by_id_.find(user);
  if (it == slot_by_id_.end()) return std::optional<PresenceChange>();
  const std::uint32_t slot = it->second;
  Member& m = members_[slot];
  if (!m.is_active || m.is_bot || !m.presence_enabled) {
    return std::optional<PresenceChange>();
  }
  std::optional<PresenceTimes> before;
  if (m.has_row) before = m.times;
  ReportOutcome out = ApplyReport(before, now, status);
  if (!out.wrote) return std::optional<PresenceChange>();
  auto id = NextUpdateIdLocked();
  if (!id) return id.error();
  TouchLocked(slot, out.after, *id);
  const bool due = !presence_disabled_ && (out.created || out.became_online);
  return std::optional<PresenceChange>(ChangeOfLocked(m, now, due, false));
}

Result<std::optional<PresenceChange>> Realm::SetPresenceEnabled(UserId user,
                                                                bool enabled,
                                                                Micros now) {
  std::unique_lock lock(mu_);
  auto it = slot_by_id_.find(user);
  if (it == slot_by_id_.end()) return std::optional<PresenceChange>();
  const std::uint32_t slot = it->second;
  Member& m = members_[slot];
  if (m.presence_enabled == enabled) return std::optional<PresenceChange>();
  std::optional<PresenceTimes> before;
  if (m.has_row) before = m.times;
  std::optional<PresenceTimes> after;
  if (enabled) {
    ReportOutcome out = ApplyBecomeVisible(before, now);
    if (out.wrote) after = out.after;
  } else {
    after = ApplyGoInvisible(before, now);
    if (!after) {
      m.presence_enabled = false;
      return std::optional<PresenceChange>();  // nothing to back-date
    }
  }
  if (after) {
    auto id = NextUpdateIdLocked();
    if (!id) return id.error();
    TouchLocked(slot, *after, *id);
  }
  m.presence_enabled = enabled;
  if (!m.has_row) return std::optional<PresenceChange>();
  return std::optional<PresenceChange>(ChangeOfLocked(m, now, true, true));
}

bool Realm::CanSeeLocked(const Member& viewer, UserId target) const {
  if (!viewer.limited() || viewer.id == target) return true;
  auto it = access_.find(viewer.id);
  if (it == access_.end()) return false;
  return std::binary_search(it->second.begin(), it->second.end(), target);
}

std::size_t Realm::CountViewers(UserId target) const {
  std::shared_lock lock(mu_);
  std::size_t n = 0;
  for (const Member& m : members_) {
    if (m.is_active && CanSeeLocked(m, target)) ++n;
  }
  return n;
}

bool Realm::CanSee(UserId viewer, UserId target) const {
  std::shared_lock lock(mu_);
  auto it = slot_by_id_.find(viewer);
  if (it == slot_by_id_.end()) return false;
  return CanSeeLocked(members_[it->second], target);
}

UpdateId Realm::Fetch(UserId viewer_id, const FetchQuery& query, Micros now,
                      FunctionRef<void(const Member&)> visit) const {
  const UpdateId none = query.last_update_id.value_or(-1);
  std::shared_lock lock(mu_);
  if (presence_disabled_) return -1;
  auto viewer_slot = slot_by_id_.find(viewer_id);
  if (viewer_slot == slot_by_id_.end()) return none;
  const Member& viewer = members_[viewer_slot->second];
  const std::int64_t days =
      query.history_limit_days.value_or(kDefaultHistoryLimitDays);
  if (days == 0) return none;
  // Clamp so that absurd day counts cannot overflow the multiplication.
  const std::int64_t clamped =
      std::clamp<std::int64_t>(days, -1'000'000, 1'000'000);
  const Micros cutoff = now - SecondsToMicros(clamped * kSecondsPerDay);
  const bool incremental = query.last_update_id && *query.last_update_id > 0;

  UpdateId max_id = -1;
  bool any = false;
  auto consider = [&](const Member& m) {
    if (!m.has_row || !m.listed()) return;
    if (!incremental && !(m.times.last_connected != kNoTime &&
                          m.times.last_connected >= cutoff)) {
      return;
    }
    if (!CanSeeLocked(viewer, m.id)) return;
    any = true;
    max_id = std::max(max_id, m.last_update_id);
    visit(m);
  };

  if (query.last_update_id) {
    // Rows are in update order: the ones newer than the cursor are the tail.
    const UpdateId cursor = *query.last_update_id;
    for (auto s = tail_; s != Member::kNil; s = members_[s].prev) {
      const Member& m = members_[s];
      if (m.last_update_id <= cursor) break;
      consider(m);
    }
  } else if (viewer.limited()) {
    // Only the access list and the viewer: never walk the whole realm.
    auto self = slot_by_id_.find(viewer.id);
    if (self != slot_by_id_.end()) consider(members_[self->second]);
    if (auto it = access_.find(viewer.id); it != access_.end()) {
      for (UserId u : it->second) {
        if (u == viewer.id) continue;
        if (auto s = slot_by_id_.find(u); s != slot_by_id_.end()) {
          consider(members_[s->second]);
        }
      }
    }
  } else {
    for (auto s = tail_; s != Member::kNil; s = members_[s].prev) {
      consider(members_[s]);
    }
  }
  return any ? max_id : none;
}

void Realm::WithMember(UserId id, FunctionRef<void(const Member*)> fn) const {
  std::shared_lock lock(mu_);
  auto it = slot_by_id_.find(id);
  fn(it == slot_by_id_.end() ? nullptr : &members_[it->second]);
}

void Realm::ForEachMember(FunctionRef<void(const Member&)> fn) const {
  std::shared_lock lock(mu_);
  for (const Member& m : members_) fn(m);
}

void Realm::ForEachVisibleMember(UserId viewer_id,
                                 FunctionRef<void(const Member&)> fn) const {
  std::shared_lock lock(mu_);
  auto it = slot_by_id_.find(viewer_id);
  if (it == slot_by_id_.end()) return;
  const Member& viewer = members_[it->second];
  for (const Member& m : members_) {
    if (CanSeeLocked(viewer, m.id)) fn(m);
  }
}

bool Realm::CollectDirty(std::vector<store::PresenceRecord>& rows,
                         store::SequenceRecord& sequence) {
  if (replica()) return false;  // the shared store already has everything
  std::unique_lock lock(mu_);
  const bool low = last_update_id_ + kReserveAhead / 2 > reserved_update_id_;
  if (dirty_.empty() && !low) return false;
  for (auto slot : dirty_) {
    Member& m = members_[slot];
    m.dirty = false;
    rows.push_back({m.id, id_, m.times.last_connected, m.times.last_active,
                    m.last_update_id});
  }
  dirty_.clear();
  sequence.realm_id = id_;
  sequence.last_update_id = last_update_id_;
  sequence.reserved_update_id =
      low ? last_update_id_ + kReserveAhead : reserved_update_id_;
  return true;
}

void Realm::OnFlushed(const store::SequenceRecord& sequence) {
  std::unique_lock lock(mu_);
  reserved_update_id_ =
      std::max(reserved_update_id_, sequence.reserved_update_id);
}

void Realm::OnFlushFailed(const std::vector<store::PresenceRecord>& rows) {
  std::unique_lock lock(mu_);
  for (const auto& r : rows) {
    if (r.realm_id != id_) continue;
    auto it = slot_by_id_.find(r.user_id);
    if (it == slot_by_id_.end()) continue;
    Member& m = members_[it->second];
    if (!m.dirty) {
      m.dirty = true;
      dirty_.push_back(it->second);
    }
  }
}

// --- Replica -------------------------------------------------------------

Realm::MemberDelta Realm::UpsertMember(const store::UserRecord& user) {
  MemberDelta delta;
  {
    std::unique_lock lock(mu_);
    auto it = slot_by_id_.find(user.id);
    if (it != slot_by_id_.end()) {
      Member& m = members_[it->second];
      delta.deactivated = m.is_active && !user.is_active;
      if (m.presence_enabled != user.presence_enabled) {
        delta.presence_enabled = user.presence_enabled;
      }
      if (m.api_key_hash != user.api_key_hash) {
        delta.replaced_key = m.api_key_hash;
      }
      m.presence_enabled = user.presence_enabled;
    } else {
      delta.added = true;
    }
  }
  if (delta.added) {
    AddMember(user);
  } else {
    UpdateMember(user);
  }
  return delta;
}

std::optional<PresenceChange> Realm::ApplyRow(const store::PresenceRecord& row,
                                              Micros written_at, bool event_due,
                                              bool forced) {
  std::unique_lock lock(mu_);
  auto it = slot_by_id_.find(row.user_id);
  if (it == slot_by_id_.end()) return std::nullopt;
  Member& m = members_[it->second];
  if (!m.has_row || row.last_update_id > m.last_update_id) {
    TouchLocked(it->second, {row.last_connected, row.last_active},
                row.last_update_id);
    last_update_id_ = std::max(last_update_id_, row.last_update_id);
  }
  return ChangeOfLocked(m, written_at, event_due, forced);
}

void Realm::ApplySettings(const store::RealmRecord& record) {
  std::unique_lock lock(mu_);
  name_ = record.name;
  presence_disabled_ = record.presence_disabled;
  deactivated_ = record.deactivated;
}

void Realm::ReplaceAccess(const std::vector<store::AccessRecord>& lists) {
  {
    std::unique_lock lock(mu_);
    access_.clear();
  }
  for (const auto& a : lists) SetAccess(a.viewer, a.visible);
}

void Realm::AdvanceTo(UpdateId seq) {
  std::unique_lock lock(mu_);
  applied_seq_ = std::max(applied_seq_, seq);
}

UpdateId Realm::applied_seq() const {
  std::shared_lock lock(mu_);
  return applied_seq_;
}

}  // namespace presence
