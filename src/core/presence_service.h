// PresenceService: the whole presence state of a server and its rules, the
// one entry point the API layer uses: authenticate, report, fetch, look up
// one user, change settings, and the admin operations.
//
// It keeps the read side (the Directory of realms and keys, lookups,
// fetches) and validates input; every change goes to the PresenceWriter
// chosen at creation (core/presence_writer.h): LocalWriter for one node on
// its own store, ReplicaWriter for a node of a group sharing one. It reads
// time only from the injected Clock.
//
// Thread safety: all public methods may be called from any thread. The
// Directory and each Realm guard themselves; admin_mu_ serialises directory
// changes (and is held across the writer's store calls for them).
#ifndef PRESENCE_CORE_PRESENCE_SERVICE_H_
#define PRESENCE_CORE_PRESENCE_SERVICE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "core/directory.h"
#include "core/presence_listener.h"
#include "core/presence_writer.h"
#include "core/realm.h"
#include "core/replica_writer.h"
#include "core/shared_store.h"
#include "core/store.h"
#include "core/types.h"
#include "util/clock.h"
#include "util/mutex.h"
#include "util/result.h"

namespace presence {

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

// Bulk onboarding (PresenceService::ImportUsers).
enum class ImportOutcome { kCreated, kUpdated, kUnchanged };
struct ImportedUser {
  UserId user_id = 0;  // 0 in a dry run for a user not created yet
  ImportOutcome outcome = ImportOutcome::kUnchanged;
  std::string api_key;  // only when created (shown once)
};
// Why row `index` of an import was refused; `field` names the culprit.
struct ImportRejection {
  std::size_t index = 0;
  std::string field;
  std::string reason;
};
struct ImportResult {
  // Not empty: nothing was applied, and `users` is empty.
  std::vector<ImportRejection> rejected;
  // One per row, in the rows' order.
  std::vector<ImportedUser> users;
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

class PresenceService {
 public:
  // Starts `writer` (which loads the state its store holds). `clock` must
  // outlive the service. `max_clients_per_user`: as SetMaxClientsPerUser,
  // applied while loading (a lowered bound trims the stored client rows).
  // An error carries the store's reason.
  // `load_progress`: see WriterContext::load_progress.
  static StoreResult<std::unique_ptr<PresenceService>> Create(
      std::unique_ptr<PresenceWriter> writer, const Clock* clock,
      std::size_t max_clients_per_user = 8,
      std::function<void(std::string_view phase)> load_progress = {});
  // One node on its own store: Create with a LocalWriter. `store` must
  // outlive the service.
  static StoreResult<std::unique_ptr<PresenceService>> Create(
      store::Store* store, const Clock* clock,
      std::size_t max_clients_per_user = 8);
  // One node of a group sharing `store`: Create with a ReplicaWriter.
  // `store` must outlive the service.
  static StoreResult<std::unique_ptr<PresenceService>> CreateShared(
      store::SharedStore* store, const Clock* clock,
      SharedOptions options = {});
  PresenceService(const PresenceService&) = delete;
  PresenceService& operator=(const PresenceService&) = delete;

  // Set before serving; not changed afterwards.
  void SetListener(PresenceListener* listener) { relay_.target = listener; }
  // Per-client extension: at most `n` (>= 1) client rows per user, the
  // stalest dropped (default 8). Set before serving; applies to every realm.
  void SetMaxClientsPerUser(std::size_t n);

  const Clock& clock() const { return *clock_; }
  Micros Now() const { return clock_->NowMicros(); }

  // --- Lookup ------------------------------------------------------------

  // nullptr if no realm has that subdomain. In shared mode a realm this node
  // does not know yet is looked up in the store (and loaded).
  Realm* FindRealm(std::string_view subdomain) const;
  // The realm with that subdomain if this node holds it already; never asks
  // the store (an I/O thread may call it).
  Realm* FindLoadedRealm(std::string_view subdomain) const;
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
  // per-client extension) names the reporting client; empty: none. On
  // success it has also passed a read barrier (see Sync): the realm reflects
  // every change the store had when the call began, written or not.
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

  // Zulip's user status update (POST /users/me/status and its admin twin),
  // already validated: with `update.away`, presence_enabled becomes its
  // opposite first (Zulip's deprecated mapping: the setting's own events
  // follow); then the fields passed replace the user's status (the others
  // keep theirs; a user without one starts from the empty status) and one
  // user_status event names what was passed. Always writes, as Zulip does.
  // kNotFound if the user is not in the realm.
  //
  // Extensions (issue #18): scheduled_end_time and dnd / dnd_end_time as
  // passed; a new status_text or emoji without scheduled_end_time removes
  // the previous end (it belonged to the status it was set with); dnd
  // without dnd_end_time, and dnd=false, remove dnd's end. The event names
  // an extension field when it was passed or changed.
  Status UpdateUserStatus(RealmId realm, UserId user,
                          const StatusUpdate& update);

  // A status end came (StatusDeadlines): if the user's status still ends at
  // `end` (UNIX seconds) for `kind`, clears what ends (the text and emoji;
  // or dnd) and announces it as a status update; otherwise (changed
  // meanwhile) writes nothing. In a group, the write is a compare and set
  // of the user's record, so of several nodes clearing the same end exactly
  // one writes. kWritten if this call wrote, kStale if there was nothing
  // (left) to clear.
  Result<WriteIf> ExpireUserStatus(RealmId realm, UserId user,
                                   StatusEndKind kind, std::int64_t end);

  // --- Admin -----------------------------------------------------------------

  // kInvalidArgument for a bad subdomain or name, kAlreadyExists if taken.
  Result<RealmId> CreateRealm(std::string_view subdomain,
                              std::string_view name);
  Status SetRealmPresenceDisabled(RealmId realm, bool disabled);
  // kNotFound (realm), kInvalidArgument (email, name), kAlreadyExists.
  Result<CreatedUser> CreateUser(RealmId realm, const NewUser& user);
  // Bulk onboarding, idempotent by email (case-insensitive): a row whose
  // email is new creates that user; a row matching a user updates its
  // full_name, role, is_bot and can_access_all_users where they differ, and
  // is "unchanged" where none does (activity, presence settings and keys are
  // never touched). Every row is checked first: a bad email or name, or an
  // email twice in `rows`, is a rejection, and then nothing is applied.
  // With `dry_run`, nothing is applied either: the answer says what would
  // be. Errors: kNotFound (realm); a store failure (the embedded store
  // commits the batch in one transaction, so nothing was applied; on a
  // shared store the rows before the failure may have been).
  Result<ImportResult> ImportUsers(RealmId realm,
                                   const std::vector<NewUser>& rows,
                                   bool dry_run = false);
  // kNotFound if the user is not in that realm. A patch that sets every
  // field it names to the value it has (e.g. PATCH /settings with
  // presence_enabled unchanged) writes nothing, announces nothing and
  // leaves the realm's directory generation (every cached login) alone.
  Status UpdateUser(RealmId realm, UserId user, const UserPatch& patch);
  // kNotFound (realm or viewer), kInvalidArgument (a visible id not in realm).
  Status SetAccess(RealmId realm, UserId viewer, std::vector<UserId> visible);

  // --- Store ---------------------------------------------------------------

  // Read barrier: returns once `realm` reflects every change the store had
  // when the call began (kUnavailable if the store is unreachable). Nothing
  // to wait for on a single node.
  Status Sync(const Realm& realm) const { return writer_->Sync(realm); }

  // Scale-out: a request's one store step, without blocking the calling
  // thread (PresenceWriter::Gate). Only where gates().
  bool gates() const { return writer_->gates(); }
  void CancelWaits() { writer_->CancelWaits(); }
  void Gate(const Caller& caller, const RequestGate& gate,
            GateDone done) const {
    writer_->Gate(caller, gate, std::move(done));
  }
  // Why a shared store cannot be reached right now (for /healthz); nullopt
  // when it answers, and always on a single node.
  std::optional<std::string> StoreUnavailable() const {
    return writer_->StoreUnavailable();
  }
  // The same without waiting on the calling thread (an I/O thread's /healthz
  // in scale-out mode): `done` runs once, on any thread.
  void StoreUnavailableAsync(
      std::function<void(std::optional<std::string>)> done) const {
    writer_->StoreUnavailableAsync(std::move(done));
  }
  // The same, and whether writes work (PresenceWriter::HealthAsync).
  void HealthAsync(std::function<void(WriterHealth)> done) const {
    writer_->HealthAsync(std::move(done));
  }

  // Commits every presence row changed since the last flush.
  Result<FlushStats> Flush() { return writer_->Flush(); }

  // "" while healthy; the reason once a store write failed.
  std::string failure() const { return writer_->failure(); }
  bool failed() const { return writer_->failed(); }

  PresenceWriter& writer() const { return *writer_; }

 private:
  // Forwards to the listener set with SetListener (none: drops).
  struct Relay final : PresenceListener {
    void OnPresenceChange(const PresenceChange& change) override {
      if (PresenceListener* t = target.load()) t->OnPresenceChange(change);
    }
    void OnPresenceEnabledChange(RealmId realm, UserId user,
                                 bool enabled) override {
      if (PresenceListener* t = target.load()) {
        t->OnPresenceEnabledChange(realm, user, enabled);
      }
    }
    void OnUserDeactivated(RealmId realm, UserId user) override {
      if (PresenceListener* t = target.load())
        t->OnUserDeactivated(realm, user);
    }
    void OnUserStatusChange(RealmId realm, UserId user,
                            const store::UserStatus& status) override {
      if (PresenceListener* t = target.load()) {
        t->OnUserStatusChange(realm, user, status);
      }
    }
    // Set while a feed thread may already call: atomic.
    std::atomic<PresenceListener*> target{nullptr};
  };

  PresenceService(std::unique_ptr<PresenceWriter> writer, const Clock* clock);

  const Clock* const clock_;
  Relay relay_;
  Directory directory_;
  // After directory_ and relay_: destroyed first, so that a feed thread
  // stops before what it writes to goes.
  const std::unique_ptr<PresenceWriter> writer_;
  Mutex admin_mu_;  // serialises directory changes (guards no data)
};

// Subdomain rules: "" (the root realm) or 1-63 of [a-z0-9-], not starting or
// ending with '-'.
bool ValidSubdomain(std::string_view s);

}  // namespace presence

#endif  // PRESENCE_CORE_PRESENCE_SERVICE_H_
