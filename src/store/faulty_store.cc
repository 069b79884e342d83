#include "store/faulty_store.h"

#include <cassert>

namespace presence::store {

FaultyStore::FaultyStore(Store* inner) : inner_(inner) {
  assert(inner != nullptr);
}

void FaultyStore::SetFailWrites(bool fail) { writes_left_ = fail ? 0 : -1; }

void FaultyStore::FailWritesAfter(std::int64_t n) {
  writes_left_ = n < 0 ? 0 : n;
}

void FaultyStore::SetFailLoad(bool fail) { fail_load_ = fail; }

bool FaultyStore::ShouldFailWrite() {
  ++writes_;
  std::int64_t left = writes_left_.load();
  // Decrement a positive budget; 0 means failing, -1 means never failing.
  while (left > 0 && !writes_left_.compare_exchange_weak(left, left - 1)) {
  }
  if (left == 0) {
    ++failed_writes_;
    injected_ = true;
    return true;
  }
  return false;
}

std::string FaultyStore::LastError() const {
  if (injected_) return "injected failure (FaultyStore)";
  return inner_->LastError();
}

Result<Snapshot> FaultyStore::Load() {
  if (fail_load_) {
    injected_ = true;
    return Errc::kStoreFailed;
  }
  return inner_->Load();
}

Result<RealmId> FaultyStore::InsertRealm(const RealmRecord& realm) {
  if (ShouldFailWrite()) return Errc::kStoreFailed;
  return inner_->InsertRealm(realm);
}

Status FaultyStore::UpdateRealm(const RealmRecord& realm) {
  if (ShouldFailWrite()) return Errc::kStoreFailed;
  return inner_->UpdateRealm(realm);
}

Result<UserId> FaultyStore::InsertUser(const UserRecord& user) {
  if (ShouldFailWrite()) return Errc::kStoreFailed;
  return inner_->InsertUser(user);
}

Status FaultyStore::UpdateUser(const UserRecord& user) {
  if (ShouldFailWrite()) return Errc::kStoreFailed;
  return inner_->UpdateUser(user);
}

Status FaultyStore::SetAccess(const AccessRecord& access) {
  if (ShouldFailWrite()) return Errc::kStoreFailed;
  return inner_->SetAccess(access);
}

Status FaultyStore::ReserveUpdateIds(RealmId realm,
                                     UpdateId reserved_update_id) {
  if (ShouldFailWrite()) return Errc::kStoreFailed;
  return inner_->ReserveUpdateIds(realm, reserved_update_id);
}

Status FaultyStore::WritePresence(std::span<const PresenceRecord> rows,
                                  std::span<const ClientPresenceRecord> clients,
                                  std::span<const SequenceRecord> sequences) {
  if (ShouldFailWrite()) return Errc::kStoreFailed;
  return inner_->WritePresence(rows, clients, sequences);
}

}  // namespace presence::store
