// GateBatcher: one store call for the concurrent requests of one realm
// (scale-out, issue #14).
//
// Every API request of a realm that needs the store makes one step there
// (SharedStore::Gate: the rate limit, a ping's report, the read barrier).
// Sent one by one, N concurrent requests of a realm are N script calls, each
// with its own evaluation overhead in Redis. The batcher keeps at most one
// call in flight per realm: a request that arrives while its realm's call is
// in flight waits, and when the call answers, everything that waited goes
// together in the next call (SharedStore::GateBatch: one script evaluation
// for the batch, each request's step made in order and answered with its
// own result and log position), at most `max_batch` requests per call; the
// rest wait for the call after it. A request that finds its realm idle is
// sent at once, alone: batching adds no wait to a quiet realm.
//
// Order: a realm's requests are stepped in the order Submit was called
// (requests of one batch in that order in one call; one call at a time).
// Errors: a step that fails on its own fails only its request; a call that
// fails as a whole (the store unreachable) fails every request of that batch
// with the store's error, and the requests waiting behind it go in the next
// call as usual.
//
// Callbacks run on the thread that delivers the store's answer (the one
// that sent the call, for RedisStore on an I/O thread), never with a lock of
// the batcher held; the next batch is sent from there too. A store that
// answers before GateBatch returns is handled without recursion.
//
// Thread safety: Submit may be called from any thread. mu_ guards the map of
// lanes (never erased); each lane's queue and flag are guarded by the lane's
// own mutex, taken alone.
#ifndef PRESENCE_CORE_GATE_BATCHER_H_
#define PRESENCE_CORE_GATE_BATCHER_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "core/shared_store.h"
#include "core/types.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace presence {

class GateBatcher {
 public:
  // Sends one batch of a realm's requests to the store (SharedStore::
  // GateBatch's contract: `requests` stay valid until `done` has run).
  using SendBatch = std::function<void(
      RealmId realm, std::span<const store::GateRequest> requests,
      store::GateBatchCallback done)>;

  // The default bound on a batch.
  static constexpr std::size_t kDefaultMaxBatch = 64;

  // `max_batch` >= 1 (0 is taken as 1; 1: every request its own call, one
  // call in flight per realm).
  GateBatcher(SendBatch send, std::size_t max_batch = kDefaultMaxBatch);
  GateBatcher(const GateBatcher&) = delete;
  GateBatcher& operator=(const GateBatcher&) = delete;

  // Makes `request`'s store step as part of the next call of `realm`;
  // `done` gets its result (or the whole call's error) exactly once.
  void Submit(RealmId realm, store::GateRequest request,
              store::GateCallback done) EXCLUDES(mu_);

  std::size_t max_batch() const { return max_batch_; }

 private:
  struct Pending {
    store::GateRequest request;
    store::GateCallback done;
  };
  // One call's requests (contiguous, as GateBatch takes them) and their
  // callbacks, alive until the call has answered.
  struct Batch {
    std::vector<store::GateRequest> requests;
    std::vector<store::GateCallback> dones;
  };
  struct Lane {
    Mutex mu;
    bool in_flight GUARDED_BY(mu) = false;
    std::deque<Pending> waiting GUARDED_BY(mu);
  };

  Lane& LaneOf(RealmId realm) EXCLUDES(mu_);
  // Takes up to max_batch_ waiting requests of `lane`, or clears its
  // in-flight flag and returns null when none wait.
  std::shared_ptr<Batch> TakeNext(Lane& lane) EXCLUDES(lane.mu);
  // Sends `batch`, then every batch that waited behind it (in a loop when
  // the store answers before returning).
  void Send(RealmId realm, Lane& lane, std::shared_ptr<Batch> batch);
  // Hands each request its answer.
  static void Answer(Batch& batch, store::GateBatchResult result);

  const SendBatch send_;
  const std::size_t max_batch_;
  Mutex mu_;  // guards lanes_
  std::unordered_map<RealmId, std::unique_ptr<Lane>> lanes_ GUARDED_BY(mu_);
};

}  // namespace presence

#endif  // PRESENCE_CORE_GATE_BATCHER_H_
