// PresenceService in shared (scale-out) mode: the replica side.
//
// Every change is made in the shared store first (which runs the rules and
// takes the realm's sequence number atomically) and comes back to every node
// on the store's feed. Entries of a realm are applied strictly in sequence
// order under apply_mu_: an entry at or below the replica's applied_seq is
// a duplicate; one more than it is applied; a gap (lost messages) makes the
// node read the realm again (ReadRealm since its last id), which brings it to
// the store's current state. A writer waits until the replica has applied
// its own change, so the node that acknowledged a write also serves it.
#include <algorithm>

#include "core/presence_service.h"

namespace presence {

Result<std::unique_ptr<PresenceService>> PresenceService::CreateShared(
    store::SharedStore* store, const Clock* clock, SharedOptions options) {
  std::unique_ptr<PresenceService> s(new PresenceService(store, clock));
  s->shared_ = store;
  s->shared_options_ = options;
  s->receiver_ = std::make_unique<FeedReceiver>(s.get());
  if (auto st = s->LoadShared(); !st) {
    store->Unsubscribe();
    return st.error();
  }
  return s;
}

Status PresenceService::LoadShared() {
  // Subscribe first: an entry published while the snapshot is read is then
  // either in the snapshot or delivered (and kept until the load is done).
  if (auto st = shared_->Subscribe(receiver_.get()); !st) return st;
  // The realms as they stand, each read in one atomic step (with its log
  // sequence number, which the snapshot does not carry).
  auto snap = shared_->Load();
  if (!snap) return snap.error();
  std::lock_guard apply(apply_mu_);
  for (const auto& r : snap->realms) {
    if (LoadRealmLocked(r.id) == nullptr) return Errc::kUnavailable;
  }
  loaded_ = true;
  auto early = std::move(early_entries_);
  early_entries_.clear();
  for (const auto& e : early) ApplyEntryLocked(e);
  applied_cv_.notify_all();
  return {};
}

PresenceService::~PresenceService() {
  if (shared_ != nullptr) shared_->Unsubscribe();
}

void PresenceService::OnFeedEntry(const store::FeedEntry& entry) {
  std::lock_guard apply(apply_mu_);
  if (!loaded_) {
    early_entries_.push_back(entry);
    return;
  }
  ApplyEntryLocked(entry);
  applied_cv_.notify_all();
}

void PresenceService::OnFeedLost() {
  std::lock_guard apply(apply_mu_);
  if (!loaded_) return;  // the load reads everything anyway
  for (Realm* r : Realms()) (void)ResyncLocked(*r);
  applied_cv_.notify_all();
}

void PresenceService::ApplyEntryLocked(const store::FeedEntry& entry) {
  Realm* realm = FindRealmById(entry.realm_id);
  if (realm == nullptr) {
    // A realm created elsewhere (or whose first entries we missed): read it
    // whole; the entry is part of what is read.
    LoadRealmLocked(entry.realm_id);
    return;
  }
  if (entry.seq == 0) return;  // announces a realm we already have
  const UpdateId last = realm->applied_seq();
  if (entry.seq <= last) return;  // already applied (or read in a resync)
  if (entry.seq > last + 1) {
    // Entries were lost: read the realm again, which includes this one.
    (void)ResyncLocked(*realm);
    if (entry.seq <= realm->applied_seq()) return;
  }
  ApplyChangeLocked(*realm, entry);
  realm->AdvanceTo(entry.seq);
}

void PresenceService::ApplyChangeLocked(Realm& realm,
                                        const store::FeedEntry& entry) {
  if (entry.realm) realm.ApplySettings(*entry.realm);
  if (entry.user) ApplyUserLocked(realm, *entry.user);
  if (entry.access) {
    realm.SetAccess(entry.access->viewer, entry.access->visible);
  }
  if (entry.row) {
    Announce(realm.ApplyRow(*entry.row, entry.written_at, entry.event_due,
                            entry.forced));
  }
}

void PresenceService::ApplyUserLocked(Realm& realm,
                                      const store::UserRecord& user) {
  Realm::MemberDelta delta = realm.UpsertMember(user);
  if (delta.added || delta.replaced_key) {
    std::unique_lock lock(dir_mu_);
    if (delta.replaced_key) {
      UnindexKeyLocked(realm.id(), delta.slot, *delta.replaced_key);
    }
    IndexKeyLocked(realm.id(), delta.slot, user.api_key_hash);
  }
  if (listener_ == nullptr) return;
  if (delta.deactivated) listener_->OnUserDeactivated(realm.id(), user.id);
  if (delta.presence_enabled) {
    listener_->OnPresenceEnabledChange(realm.id(), user.id,
                                       *delta.presence_enabled);
  }
}

Status PresenceService::ResyncLocked(Realm& realm) {
  auto state = shared_->ReadRealm(realm.id(), realm.last_update_id());
  if (!state) return Errc::kUnavailable;
  realm.ApplySettings(state->realm);
  for (const auto& u : state->users) ApplyUserLocked(realm, u);
  realm.ReplaceAccess(state->access);
  auto rows = std::move(state->rows);
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
    return a.last_update_id < b.last_update_id;
  });
  // What happened in between is not known: watchers get the rows (so
  // transitions and subsets stay right) without a presence event.
  for (const auto& row : rows) {
    Announce(realm.ApplyRow(row, Now(), /*event_due=*/false, false));
  }
  realm.AdvanceTo(state->seq);
  return {};
}

Realm* PresenceService::LoadRealmLocked(RealmId id) {
  if (Realm* known = FindRealmById(id)) return known;
  auto state = shared_->ReadRealm(id, 0);
  if (!state) return nullptr;
  auto realm = std::make_unique<Realm>(state->realm, nullptr, /*fresh=*/true);
  realm->Reserve(state->users.size());
  std::vector<std::uint32_t> slots;
  slots.reserve(state->users.size());
  for (const auto& u : state->users) slots.push_back(realm->AddMember(u));
  for (const auto& p : state->rows) realm->LoadPresence(p);
  for (const auto& a : state->access) realm->LoadAccess(a);
  realm->FinishLoad();
  realm->AdvanceTo(state->seq);
  std::unique_lock lock(dir_mu_);
  Realm* raw = AddRealmLocked(std::move(realm));
  for (std::size_t i = 0; i < slots.size(); ++i) {
    IndexKeyLocked(id, slots[i], state->users[i].api_key_hash);
  }
  return raw;
}

Realm* PresenceService::LookupRealm(RealmId id) {
  if (Realm* known = FindRealmById(id)) return known;
  if (shared_ == nullptr) return nullptr;
  std::lock_guard apply(apply_mu_);
  Realm* realm = LoadRealmLocked(id);
  applied_cv_.notify_all();
  return realm;
}

Realm* PresenceService::FindOrLoadRealm(std::string_view subdomain) {
  auto id = shared_->FindRealmId(subdomain);
  if (!id || !*id) return nullptr;
  std::lock_guard apply(apply_mu_);
  Realm* realm = LoadRealmLocked(**id);
  applied_cv_.notify_all();
  return realm;
}

Status PresenceService::WaitApplied(const Realm& realm, UpdateId seq) {
  std::unique_lock apply(apply_mu_);
  if (applied_cv_.wait_for(apply, shared_options_.feed_wait,
                           [&] { return realm.applied_seq() >= seq; })) {
    return {};
  }
  // The feed is late or lost the entry: read the realm from the store.
  Realm& r = const_cast<Realm&>(realm);
  if (auto st = ResyncLocked(r); !st) return st;
  applied_cv_.notify_all();
  if (realm.applied_seq() >= seq) return {};
  return Errc::kUnavailable;
}

std::optional<std::string> PresenceService::StoreUnavailable() const {
  if (shared_ == nullptr) return std::nullopt;
  if (shared_->Ping()) return std::nullopt;
  std::string why = shared_->LastError();
  return "shared store unreachable" + (why.empty() ? "" : ": " + why);
}

Status PresenceService::Sync(const Realm& realm) const {
  if (shared_ == nullptr) return {};
  // The realm's log number, from a read that started after this call did;
  // concurrent callers share reads (Realm::SyncGate).
  Result<UpdateId> seq = UpdateId{0};
  {
    Realm::SyncGate& g = realm.sync_gate();
    std::unique_lock lock(g.mu);
    const std::uint64_t need = g.started + 1;
    while (g.done < need) {
      if (g.in_flight) {
        g.cv.wait(lock);
        continue;
      }
      g.in_flight = true;
      const std::uint64_t mine = ++g.started;
      lock.unlock();
      Result<UpdateId> read = shared_->CurrentSeq(realm.id());
      lock.lock();
      g.result = read;
      g.done = mine;
      g.in_flight = false;
      g.cv.notify_all();
    }
    seq = g.result;
  }
  if (!seq) return Errc::kUnavailable;
  if (realm.applied_seq() >= *seq) return {};
  return const_cast<PresenceService*>(this)->WaitApplied(realm, *seq);
}

Status PresenceService::SharedReport(const Caller& caller, ReportStatus status,
                                     Micros now) {
  auto written =
      shared_->Report(caller.realm->id(), caller.user_id, now, status);
  if (!written) return Errc::kUnavailable;
  if (!written->wrote) return {};
  return WaitApplied(*caller.realm, written->seq);
}

Result<RealmId> PresenceService::SharedCreateRealm(
    const store::RealmRecord& rec) {
  auto id = shared_->InsertRealm(rec);
  if (!id) {
    if (id.error() == Errc::kAlreadyExists) return id.error();
    return Errc::kUnavailable;
  }
  std::lock_guard apply(apply_mu_);
  if (LoadRealmLocked(*id) == nullptr) return Errc::kUnavailable;
  applied_cv_.notify_all();
  return id;
}

Status PresenceService::SharedDirectoryWrite(Realm& realm, Status written) {
  if (!written) {
    const Errc e = static_cast<Errc>(written.error().value());
    if (written.error().category() == ErrcCategory() &&
        (e == Errc::kAlreadyExists || e == Errc::kNotFound ||
         e == Errc::kInvalidArgument)) {
      return written;
    }
    return Errc::kUnavailable;
  }
  return Sync(realm);
}

Status PresenceService::SharedUpdateUser(Realm& realm, UserId user,
                                         const UserPatch& patch) {
  auto rec = realm.UserRecordOf(user);
  if (!rec) return Errc::kNotFound;
  if (patch.is_active || patch.role) {
    if (patch.is_active) rec->is_active = *patch.is_active;
    if (patch.role) rec->role = *patch.role;
    if (auto st = SharedDirectoryWrite(realm, shared_->UpdateUser(*rec)); !st) {
      return st;
    }
  }
  if (patch.presence_enabled) {
    auto w = shared_->SetPresenceEnabled(realm.id(), user,
                                         *patch.presence_enabled, Now());
    if (!w) return SharedDirectoryWrite(realm, w.error());
    if (w->wrote) return WaitApplied(realm, w->seq);
  }
  return {};
}

}  // namespace presence
