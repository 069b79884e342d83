// EventQueue: one client's queue of events (Zulip's /register + /events).
//
// A queue belongs to one user of one realm. Events are stored as shared,
// already-serialised JSON objects (one EventBody per event and shape, shared
// by every queue that receives it) with the queue's own increasing event
// id, which is spliced in when the events are written out.
//
// Thread safety: none of its own; EventHub guards every queue with its mutex.
#ifndef PRESENCE_CORE_EVENT_QUEUE_H_
#define PRESENCE_CORE_EVENT_QUEUE_H_

#include <algorithm>
#include <boost/smart_ptr/intrusive_ptr.hpp>
#include <boost/smart_ptr/intrusive_ref_counter.hpp>
#include <boost/unordered/unordered_flat_map.hpp>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/types.h"

namespace presence {

// How presence events are shaped for a queue (spec 3.3).
enum class PresenceShape : std::uint8_t {
  kLegacy = 0,  // user_id, email, server_timestamp, presence
  kSlim = 1,    // as legacy without email (slim_presence)
  kModern = 2,  // {"presences": {id: {active_timestamp, idle_timestamp}}}
};
inline constexpr int kPresenceShapeCount = 3;

// The event types a queue can receive (heartbeats always reach it). A
// queue's subscription is a bitset of these: `event_types` names outside
// this list are accepted, as Zulip accepts them, and kept nowhere, since no
// event of theirs is ever sent.
enum class EventType : std::uint8_t {
  kPresence = 0,
  kUserSettings = 1,
  kUpdateGlobalNotifications = 2,
  kUserStatus = 3,
};

class EventTypeSet {
 public:
  // Every type (Zulip's default when `event_types` is not given).
  static EventTypeSet All() { return EventTypeSet(kAllBits); }
  // The types named in `names`; unknown names are left out.
  static EventTypeSet Of(const std::vector<std::string>& names) {
    std::uint32_t bits = 0;
    for (const std::string& n : names) {
      if (n == "presence") bits |= Bit(EventType::kPresence);
      if (n == "user_settings") bits |= Bit(EventType::kUserSettings);
      if (n == "update_global_notifications") {
        bits |= Bit(EventType::kUpdateGlobalNotifications);
      }
      if (n == "user_status") bits |= Bit(EventType::kUserStatus);
    }
    return EventTypeSet(bits);
  }
  // nullopt: every type.
  static EventTypeSet Of(const std::optional<std::vector<std::string>>& names) {
    return names ? Of(*names) : All();
  }
  bool Has(EventType t) const { return (bits_ & Bit(t)) != 0; }
  bool operator==(const EventTypeSet&) const = default;

 private:
  static constexpr std::uint32_t kAllBits = ~std::uint32_t{0};
  static constexpr std::uint32_t Bit(EventType t) {
    return std::uint32_t{1} << static_cast<unsigned>(t);
  }
  explicit EventTypeSet(std::uint32_t bits) : bits_(bits) {}
  std::uint32_t bits_ = kAllBits;
};

struct QueueSpec {
  RealmId realm_id = 0;
  UserId user_id = 0;
  // Which event types it receives (heartbeats always).
  EventTypeSet event_types = EventTypeSet::All();
  PresenceShape shape = PresenceShape::kLegacy;
  // Extension: also tell when a user goes idle or offline.
  bool presence_transitions = false;
  // Extension (presence_per_client capability): presence events and the
  // snapshot carry per-client data, in the queue's shape.
  bool per_client = false;
  // Extension (user_status_extensions capability, issue #18): user_status
  // events and the snapshot carry end times and do-not-disturb.
  bool status_extensions = false;
  // Extension: only presence of these users (sorted, unique).
  std::optional<std::vector<UserId>> presence_user_ids;

  // One bit test: fan-out asks this of every queue of the realm.
  bool WantsType(EventType type) const { return event_types.Has(type); }
  bool WantsPresenceOf(UserId user) const {
    if (!presence_user_ids) return true;
    return std::binary_search(presence_user_ids->begin(),
                              presence_user_ids->end(), user);
  }
};

// One serialised event: a complete JSON object without its "id" key,
// shared by every queue that holds it (one per event and shape).
class EventBody
    : public boost::intrusive_ref_counter<EventBody,
                                          boost::thread_safe_counter> {
 public:
  static constexpr UserId kNotCoalesced = -1;

  explicit EventBody(std::string json, UserId coalesce_user = kNotCoalesced)
      : json_(std::move(json)), coalesce_user_(coalesce_user) {}
  const std::string& json() const { return json_; }
  // The user whose whole presence state the event carries, when a newer
  // event of that user may replace it in a queue (see EventHub,
  // "Coalescing"); else kNotCoalesced. Every queue that shares the body
  // shares this: the shapes that coalesce have bodies of their own.
  UserId coalesce_user() const { return coalesce_user_; }

 private:
  std::string json_;
  UserId coalesce_user_;
};
using EventBodyPtr = boost::intrusive_ptr<const EventBody>;

inline EventBodyPtr MakeEventBody(
    std::string json, UserId coalesce_user = EventBody::kNotCoalesced) {
  return EventBodyPtr(new EventBody(std::move(json), coalesce_user));
}

// One event as a queue holds it: 16 bytes (issue #17: under a backlog the
// 19,000 queues of the million run held about 100 events each, and at 32
// bytes an entry that was 60 MB of the heap at every peak).
struct QueuedEvent {
  std::int64_t id = 0;
  EventBodyPtr body;
  UserId coalesce_user() const { return body->coalesce_user(); }
  static constexpr UserId kNotCoalesced = EventBody::kNotCoalesced;
};
static_assert(sizeof(QueuedEvent) == 16);

// Slots an event vector may keep once it is drained, so that a steady
// stream of answers does not reallocate (32 x 16 B = 512 B per queue).
inline constexpr std::size_t kEventSlotsKept = 32;

// Gives back the room a burst left behind: after acknowledgements erased a
// prefix, a vector that has more than kEventSlotsKept slots and uses under a
// quarter of them moves to one sized for twice what it holds (at least
// kEventSlotsKept). Without this each of many queues keeps the capacity of
// its largest backlog for its whole life, and the process's memory grows
// with every latency peak instead of following what the queues hold.
inline void ReleaseSpareEventSlots(std::vector<QueuedEvent>& events) {
  const std::size_t capacity = events.capacity();
  if (capacity <= kEventSlotsKept || events.size() * 4 >= capacity) return;
  std::vector<QueuedEvent> kept;
  kept.reserve(std::max(kEventSlotsKept, events.size() * 2));
  std::move(events.begin(), events.end(), std::back_inserter(kept));
  events.swap(kept);
}

// Told when a parked poll should look at its queue again.
class QueueWaiter {
 public:
  virtual ~QueueWaiter() = default;
  // The queue has events, was deleted, or overflowed. Called with no lock
  // held; implementations must only schedule work (e.g. post to a strand).
  virtual void Wake() = 0;
  // Another poll took this one's place on the queue: answer with no events.
  // Same calling rules as Wake.
  virtual void Supersede() = 0;
};

struct EventQueue {
  std::string id;
  QueueSpec spec;
  // Unacknowledged events, oldest first. A vector, not a deque: an empty
  // libstdc++ deque still holds a 512-byte block and its map, and most
  // queues (every parked poll's) are empty; acknowledgements erase a prefix
  // at once, and a queue holds at most max_queue_events + 1.
  std::vector<QueuedEvent> events;
  std::int64_t next_event_id = 0;
  // Real (steady) time of the last poll, for expiry; microseconds.
  std::int64_t last_poll = 0;
  std::weak_ptr<QueueWaiter> waiter;
  std::size_t realm_index = 0;  // position in EventHub's per-realm list
  // Highest event id a poll has answered with (-1: none): a poll that
  // brings nothing newer is counted in the caller's poll budget.
  std::int64_t delivered_up_to = -1;
  // Bytes this queue holds (EventHub's accounting: QueueBaseBytes).
  std::size_t bytes = 0;
  // Coalescing (EventHub): while many events wait that no answer carried,
  // each user's one among them, by user (built when first needed, dropped
  // by the next answer; an entry may name an event acknowledged since).
  std::unique_ptr<boost::unordered_flat_map<UserId, std::int64_t>>
      unsent_by_user;
  // EventHub's fan-out count when an answer last carried events: an event
  // fanned out before it was carried (coalescing's quick test).
  std::uint64_t answered_epoch = 0;
};

}  // namespace presence

#endif  // PRESENCE_CORE_EVENT_QUEUE_H_
