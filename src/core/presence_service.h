// PresenceService: the whole presence state of a server and its rules.
//
// It owns every Realm, the API-key index and the link to the Store, and is
// the one entry point the API layer uses: authenticate, report, fetch, look
// up one user, change settings, and the admin operations. It reads time only
// from the injected Clock and touches disk only through the injected Store.
//
// Durability: directory changes (realms, users, keys, settings, access) are
// committed to the store before the call returns. Presence rows are written
// behind: Flush() commits everything changed since the last flush. A failed
// store write is sticky: from then on every write is refused with
// Errc::kStoreFailed (reads keep working) and failure() says why.
//
// Thread safety: all public methods may be called from any thread. dir_mu_
// guards the realm maps and the key index; each Realm guards itself;
// admin_mu_ serialises directory changes (and is the only lock held across a
// store call, besides the rare synchronous reservation inside a Realm);
// flush_mu_ serialises flushes.
#ifndef PRESENCE_CORE_PRESENCE_SERVICE_H_
#define PRESENCE_CORE_PRESENCE_SERVICE_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "core/key_index.h"
#include "core/realm.h"
#include "core/shared_store.h"
#include "core/store.h"
#include "core/types.h"
#include "util/clock.h"
#include "util/crypto.h"
#include "util/result.h"

namespace presence {

// Told of every presence write (change.event_due says whether Zulip would
// send an event for it, spec 3.3), after the realm's lock was released.
// Called on the thread that made the change.
class PresenceListener {
 public:
  virtual ~PresenceListener() = default;
  virtual void OnPresenceChange(const PresenceChange& change) = 0;
  // presence_enabled of `user` changed to `enabled` (a user_settings event).
  virtual void OnPresenceEnabledChange(RealmId realm, UserId user,
                                       bool enabled) {}
  // `user` was deactivated: its event queues must go at once.
  virtual void OnUserDeactivated(RealmId realm, UserId user) {}
};

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

struct NewUser {
  std::string email;
  std::string full_name;
  Role role = Role::kMember;
  bool is_bot = false;
  bool can_access_all_users = true;
};

struct CreatedUser {
  UserId user_id = 0;
  std::string api_key;  // shown once; only its hash is kept
};

struct UserPatch {
  std::optional<bool> is_active;
  std::optional<bool> presence_enabled;
  std::optional<Role> role;
};

// The single-user lookup (spec 2.3).
enum class LookupFailure {
  kNoSuchUser,
  kBot,
  kInsufficientPermission,
  kNoPresenceData,
};
struct UserPresence {
  PresenceTimes times;
  Micros date_joined = 0;
  ClientRowList clients;  // per-client rows (filled only when asked for)
};

struct FlushStats {
  std::size_t rows = 0;
  std::size_t client_rows = 0;
  std::size_t realms = 0;
};

// Scale-out mode (see store/shared_store.h).
struct SharedOptions {
  // How long a writer waits for its own change to come back on the feed, and
  // a read barrier for the realm to catch up, before reading the realm again
  // from the store.
  std::chrono::milliseconds feed_wait{500};
};

class PresenceService {
 public:
  // Loads the store's state. `store` and `clock` must outlive the service.
  // `max_clients_per_user`: as SetMaxClientsPerUser, applied while loading
  // (a lowered bound trims the stored client rows).
  static Result<std::unique_ptr<PresenceService>> Create(
      store::Store* store, const Clock* clock,
      std::size_t max_clients_per_user = 8);
  // Scale-out: the service is one node's replica of a store shared with other
  // nodes. It subscribes to the store's feed, then loads; every change is
  // made in the store first and reaches the replica through the feed (a
  // writer waits until its own change has been applied). Store failures are
  // not sticky here: calls fail with Errc::kUnavailable while the store is
  // unreachable. Per-client rows are not kept in this mode. `store` and
  // `clock` must outlive the service.
  static Result<std::unique_ptr<PresenceService>> CreateShared(
      store::SharedStore* store, const Clock* clock,
      SharedOptions options = {});
  ~PresenceService();
  PresenceService(const PresenceService&) = delete;
  PresenceService& operator=(const PresenceService&) = delete;

  // Set before serving; not changed afterwards.
  void SetListener(PresenceListener* listener) { listener_ = listener; }
  // Per-client extension: at most `n` (>= 1) client rows per user, the
  // stalest dropped (default 8). Set before serving; applies to every realm.
  void SetMaxClientsPerUser(std::size_t n);

  const Clock& clock() const { return *clock_; }
  Micros Now() const { return clock_->NowMicros(); }

  // --- Lookup ------------------------------------------------------------

  // nullptr if no realm has that subdomain. In shared mode a realm this node
  // does not know yet is looked up in the store (and loaded).
  Realm* FindRealm(std::string_view subdomain) const;
  Realm* FindRealmById(RealmId id) const;
  // As FindRealmById; in shared mode a realm this node does not know yet is
  // read from the store (and loaded).
  Realm* LookupRealm(RealmId id);
  // Every realm, ordered by id.
  std::vector<Realm*> Realms() const;

  // Checks an API key (already known to be 32 alphanumerics) and email for a
  // request addressed to `realm` (Zulip's order of checks, spec 2.0).
  std::variant<Caller, AuthFailure> Authenticate(
      const Realm& realm, std::string_view email,
      std::string_view api_key) const;

  // --- Presence ------------------------------------------------------------

  // The caller's own report at the current time. Invisible users and bots
  // change nothing. kStoreFailed once the store has failed. `client` (the
  // per-client extension) names the reporting client; empty: none.
  Status Report(const Caller& caller, ReportStatus status, Micros now,
                std::string_view client = {});

  // Visits the rows of a realm fetch as the caller sees them; returns
  // presence_last_update_id.
  UpdateId Fetch(const Caller& caller, const FetchQuery& query, Micros now,
                 FunctionRef<void(const Member&)> visit) const;
  // The same with each member's client rows (Realm::FetchWithClients).
  UpdateId FetchWithClients(
      const Caller& caller, const FetchQuery& query, Micros now,
      FunctionRef<void(const Member&, const ClientRowList*)> visit) const;

  // One user's row by decimal id or email (spec 2.3).
  std::variant<UserPresence, LookupFailure> LookupUser(
      const Caller& caller, std::string_view id_or_email,
      bool with_clients = false) const;

  // The caller's own invisible-mode switch (PATCH /settings).
  Status SetPresenceEnabled(RealmId realm, UserId user, bool enabled);

  // --- Admin -----------------------------------------------------------------

  // kInvalidArgument for a bad subdomain or name, kAlreadyExists if taken.
  Result<RealmId> CreateRealm(std::string_view subdomain,
                              std::string_view name);
  Status SetRealmPresenceDisabled(RealmId realm, bool disabled);
  // kNotFound (realm), kInvalidArgument (email, name), kAlreadyExists.
  Result<CreatedUser> CreateUser(RealmId realm, const NewUser& user);
  // kNotFound if the user is not in that realm.
  Status UpdateUser(RealmId realm, UserId user, const UserPatch& patch);
  // kNotFound (realm or viewer), kInvalidArgument (a visible id not in realm).
  Status SetAccess(RealmId realm, UserId viewer, std::vector<UserId> visible);

  // --- Shared mode -------------------------------------------------------

  bool shared() const { return shared_ != nullptr; }
  // Read barrier: returns once the replica of `realm` has applied every
  // change the store had when the call began (kUnavailable if the store is
  // unreachable). Does nothing in single-node mode.
  Status Sync(const Realm& realm) const;
  // Shared mode: why the store cannot be reached right now (for /healthz);
  // nullopt when it answers, and always in single-node mode.
  std::optional<std::string> StoreUnavailable() const;

  // --- Durability --------------------------------------------------------

  // Commits every presence row changed since the last flush.
  Result<FlushStats> Flush();

  // "" while healthy; the reason once a store write failed.
  std::string failure() const;
  bool failed() const { return failed_.load(std::memory_order_acquire); }

 private:
  PresenceService(store::Store* store, const Clock* clock);
  Status Load();

  // Shared mode (presence_service_shared.cc). apply_mu_ serialises every
  // change to the replica (feed thread, resyncs, realm loads); lock order:
  // admin_mu_, apply_mu_, dir_mu_, a Realm's lock.
  class FeedReceiver final : public store::FeedSink {
   public:
    explicit FeedReceiver(PresenceService* s) : s_(s) {}
    void OnFeedEntry(const store::FeedEntry& entry) override {
      s_->OnFeedEntry(entry);
    }
    void OnFeedLost() override { s_->OnFeedLost(); }

   private:
    PresenceService* const s_;
  };
  Status LoadShared();
  void OnFeedEntry(const store::FeedEntry& entry);
  void OnFeedLost();
  void ApplyEntryLocked(const store::FeedEntry& entry);
  void ApplyChangeLocked(Realm& realm, const store::FeedEntry& entry);
  void ApplyUserLocked(Realm& realm, const store::UserRecord& user);
  Status ResyncLocked(Realm& realm);
  Realm* LoadRealmLocked(RealmId id);
  Realm* FindOrLoadRealm(std::string_view subdomain);
  Status WaitApplied(const Realm& realm, UpdateId seq);
  Status SharedReport(const Caller& caller, ReportStatus status, Micros now);
  Result<RealmId> SharedCreateRealm(const store::RealmRecord& rec);
  Status SharedDirectoryWrite(Realm& realm, Status written);
  Status SharedUpdateUser(Realm& realm, UserId user, const UserPatch& patch);
  Status CheckWritable() const;
  void MarkFailed(std::string_view what);
  void Announce(const std::optional<PresenceChange>& change);
  // Registers a new realm in the maps (dir_mu_ held exclusively).
  Realm* AddRealmLocked(std::unique_ptr<Realm> realm);
  // Indexes the key of the member at `slot` of the realm (dir_mu_ held
  // exclusively; takes the realm's lock).
  void IndexKeyLocked(RealmId realm, std::uint32_t slot, const Digest& key);
  void UnindexKeyLocked(RealmId realm, std::uint32_t slot, const Digest& key);
  KeyIndex::Ref KeyRefLocked(RealmId realm, std::uint32_t slot) const;

  store::Store* const store_;
  const Clock* const clock_;
  PresenceListener* listener_ = nullptr;
  std::atomic<std::size_t> max_clients_per_user_{8};

  mutable std::shared_mutex dir_mu_;
  std::unordered_map<RealmId, std::unique_ptr<Realm>> realms_;
  std::unordered_map<std::string, Realm*> realm_by_subdomain_;
  // API keys -> (realm ordinal << 32 | slot) of the holder (see KeyIndex).
  // Ordinals index realm_by_ordinal_ (realms are never removed).
  KeyIndex key_index_;
  std::vector<Realm*> realm_by_ordinal_;
  std::unordered_map<RealmId, std::uint32_t> ordinal_by_id_;

  std::mutex admin_mu_;
  std::mutex flush_mu_;

  store::SharedStore* shared_ = nullptr;
  SharedOptions shared_options_;
  std::unique_ptr<FeedReceiver> receiver_;
  mutable std::mutex apply_mu_;
  mutable std::condition_variable applied_cv_;
  bool loaded_ = false;                          // guarded by apply_mu_
  std::vector<store::FeedEntry> early_entries_;  // before loading; apply_mu_

  std::atomic<bool> failed_{false};
  mutable std::mutex failure_mu_;
  std::string failure_;
};

// Subdomain rules: "" (the root realm) or 1-63 of [a-z0-9-], not starting or
// ending with '-'.
bool ValidSubdomain(std::string_view s);

}  // namespace presence

#endif  // PRESENCE_CORE_PRESENCE_SERVICE_H_
