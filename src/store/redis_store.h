// RedisStore: the SharedStore of presenced's multi-node mode, on Redis
// (standalone, or Redis Cluster through RedisClient's minimal routing).
//
// The code is split along its ideas: redis_keys.h (the key layout: one
// realm on one slot, hash tag {rN}; global keys on {presenced}),
// redis_codec.h (how records are stored and sent), lua/ and
// redis_scripts.h (the atomic steps), redis_feed.h (the subscriber thread and
// the feed message format), redis_client.h (connections and cluster routing)
// and this file (the SharedStore that puts them together; redis_store.cc
// holds its plumbing and presence steps, redis_store_directory.cc the
// directory, write-behind and read steps).
//
// Keys of one realm N: presenced:{rN}:meta (hash: subdomain, name,
// presence_disabled, deactivated, date_created, seq (the realm's last
// presence update id), log (its last log sequence number), reserved,
// fences (how often it was fenced after a failover lost writes:
// SharedStore::Fence)),
// :users (user id -> encoded user), :emails (lower(email) -> user id), :rows
// (user id -> encoded row), :rowseq (zset of user ids by the row's update
// id), :access (viewer -> id list), :clients (user id -> client rows, the
// per-client extension: written by the report and invisible-mode scripts,
// read whole by ReadRealm, which keeps the users changed after `since`),
// :rate:U:requests and :rate:U:n (user U's rate-limit log and counter, as
// the gate script keeps them), :gate:TOKEN (with Sentinel, a gate batch's
// answer for 10 s, so that a batch sent again after a failover broke its
// connection gets it instead of running twice).
// Global: presenced:{presenced}:next_realm_id, next_user_id, next_node_id
// (INCR counters), subdomains (lower -> realm id), realms (realm id ->
// lower), user_realm (user id -> realm id), nodes (node id -> host:port) and
// node_deadlines (zset of node ids by the end of their registration, in
// Redis's clock, ms).
//
// Atomic steps are Lua scripts on one realm's slot (EVALSHA, with a fallback
// to EVAL on NOSCRIPT): Report and SetPresenceEnabled (the rules of
// core/presence_rules.cc, ported to Lua), the directory writes (each takes
// the realm's next sequence number with HINCRBY and publishes one entry),
// ReadRealm, and the global-index steps on the {presenced} slot.
//
// Feed: every entry is PUBLISHed on kFeedChannel by the script that made the
// change; RedisFeed (redis_feed.h) decodes them for the sink.
//
// Where the Store contract meets Redis Cluster (documented deviations):
//   - InsertRealm / InsertUser check first and allocate the id after, in
//     separate steps (the counter lives on another slot than the realm), so
//     a failed insert takes no id; only two concurrent inserts of one email
//     in one realm (or a connection lost between the steps) can waste one.
//   - Directory writes take a sequence number (shared_store.h), so they
//     raise the realm's last_update_id as Load reports it.
//   - Multi-realm steps (WritePresence over several realms, a user moved to
//     another realm, Load) are atomic per realm, not across realms.
//   - WritePresence and ReserveUpdateIds publish nothing (not used in shared
//     mode); SetAccess replaces the viewer's list in the given realm only; a
//     user moved to another realm leaves its row in the old realm (as
//     MemoryStore keeps it), and the old realm publishes the moved record.
//   - SetPresenceEnabled: when the setting changes and a row exists but the
//     rules leave its times alone (going invisible long after the last
//     report; becoming visible within 55 s), the row is still stamped with
//     the entry's seq and sent with event_due = forced = true, so that
//     row->last_update_id == seq holds for every entry (shared_store.h asks
//     for the row whenever one exists). Realm::SetPresenceEnabled sends no
//     event in the first case.
//
// Errors: Errc::kStoreFailed when Redis cannot be reached or answers with an
// error; kCorrupt for stored data that cannot be decoded. Every step returns
// an Error that carries its message (util/error.h), and the public methods
// hand it to the caller as it is (e.g. "report: redis 127.0.0.1:7001:
// Connection refused"). Failures of the feed thread, which no caller waits
// for, are written to stderr.
//
// Thread safety: every method may be called from any thread. The hot path,
// GateBatch (one script per batch of API requests of a realm,
// lua/gate_batch.lua; Gate is a batch of one), runs on the calling I/O
// thread's own asynchronous connections (AttachIoThread, redis_async.h)
// and never blocks it. Every other command (directory writes, realm reads,
// the node registry; and Gate on a thread without them) is blocking and
// goes through a small pool of RedisClients (Options::connections; each one
// connection per node, serialized by its mutex): each calling thread keeps
// to one client of the pool. The feed runs on its own thread and
// connection; the sink is called there, one entry at a time. Do not call
// Unsubscribe from the sink.
#ifndef PRESENCE_STORE_REDIS_STORE_H_
#define PRESENCE_STORE_REDIS_STORE_H_

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/shared_store.h"
#include "store/redis_client.h"
#include "store/redis_feed.h"
#include "util/error.h"

namespace presence::store {

struct RedisScript;  // a Lua script and its SHA1 (redis_scripts.h)

class RedisStore final : public SharedStore {
 public:
  static constexpr std::string_view kFeedChannel = "presenced:feed";

  struct Options {
    RedisTimeouts timeouts;
    // The feed reconnects after min_backoff, doubling up to max_backoff.
    std::chrono::milliseconds min_backoff{20};
    std::chrono::milliseconds max_backoff{1000};
    // Clients in the command pool (at least 1).
    int connections = 8;
    // WAIT after every script that writes (not the rate limit's count,
    // not reads): replicas == 0 is off. A write that fewer replicas
    // acknowledged in time fails (kStoreFailed) though it ran on the master.
    RedisWait wait;
  };

  // Connects to `url`, "redis://HOST:PORT[,HOST:PORT...]": one address of a
  // standalone server, or seed addresses of a Redis Cluster (detected); or
  // "redis-sentinel://HOST:PORT[,HOST:PORT...]/MASTERNAME": the sentinels
  // of a master (RedisClient follows it through failovers). Loads the
  // scripts. kInvalidArgument for a malformed url; kStoreFailed if
  // no address answers; the error says why.
  static StoreResult<std::unique_ptr<RedisStore>> Open(std::string_view url);
  static StoreResult<std::unique_ptr<RedisStore>> Open(std::string_view url,
                                                       const Options& options);

  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;
  // Unsubscribes (joins the feed thread) and closes the connections.
  ~RedisStore() override;

  StoreResult<Snapshot> Load() override;
  StoreResult<RealmId> InsertRealm(const RealmRecord& realm) override;
  StoreStatus UpdateRealm(const RealmRecord& realm) override;
  StoreResult<UserId> InsertUser(const UserRecord& user) override;
  StoreStatus UpdateUser(const UserRecord& user) override;
  StoreResult<bool> UpdateUserIf(const UserRecord& expected,
                                 const UserRecord& user) override;
  StoreStatus SetAccess(const AccessRecord& access) override;
  StoreStatus ReserveUpdateIds(RealmId realm, UpdateId reserved) override;
  StoreStatus WritePresence(std::span<const PresenceRecord> rows,
                            std::span<const ClientPresenceRecord> clients,
                            std::span<const SequenceRecord> sequences) override;

  // Connects the feed connection and subscribes before returning (so no
  // entry published after the call is missed). kStoreFailed if it cannot;
  // kInvalidArgument if already subscribed.
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
  // A batch of one.
  void Gate(RealmId realm, const GateRequest& request,
            GateCallback done) override;
  // One script (lua/gate_batch.lua) for the whole batch, EVALSHA (EVAL on
  // NOSCRIPT); with --redis-wait-replicas, one WAIT after it if a step
  // wrote. A step's own error reply fails its request only.
  void GateBatch(RealmId realm, std::span<const GateRequest> requests,
                 GateBatchCallback done) override;
  StoreStatus Ping() override;
  // On an attached I/O thread, PING on its asynchronous connection (the
  // thread does not wait); elsewhere Ping.
  void PingAsync(std::function<void(StoreStatus)> done) override;
  // PingAsync; then degraded if a write step failed while Redis answered
  // (an error reply, or WAIT acknowledged by too few replicas) and none
  // succeeded since, within the last kWriteFailureMemory; or, with WAIT on
  // (Options::wait), if the master (the one of the global keys' slot) has
  // fewer replicas online than it asks for (INFO replication, on the
  // asynchronous connection where the thread has one).
  void HealthAsync(std::function<void(StoreHealth)> done) override;
  static constexpr std::chrono::seconds kWriteFailureMemory{60};
  StoreResult<std::int64_t> RegisterNode(
      std::string_view address, std::chrono::milliseconds ttl) override;
  StoreStatus RefreshNode(std::int64_t node, std::string_view address,
                          std::chrono::milliseconds ttl) override;
  StoreResult<std::optional<std::string>> NodeAddress(
      std::int64_t node) override;
  StoreResult<std::vector<std::pair<std::int64_t, std::string>>> LiveNodes()
      override;

  // Gives the calling thread, an I/O thread running `io`, its own
  // asynchronous connections (redis_async.h): from then on Gate called on
  // this thread never blocks it (its callback runs on this thread, from
  // `io`). DetachIoThread, on the same thread before `io` is destroyed,
  // closes them (failing what is in flight). Without it, Gate blocks.
  void AttachIoThread(boost::asio::io_context& io);
  void DetachIoThread();

  // True if connected to a Redis Cluster.
  bool cluster() const { return clients_.front()->cluster(); }

 private:
  using Script = RedisScript;

  RedisStore(std::vector<std::unique_ptr<RedisClient>> clients, Options options,
             std::vector<Script> scripts);

  // Runs a script (EVALSHA, EVAL on NOSCRIPT) with `keys` (all on one slot)
  // and `args`. Error replies are kStoreFailed failures.
  StoreResult<RedisReply> Eval(const Script& script,
                               std::span<const std::string> keys,
                               std::span<const std::string> args);
  // Runs one command routed by `route_key`; error replies are failures.
  StoreResult<RedisReply> Call(std::span<const std::string> argv,
                               std::string_view route_key);
  // One request's entry of the gate_batch script's reply.
  static StoreResult<GateResult> ParseGate(const RedisReply& reply);
  // The script's reply for `requests` requests.
  static GateBatchResult ParseGateBatch(StoreResult<RedisReply> reply,
                                        std::size_t requests);
  // The command that runs gate_batch.lua for `requests` (EVALSHA, or EVAL
  // with the script's body); with a token, the script keeps its answer
  // under it and a batch sent again with it gets that answer.
  std::vector<std::string> GateBatchArgv(RealmId realm,
                                         std::span<const GateRequest> requests,
                                         bool by_body,
                                         std::string_view token) const;
  // Reads one realm (since: exclusive lower bound of row update ids, or
  // nullopt for all rows). kNotFound if there is no such realm.
  StoreResult<RealmState> ReadRealmImpl(RealmId realm,
                                        std::optional<UpdateId> since);
  // Adds user `user` (id set) to realm user.realm_id's directory, taking a
  // sequence number. kNotFound / kAlreadyExists as InsertUser.
  StoreStatus PutUser(const UserRecord& user, bool must_exist);

  // The calling thread's client of the pool.
  RedisClient& client();
  // A write step's outcome, for HealthAsync: a failure is remembered (with
  // its reason) until a write step succeeds.
  void NoteWrite(const StoreStatus& outcome);
  // The remembered write failure, if recent.
  std::optional<std::string> RecentWriteFailure() const;
  // With WAIT on: why writes cannot be acknowledged now (too few replicas
  // online), from INFO replication's text; nullopt if enough are.
  std::optional<std::string> ReplicasShort(const RedisReply& info) const;
  // Fixed after Open.
  std::vector<std::unique_ptr<RedisClient>> clients_;
  std::atomic<std::size_t> next_client_{0};
  const Options options_;
  std::vector<Script> scripts_;  // indexed by ScriptId; fixed after Open

  // The last write step's failure (NoteWrite), while no later one
  // succeeded; guarded by health_mu_.
  mutable std::mutex health_mu_;
  std::optional<std::string> write_failure_;
  std::chrono::steady_clock::time_point write_failed_at_;

  std::mutex feed_mu_;               // serializes Subscribe/Unsubscribe
  std::unique_ptr<RedisFeed> feed_;  // guarded by feed_mu_
};

}  // namespace presence::store

#endif  // PRESENCE_STORE_REDIS_STORE_H_
