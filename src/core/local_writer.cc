#include "core/local_writer.h"

#include <span>
#include <unordered_map>
#include <vector>

#include "core/directory_loader.h"

namespace presence {

LocalWriter::LocalWriter(store::Store* store) : store_(store) {}

StoreStatus LocalWriter::Start(const WriterContext& context) {
  context_ = context;
  // Streamed: no Snapshot of the whole store is held (issue #17).
  DirectoryLoader loader(context_.directory, ids(), context_.load_progress);
  if (auto st = store_->LoadInto(loader); !st) return st;
  loader.Finish();
  return {};
}

Status LocalWriter::Writable() const {
  if (failed()) return Errc::kStoreFailed;
  return {};
}

Status LocalWriter::ReserveUpdateIds(RealmId realm, UpdateId up_to) {
  auto st = store_->ReserveUpdateIds(realm, up_to);
  if (!st) {
    // Sticky here, where the store's reason is at hand; the caller's own
    // MarkFailed then finds the failure already recorded.
    MarkFailed("reserving update ids failed", st.error());
    return st.error().code();
  }
  return {};
}

void LocalWriter::MarkFailed(std::string_view what, const Error& error) {
  std::string reason(what);
  const std::string detail = error.message();
  if (!detail.empty()) reason += ": " + detail;
  {
    MutexLock lock(failure_mu_);
    if (failure_.empty()) failure_ = reason;
  }
  failed_.store(true, std::memory_order_release);
}

std::string LocalWriter::failure() const {
  MutexLock lock(failure_mu_);
  return failure_;
}

Status LocalWriter::Report(const Caller& caller, ReportStatus status,
                           Micros now, std::string_view client) {
  if (auto st = Writable(); !st) return st;
  auto change = caller.realm->RecordReport(caller.user_id, now, status, client);
  if (!change) {
    MarkFailed("reserving update ids failed", change.error());
    return change.error();
  }
  if (*change) context_.listener->OnPresenceChange(**change);
  return {};
}

Result<RealmId> LocalWriter::CreateRealm(store::RealmRecord record) {
  if (auto st = Writable(); !st) return st.error();
  record.reserved_update_id = Realm::kReserveAhead;
  auto id = store_->InsertRealm(record);
  if (!id) {
    if (id.error() == Errc::kAlreadyExists) return id.error().code();
    MarkFailed("creating a realm failed", id.error());
    return id.error().code();
  }
  record.id = *id;
  auto realm = std::make_unique<Realm>(record, ids(), /*fresh=*/true);
  realm->FinishLoad();
  context_.directory->AddRealm(std::move(realm));
  return record.id;
}

Status LocalWriter::UpdateRealm(Realm& realm,
                                const store::RealmRecord& record) {
  if (auto st = Writable(); !st) return st;
  if (auto st = store_->UpdateRealm(record); !st) {
    MarkFailed("updating a realm failed", st.error());
    return st.error().code();
  }
  realm.SetPresenceDisabled(record.presence_disabled);
  return {};
}

Result<UserId> LocalWriter::CreateUser(Realm& realm,
                                       const store::UserRecord& record) {
  if (auto st = Writable(); !st) return st.error();
  auto id = store_->InsertUser(record);
  if (!id) {
    if (id.error() == Errc::kAlreadyExists) return id.error().code();
    MarkFailed("creating a user failed", id.error());
    return id.error().code();
  }
  store::UserRecord rec = record;
  rec.id = *id;
  const std::uint32_t slot = realm.AddMember(rec);
  context_.directory->IndexKey(realm.id(), slot, rec.api_key_hash);
  return *id;
}

Status LocalWriter::WriteUsers(Realm& realm, UserBatch& batch) {
  if (auto st = Writable(); !st) return st;
  if (auto st = store_->WriteUsers(batch.create, batch.update); !st) {
    // Nothing was written (one transaction); a conflict is the caller's.
    if (st.error() == Errc::kAlreadyExists || st.error() == Errc::kNotFound) {
      return st.error().code();
    }
    MarkFailed("writing a batch of users failed", st.error());
    return st.error().code();
  }
  for (const store::UserRecord& u : batch.create) {
    const std::uint32_t slot = realm.AddMember(u);
    context_.directory->IndexKey(realm.id(), slot, u.api_key_hash);
  }
  // Only directory fields change here: no presence or activity to announce.
  for (const store::UserRecord& u : batch.update) realm.UpdateMember(u);
  return {};
}

Status LocalWriter::UpdateUser(Realm& realm, UserId user,
                               const UserPatch& patch) {
  if (auto st = Writable(); !st) return st;
  auto rec = realm.UserRecordOf(user);
  if (!rec) return Errc::kNotFound;
  if (patch.is_active) rec->is_active = *patch.is_active;
  if (patch.role) rec->role = *patch.role;
  if (patch.full_name) rec->full_name = *patch.full_name;
  if (patch.is_bot) rec->is_bot = *patch.is_bot;
  if (patch.can_access_all_users) {
    rec->can_access_all_users = *patch.can_access_all_users;
  }
  const bool toggles = patch.presence_enabled &&
                       *patch.presence_enabled != rec->presence_enabled;
  if (patch.presence_enabled) rec->presence_enabled = *patch.presence_enabled;
  if (patch.status) rec->status = *patch.status;
  if (auto st = store_->UpdateUser(*rec); !st) {
    MarkFailed("updating a user failed", st.error());
    return st.error().code();
  }
  realm.UpdateMember(*rec);
  PresenceListener& listener = *context_.listener;
  if (patch.is_active && !*patch.is_active) {
    listener.OnUserDeactivated(realm.id(), user);
  }
  if (toggles) {
    auto change = realm.SetPresenceEnabled(user, *patch.presence_enabled,
                                           context_.clock->NowMicros());
    if (!change) {
      MarkFailed("reserving update ids failed", change.error());
      return change.error();
    }
    listener.OnPresenceEnabledChange(realm.id(), user, *patch.presence_enabled);
    if (*change) listener.OnPresenceChange(**change);
  }
  if (patch.status)
    listener.OnUserStatusChange(realm.id(), user, *patch.status);
  return {};
}

Result<WriteIf> LocalWriter::UpdateStatusIf(Realm& realm,
                                            const store::UserRecord& expected,
                                            const store::UserStatus& status) {
  // The only writer of this store: the caller's lock (PresenceService's
  // admin lock) keeps the realm's copy the stored one.
  auto rec = realm.UserRecordOf(expected.id);
  if (!rec) return Errc::kNotFound;
  if (*rec != expected) return WriteIf::kStale;
  UserPatch patch;
  patch.status = status;
  if (auto st = UpdateUser(realm, expected.id, patch); !st) return st.error();
  return WriteIf::kWritten;
}

Status LocalWriter::SetAccess(Realm& realm, store::AccessRecord record) {
  if (auto st = Writable(); !st) return st;
  if (auto st = store_->SetAccess(record); !st) {
    MarkFailed("setting an access list failed", st.error());
    return st.error().code();
  }
  realm.SetAccess(record.viewer, std::move(record.visible));
  return {};
}

Result<FlushStats> LocalWriter::Flush() {
  MutexLock flush(flush_mu_);
  if (auto st = Writable(); !st) return st.error();
  const std::vector<Realm*> realms = context_.directory->Realms();
  std::vector<store::PresenceRecord> rows;
  std::vector<store::ClientPresenceRecord> clients;
  std::vector<store::SequenceRecord> sequences;
  std::vector<Realm*> touched;
  for (Realm* r : realms) {
    store::SequenceRecord seq;
    if (r->CollectDirty(rows, clients, seq)) {
      sequences.push_back(seq);
      touched.push_back(r);
    }
  }
  FlushStats stats{rows.size(), clients.size(), touched.size()};
  if (touched.empty()) return stats;
  if (auto st = store_->WritePresence(rows, clients, sequences); !st) {
    MarkFailed("writing presence failed", st.error());
    for (Realm* r : touched) r->OnFlushFailed(rows, clients);
    return st.error().code();
  }
  for (std::size_t i = 0; i < touched.size(); ++i) {
    touched[i]->OnFlushed(sequences[i]);
  }
  return stats;
}

}  // namespace presence
