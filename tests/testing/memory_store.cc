#include "testing/memory_store.h"

#include <algorithm>

#include "util/ascii.h"

namespace presence::store {

StoreResult<Snapshot> MemoryStore::Load() {
  std::lock_guard<std::mutex> lock(mu_);
  Snapshot snap;
  snap.realms.reserve(realms_.size());
  for (const auto& [id, realm] : realms_) snap.realms.push_back(realm);
  snap.users.reserve(users_.size());
  for (const auto& [id, user] : users_) snap.users.push_back(user);
  snap.presence.reserve(presence_.size());
  for (const auto& [id, row] : presence_) snap.presence.push_back(row);
  snap.access.reserve(access_.size());
  for (const auto& [viewer, list] : access_) {
    snap.access.push_back(AccessRecord{
        .realm_id = list.realm_id,
        .viewer = viewer,
        .visible =
            std::vector<UserId>(list.visible.begin(), list.visible.end())});
  }
  for (const auto& [user, rows] : clients_) {
    for (const auto& [name, row] : rows) snap.client_presence.push_back(row);
  }
  return snap;
}

bool MemoryStore::SubdomainTaken(const std::string& subdomain,
                                 RealmId except) const {
  const std::string folded = AsciiLower(subdomain);
  return std::any_of(realms_.begin(), realms_.end(), [&](const auto& kv) {
    return kv.first != except && AsciiLower(kv.second.subdomain) == folded;
  });
}

bool MemoryStore::EmailTaken(RealmId realm, const std::string& email,
                             UserId except) const {
  const std::string folded = AsciiLower(email);
  return std::any_of(users_.begin(), users_.end(), [&](const auto& kv) {
    return kv.first != except && kv.second.realm_id == realm &&
           AsciiLower(kv.second.email) == folded;
  });
}

StoreResult<RealmId> MemoryStore::InsertRealm(const RealmRecord& realm) {
  std::lock_guard<std::mutex> lock(mu_);
  if (SubdomainTaken(realm.subdomain, 0)) return Errc::kAlreadyExists;
  RealmRecord row = realm;
  row.id = next_realm_id_++;
  realms_.emplace(row.id, row);
  return row.id;
}

StoreStatus MemoryStore::UpdateRealm(const RealmRecord& realm) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = realms_.find(realm.id);
  if (it == realms_.end()) return Errc::kNotFound;
  if (SubdomainTaken(realm.subdomain, realm.id)) return Errc::kAlreadyExists;
  it->second.subdomain = realm.subdomain;
  it->second.name = realm.name;
  it->second.presence_disabled = realm.presence_disabled;
  it->second.deactivated = realm.deactivated;
  return {};
}

StoreResult<UserId> MemoryStore::InsertUser(const UserRecord& user) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!realms_.contains(user.realm_id)) return Errc::kNotFound;
  if (EmailTaken(user.realm_id, user.email, 0)) return Errc::kAlreadyExists;
  UserRecord row = user;
  row.id = next_user_id_++;
  users_.emplace(row.id, row);
  return row.id;
}

StoreStatus MemoryStore::UpdateUser(const UserRecord& user) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = users_.find(user.id);
  if (it == users_.end()) return Errc::kNotFound;
  if (!realms_.contains(user.realm_id)) return Errc::kNotFound;
  if (EmailTaken(user.realm_id, user.email, user.id)) {
    return Errc::kAlreadyExists;
  }
  it->second = user;
  return {};
}

StoreStatus MemoryStore::SetAccess(const AccessRecord& access) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!realms_.contains(access.realm_id) || !users_.contains(access.viewer)) {
    return Errc::kNotFound;
  }
  for (UserId id : access.visible) {
    if (!users_.contains(id)) return Errc::kNotFound;
  }
  if (access.visible.empty()) {
    access_.erase(access.viewer);
    return {};
  }
  AccessList& list = access_[access.viewer];
  list.realm_id = access.realm_id;
  list.visible = std::set<UserId>(access.visible.begin(), access.visible.end());
  return {};
}

StoreStatus MemoryStore::ReserveUpdateIds(RealmId realm,
                                          UpdateId reserved_update_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = realms_.find(realm);
  if (it == realms_.end()) return Errc::kNotFound;
  it->second.reserved_update_id =
      std::max(it->second.reserved_update_id, reserved_update_id);
  return {};
}

StoreStatus MemoryStore::WritePresence(
    std::span<const PresenceRecord> rows,
    std::span<const ClientPresenceRecord> clients,
    std::span<const SequenceRecord> sequences) {
  std::lock_guard<std::mutex> lock(mu_);
  // Validate everything first: the batch is applied whole or not at all, as
  // the SQLite transaction is.
  for (const PresenceRecord& row : rows) {
    if (!users_.contains(row.user_id) || !realms_.contains(row.realm_id)) {
      return Errc::kNotFound;
    }
  }
  for (const ClientPresenceRecord& row : clients) {
    if (!users_.contains(row.user_id) || !realms_.contains(row.realm_id)) {
      return Errc::kNotFound;
    }
  }
  for (const SequenceRecord& seq : sequences) {
    if (!realms_.contains(seq.realm_id)) return Errc::kNotFound;
  }
  for (const PresenceRecord& row : rows) presence_[row.user_id] = row;
  // Replace per user: clear each named user's rows once, then insert.
  for (const ClientPresenceRecord& row : clients) clients_.erase(row.user_id);
  for (const ClientPresenceRecord& row : clients) {
    clients_[row.user_id][row.client] = row;
  }
  for (const SequenceRecord& seq : sequences) {
    RealmRecord& realm = realms_.at(seq.realm_id);
    realm.last_update_id = seq.last_update_id;
    realm.reserved_update_id =
        std::max(realm.reserved_update_id, seq.reserved_update_id);
  }
  return {};
}

}  // namespace presence::store
