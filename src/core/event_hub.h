// EventHub: every event queue of the server, and presence fan-out to them.
//
// Zulip semantics (spec section 4): a client registers a queue, then polls it
// with the last event id it has seen (which also acknowledges the earlier
// ones). A poll with nothing to return parks: the hub keeps a weak reference
// to the poll's QueueWaiter and wakes it when an event arrives, the queue is
// deleted, or it overflows. Heartbeats are appended on the poller's request.
//
// Fan-out: a presence change is serialised at most once per shape (legacy,
// slim, modern, each plain or per-client); every queue that receives it
// shares that buffer. A change that wrote only client rows (per-client
// extension) reaches only queues with the presence_per_client capability.
// Queues of guests with limited access, and queues with a presence_user_ids
// subset, receive only the users they may and want to see.
//
// Bounds: a queue holding more than `max_queue_events` unacknowledged events
// is dropped (its next poll gets BAD_EVENT_QUEUE_ID, which Zulip clients
// handle by registering again). A queue not polled for `queue_timeout` of
// real time, and with no parked poll, is freed by Expire(). A user has at
// most `max_queues_per_user` queues: registering one more first drops the
// user's least recently polled queue (one with no parked poll if there is
// one). All queues together hold at most `max_queue_bytes` (see
// QueueBaseBytes): past it, the queues holding the most are dropped until they
// are 1/16 below it. Each of these drops looks to the client like an overflow.
//
// Coalescing: in a queue whose presence events each carry the user's whole
// state (the modern shape, simplified_presence_events, without the
// per-client extension; its presence_transitions events too), a presence
// event of a user replaces that user's older event in the queue if no
// answer has carried the older one yet: the older is removed and the newer
// is appended with the next id. Ids stay increasing, with gaps where
// events were replaced, and a queue holds at most one such event per user
// beyond those an answer has carried. An event an answer carried is never
// replaced, acknowledged or not: a poll that repeats its last_event_id
// (its answer was lost) gets back every event it may have seen, and a
// client never sees an id it was given go missing. Legacy and slim shapes
// (one client per event) and per-client queues are never coalesced.
// HubOptions::coalesce_presence turns it off.
//
// Poll budget: a poll that parks on a queue no other poll waits on, or that
// brings an event no earlier answer brought, is what a client is for; any
// other poll (a non-blocking poll with nothing new, a poll that takes a
// parked poll's place, a poll of an unknown queue) "costs", and asks the
// caller's `admit` first, so that the API layer can count it in a budget.
//
// Waking: the parked polls a change wakes are woken after mu_ is released,
// on the calling thread, or, when there are many and a WakeScheduler is set,
// by a task handed to it: the request that made the change (a ping that
// reaches 10k parked polls) is then answered without waiting for 10k
// wake-ups.
//
// Thread safety: all methods may be called from any thread, except
// SetQueueIdPrefix and SetWakeScheduler (before serving; not synchronised).
// mu_ guards the queue maps, every EventQueue in them and the counters
// (checked by the clang-tsa build); the transition tracker has its own lock.
// Waiters are woken after mu_ is released. Lock order: mu_ may be held while
// a Realm's lock is taken (CanSee), never the other way round: the service
// calls the listener methods with no realm lock held.
#ifndef PRESENCE_CORE_EVENT_HUB_H_
#define PRESENCE_CORE_EVENT_HUB_H_

#include <atomic>
#include <boost/unordered/unordered_flat_map.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/event_queue.h"
#include "core/presence_service.h"
#include "core/status_deadlines.h"
#include "core/transition_tracker.h"
#include "util/function_ref.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace presence {

// Serialises event bodies (JSON objects without "id"). Implemented by the API
// layer, which owns the wire format.
class EventEncoder {
 public:
  virtual ~EventEncoder() = default;
  // A presence event in `shape`. `transition` is empty for Zulip's events,
  // or "idle" / "offline" for the presence_transitions extension.
  // `clients`: null for Zulip's shapes; for queues with the
  // presence_per_client capability, the user's client rows (possibly empty),
  // to be written in the per-client variant of `shape`.
  virtual std::string Presence(const PresenceChange& change,
                               PresenceShape shape, Micros server_time,
                               std::string_view transition,
                               const ClientRowList* clients) const = 0;
  // {"type":"user_settings","op":"update","property":"presence_enabled",...}
  virtual std::string UserSettingsPresenceEnabled(bool enabled) const = 0;
  // The legacy update_global_notifications twin of the above.
  virtual std::string GlobalNotificationsPresenceEnabled(
      std::string_view email, bool enabled) const = 0;
  // {"type":"user_status","user_id":...} with the fields `status.passed`
  // names (Zulip's event for a user status update).
  virtual std::string UserStatus(UserId user,
                                 const store::UserStatus& status) const = 0;
  // The same for user_status_extensions queues (issue #18): also
  // scheduled_end_time (kScheduledEnd) and dnd with dnd_end_time (kDnd).
  virtual std::string UserStatusExtended(
      UserId user, const store::UserStatus& status) const {
    return UserStatus(user, status);
  }
  virtual std::string Heartbeat() const = 0;
};

struct HubOptions {
  std::size_t max_queue_events = 1000;
  std::int64_t queue_timeout_us = 600'000'000;  // real time
  // Zulip's USER_LIMIT_FOR_SENDING_PRESENCE_UPDATE_EVENTS when set: an
  // unforced presence event with more recipients (active users who may see
  // the user) is not sent at all.
  std::optional<std::size_t> presence_event_user_limit;
  // presence_transitions: "offline" waits this long past the threshold.
  Micros transition_grace_us = 30'000'000;
  // Live queues per user; one more drops the user's stalest (>= 1).
  std::size_t max_queues_per_user = 20;
  // Bytes all queues may hold together (see QueueBaseBytes).
  std::size_t max_queue_bytes = std::size_t{1} << 30;
  // Coalescing of presence events (see the file comment).
  bool coalesce_presence = true;
};

// What the hub charges a queue: its own fixed size, its id and subset list,
// its index entries, and per event held the entry plus the whole serialised
// body. A body is shared by every queue that received it, and each of them
// is charged for it in full: the sum is an upper bound of what the queues
// keep alive, reached when one queue alone still holds every event.
std::size_t QueueBaseBytes(const EventQueue& q);
std::size_t QueuedEventBytes(const std::string& body);

// kRefused: the poll would cost (see above) and `admit` said no; nothing
// was changed.
enum class PollStatus { kBadQueue, kEvents, kParked, kRefused };

struct PollResult {
  PollStatus status = PollStatus::kBadQueue;
  std::vector<QueuedEvent> events;  // kEvents: ids > last_event_id, in order
};

struct HubStats {
  std::size_t queues = 0;
  std::size_t parked = 0;
  std::uint64_t events_enqueued = 0;
  std::uint64_t queues_overflowed = 0;
  std::uint64_t queues_expired = 0;
  std::size_t queue_bytes = 0;      // see QueueBaseBytes
  std::size_t max_queue_bytes = 0;  // the option
  std::uint64_t queues_evicted_per_user = 0;
  std::uint64_t queues_evicted_memory = 0;
  std::uint64_t polls_refused = 0;
  // Presence events removed because a newer one of the same user replaced
  // them (coalescing).
  std::uint64_t events_coalesced = 0;
};

class EventHub final : public PresenceListener {
 public:
  // All pointers must outlive the hub.
  EventHub(const PresenceService* service, const EventEncoder* encoder,
           HubOptions options);
  EventHub(const EventHub&) = delete;
  // Scale-out: every queue id starts with this ("<node id>:"), so that any
  // node can tell which node owns a queue. Set before serving.
  void SetQueueIdPrefix(std::string prefix) {
    queue_id_prefix_ = std::move(prefix);
  }
  EventHub& operator=(const EventHub&) = delete;

  // Runs `task` soon, on another thread or later on this one (the I/O layer
  // posts it to its threads). Must not run it inline.
  using WakeScheduler = std::function<void(std::function<void()> task)>;
  // More waiters than this at once are woken by a scheduled task.
  static constexpr std::size_t kInlineWakes = 8;
  // Unsent events a queue scans for the user's; past this many it keeps
  // an index (EventQueue::unsent_by_user).
  static constexpr std::size_t kCoalesceScan = 64;
  // Set before serving (not synchronised); empty: always wake inline.
  void SetWakeScheduler(WakeScheduler scheduler) {
    wake_scheduler_ = std::move(scheduler);
  }

  // Creates a queue and returns its id (unguessable).
  std::string Register(QueueSpec spec, std::int64_t steady_now) EXCLUDES(mu_);

  // Acknowledges events up to `last_event_id` (if given), then returns the
  // newer ones; if there are none and `block`, parks `waiter` (replacing, and
  // waking, any other poll parked on the queue). kBadQueue if the queue does
  // not exist or belongs to another user.
  PollResult Poll(std::string_view queue_id, UserId user,
                  std::optional<std::int64_t> last_event_id, bool block,
                  const std::shared_ptr<QueueWaiter>& waiter,
                  std::int64_t steady_now) EXCLUDES(mu_) {
    return Poll(queue_id, user, last_event_id, block, waiter, steady_now,
                [] { return true; });
  }
  // As above; a poll that costs (see the file comment) first calls `admit`
  // (under the hub's lock: it must not call the hub) and is refused
  // (kRefused, nothing changed) if it answers false.
  PollResult Poll(std::string_view queue_id, UserId user,
                  std::optional<std::int64_t> last_event_id, bool block,
                  const std::shared_ptr<QueueWaiter>& waiter,
                  std::int64_t steady_now, FunctionRef<bool()> admit)
      EXCLUDES(mu_);
  // The events of an answer, lent to the caller under the hub's lock.
  using TakeEvents = FunctionRef<void(std::span<const QueuedEvent>)>;
  // As above, but a kEvents answer's events are not copied out (one
  // shared_ptr copy and release per event, on counters every queue's answer
  // touches, from every I/O thread: issue #17): `take` is called with them
  // once, under the hub's lock (it must not call the hub, and should only
  // format them), and PollResult::events stays empty.
  //
  // `handle` (optional): where the caller keeps the queue it polled, so
  // that its next poll of the same queue (a parked poll resumed: one
  // answer of a fan-out) finds it without the lookup by id, whose hash,
  // table slot and id comparison each miss the cache when thousands of
  // queues are answered in turn (issue #17). If `*handle` still holds a
  // queue, that queue is polled (the caller passes the same `queue_id` it
  // came from); on return it holds the queue found, if any. A handle never
  // keeps a queue alive: a queue removed meanwhile is not found through it.
  PollResult Poll(std::string_view queue_id, UserId user,
                  std::optional<std::int64_t> last_event_id, bool block,
                  const std::shared_ptr<QueueWaiter>& waiter,
                  std::int64_t steady_now, FunctionRef<bool()> admit,
                  TakeEvents take, std::weak_ptr<EventQueue>* handle = nullptr)
      EXCLUDES(mu_);

  // Appends a heartbeat event to the queue and wakes its parked poll.
  void Heartbeat(std::string_view queue_id) EXCLUDES(mu_);

  // False if there is no such queue of this user.
  bool Delete(std::string_view queue_id, UserId user) EXCLUDES(mu_);

  // Replaces the queue's presence_user_ids (nullopt: everyone). False if no
  // such queue of this user.
  bool SetPresenceSubset(std::string_view queue_id, UserId user,
                         std::optional<std::vector<UserId>> user_ids)
      EXCLUDES(mu_);

  // Frees queues idle longer than the timeout. Returns how many.
  std::size_t Expire(std::int64_t steady_now) EXCLUDES(mu_);

  // Deletes every queue of `user` (deactivation).
  void DropQueuesOf(RealmId realm, UserId user) EXCLUDES(mu_);

  // The spec a queue was registered with (tests, PATCH /events).
  std::optional<QueueSpec> SpecOf(std::string_view queue_id) const
      EXCLUDES(mu_);

  HubStats Stats() const EXCLUDES(mu_);

  // PresenceListener.
  void OnPresenceChange(const PresenceChange& change) override EXCLUDES(mu_);
  void OnPresenceEnabledChange(RealmId realm, UserId user,
                               bool enabled) override EXCLUDES(mu_);
  void OnUserDeactivated(RealmId realm, UserId user) override EXCLUDES(mu_);
  // A user_status event to every queue of the realm that wants the type
  // and whose user may see `user` (guests with limited access as for
  // presence), serialised once.
  void OnUserStatusChange(RealmId realm, UserId user,
                          const store::UserStatus& status) override
      EXCLUDES(mu_);

  // Extension events (presence_transitions queues only): `change` carries
  // the user's current row; `transition` is "idle" or "offline".
  void OnTransition(const PresenceChange& change, std::string_view transition)
      EXCLUDES(mu_);

  // Announces the idle/offline transitions due by `now` (presence time),
  // from at most `max_deadlines` of the tracker's deadlines (the earliest
  // first; see TransitionTracker::Tick). Returns how many were announced.
  // Called by a timer, which ticks in bounded steps while TransitionsDue()
  // so that a mass going-offline never holds its thread for long.
  std::size_t TickTransitions(Micros now, std::size_t max_deadlines = SIZE_MAX)
      EXCLUDES(mu_);
  // True while deadlines due by `now` wait for TickTransitions.
  bool TransitionsDue(Micros now) const { return tracker_.Due(now); }
  // Registers every existing row with the transition tracker (at start).
  void SeedTransitions(Micros now);

  // When statuses end (issue #18's extensions): every status written or
  // applied here reaches it (OnUserStatusChange); the housekeeping clears
  // what comes due (ExpireDueStatuses).
  StatusDeadlines& status_deadlines() { return status_deadlines_; }

 private:
  using Waiters = std::vector<std::shared_ptr<QueueWaiter>>;

  // Appends and collects the waiter to wake; lists a queue that overflows
  // in `overflowed` (the caller removes it with RemoveLocked). A body with
  // a coalescing user carries that user's whole presence and replaces the
  // user's event that no answer carried yet (coalescing). `may_replace`
  // false: the caller knows no unsent event of the user is held (the
  // search is skipped; the event may still be replaced later).
  void AppendLocked(EventQueue& q, const EventBodyPtr& body, Waiters& wake,
                    std::vector<EventQueue*>& overflowed,
                    bool may_replace = true) REQUIRES(mu_);
  // Removes `user`'s coalescable event that no answer carried, if any.
  void DropUnsentOfLocked(EventQueue& q, UserId user) REQUIRES(mu_);
  // Frees `q`, collecting its parked poll to wake.
  void RemoveLocked(EventQueue* q, Waiters& wake) REQUIRES(mu_);
  // Over max_queue_bytes: drops the queues holding the most (never `keep`)
  // until 1/16 below it.
  void EnforceMemoryLocked(Waiters& wake, const EventQueue* keep) REQUIRES(mu_);
  // Removes the overflowed queues, then enforces the memory cap.
  void DropOverflowedLocked(const std::vector<EventQueue*>& overflowed,
                            Waiters& wake) REQUIRES(mu_);
  // Wakes them, inline or through the scheduler (see above).
  void WakeAll(Waiters wake) const;
  void FanOutPresence(const PresenceChange& change, std::string_view transition,
                      bool transitions_only) EXCLUDES(mu_);

  const PresenceService* const service_;
  const EventEncoder* const encoder_;
  const HubOptions options_;
  std::string queue_id_prefix_;
  WakeScheduler wake_scheduler_;
  TransitionTracker tracker_;
  StatusDeadlines status_deadlines_;

  // Guards queues_, by_realm_, by_user_, every EventQueue they point to
  // (EventQueue has no lock of its own), and the counters.
  mutable Mutex mu_;
  // By queue id; open addressing (a poll of a 10k-queue hub missed the
  // cache in a node-based map). The key is a view of the queue's own `id`
  // (the EventQueue is owned by the value and never moves), so a queue's id
  // is stored once.
  struct IdHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view id) const noexcept {
      return std::hash<std::string_view>{}(id);
    }
  };
  // The table is a queue's only owner: a queue removed from it is
  // destroyed at once, under mu_, so a handle (Poll) that still locks under
  // mu_ holds a queue that is in the table.
  boost::unordered_flat_map<std::string_view, std::shared_ptr<EventQueue>,
                            IdHash, std::equal_to<>>
      queues_ GUARDED_BY(mu_);
  std::unordered_map<RealmId, std::vector<EventQueue*>> by_realm_
      GUARDED_BY(mu_);
  // Queues with presence_transitions, per realm (absent: none): a
  // transition in a realm with none reaches no queue, and costs no walk
  // over the realm's queues (a million users going offline before 10k
  // plain queues walked 10^10 of them).
  boost::unordered_flat_map<RealmId, std::size_t> transition_queues_
      GUARDED_BY(mu_);
  // Each user's queues (a few; order does not matter).
  boost::unordered_flat_map<std::pair<RealmId, UserId>,
                            std::vector<EventQueue*>>
      by_user_ GUARDED_BY(mu_);
  std::size_t queue_bytes_ GUARDED_BY(mu_) = 0;
  std::uint64_t queues_evicted_per_user_ GUARDED_BY(mu_) = 0;
  std::uint64_t queues_evicted_memory_ GUARDED_BY(mu_) = 0;
  std::uint64_t polls_refused_ GUARDED_BY(mu_) = 0;
  std::uint64_t events_enqueued_ GUARDED_BY(mu_) = 0;
  std::uint64_t queues_overflowed_ GUARDED_BY(mu_) = 0;
  std::uint64_t queues_expired_ GUARDED_BY(mu_) = 0;
  std::uint64_t events_coalesced_ GUARDED_BY(mu_) = 0;
  // Coalescing's quick test, so that a fan-out searches a queue only when
  // it may hold the user's unsent event: presence fan-outs are counted
  // (fanout_epoch_), and the count of each user's latest is kept for the
  // most recent users (at most kRecentUsers; an older user's event, or one
  // forgotten, is not searched for, which only forgoes a replacement). A
  // queue may hold the user's previous event unsent only if its last
  // answer came before that event (EventQueue::answered_epoch).
  static constexpr std::size_t kRecentUsers = std::size_t{1} << 16;
  std::uint64_t fanout_epoch_ GUARDED_BY(mu_) = 0;
  boost::unordered_flat_map<std::pair<RealmId, UserId>, std::uint64_t>
      recent_presence_ GUARDED_BY(mu_);
};

}  // namespace presence

#endif  // PRESENCE_CORE_EVENT_HUB_H_
