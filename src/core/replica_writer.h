// ReplicaWriter: the scale-out write path (see core/presence_writer.h).
//
// Every change is made in the shared store first (which runs the rules and
// takes the realm's sequence number atomically) and comes back to every node
// on the store's feed. Entries of a realm are applied strictly in sequence
// order under apply_mu_: an entry at or below the replica's applied sequence
// is a duplicate; one more than it is applied; a gap (lost messages) makes
// the node read the realm again (ReadRealm since its last id), which brings
// it to the store's current state.
//
// Read-your-writes, and read-what-the-store-saw, across nodes: every store
// step (Report, SetPresenceEnabled) returns the realm's log sequence number
// as the step saw it, written or not, and the writer waits (WaitApplied)
// until the replica has applied at least that number before it returns. So
// the node that acknowledged a write also serves it, and a report that
// writes nothing because another node's write made the row fresh answers
// with that write, never the row from before it (spec 3.1). Report is
// therefore also a read barrier for the realm (see Sync): nothing the store
// had when the call began is missing from the replica when it returns. Store
// failures are not sticky here: calls fail with Errc::kUnavailable while the
// store is unreachable.
//
// A store that went back (a Redis failover lost the last writes, which the
// replica had already applied from the feed) would hand the same log numbers
// and update ids out again, and the replica would drop the new entries as
// duplicates. The writer notices it where it is certain: a write sent after
// the replica applied log number N that took a number <= N; a feed entry at
// an applied number whose row is newer than the replica's (reads are no
// proof: a demoted master answers them from its old data). Then it fences the
// realm (SharedStore::Fence: the store's counters move past what this node
// applied, and every node is told) and reads it whole, which brings back what
// it dropped. A node that missed the fence's entry sees the realm's fence count
// change at its next resync (every reconnection of the feed makes one) and
// reads the realm whole too.
//
// Gate's store steps of one realm are batched (core/gate_batcher.h): one
// store call in flight per realm; the requests that arrive meanwhile go
// together in the next call, each stepped in order and answered with its
// own log position, so each request waits as above for the number its own
// step saw. A batched step is sent no earlier than the request arrived, so
// everything the store had when the request arrived is in its answer.
//
// Gate may answer a ping without a store step (AnswersLocally): one that
// writes nothing on the replica's row, from a client whose cursor the
// replica has reached (its own reports, on any node, are applied), while
// the replica was confirmed current less than options.fresh_for ago (a
// store step sent then has its log number applied: everyone else's changes
// are at most that late), and, if counted, let through by the rate limit's
// local lease (core/rate_lease.h). Presence rows only move forward while
// the user is visible, so the store's row is at least as fresh and its
// report would write nothing either.
//
// Per-client rows (extension) are kept in the shared store too: the store's
// report step applies the client-row rules with the user row's (Realm::
// RecordReport's, ported), and every entry that changed a user's client
// rows carries all of them, which replace the replica's (Realm::
// ApplyClientRows); ReadRealm brings them back after a gap. The bound is
// this node's --max-clients-per-user, applied by the store when a new
// client is added (so nodes of a group should agree on it).
//
// Thread safety: as PresenceWriter. apply_mu_ serialises every change to the
// replica (feed thread, resyncs, realm loads) and guards loaded_ and
// early_entries_; applied_cv_ is signalled after each change. states_mu_
// guards the map of replica states (never erased; each state's applied_seq
// is written under apply_mu_, its gate is guarded by its own gate_mu);
// unknown_subdomains_ guards itself (a leaf lock, taken alone). Lock
// order: PresenceService's admin lock, apply_mu_, the directory's lock, a
// Realm's lock. A state's gate mutex is taken alone.
#ifndef PRESENCE_CORE_REPLICA_WRITER_H_
#define PRESENCE_CORE_REPLICA_WRITER_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/gate_batcher.h"
#include "core/presence_writer.h"
#include "core/rate_lease.h"
#include "core/shared_store.h"
#include "core/unknown_subdomains.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace presence {

struct SharedOptions {
  // How long a writer waits for its own change to come back on the feed, and
  // a read barrier for the realm to catch up, before reading the realm again
  // from the store.
  std::chrono::milliseconds feed_wait{500};
  // Real time (never a test clock that may stand still) for the negative
  // cache of unknown subdomains: a subdomain the store had no realm for is
  // not asked about again for `unknown_subdomain_window`
  // (core/unknown_subdomains.h). Null: no such cache, every miss asks.
  const Clock* cache_clock = nullptr;
  std::chrono::milliseconds unknown_subdomain_window{1000};
  // A ping that writes nothing, whose client's cursor this replica has
  // reached, is answered without a store step while the replica was
  // confirmed current (a store step's log number applied) less than this
  // long ago (see Gate). 0: every request takes its store step.
  std::chrono::milliseconds fresh_for{100};
  // The rate limit's local budget (core/rate_lease.h): the most requests
  // one count in the store counts at once; 1: every counted request is
  // counted in the store (exact).
  std::int64_t rate_lease = RateLease::kMaxLease;
  // The most requests of one realm sent in one store call (core/
  // gate_batcher.h): while a realm's call is in flight, its next requests
  // wait and go together in the next one. 1: one request per call.
  std::size_t gate_batch = GateBatcher::kDefaultMaxBatch;
};

class ReplicaWriter final : public PresenceWriter,
                            private store::FeedSink,
                            private UpdateIdReserver {
 public:
  // `store` must outlive the writer.
  explicit ReplicaWriter(store::SharedStore* store, SharedOptions options = {});
  // Unsubscribes from the feed: no entry is applied after it returns.
  ~ReplicaWriter() override;

  // Subscribes to the store's feed, then loads every realm.
  StoreStatus Start(const WriterContext& context) override;
  Status Writable() const override { return {}; }
  Status Report(const Caller& caller, ReportStatus status, Micros now,
                std::string_view client) override;
  Result<RealmId> CreateRealm(store::RealmRecord record) override;
  Status UpdateRealm(Realm& realm, const store::RealmRecord& record) override;
  Result<UserId> CreateUser(Realm& realm,
                            const store::UserRecord& record) override;
  Status UpdateUser(Realm& realm, UserId user, const UserPatch& patch) override;
  Result<WriteIf> UpdateStatusIf(Realm& realm,
                                 const store::UserRecord& expected,
                                 const store::UserStatus& status) override;
  Status SetAccess(Realm& realm, store::AccessRecord record) override;
  Realm* LoadRealm(std::string_view subdomain) override;
  Realm* LoadRealm(RealmId id) override;
  Status Sync(const Realm& realm) override;
  Result<FlushStats> Flush() override { return FlushStats{}; }
  std::string failure() const override { return {}; }
  bool failed() const override { return false; }
  std::optional<std::string> StoreUnavailable() const override;
  void StoreUnavailableAsync(
      std::function<void(std::optional<std::string>)> done) const override;
  void HealthAsync(std::function<void(WriterHealth)> done) const override;
  bool gates() const override { return true; }
  void CancelWaits() override EXCLUDES(apply_mu_);
  void Gate(const Caller& caller, const RequestGate& gate,
            GateDone done) override;

  // The highest log sequence number of `realm` applied here (0 if unknown).
  UpdateId AppliedSeq(RealmId realm) const;

 private:
  // What the replica knows of one realm beside its Realm.
  struct ReplicaState {
    // Highest log sequence number applied; written under apply_mu_.
    std::atomic<UpdateId> applied_seq{0};
    // When (steady clock, ns since its epoch) the latest store step whose
    // log number the replica has since applied was sent: the replica had
    // everything the store had then.
    std::atomic<std::int64_t> confirmed_at{
        std::numeric_limits<std::int64_t>::min()};
    // Read barriers of concurrent requests share one store round trip: a
    // caller needs an answer from a read that *started* after it arrived,
    // so it waits for the read in flight to end and then for the next one,
    // which one of the waiters starts (see Sync).
    Mutex gate_mu;  // guards the fields below
    CondVar gate_cv;
    bool in_flight GUARDED_BY(gate_mu) = false;
    std::uint64_t started GUARDED_BY(gate_mu) = 0;  // reads started so far
    std::uint64_t done GUARDED_BY(gate_mu) = 0;     // the latest that ended
    StoreResult<UpdateId> result GUARDED_BY(gate_mu) = UpdateId{0};
    // The realm's fence count (SharedStore::Fence) as last read or
    // announced; written under apply_mu_.
    std::atomic<std::int64_t> fences{0};
  };
  // How a resync reads the realm: the rows after the replica's last update
  // id, or every row.
  enum class Read { kSince, kWhole };

  // store::FeedSink (the store's feed thread).
  void OnFeedEntry(const store::FeedEntry& entry) override;
  void OnFeedLost() override;
  // UpdateIdReserver: a replica never takes update ids itself.
  Status ReserveUpdateIds(RealmId, UpdateId) override {
    return Errc::kUnavailable;
  }

  UpdateIdReserver* ids() { return this; }
  // Whether Gate may answer `gate` (a ping) from the replica without a
  // store step, the rate limit aside.
  bool AnswersLocally(const Caller& caller, const RequestGate& gate,
                      const ReplicaState& state) const;
  static std::int64_t SteadyNanos();
  // The replica has applied what a store step sent at `sent` saw.
  static void Confirm(ReplicaState& state, std::int64_t sent);
  ReplicaState& StateOf(RealmId realm) const;
  void ApplyEntryLocked(const store::FeedEntry& entry) REQUIRES(apply_mu_);
  void ApplyChangeLocked(Realm& realm, const store::FeedEntry& entry)
      REQUIRES(apply_mu_);
  void ApplyUserLocked(Realm& realm, const store::UserRecord& user)
      REQUIRES(apply_mu_);
  Status ResyncLocked(Realm& realm, Read read = Read::kSince)
      REQUIRES(apply_mu_);
  // The store is behind what the replica applied of `realm`: raises the
  // store's counters past it (SharedStore::Fence), then reads it whole.
  Status FenceLocked(Realm& realm) REQUIRES(apply_mu_);
  // FenceLocked on the sweeper thread (for an I/O thread, which must not
  // wait on the store); `done` runs there after it.
  void FenceAsync(const Realm& realm, std::function<void(Status)> done)
      EXCLUDES(apply_mu_);
  // The same from a thread that may wait: fences and returns its outcome.
  Status Fence(const Realm& realm) EXCLUDES(apply_mu_);
  // Whether a store step's answer shows the store went back: `before` is
  // what the replica had applied when the step was sent; a write, which
  // only a master runs, takes a number above what any master had then.
  // (A read proves nothing: a demoted master still answers reads from its
  // old data until the connection meets READONLY.)
  static bool WentBack(UpdateId before, const store::WriteResult& w) {
    return w.wrote && w.seq <= before;
  }
  // The update id of the user's row in the replica (0: no row), nullopt
  // for an unknown user.
  static std::optional<UpdateId> RowIdOf(const Realm& realm, UserId user);
  // A resync's client rows (by user), each user's applied in update order.
  void ApplyClientRowsLocked(
      Realm& realm, const std::vector<store::ClientPresenceRecord>& clients,
      Micros now) REQUIRES(apply_mu_);
  Realm* LoadRealmLocked(RealmId id) REQUIRES(apply_mu_);
  void AdvanceLocked(RealmId realm, UpdateId seq) REQUIRES(apply_mu_);
  Status WaitApplied(const Realm& realm, UpdateId seq) EXCLUDES(apply_mu_);
  // WaitApplied without waiting on the calling thread: `done` runs at once
  // if the replica is there, else on the feed thread once it is (or on the
  // sweeper thread after a resync, once options_.feed_wait has passed).
  void WaitAppliedAsync(const Realm& realm, UpdateId seq,
                        std::function<void(Status)> done) EXCLUDES(apply_mu_);
  // Takes the waiters of `realm` that the replica has reached.
  void TakeReadyLocked(RealmId realm,
                       std::vector<std::function<void(Status)>>& ready)
      REQUIRES(apply_mu_);
  void TakeAllReadyLocked(std::vector<std::function<void(Status)>>& ready)
      REQUIRES(apply_mu_);
  // The sweeper thread: resyncs the realms whose waiters are past their
  // deadline, then answers them.
  void SweepWaiters() EXCLUDES(apply_mu_);
  // A directory write's outcome: its own errors pass, anything else means
  // the store is unreachable; on success, a read barrier.
  Status DirectoryWrite(Realm& realm, const StoreStatus& written);
  void Announce(const std::optional<PresenceChange>& change);

  store::SharedStore* const store_;
  const SharedOptions options_;
  WriterContext context_;
  bool subscribed_ = false;
  UnknownSubdomains unknown_subdomains_;
  RateLease leases_;
  // Every Gate's store step goes through it (one call per realm at a time).
  GateBatcher batcher_;

  // Serialises every change to the replica; guards loaded_ and
  // early_entries_. applied_cv_ is signalled after each change.
  mutable Mutex apply_mu_;
  mutable CondVar applied_cv_;
  bool loaded_ GUARDED_BY(apply_mu_) = false;
  // Entries that came before the load ended.
  std::vector<store::FeedEntry> early_entries_ GUARDED_BY(apply_mu_);
  // Never erased, so references stay valid. A map lookup on every read
  // barrier must not wait for an apply: its own lock.
  // Requests waiting (WaitAppliedAsync) for their realm's replica to reach
  // a log sequence number, by realm, then by that number.
  struct Waiter {
    std::chrono::steady_clock::time_point deadline;
    std::function<void(Status)> done;
  };
  std::unordered_map<RealmId, std::multimap<UpdateId, Waiter>> waiters_
      GUARDED_BY(apply_mu_);
  std::size_t waiting_ GUARDED_BY(apply_mu_) = 0;
  bool stopping_ GUARDED_BY(apply_mu_) = false;
  // Realms to fence on the sweeper thread, each with its caller (FenceAsync).
  std::vector<std::pair<RealmId, std::function<void(Status)>>> fence_due_
      GUARDED_BY(apply_mu_);
  CondVar sweep_cv_;  // with apply_mu_: a waiter was added, or stopping_
  std::thread sweeper_;
  mutable Mutex states_mu_;  // guards states_
  mutable std::unordered_map<RealmId, std::unique_ptr<ReplicaState>> states_
      GUARDED_BY(states_mu_);
};

}  // namespace presence

#endif  // PRESENCE_CORE_REPLICA_WRITER_H_
