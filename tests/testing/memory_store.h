// MemoryStore: a Store that keeps everything in process memory.
//
// Used by core unit tests (fast, deterministic) and anywhere durability is not
// wanted. Its observable behaviour is the same as SqliteStore's, and the typed
// store suite (tests/store/store_typed_test.cc) runs against both:
//   - realm and user ids are allocated 1, 2, 3, ... (separately), only by
//     successful inserts, and never reused;
//   - a realm subdomain is unique ignoring ASCII case (host names are
//     case-insensitive); an email is unique within its realm ignoring ASCII
//     case. A clash on insert or update returns Errc::kAlreadyExists;
//   - UpdateRealm / UpdateUser / ReserveUpdateIds of a missing id return
//     Errc::kNotFound;
//   - references must exist: InsertUser/UpdateUser need the realm, SetAccess
//     needs the realm, the viewer and every visible user, WritePresence needs
//     every row's user and realm and every sequence's realm. Otherwise
//     Errc::kNotFound and nothing is changed (WritePresence is all or nothing);
//   - SetAccess replaces the viewer's list; an empty list removes it. Load
//     returns each list sorted ascending without duplicates, and no record for
//     a viewer without a list;
//   - WritePresence upserts by user_id (the last row for a user wins), sets a
//     realm's last_update_id and raises (never lowers) its reserved_update_id;
//   - WritePresence replaces, for every user with records in `clients`, that
//     user's client rows with exactly those records (store.h);
//   - Load returns every vector ordered by id (access: by viewer; client
//     rows: by user id, then client name).
//
// Thread safety: every method takes mu_; safe to call from any thread.
#ifndef PRESENCE_TESTING_MEMORY_STORE_H_
#define PRESENCE_TESTING_MEMORY_STORE_H_

#include <map>
#include <mutex>
#include <set>
#include <span>

#include "core/store.h"

namespace presence::store {

class MemoryStore final : public Store {
 public:
  MemoryStore() = default;
  MemoryStore(const MemoryStore&) = delete;
  MemoryStore& operator=(const MemoryStore&) = delete;
  ~MemoryStore() override = default;

  StoreResult<Snapshot> Load() override;
  StoreResult<RealmId> InsertRealm(const RealmRecord& realm) override;
  StoreStatus UpdateRealm(const RealmRecord& realm) override;
  StoreResult<UserId> InsertUser(const UserRecord& user) override;
  StoreStatus UpdateUser(const UserRecord& user) override;
  StoreStatus SetAccess(const AccessRecord& access) override;
  StoreStatus ReserveUpdateIds(RealmId realm,
                               UpdateId reserved_update_id) override;
  StoreStatus WritePresence(std::span<const PresenceRecord> rows,
                            std::span<const ClientPresenceRecord> clients,
                            std::span<const SequenceRecord> sequences) override;

 private:
  struct AccessList {
    RealmId realm_id = 0;
    std::set<UserId> visible;
  };

  // True if another realm than `except` has this subdomain. mu_ held.
  bool SubdomainTaken(const std::string& subdomain, RealmId except) const;
  // True if another user than `except` in `realm` has this email. mu_ held.
  bool EmailTaken(RealmId realm, const std::string& email, UserId except) const;

  mutable std::mutex mu_;
  RealmId next_realm_id_ = 1;                  // guarded by mu_
  UserId next_user_id_ = 1;                    // guarded by mu_
  std::map<RealmId, RealmRecord> realms_;      // guarded by mu_
  std::map<UserId, UserRecord> users_;         // guarded by mu_
  std::map<UserId, PresenceRecord> presence_;  // guarded by mu_
  std::map<UserId, AccessList> access_;        // by viewer; guarded by mu_
  // Client rows by user, then client name; guarded by mu_.
  std::map<UserId, std::map<std::string, ClientPresenceRecord>> clients_;
};

}  // namespace presence::store

#endif  // PRESENCE_TESTING_MEMORY_STORE_H_
