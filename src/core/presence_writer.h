// PresenceWriter: the write path of one deployment mode, behind one
// interface that the composition root (src/app) chooses once:
//
//   LocalWriter   (core/local_writer.h)   one node, its own Store (SQLite):
//                 the node runs the rules, takes update ids from a durable
//                 reservation and writes presence rows behind; a failed
//                 store write is sticky.
//   ReplicaWriter (core/replica_writer.h) several nodes on a SharedStore
//                 (Redis): the store runs the rules and takes the ids; the
//                 node applies the store's feed in order to its replica and
//                 waits for its own writes to come back; reads pass a read
//                 barrier.
//
// PresenceService keeps the read side (lookups, fetches, authentication)
// and input validation, and hands every change to its writer. A writer
// changes the in-memory state only through the Directory and the Realms it
// is given in Start, and tells the listener of every change.
//
// Thread safety: every method may be called from any thread, except Start
// (once, before anything else). PresenceService serialises the directory
// changes (CreateRealm ... SetAccess) with its admin lock; Report, Sync and
// Flush run concurrently with everything.
#ifndef PRESENCE_CORE_PRESENCE_WRITER_H_
#define PRESENCE_CORE_PRESENCE_WRITER_H_

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/directory.h"
#include "core/presence_listener.h"
#include "core/realm.h"
#include "core/shared_store.h"
#include "core/store.h"
#include "core/types.h"
#include "util/clock.h"
#include "util/result.h"

namespace presence {

struct UserPatch {
  std::optional<bool> is_active;
  std::optional<bool> presence_enabled;
  std::optional<Role> role;
  // Bulk onboarding (PresenceService::ImportUsers) changes these too.
  std::optional<std::string> full_name;
  std::optional<bool> is_bot;
  std::optional<bool> can_access_all_users;
  // Replaces the user status (PresenceService::UpdateUserStatus).
  std::optional<store::UserStatus> status;
};

// What a compare-and-set write did (PresenceWriter::UpdateStatusIf).
enum class WriteIf : std::uint8_t {
  kWritten,
  kStale,  // the record was not the one expected: nothing written
};

// One user status update, as POST /users/me/status passes it (validated;
// emoji_code and reaction_type are set whenever emoji_name is).
struct StatusUpdate {
  std::optional<bool> away;
  std::optional<std::string> status_text;
  std::optional<std::string> emoji_name;
  std::optional<std::string> emoji_code;
  std::optional<std::string> reaction_type;
  // Extensions (issue #18), checked (api/user_status.h): UNIX seconds, 0
  // removes the end.
  std::optional<std::int64_t> scheduled_end_time;
  std::optional<bool> dnd;
  std::optional<std::int64_t> dnd_end_time;  // only with dnd == true
};

// A batch of directory changes to one realm (bulk onboarding).
struct UserBatch {
  // New users, complete and validated; WriteUsers sets each one's id.
  std::vector<store::UserRecord> create;
  // Existing users: full records with changed full_name, role, is_bot or
  // can_access_all_users (nothing else differs from the realm's copy).
  std::vector<store::UserRecord> update;
};

struct FlushStats {
  std::size_t rows = 0;
  std::size_t client_rows = 0;
  std::size_t realms = 0;
};

// One API request's step through the store, in scale-out mode (Gate).
struct RequestGate {
  // Zulip's per-user rate limit, counted for the whole group; 0: not
  // counted here.
  std::int64_t rate_limit = 0;
  Micros rate_now = 0;  // real time
  Micros rate_window = 0;
  // A ping: the caller's own report at `now`, made only if the rate limit
  // let the request through.
  std::optional<ReportStatus> report;
  Micros now = 0;
  // The reporting client's name (per-client extension; empty: none).
  std::string_view client;
  // A ping's last_update_id, when it has one (>= 0): the client has seen
  // every presence change up to it, its own reports included. A writer may
  // answer a ping that writes nothing from a replica that has it without a
  // store step (ReplicaWriter::Gate).
  std::optional<UpdateId> cursor;
};

struct GateOutcome {
  // kUnavailable if the store could not be reached or the replica did not
  // catch up.
  Status status;
  // The rate decision, when counted (rate_limit > 0). When refused
  // (!allowed), nothing was reported and status is ok.
  std::optional<store::RateCount> rate;
  // When status failed: why, in words, for the 503's message and the log
  // ("" when the writer gives no reason).
  std::string why;
};

using GateDone = std::function<void(GateOutcome)>;

// What /healthz says of a writer's store (PresenceWriter::HealthAsync).
struct WriterHealth {
  // Why the store cannot be reached now (requests fail), or nullopt.
  std::optional<std::string> unavailable;
  // Reachable, but writes fail now (scale-out: e.g. WAIT without enough
  // replicas in sync): why; reads are still served.
  std::optional<std::string> degraded;
};

// What a writer works on; owned by PresenceService, valid for the writer's
// life.
struct WriterContext {
  Directory* directory = nullptr;
  PresenceListener* listener = nullptr;  // never null
  const Clock* clock = nullptr;
  // Called as each phase of the start-up load begins (the phase's name,
  // "done" at the end), so that the caller can time them; may be empty.
  // Only LocalWriter reports phases (core/directory_loader.h).
  std::function<void(std::string_view phase)> load_progress;
};

class PresenceWriter {
 public:
  virtual ~PresenceWriter() = default;

  // Attaches the writer to `context` and loads the state the store holds
  // into the directory. An error carries the store's reason.
  virtual StoreStatus Start(const WriterContext& context) = 0;

  // Whether writes are accepted now: kStoreFailed after a sticky failure.
  virtual Status Writable() const = 0;

  // The caller's own report at `now` (spec 3.1/3.2). `client`: the
  // reporting client's name (per-client extension; empty: none). Also a
  // read barrier, written or not: on success the caller's realm reflects
  // every change the store had when the call began, as after Sync (the
  // route flag kWriteIsBarrier relies on it).
  virtual Status Report(const Caller& caller, ReportStatus status, Micros now,
                        std::string_view client) = 0;

  // Directory changes; the record is complete and validated. kAlreadyExists
  // and kNotFound as the Store documents them.
  virtual Result<RealmId> CreateRealm(store::RealmRecord record) = 0;
  virtual Status UpdateRealm(Realm& realm,
                             const store::RealmRecord& record) = 0;
  virtual Result<UserId> CreateUser(Realm& realm,
                                    const store::UserRecord& record) = 0;
  // kNotFound if the user is not in the realm.
  virtual Status UpdateUser(Realm& realm, UserId user,
                            const UserPatch& patch) = 0;
  virtual Status SetAccess(Realm& realm, store::AccessRecord record) = 0;
  // Writes `expected` with `status` as its status, only if the user's
  // record in the store is still `expected` (compare and set); kStale, with
  // nothing written, when it is not (another node wrote the user meanwhile:
  // Sync and read it again). The user status event follows as UpdateUser's.
  virtual Result<WriteIf> UpdateStatusIf(Realm& realm,
                                         const store::UserRecord& expected,
                                         const store::UserStatus& status) = 0;
  // Applies `batch` to `realm`, setting the id of each created user.
  // LocalWriter commits it in one store transaction: all or nothing. This
  // default makes one CreateUser / UpdateUser call each and stops at the
  // first failure: created users before it keep their ids, the rest id 0.
  virtual Status WriteUsers(Realm& realm, UserBatch& batch) {
    for (store::UserRecord& u : batch.create) {
      auto id = CreateUser(realm, u);
      if (!id) return id.error();
      u.id = *id;
    }
    for (const store::UserRecord& u : batch.update) {
      UserPatch patch;
      patch.role = u.role;
      patch.full_name = u.full_name;
      patch.is_bot = u.is_bot;
      patch.can_access_all_users = u.can_access_all_users;
      if (auto st = UpdateUser(realm, u.id, patch); !st) return st;
    }
    return {};
  }

  // A realm the directory does not hold yet, from the store if it has it
  // (another node created it); nullptr if none.
  virtual Realm* LoadRealm(std::string_view subdomain) = 0;
  virtual Realm* LoadRealm(RealmId id) = 0;

  // Read barrier: returns once `realm` reflects every change the store had
  // when the call began (kUnavailable if it cannot be reached).
  virtual Status Sync(const Realm& realm) = 0;

  // Whether Gate is available: the writer's store answers asynchronously,
  // so that an I/O thread hands it a request and goes on serving others.
  virtual bool gates() const { return false; }
  // The request's one store step (rate limit, the ping's report, the read
  // barrier), then a wait until the caller's realm reflects everything the
  // step saw; `done` runs exactly once, on any thread (the store's or the
  // feed's), or before Gate returns. On an ok status the realm is synced as
  // after Report or Sync. Only where gates().
  virtual void Gate(const Caller& caller, const RequestGate& gate,
                    GateDone done) {
    (void)caller;
    (void)gate;
    done({Errc::kUnavailable, std::nullopt});
  }

  // Answers (kUnavailable) every Gate still waiting, at shutdown.
  virtual void CancelWaits() {}

  // Commits what is written behind (nothing to do where nothing is).
  virtual Result<FlushStats> Flush() = 0;

  // "" while healthy; the reason once a store write failed (sticky).
  virtual std::string failure() const = 0;
  // failure() is not empty (cheap: read on every request).
  virtual bool failed() const = 0;
  // Why the store cannot be reached right now (for /healthz), or nullopt.
  virtual std::optional<std::string> StoreUnavailable() const = 0;
  // The same without waiting on the calling thread: `done` gets the answer
  // once, on any thread (here, before it returns).
  virtual void StoreUnavailableAsync(
      std::function<void(std::optional<std::string>)> done) const {
    done(StoreUnavailable());
  }
  // StoreUnavailableAsync, and whether writes work (WriterHealth); `done`
  // runs once, on any thread. This implementation never says degraded.
  virtual void HealthAsync(std::function<void(WriterHealth)> done) const {
    StoreUnavailableAsync(
        [done = std::move(done)](std::optional<std::string> why) {
          done(WriterHealth{std::move(why), std::nullopt});
        });
  }
};

}  // namespace presence

#endif  // PRESENCE_CORE_PRESENCE_WRITER_H_
