#include "store/faulty_store.h"

#include <cassert>
#include <string>

namespace presence::store {
namespace {

Error Injected() {
  return Error(Errc::kStoreFailed, std::string(FaultyStore::kInjectedFailure));
}

}  // namespace

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
    return true;
  }
  return false;
}

StoreResult<Snapshot> FaultyStore::Load() {
  if (fail_load_) {
    return Injected();
  }
  return inner_->Load();
}

StoreStatus FaultyStore::LoadInto(LoadSink& sink) {
  if (fail_load_) {
    return Injected();
  }
  return inner_->LoadInto(sink);
}

StoreResult<RealmId> FaultyStore::InsertRealm(const RealmRecord& realm) {
  if (ShouldFailWrite()) return Injected();
  return inner_->InsertRealm(realm);
}

StoreStatus FaultyStore::UpdateRealm(const RealmRecord& realm) {
  if (ShouldFailWrite()) return Injected();
  return inner_->UpdateRealm(realm);
}

StoreResult<UserId> FaultyStore::InsertUser(const UserRecord& user) {
  if (ShouldFailWrite()) return Injected();
  return inner_->InsertUser(user);
}

StoreStatus FaultyStore::UpdateUser(const UserRecord& user) {
  if (ShouldFailWrite()) return Injected();
  return inner_->UpdateUser(user);
}

StoreStatus FaultyStore::SetAccess(const AccessRecord& access) {
  if (ShouldFailWrite()) return Injected();
  return inner_->SetAccess(access);
}

StoreStatus FaultyStore::ReserveUpdateIds(RealmId realm,
                                          UpdateId reserved_update_id) {
  if (ShouldFailWrite()) return Injected();
  return inner_->ReserveUpdateIds(realm, reserved_update_id);
}

StoreStatus FaultyStore::WritePresence(
    std::span<const PresenceRecord> rows,
    std::span<const ClientPresenceRecord> clients,
    std::span<const SequenceRecord> sequences) {
  if (ShouldFailWrite()) return Injected();
  return inner_->WritePresence(rows, clients, sequences);
}

}  // namespace presence::store
