// Directory: the realms a node holds in memory and the API-key index over
// their members. Both write paths (core/local_writer.h,
// core/replica_writer.h) add realms and keys here; the read side
// (PresenceService) looks realms up and authenticates requests.
//
// Realms are never removed, so a Realm* handed out stays valid for the
// directory's life.
//
// Thread safety: every method may be called from any thread. mu_ guards the
// realm maps and the key index. Lock order: mu_, then a Realm's lock
// (loading fills realms inside Exclusive; the key index's prefix-collision
// check reads the holder's realm under mu_, so no caller of *IndexKey*
// may hold a realm's lock: loading indexes a realm's keys after
// Realm::LoadMembers has released it).
#ifndef PRESENCE_CORE_DIRECTORY_H_
#define PRESENCE_CORE_DIRECTORY_H_

#include <atomic>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "core/key_index.h"
#include "core/realm.h"
#include "core/types.h"
#include "util/crypto.h"
#include "util/function_ref.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace presence {

// An authenticated requester.
struct Caller {
  Realm* realm = nullptr;
  UserId user_id = 0;
  bool is_bot = false;
  bool limited = false;  // guest without access to all users
  // realm->directory_generation() read before the caller was authenticated:
  // while the realm's value is still this, authenticating the same request
  // again would give this same caller (see Realm::directory_generation).
  std::uint64_t directory_generation = 0;
};

enum class AuthFailure {
  kInvalidApiKey,     // "Invalid API key"
  kRealmDeactivated,  // "This organization has been deactivated"
  kUserDeactivated,   // "Account is deactivated"
  kWrongRealm,        // "Account is not associated with this subdomain"
};

class Directory {
 public:
  Directory() = default;
  Directory(const Directory&) = delete;
  Directory& operator=(const Directory&) = delete;

  // nullptr if no realm here has that subdomain / id.
  Realm* FindRealm(std::string_view subdomain) const;
  Realm* FindRealmById(RealmId id) const;
  // Every realm, ordered by id.
  std::vector<Realm*> Realms() const;

  // Checks an API key (already known to be 32 alphanumerics) and email for a
  // request addressed to `realm` (Zulip's order of checks, spec 2.0).
  std::variant<Caller, AuthFailure> Authenticate(
      const Realm& realm, std::string_view email,
      std::string_view api_key) const;

  // Per-client extension: the bound every realm applies (>= 1), also to
  // realms added later.
  void SetMaxClientsPerUser(std::size_t n);
  std::size_t max_clients_per_user() const {
    return max_clients_per_user_.load();
  }

  // Takes the realm (its subdomain and id must be new) and returns it.
  Realm* AddRealm(std::unique_ptr<Realm> realm);
  // Indexes the key of the member at `slot` of the realm / removes it.
  void IndexKey(RealmId realm, std::uint32_t slot, const Digest& key);
  void UnindexKey(RealmId realm, std::uint32_t slot, const Digest& key);

  // Loading many realms and users: runs `fn` with mu_ held exclusively, in
  // which only the *Locked methods below may be used (`fn` starts with
  // AssertHeld(), which tells the compiler's lock analysis so).
  void Exclusive(FunctionRef<void()> fn) EXCLUDES(mu_);
  void AssertHeld() const ASSERT_CAPABILITY(mu_) { mu_.AssertHeld(); }
  Realm* AddRealmLocked(std::unique_ptr<Realm> realm) REQUIRES(mu_);
  void IndexKeyLocked(RealmId realm, std::uint32_t slot, const Digest& key)
      REQUIRES(mu_);
  void UnindexKeyLocked(RealmId realm, std::uint32_t slot, const Digest& key)
      REQUIRES(mu_);
  void ReserveKeysLocked(std::size_t n) REQUIRES(mu_) { key_index_.Reserve(n); }
  // Loading: IndexKeyLocked for many members of one realm, keys[i] being
  // (KeyIndex::Prefix of the key's digest, the member's slot), inserted in
  // the order of their places in the index (util/hash_order.h) rather than
  // one cache miss each. A prefix already taken goes through
  // IndexKeyLocked with the member's digest, read under the realm's shared
  // lock (so, as for IndexKeyLocked, the caller holds no realm lock).
  void IndexLoadedKeysLocked(
      RealmId realm,
      std::span<const std::pair<std::uint64_t, std::uint32_t>> keys)
      REQUIRES(mu_);
  Realm* FindRealmByIdLocked(RealmId id) const REQUIRES_SHARED(mu_);

 private:
  KeyIndex::Ref KeyRefLocked(RealmId realm, std::uint32_t slot) const
      REQUIRES_SHARED(mu_);

  // Guards the maps and the key index (shared for lookups).
  mutable SharedMutex mu_;
  std::unordered_map<RealmId, std::unique_ptr<Realm>> realms_ GUARDED_BY(mu_);
  std::unordered_map<std::string, Realm*> realm_by_subdomain_ GUARDED_BY(mu_);
  // API keys -> (realm ordinal << 32 | slot) of the holder (see KeyIndex).
  // Ordinals index realm_by_ordinal_ (realms are never removed).
  KeyIndex key_index_ GUARDED_BY(mu_);
  std::vector<Realm*> realm_by_ordinal_ GUARDED_BY(mu_);
  std::unordered_map<RealmId, std::uint32_t> ordinal_by_id_ GUARDED_BY(mu_);
  std::atomic<std::size_t> max_clients_per_user_{8};
};

}  // namespace presence

#endif  // PRESENCE_CORE_DIRECTORY_H_
