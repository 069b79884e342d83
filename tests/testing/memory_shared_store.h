// MemorySharedStore: a SharedStore in process memory, for tests of the
// multi-node core: several PresenceService instances (the "nodes") share one
// MemorySharedStore as they would share Redis.
//
// It keeps MemoryStore's contract for the plain Store methods (it delegates
// to one) and adds what shared_store.h promises: every change of a realm
// takes the realm's next sequence number and is published to every
// subscriber. The presence rules run here, under the store's lock, with the
// core's pure functions (core/presence_rules.h) — the Redis store runs the
// same rules in Lua, and its tests compare the two.
//
// Feed delivery is asynchronous, as over a network: each subscriber has its
// own queue and delivery thread. Tests can hold deliveries back
// (PauseFeed/ResumeFeed), lose entries (DropNextEntries), cut a subscription
// (InterruptFeed: OnFeedLost is delivered) and make every call fail
// (SetUnavailable: Errc::kUnavailable, as an unreachable Redis).
//
// Thread safety: every method may be called from any thread; the store's
// state is guarded by mu_, each subscriber's queue by its own mutex. Sinks are
// called without any store lock held.
#ifndef PRESENCE_TESTING_MEMORY_SHARED_STORE_H_
#define PRESENCE_TESTING_MEMORY_SHARED_STORE_H_

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "core/shared_store.h"
#include "testing/memory_store.h"

namespace presence::store {

class MemorySharedStore final : public SharedStore {
 public:
  MemorySharedStore();
  MemorySharedStore(const MemorySharedStore&) = delete;
  MemorySharedStore& operator=(const MemorySharedStore&) = delete;
  ~MemorySharedStore() override;

  // A view of the same shared state with its own feed subscription, as a
  // second process would have its own Redis connection. The view must not
  // outlive this store.
  std::unique_ptr<SharedStore> NewConnection();

  // --- Store ---------------------------------------------------------------
  StoreResult<Snapshot> Load() override;
  StoreResult<RealmId> InsertRealm(const RealmRecord& realm) override;
  StoreStatus UpdateRealm(const RealmRecord& realm) override;
  StoreResult<UserId> InsertUser(const UserRecord& user) override;
  StoreStatus UpdateUser(const UserRecord& user) override;
  StoreResult<bool> UpdateUserIf(const UserRecord& expected,
                                 const UserRecord& user) override;
  StoreStatus SetAccess(const AccessRecord& access) override;
  StoreStatus ReserveUpdateIds(RealmId realm,
                               UpdateId reserved_update_id) override;
  StoreStatus WritePresence(std::span<const PresenceRecord> rows,
                            std::span<const ClientPresenceRecord> clients,
                            std::span<const SequenceRecord> sequences) override;

  // --- SharedStore ---------------------------------------------------------
  StoreStatus Subscribe(FeedSink* sink) override;
  void Unsubscribe() override;
  using SharedStore::Report;
  StoreResult<WriteResult> Report(RealmId realm, UserId user, Micros now,
                                  ReportStatus status,
                                  const ReportClient& client) override;
  StoreResult<WriteResult> SetPresenceEnabled(RealmId realm, UserId user,
                                              bool enabled,
                                              Micros now) override;
  StoreResult<UpdateId> CurrentSeq(RealmId realm) override;
  StoreResult<UpdateId> Fence(RealmId realm, UpdateId log,
                              UpdateId update_id) override;
  StoreResult<std::optional<RealmId>> FindRealmId(
      std::string_view subdomain) override;
  StoreResult<RealmState> ReadRealm(RealmId realm, UpdateId since) override;
  StoreResult<RateCount> CountRequest(UserId user, Micros now,
                                      std::int64_t limit,
                                      Micros window) override;
  StoreStatus Ping() override;
  StoreResult<std::int64_t> RegisterNode(
      std::string_view address, std::chrono::milliseconds ttl) override;
  StoreStatus RefreshNode(std::int64_t node, std::string_view address,
                          std::chrono::milliseconds ttl) override;
  StoreResult<std::optional<std::string>> NodeAddress(
      std::int64_t node) override;
  StoreResult<std::vector<std::pair<std::int64_t, std::string>>> LiveNodes()
      override;

  // --- Test controls ---------------------------------------------------------
  void PauseFeed();
  void ResumeFeed();
  // The next `n` published entries reach no subscriber.
  void DropNextEntries(int n);
  // Every subscriber gets OnFeedLost (after the entries already queued).
  void InterruptFeed();
  void SetUnavailable(bool unavailable);
  // Blocks until every subscriber's queue is empty and nothing is being
  // delivered (while the feed is not paused).
  void WaitFeedIdle();
  // A failover that loses writes: Checkpoint() saves the presence state
  // (every realm's log and update id, the rows, the client rows) and
  // Rewind() puts it back, as a promoted replica that missed what came after
  // would (directory changes made in between are kept). Entries published
  // in between stay published.
  struct Checkpoint;
  std::shared_ptr<const Checkpoint> SaveCheckpoint() const;
  void Rewind(const Checkpoint& checkpoint);
  // How many entries were published so far.
  std::size_t published() const;
  // How many FindRealmId calls reached the store, over every connection.
  std::size_t find_realm_calls() const;
  // How many Report, CurrentSeq and CountRequest calls reached the store
  // (a Gate makes one to three of them), over every connection.
  std::size_t steps() const;

 private:
  class Connection;
  struct Subscriber;

  StoreStatus Subscribe(FeedSink* sink, const void* owner);
  void Unsubscribe(const void* owner);
  // The realm's next log sequence number / presence update id. mu_ held.
  UpdateId TakeSeqLocked(RealmId realm);
  UpdateId TakeUpdateIdLocked(RealmId realm);
  // Queues `entry` for every subscriber. mu_ held.
  void PublishLocked(const FeedEntry& entry);
  StoreStatus CheckAvailableLocked() const;
  // Drops the node registrations past their deadline. mu_ held.
  void PruneNodesLocked();

  mutable std::mutex mu_;
  MemoryStore base_;                       // the plain Store contract
  std::map<RealmId, RealmRecord> realms_;  // mirror, with the sequence
  std::map<UserId, UserRecord> users_;     // mirror
  std::map<UserId, PresenceRecord> rows_;  // current rows
  // Per-client rows of each user, by client name.
  std::map<UserId, std::vector<ClientPresenceRecord>> clients_;
  std::map<RealmId, UpdateId> log_;
  std::map<RealmId, std::int64_t> fences_;  // Fence calls per realm
  std::map<UserId, std::deque<Micros>>
      requests_;  // rate-limit logs        // log sequence per realm
  struct Node {
    std::string address;
    std::chrono::steady_clock::time_point deadline;
  };
  std::map<std::int64_t, Node> nodes_;
  std::int64_t next_node_ = 1;
  bool unavailable_ = false;
  int drop_next_ = 0;
  bool paused_ = false;
  std::size_t published_ = 0;
  std::size_t find_realm_calls_ = 0;
  std::size_t steps_ = 0;
  std::vector<std::unique_ptr<Subscriber>> subscribers_;
};

}  // namespace presence::store

#endif  // PRESENCE_TESTING_MEMORY_SHARED_STORE_H_
