// SharedStore: a Store that several presenced processes share (scale-out).
//
// In shared mode the store, not the process, is the authority. Every change
// to a realm (a presence write, a user created or changed, an access list, the
// realm's own settings) takes the realm's next *log sequence number* inside
// the store, atomically with the change itself, and is published to every
// node as a FeedEntry. Each node keeps an in-memory replica of the realms it
// serves and applies the entries of a realm in log order; a node that sees a
// gap (a lost message, a reconnect) reads the realm again with ReadRealm.
//
// The log sequence is not the presence update id: a presence write also takes
// the realm's next update id (RealmRecord::last_update_id, as in single-node
// mode), so clients see exactly the ids Zulip would give (1, 2, 3, ... per
// presence write), whatever the directory does.
//
// The presence rules (spec 3.1/3.2/3.7: the 55 s write rule, "came online",
// invisible back-dating) run inside the store's atomic step, against the row
// as the store holds it, so two nodes can never both write within 55 s or
// hand out one update id twice.
//
// Realm and user ids stay globally unique (allocated by the store).
//
// The plain Store methods keep their contract (the typed store suite runs
// against shared stores too); in shared mode their directory writes also take
// a sequence number and publish an entry. ReserveUpdateIds and WritePresence
// are not used in shared mode (nothing is written behind).
//
// Thread safety: as Store. The sink is called on a store-owned thread, one
// entry at a time, in the order the store executed the changes of each realm.
#ifndef PRESENCE_CORE_SHARED_STORE_H_
#define PRESENCE_CORE_SHARED_STORE_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/store.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace presence::store {

// One change of one realm, as every node receives it. Exactly the fields the
// change touched are set.
struct FeedEntry {
  RealmId realm_id = 0;
  // The realm's log sequence number this change took; 0 only for the entry
  // that announces a new realm (its log starts at 0).
  UpdateId seq = 0;
  std::optional<RealmRecord> realm;    // realm created or its settings changed
  std::optional<UserRecord> user;      // user created or changed (full record)
  std::optional<AccessRecord> access;  // access list replaced (empty: removed)
  std::optional<PresenceRecord> row;   // row, with its presence update id
  bool event_due = false;  // (row) Zulip would send a presence event
  bool forced = false;     // (row) ... even past limits (invisible toggles)
  Micros written_at = 0;   // (row, clients) the presence time of the write
  // Per-client rows (extension): when set, `client_user`'s client rows
  // changed and these are all of them after the change (each with its own
  // update id), replacing what the replica had; the entry may carry them
  // without a row (a report that wrote only its client's row).
  UserId client_user = 0;
  std::optional<std::vector<ClientPresenceRecord>> clients;
  // (clients) A client row was created or came online (the 130 s rule on
  // the client's row) and the realm's presence is enabled.
  bool client_event_due = false;
  // Set only by SharedStore::Fence: the store went back (a failover lost
  // writes) and was fenced; the realm's fence count after it. A node that
  // has not seen this many fences reads the realm whole (see Fence).
  std::int64_t fences = 0;
  friend bool operator==(const FeedEntry&, const FeedEntry&) = default;
};

// Receives the feed. Called on a store thread, never concurrently.
class FeedSink {
 public:
  virtual ~FeedSink() = default;
  virtual void OnFeedEntry(const FeedEntry& entry) = 0;
  // The subscription was interrupted and entries may have been lost (it is
  // running again when this is called): every realm must be read again.
  virtual void OnFeedLost() = 0;
};

// A realm as read in one atomic step.
struct RealmState {
  RealmRecord realm;  // realm.last_update_id: the highest presence update id
  UpdateId seq = 0;   // the realm's log sequence number at the read
  std::vector<UserRecord> users;     // every user of the realm, by id
  std::vector<PresenceRecord> rows;  // rows with last_update_id > since, by id
  std::vector<AccessRecord> access;  // every access list, by viewer
  // Per-client rows: every row of each user whose newest client row has
  // last_update_id > since, by (user id, client name in byte order).
  std::vector<ClientPresenceRecord> clients;
  // How many times the realm was fenced (SharedStore::Fence) so far.
  std::int64_t fences = 0;
};

// The reporting client of a report (per-client extension).
struct ReportClient {
  std::string_view name;     // empty: no client row (the user row alone)
  std::size_t max_rows = 8;  // the per-user bound (>= 1), as Realm applies it
};

// One request counted against a user's rate limit (see CountRequest).
struct RateCount {
  bool allowed = true;         // counted; false: the limit was already reached
  std::int64_t in_window = 0;  // the user's requests in the window, this one
                               // included if allowed
  Micros oldest = 0;           // the oldest request in the window
  // How many requests were counted (GateRequest::rate_charge): this one and
  // the lease of the node that asked; 0 when refused.
  std::int64_t charged = 1;
};

// What an atomic presence step did.
//
// `seq` is set whether the step wrote or not: it is the realm's log sequence
// number as the step saw it (the one it took if it wrote). A node that waits
// until its replica has applied `seq` before it answers serves everything
// the step's decision was made against: read-your-writes, and
// read-what-the-store-saw, across nodes. A step that finds the row already
// fresh (spec 3.2: no write) because another node wrote it a moment ago thus
// answers with that node's row, never the one from before it (spec 3.1: the
// write decision commits before the fetch). It also makes a separate read
// barrier (CurrentSeq) before the step redundant: `seq` is at least what
// that read would have returned.
struct WriteResult {
  bool wrote = false;  // a row or setting changed and took `seq`
  UpdateId seq = 0;    // the realm's log sequence number the step saw
};

// One API request's single round trip to the store (see SharedStore::Gate).
struct GateRequest {
  UserId user = 0;
  // Zulip's rate limit, counted as CountRequest counts it (but in a log on
  // the realm's slot); 0: not counted.
  std::int64_t rate_limit = 0;
  Micros rate_now = 0;  // real time
  Micros rate_window = 0;
  // How many requests to count at once when that many remain below the
  // limit (fewer, down to one, when fewer remain): this one and a lease of
  // rate_charge - 1 that the asking node lets through without asking
  // (core/rate_lease.h). The sliding log counts them all at rate_now.
  std::int64_t rate_charge = 1;
  // A ping: the user's own report at `now`, made as Report makes it (with
  // its client row: `client`, `max_clients`, as ReportClient has them), and
  // only if the rate limit let the request through. nullopt: none.
  std::optional<ReportStatus> report;
  Micros now = 0;
  std::string client;
  std::size_t max_clients = 8;
};

struct GateResult {
  RateCount rate;     // {allowed} when not counted
  WriteResult write;  // wrote: the report wrote; seq: always set
};

using GateCallback = std::function<void(StoreResult<GateResult>)>;
// A batch's answers (SharedStore::GateBatch): an error for the whole batch
// (no answer came: the store could not be reached, or refused the step), or
// one answer per request, in the batch's order, each a result or that
// request's own error.
using GateBatchResult = StoreResult<std::vector<StoreResult<GateResult>>>;
using GateBatchCallback = std::function<void(GateBatchResult)>;

// What /healthz says of a shared store (SharedStore::HealthAsync).
struct StoreHealth {
  StoreStatus reachable;  // an error: the store cannot be reached
  // Reachable, but its writes fail now (e.g. fewer replicas in sync than
  // --redis-wait-replicas asks for, or the last write steps failed): why.
  std::optional<std::string> degraded;
};

class SharedStore : public Store {
 public:
  // Starts delivering every entry published from now on to `sink` (which must
  // outlive the store or Unsubscribe). Call once, before Load, so that no
  // change between the two is missed.
  virtual StoreStatus Subscribe(FeedSink* sink) = 0;
  // Stops the feed; no sink call runs after it returns.
  virtual void Unsubscribe() = 0;

  // One report by `user` (spec 3.1/3.2), atomically: reads the user and its
  // row; does nothing (wrote=false, seq = the realm's current log sequence
  // number) if the user is unknown, inactive, a bot or invisible, or if the
  // rules write nothing; otherwise takes the next log
  // sequence number and the next presence update id (the row's), stores the
  // row and publishes an entry with the row,
  // event_due = (created || came online) && !realm.presence_disabled,
  // forced = false, written_at = now.
  // With a client name, the same report also applies the rules to that
  // client's row of the user, exactly as Realm::RecordReport does (core/
  // realm.h): a client-row write takes the row's update id if the row was
  // written, else the realm's next one; a new client beyond
  // `client.max_rows` pushes out the stalest; the entry then carries all
  // the user's client rows and client_event_due = (client row created ||
  // came online) && !realm.presence_disabled. A report that writes only
  // the client's row still takes a log sequence number (wrote=true) and
  // publishes an entry, without a row.
  // kNotFound if the realm does not exist.
  virtual StoreResult<WriteResult> Report(RealmId realm, UserId user,
                                          Micros now, ReportStatus status,
                                          const ReportClient& client) = 0;
  // The same without a client row.
  StoreResult<WriteResult> Report(RealmId realm, UserId user, Micros now,
                                  ReportStatus status) {
    return Report(realm, user, now, status, ReportClient{});
  }

  // The invisible-mode switch (spec 3.7), atomically: sets the user's
  // presence_enabled and applies ApplyGoInvisible / ApplyBecomeVisible to its
  // row. If the setting changed, takes one log sequence number (and a
  // presence update id if the row is written) and publishes one entry with
  // the full user record and, if a row exists after the change and (enabled
  // or the row was back-dated), the row as it stands with event_due = forced
  // = true (the row keeps its update id when the rules wrote nothing; going
  // invisible with nothing to back-date publishes no row). wrote=false (and
  // seq the realm's current log sequence number) if the setting already had
  // that value. Going invisible also lowers the user's client rows to the
  // row's times (as Realm::SetPresenceEnabled does); if that changes any,
  // they all take the row's new update id (the realm's next one if the row
  // was not written) and the entry carries them (client_event_due false).
  // kNotFound if the user is not in the realm.
  virtual StoreResult<WriteResult> SetPresenceEnabled(RealmId realm,
                                                      UserId user, bool enabled,
                                                      Micros now) = 0;

  // UpdateUser (a user of the same realm) only if the stored record is
  // still `expected`, compared as stored, atomically: true when written (and
  // published as UpdateUser publishes), false when the record differs and
  // nothing was written. kNotFound if the user is not stored.
  virtual StoreResult<bool> UpdateUserIf(const UserRecord& expected,
                                         const UserRecord& user) = 0;

  // The realm's current log sequence number.
  // kNotFound if there is no such realm.
  virtual StoreResult<UpdateId> CurrentSeq(RealmId realm) = 0;

  // After the store went back (a Redis failover lost the last writes, which
  // nodes had already applied from the feed): raises the realm's log
  // sequence number to at least `log` and its presence update id to at
  // least `update_id`, so that no later change takes a number a node
  // applied; counts one more fence (RealmState::fences), then takes the
  // next log sequence number and publishes it in an entry with `fences`
  // set and nothing else (every node then reads the realm whole, which
  // brings back what it dropped as duplicates). Returns the log sequence
  // number it took. kNotFound if there is no such realm.
  virtual StoreResult<UpdateId> Fence(RealmId realm, UpdateId log,
                                      UpdateId update_id) = 0;

  // The id of the realm with that subdomain (case-insensitive), if any.
  virtual StoreResult<std::optional<RealmId>> FindRealmId(
      std::string_view subdomain) = 0;

  // The realm's whole directory and its rows written after `since`, in one
  // atomic read. kNotFound if there is no such realm.
  virtual StoreResult<RealmState> ReadRealm(RealmId realm, UpdateId since) = 0;

  // Zulip's per-user API rate limit, shared by every node: a sliding log of
  // the user's requests. Drops requests at or before now - window, then
  // counts one at `now` unless `limit` remain, in one atomic step. Refused
  // requests are not counted.
  virtual StoreResult<RateCount> CountRequest(UserId user, Micros now,
                                              std::int64_t limit,
                                              Micros window) = 0;

  // Everything one API request needs from the store, in one atomic step:
  // counts the request against the user's rate limit (if asked), then, if
  // it was let through, makes the report (if asked); and answers the realm's
  // log sequence number as the step saw it (the request's read barrier: see
  // WriteResult). Calls `done` exactly once, on any thread (the store's
  // I/O thread when it is asynchronous, or before Gate returns).
  // kNotFound if the realm does not exist. This implementation is
  // synchronous (CountRequest, then Report or CurrentSeq: not one atomic
  // step); RedisStore's is one script, without blocking the calling I/O
  // thread (redis_async.h).
  virtual void Gate(RealmId realm, const GateRequest& request,
                    GateCallback done) {
    GateResult out;
    if (request.rate_limit > 0) {
      auto rate = CountRequest(request.user, request.rate_now,
                               request.rate_limit, request.rate_window);
      if (!rate) return done(rate.error());
      out.rate = *rate;
      out.rate.charged = rate->allowed ? 1 : 0;
      // A lease: counted one by one while the limit lets them through.
      while (out.rate.allowed && out.rate.charged < request.rate_charge) {
        auto more = CountRequest(request.user, request.rate_now,
                                 request.rate_limit, request.rate_window);
        if (!more) return done(more.error());
        if (!more->allowed) break;
        out.rate.in_window = more->in_window;
        ++out.rate.charged;
      }
    }
    if (out.rate.allowed && request.report) {
      auto w = Report(realm, request.user, request.now, *request.report,
                      ReportClient{.name = request.client,
                                   .max_rows = request.max_clients});
      if (!w) return done(w.error());
      out.write = *w;
    } else {
      auto seq = CurrentSeq(realm);
      if (!seq) return done(seq.error());
      out.write.seq = *seq;
    }
    done(out);
  }

  // The steps of several requests of one realm in one atomic step, in
  // order, each exactly as Gate makes it (the rate limit, the report, the
  // log sequence number as that request's step saw it, after the steps
  // before it): a batch is one store call instead of one per request
  // (core/gate_batcher.h). `requests` must stay valid until `done` has
  // been called; `done` runs exactly once, on any thread. A step that fails
  // on its own fails only its request; the others stand. This
  // implementation calls Gate once per request, in order (one atomic step
  // each, not one for the batch).
  virtual void GateBatch(RealmId realm, std::span<const GateRequest> requests,
                         GateBatchCallback done) {
    struct Gathered {
      Mutex mu;
      std::vector<std::optional<StoreResult<GateResult>>> answers
          GUARDED_BY(mu);
      std::size_t left GUARDED_BY(mu) = 0;
      GateBatchCallback done;
    };
    if (requests.empty()) {
      return done(std::vector<StoreResult<GateResult>>{});
    }
    auto g = std::make_shared<Gathered>();
    {
      MutexLock lock(g->mu);
      g->answers.resize(requests.size());
      g->left = requests.size();
    }
    g->done = std::move(done);
    for (std::size_t i = 0; i < requests.size(); ++i) {
      Gate(realm, requests[i], [g, i](StoreResult<GateResult> r) {
        std::vector<StoreResult<GateResult>> out;
        {
          MutexLock lock(g->mu);
          g->answers[i] = std::move(r);
          if (--g->left > 0) return;
          out.reserve(g->answers.size());
          for (auto& a : g->answers) out.push_back(std::move(*a));
        }
        g->done(std::move(out));
      });
    }
  }

  // Whether the store answers now (for /healthz): an error value if not.
  virtual StoreStatus Ping() = 0;
  // The same without waiting on the calling thread where the store can
  // (RedisStore on an attached I/O thread); `done` runs once, on any
  // thread. This implementation calls Ping.
  virtual void PingAsync(std::function<void(StoreStatus)> done) {
    done(Ping());
  }
  // PingAsync, and whether writes work (StoreHealth); `done` runs once, on
  // any thread. This implementation never says degraded.
  virtual void HealthAsync(std::function<void(StoreHealth)> done) {
    PingAsync([done = std::move(done)](StoreStatus st) {
      done(StoreHealth{std::move(st), std::nullopt});
    });
  }

  // --- Nodes (which process owns an event queue) -------------------------

  // A registration lasts `ttl` (in the store's clock) unless refreshed: a
  // node that dies stops refreshing, and once its registration has expired
  // no node relays to it any more. Registering or refreshing also drops
  // every expired registration (the registry is pruned).

  // Registers this process, reachable at `address` ("host:port" of its API
  // listener), for `ttl`, and returns its node id (unique, never reused).
  virtual StoreResult<std::int64_t> RegisterNode(
      std::string_view address, std::chrono::milliseconds ttl) = 0;
  // Extends the registration of `node` (an id RegisterNode returned) to
  // `ttl` from now, registering it again at `address` if it had expired.
  virtual StoreStatus RefreshNode(std::int64_t node, std::string_view address,
                                  std::chrono::milliseconds ttl) = 0;
  // The address a node registered, if it is registered now (never one whose
  // registration has expired).
  virtual StoreResult<std::optional<std::string>> NodeAddress(
      std::int64_t node) = 0;
  // Every node registered now (this one included), by id.
  virtual StoreResult<std::vector<std::pair<std::int64_t, std::string>>>
  LiveNodes() = 0;
};

}  // namespace presence::store

#endif  // PRESENCE_CORE_SHARED_STORE_H_
