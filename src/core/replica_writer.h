// ReplicaWriter: the scale-out write path (see core/presence_writer.h).
//
// Every change is made in the shared store first (which runs the rules and
// takes the realm's sequence number atomically) and comes back to every node
// on the store's feed. Entries of a realm are applied strictly in sequence
// order under apply_mu_: an entry at or below the replica's applied sequence
// is a duplicate; one more than it is applied; a gap (lost messages) makes
// the node read the realm again (ReadRealm since its last id), which brings
// it to the store's current state. A writer waits until the replica has
// applied its own change, so the node that acknowledged a write also serves
// it. Store failures are not sticky here: calls fail with Errc::kUnavailable
// while the store is unreachable. Per-client rows are not kept in this mode.
//
// Thread safety: as PresenceWriter. apply_mu_ serialises every change to the
// replica (feed thread, resyncs, realm loads) and guards loaded_ and
// early_entries_; applied_cv_ is signalled after each change. states_mu_
// guards the map of replica states (never erased; each state's applied_seq
// is written under apply_mu_, its gate is guarded by its own gate_mu). Lock
// order: PresenceService's admin lock, apply_mu_, the directory's lock, a
// Realm's lock. A state's gate mutex is taken alone.
#ifndef PRESENCE_CORE_REPLICA_WRITER_H_
#define PRESENCE_CORE_REPLICA_WRITER_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/presence_writer.h"
#include "core/shared_store.h"

namespace presence {

struct SharedOptions {
  // How long a writer waits for its own change to come back on the feed, and
  // a read barrier for the realm to catch up, before reading the realm again
  // from the store.
  std::chrono::milliseconds feed_wait{500};
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
  Status SetAccess(Realm& realm, store::AccessRecord record) override;
  Realm* LoadRealm(std::string_view subdomain) override;
  Realm* LoadRealm(RealmId id) override;
  Status Sync(const Realm& realm) override;
  Result<FlushStats> Flush() override { return FlushStats{}; }
  std::string failure() const override { return {}; }
  bool failed() const override { return false; }
  std::optional<std::string> StoreUnavailable() const override;

  // The highest log sequence number of `realm` applied here (0 if unknown).
  UpdateId AppliedSeq(RealmId realm) const;

 private:
  // What the replica knows of one realm beside its Realm.
  struct ReplicaState {
    // Highest log sequence number applied; written under apply_mu_.
    std::atomic<UpdateId> applied_seq{0};
    // Read barriers of concurrent requests share one store round trip: a
    // caller needs an answer from a read that *started* after it arrived,
    // so it waits for the read in flight to end and then for the next one,
    // which one of the waiters starts (see Sync). Guarded by gate_mu.
    std::mutex gate_mu;
    std::condition_variable gate_cv;
    bool in_flight = false;
    std::uint64_t started = 0;  // reads started so far
    std::uint64_t done = 0;     // the latest read that ended
    StoreResult<UpdateId> result = UpdateId{0};
  };

  // store::FeedSink (the store's feed thread).
  void OnFeedEntry(const store::FeedEntry& entry) override;
  void OnFeedLost() override;
  // UpdateIdReserver: a replica never takes update ids itself.
  Status ReserveUpdateIds(RealmId, UpdateId) override {
    return Errc::kUnavailable;
  }

  UpdateIdReserver* ids() { return this; }
  ReplicaState& StateOf(RealmId realm) const;
  void ApplyEntryLocked(const store::FeedEntry& entry);
  void ApplyChangeLocked(Realm& realm, const store::FeedEntry& entry);
  void ApplyUserLocked(Realm& realm, const store::UserRecord& user);
  Status ResyncLocked(Realm& realm);
  Realm* LoadRealmLocked(RealmId id);
  void AdvanceLocked(RealmId realm, UpdateId seq);
  Status WaitApplied(const Realm& realm, UpdateId seq);
  // A directory write's outcome: its own errors pass, anything else means
  // the store is unreachable; on success, a read barrier.
  Status DirectoryWrite(Realm& realm, const StoreStatus& written);
  void Announce(const std::optional<PresenceChange>& change);

  store::SharedStore* const store_;
  const SharedOptions options_;
  WriterContext context_;
  bool subscribed_ = false;

  mutable std::mutex apply_mu_;
  mutable std::condition_variable applied_cv_;
  bool loaded_ = false;                          // apply_mu_
  std::vector<store::FeedEntry> early_entries_;  // before loading; apply_mu_
  // Never erased, so references stay valid. Guarded by states_mu_ (a map
  // lookup on every read barrier must not wait for an apply).
  mutable std::mutex states_mu_;
  mutable std::unordered_map<RealmId, std::unique_ptr<ReplicaState>> states_;
};

}  // namespace presence

#endif  // PRESENCE_CORE_REPLICA_WRITER_H_
