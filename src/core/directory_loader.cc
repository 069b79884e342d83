#include "core/directory_loader.h"

#include <memory>
#include <thread>
#include <utility>
#include <vector>

namespace presence {

DirectoryLoader::DirectoryLoader(Directory* directory, UpdateIdReserver* ids,
                                 Progress progress)
    : directory_(directory), ids_(ids), progress_(std::move(progress)) {}

void DirectoryLoader::Enter(std::string_view phase) {
  if (phase_ == phase) return;
  phase_ = phase;
  if (progress_) progress_(phase);
}

Realm* DirectoryLoader::RealmOf(RealmId id) {
  if (last_ != nullptr && last_->id() == id) return last_;
  auto it = realms_.find(id);
  if (it == realms_.end()) return nullptr;
  last_ = it->second;
  return last_;
}

StoreStatus DirectoryLoader::OnRealms(
    std::span<const store::RealmRecord> realms) {
  Directory& dir = *directory_;
  dir.Exclusive([&] {
    dir.AssertHeld();
    for (const auto& r : realms) {
      realms_[r.id] = dir.AddRealmLocked(std::make_unique<Realm>(r, ids_));
    }
  });
  return {};
}

StoreStatus DirectoryLoader::OnUserCount(std::size_t users) {
  // Size every table once: at a million users, growing them row by row
  // is a large part of the start-up time. Per realm only when there is one
  // realm (counting per realm would cost a scan of its own).
  Directory& dir = *directory_;
  dir.Exclusive([&] {
    dir.AssertHeld();
    dir.ReserveKeysLocked(users);
  });
  if (realms_.size() == 1) realms_.begin()->second->Reserve(users);
  user_count_ = users;
  return {};
}

void DirectoryLoader::IndexUsers() {
  if (indexed_) return;
  indexed_ = true;
  Enter("index");
  // The realms' id and email sets (Realm::IndexLoadedMembers, itself on
  // two threads when large) on a helper thread while this one fills the
  // key index: three independent tables. The key index takes no realm
  // lock but, rarely, a realm's shared one (a prefix already taken), which
  // then waits for the helper to finish that realm: nothing waits the
  // other way.
  std::vector<Realm*> realms;
  for (const auto& [id, realm] : realms_) realms.push_back(realm);
  std::thread helper([&realms] {
    for (Realm* realm : realms) realm->IndexLoadedMembers();
  });
  Directory& dir = *directory_;
  dir.Exclusive([&] {
    dir.AssertHeld();
    for (auto& [realm_id, keys] : keys_) {
      dir.IndexLoadedKeysLocked(realm_id, keys);
      std::vector<std::pair<std::uint64_t, std::uint32_t>>().swap(keys);
    }
  });
  helper.join();
  keys_.clear();
}

StoreStatus DirectoryLoader::OnUsers(std::span<const store::UserRecord> users) {
  Enter("users");
  for (std::size_t i = 0; i < users.size();) {
    std::size_t end = i;
    while (end < users.size() && users[end].realm_id == users[i].realm_id) {
      ++end;
    }
    Realm* realm = RealmOf(users[i].realm_id);
    if (realm == nullptr) {
      return Error(Errc::kCorrupt, "Load users: user " +
                                       std::to_string(users[i].id) +
                                       " of unknown realm " +
                                       std::to_string(users[i].realm_id));
    }
    const std::uint32_t first = realm->LoadMembers(users.subspan(i, end - i));
    auto& keys = keys_[realm->id()];
    if (keys.empty() && realms_.size() == 1) keys.reserve(user_count_);
    for (std::size_t k = i; k < end; ++k) {
      keys.emplace_back(KeyIndex::Prefix(users[k].api_key_hash),
                        first + static_cast<std::uint32_t>(k - i));
    }
    i = end;
  }
  return {};
}

StoreStatus DirectoryLoader::OnPresence(
    std::span<const store::PresenceRecord> rows) {
  IndexUsers();
  Enter("presence");
  for (std::size_t i = 0; i < rows.size();) {
    std::size_t end = i;
    while (end < rows.size() && rows[end].realm_id == rows[i].realm_id) {
      ++end;
    }
    if (Realm* realm = RealmOf(rows[i].realm_id)) {
      realm->LoadPresence(rows.subspan(i, end - i));
    }
    i = end;
  }
  return {};
}

StoreStatus DirectoryLoader::OnAccess(
    std::span<const store::AccessRecord> lists) {
  IndexUsers();
  Enter("access");
  for (const auto& a : lists) {
    if (Realm* realm = RealmOf(a.realm_id)) realm->LoadAccess(a);
  }
  return {};
}

StoreStatus DirectoryLoader::OnClientPresence(
    std::span<const store::ClientPresenceRecord> rows) {
  IndexUsers();
  Enter("clients");
  for (const auto& c : rows) {
    if (Realm* realm = RealmOf(c.realm_id)) realm->LoadClientPresence(c);
  }
  return {};
}

void DirectoryLoader::Finish() {
  IndexUsers();
  Enter("order");
  for (Realm* realm : directory_->Realms()) realm->FinishLoad();
  Enter("done");
}

}  // namespace presence
