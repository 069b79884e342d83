#include "core/event_hub.h"

#include <algorithm>
#include <array>
#include <utility>

#include "util/crypto.h"

namespace presence {
namespace {

// A UUID-shaped random id, as Zulip's queue ids look.
std::string NewQueueId() {
  std::string hex = HexEncode(Sha256(RandomAlnum(32)));
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) +
         "-" + hex.substr(16, 4) + "-" + hex.substr(20, 12);
}

// A queue's entries in queues_ (key and value), by_realm_ and by_user_.
constexpr std::size_t kIndexBytes = sizeof(std::string_view) +
                                    sizeof(std::unique_ptr<EventQueue>) +
                                    2 * sizeof(EventQueue*);
// A body's EventBody object (its count, coalescing user and string) and
// the allocator's header.
constexpr std::size_t kBodyOverhead = sizeof(EventBody) + 16;

}  // namespace

std::size_t QueueBaseBytes(const EventQueue& q) {
  std::size_t n = sizeof(EventQueue) + kIndexBytes + q.id.capacity() + 1;
  if (q.spec.presence_user_ids) {
    n += q.spec.presence_user_ids->capacity() * sizeof(UserId);
  }
  return n;
}

std::size_t QueuedEventBytes(const std::string& body) {
  return sizeof(QueuedEvent) + kBodyOverhead + body.size();
}

EventHub::EventHub(const PresenceService* service, const EventEncoder* encoder,
                   HubOptions options)
    : service_(service),
      encoder_(encoder),
      options_(options),
      tracker_(options.transition_grace_us) {}

std::string EventHub::Register(QueueSpec spec, std::int64_t steady_now) {
  if (spec.presence_user_ids) {
    auto& ids = *spec.presence_user_ids;
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  }
  // Shared (queues_ owns it) only so that a poll's handle can find it.
  auto q = std::make_shared<EventQueue>();
  q->id = queue_id_prefix_ + NewQueueId();
  q->spec = std::move(spec);
  q->last_poll = steady_now;
  q->bytes = QueueBaseBytes(*q);
  const std::pair<RealmId, UserId> owner(q->spec.realm_id, q->spec.user_id);
  std::string id;
  Waiters wake;
  {
    MutexLock lock(mu_);
    // The user's stalest queues make room: an abandoned tab's queue, or the
    // queues of a client that registers in a loop, go first.
    while (true) {
      auto mine = by_user_.find(owner);
      if (mine == by_user_.end() ||
          mine->second.size() <
              std::max<std::size_t>(options_.max_queues_per_user, 1)) {
        break;
      }
      EventQueue* victim = nullptr;
      for (EventQueue* c : mine->second) {
        const bool c_parked = !c->waiter.expired();
        if (victim == nullptr) {
          victim = c;
          continue;
        }
        const bool v_parked = !victim->waiter.expired();
        if (c_parked != v_parked ? !c_parked
                                 : c->last_poll < victim->last_poll) {
          victim = c;
        }
      }
      ++queues_evicted_per_user_;
      RemoveLocked(victim, wake);
    }
    auto& list = by_realm_[q->spec.realm_id];
    q->realm_index = list.size();
    list.push_back(q.get());
    by_user_[owner].push_back(q.get());
    if (q->spec.presence_transitions) ++transition_queues_[q->spec.realm_id];
    queue_bytes_ += q->bytes;
    EventQueue* added = q.get();
    // The key views the queue's own id (the queue never moves).
    queues_.emplace(std::string_view(added->id), std::move(q));
    EnforceMemoryLocked(wake, added);
    id = added->id;
  }
  WakeAll(std::move(wake));
  return id;
}

void EventHub::RemoveLocked(EventQueue* q, Waiters& wake) {
  if (auto w = q->waiter.lock()) wake.push_back(std::move(w));
  auto& list = by_realm_[q->spec.realm_id];
  EventQueue* last = list.back();
  list[q->realm_index] = last;
  last->realm_index = q->realm_index;
  list.pop_back();
  if (auto mine = by_user_.find({q->spec.realm_id, q->spec.user_id});
      mine != by_user_.end()) {
    std::erase(mine->second, q);
    if (mine->second.empty()) by_user_.erase(mine);
  }
  if (q->spec.presence_transitions) {
    auto t = transition_queues_.find(q->spec.realm_id);
    if (t != transition_queues_.end() && --t->second == 0) {
      transition_queues_.erase(t);
    }
  }
  queue_bytes_ -= q->bytes;
  // The key views q->id: find first, erase the slot (which destroys q).
  queues_.erase(queues_.find(std::string_view(q->id)));
}

void EventHub::EnforceMemoryLocked(Waiters& wake, const EventQueue* keep) {
  if (queue_bytes_ <= options_.max_queue_bytes) return;
  // Rare (a server past its cap): a sort of every queue is affordable, and
  // the slack of 1/16 keeps it from running on each event after.
  std::vector<EventQueue*> all;
  all.reserve(queues_.size());
  for (auto& [id, q] : queues_) {
    if (q.get() != keep) all.push_back(q.get());
  }
  std::sort(all.begin(), all.end(),
            [](const EventQueue* a, const EventQueue* b) {
              return a->bytes != b->bytes ? a->bytes > b->bytes
                                          : a->last_poll < b->last_poll;
            });
  const std::size_t target =
      options_.max_queue_bytes - options_.max_queue_bytes / 16;
  for (EventQueue* q : all) {
    if (queue_bytes_ <= target) break;
    ++queues_evicted_memory_;
    RemoveLocked(q, wake);
  }
}

void EventHub::DropOverflowedLocked(const std::vector<EventQueue*>& overflowed,
                                    Waiters& wake) {
  for (EventQueue* q : overflowed) {
    ++queues_overflowed_;
    RemoveLocked(q, wake);
  }
  EnforceMemoryLocked(wake, nullptr);
}

void EventHub::WakeAll(Waiters wake) const {
  if (wake.size() > kInlineWakes && wake_scheduler_) {
    wake_scheduler_([wake = std::move(wake)] {
      for (const auto& w : wake) w->Wake();
    });
    return;
  }
  for (const auto& w : wake) w->Wake();
}

void EventHub::DropUnsentOfLocked(EventQueue& q, UserId user) {
  // The events no answer carried: ids past delivered_up_to (ids increase).
  const auto first = std::upper_bound(
      q.events.begin(), q.events.end(), q.delivered_up_to,
      [](std::int64_t id, const QueuedEvent& e) { return id < e.id; });
  const auto unsent = static_cast<std::size_t>(q.events.end() - first);
  if (unsent == 0) return;
  auto found = q.events.end();
  if (q.unsent_by_user == nullptr && unsent <= kCoalesceScan) {
    for (auto e = q.events.end(); e != first;) {
      --e;
      if (e->coalesce_user() == user) {
        found = e;
        break;
      }
    }
  } else {
    if (q.unsent_by_user == nullptr) {
      q.unsent_by_user =
          std::make_unique<boost::unordered_flat_map<UserId, std::int64_t>>();
      for (auto e = first; e != q.events.end(); ++e) {
        if (e->coalesce_user() != QueuedEvent::kNotCoalesced) {
          (*q.unsent_by_user)[e->coalesce_user()] = e->id;
        }
      }
    }
    auto m = q.unsent_by_user->find(user);
    if (m == q.unsent_by_user->end()) return;
    // It may have been acknowledged since (a client may acknowledge what
    // it was not given): only an event still held and unsent counts.
    auto e = std::lower_bound(
        first, q.events.end(), m->second,
        [](const QueuedEvent& e, std::int64_t id) { return e.id < id; });
    if (e != q.events.end() && e->id == m->second) found = e;
  }
  if (found == q.events.end()) return;
  const std::size_t bytes = QueuedEventBytes(found->body->json());
  q.bytes -= bytes;
  queue_bytes_ -= bytes;
  q.events.erase(found);
  ++events_coalesced_;
}

void EventHub::AppendLocked(EventQueue& q, const EventBodyPtr& body,
                            Waiters& wake, std::vector<EventQueue*>& overflowed,
                            bool may_replace) {
  const UserId coalesce_user = body->coalesce_user();
  if (may_replace && coalesce_user != QueuedEvent::kNotCoalesced) {
    DropUnsentOfLocked(q, coalesce_user);
  }
  const std::size_t bytes = QueuedEventBytes(body->json());
  q.bytes += bytes;
  queue_bytes_ += bytes;
  const std::int64_t id = q.next_event_id++;
  q.events.push_back({id, body});
  if (q.unsent_by_user != nullptr &&
      coalesce_user != QueuedEvent::kNotCoalesced) {
    (*q.unsent_by_user)[coalesce_user] = id;
  }
  ++events_enqueued_;
  if (q.events.size() > options_.max_queue_events) {
    // Listed once, when it first goes over; removed by the caller.
    if (q.events.size() == options_.max_queue_events + 1) {
      overflowed.push_back(&q);
    }
    return;
  }
  if (auto w = q.waiter.lock()) wake.push_back(std::move(w));
}

PollResult EventHub::Poll(std::string_view queue_id, UserId user,
                          std::optional<std::int64_t> last_event_id, bool block,
                          const std::shared_ptr<QueueWaiter>& waiter,
                          std::int64_t steady_now, FunctionRef<bool()> admit) {
  std::vector<QueuedEvent> events;
  auto copy = [&](std::span<const QueuedEvent> e) {
    events.assign(e.begin(), e.end());
  };
  PollResult out = Poll(queue_id, user, last_event_id, block, waiter,
                        steady_now, admit, copy);
  out.events = std::move(events);
  return out;
}

PollResult EventHub::Poll(std::string_view queue_id, UserId user,
                          std::optional<std::int64_t> last_event_id, bool block,
                          const std::shared_ptr<QueueWaiter>& waiter,
                          std::int64_t steady_now, FunctionRef<bool()> admit,
                          TakeEvents take, std::weak_ptr<EventQueue>* handle) {
  PollResult out;
  std::shared_ptr<QueueWaiter> superseded;
  {
    MutexLock lock(mu_);
    // Released before the lock (declared after it): a queue is destroyed
    // only under mu_, by RemoveLocked.
    std::shared_ptr<EventQueue> held;
    EventQueue* found = nullptr;
    if (handle != nullptr) {
      held = handle->lock();
      found = held.get();
    }
    if (found == nullptr) {
      auto it = queues_.find(queue_id);
      if (it != queues_.end()) {
        found = it->second.get();
        if (handle != nullptr) *handle = it->second;
      } else if (handle != nullptr) {
        handle->reset();
      }
    }
    if (found == nullptr || found->spec.user_id != user) {
      if (!admit()) {
        ++polls_refused_;
        out.status = PollStatus::kRefused;
      }
      return out;
    }
    EventQueue& q = *found;
    // What the poll will do, decided before anything changes, so that a
    // refused poll changes nothing (it does not even keep the queue alive).
    auto unacked = q.events.begin();
    if (last_event_id) {
      while (unacked != q.events.end() && unacked->id <= *last_event_id) {
        ++unacked;
      }
    }
    const bool answers = unacked != q.events.end() || !block || !waiter;
    auto current = q.waiter.lock();
    const bool costs = answers ? (unacked == q.events.end() ||
                                  q.events.back().id <= q.delivered_up_to)
                               : (current && current != waiter);
    if (costs && !admit()) {
      ++polls_refused_;
      out.status = PollStatus::kRefused;
      return out;
    }

    q.last_poll = steady_now;
    for (auto e = q.events.begin(); e != unacked; ++e) {
      const std::size_t bytes = QueuedEventBytes(e->body->json());
      q.bytes -= bytes;
      queue_bytes_ -= bytes;
    }
    q.events.erase(q.events.begin(), unacked);
    ReleaseSpareEventSlots(q.events);
    if (answers) {
      out.status = PollStatus::kEvents;
      take(std::span<const QueuedEvent>(q.events));
      if (!q.events.empty()) {
        q.delivered_up_to = std::max(q.delivered_up_to, q.events.back().id);
        // Every event held is carried now: none is unsent.
        q.unsent_by_user.reset();
        q.answered_epoch = fanout_epoch_;
      }
      if (current == waiter) q.waiter.reset();
      return out;
    }
    if (current && current != waiter) superseded = std::move(current);
    q.waiter = waiter;
    out.status = PollStatus::kParked;
  }
  if (superseded) superseded->Supersede();
  return out;
}

void EventHub::Heartbeat(std::string_view queue_id) {
  const EventBodyPtr body = MakeEventBody(encoder_->Heartbeat());
  Waiters wake;
  std::vector<EventQueue*> overflowed;
  {
    MutexLock lock(mu_);
    auto it = queues_.find(queue_id);
    if (it == queues_.end()) return;
    AppendLocked(*it->second, body, wake, overflowed);
    DropOverflowedLocked(overflowed, wake);
  }
  WakeAll(std::move(wake));
}

bool EventHub::Delete(std::string_view queue_id, UserId user) {
  Waiters wake;
  {
    MutexLock lock(mu_);
    auto it = queues_.find(queue_id);
    if (it == queues_.end() || it->second->spec.user_id != user) return false;
    RemoveLocked(it->second.get(), wake);
  }
  WakeAll(std::move(wake));
  return true;
}

bool EventHub::SetPresenceSubset(std::string_view queue_id, UserId user,
                                 std::optional<std::vector<UserId>> user_ids) {
  if (user_ids) {
    std::sort(user_ids->begin(), user_ids->end());
    user_ids->erase(std::unique(user_ids->begin(), user_ids->end()),
                    user_ids->end());
  }
  Waiters wake;
  {
    MutexLock lock(mu_);
    auto it = queues_.find(queue_id);
    if (it == queues_.end() || it->second->spec.user_id != user) return false;
    EventQueue& q = *it->second;
    const std::size_t before = QueueBaseBytes(q);
    q.spec.presence_user_ids = std::move(user_ids);
    const std::size_t after = QueueBaseBytes(q);
    q.bytes = q.bytes - before + after;
    queue_bytes_ = queue_bytes_ - before + after;
    EnforceMemoryLocked(wake, &q);
  }
  WakeAll(std::move(wake));
  return true;
}

std::size_t EventHub::Expire(std::int64_t steady_now) {
  Waiters wake;
  std::size_t n = 0;
  {
    MutexLock lock(mu_);
    std::vector<EventQueue*> stale;
    for (auto& [id, q] : queues_) {
      if (!q->waiter.expired()) continue;  // a poll is parked on it
      if (steady_now - q->last_poll > options_.queue_timeout_us) {
        stale.push_back(q.get());
      }
    }
    for (EventQueue* q : stale) RemoveLocked(q, wake);
    n = stale.size();
    queues_expired_ += n;
  }
  WakeAll(std::move(wake));
  return n;
}

void EventHub::DropQueuesOf(RealmId realm, UserId user) {
  Waiters wake;
  {
    MutexLock lock(mu_);
    auto it = by_user_.find({realm, user});
    if (it == by_user_.end()) return;
    // A copy: RemoveLocked edits (and finally erases) the list.
    std::vector<EventQueue*> doomed = it->second;
    for (EventQueue* q : doomed) RemoveLocked(q, wake);
  }
  WakeAll(std::move(wake));
}

std::optional<QueueSpec> EventHub::SpecOf(std::string_view queue_id) const {
  MutexLock lock(mu_);
  auto it = queues_.find(queue_id);
  if (it == queues_.end()) return std::nullopt;
  return it->second->spec;
}

HubStats EventHub::Stats() const {
  MutexLock lock(mu_);
  HubStats s;
  s.queues = queues_.size();
  for (auto& [id, q] : queues_) {
    if (!q->waiter.expired()) ++s.parked;
  }
  s.events_enqueued = events_enqueued_;
  s.queues_overflowed = queues_overflowed_;
  s.queues_expired = queues_expired_;
  s.queue_bytes = queue_bytes_;
  s.max_queue_bytes = options_.max_queue_bytes;
  s.queues_evicted_per_user = queues_evicted_per_user_;
  s.queues_evicted_memory = queues_evicted_memory_;
  s.polls_refused = polls_refused_;
  s.events_coalesced = events_coalesced_;
  return s;
}

void EventHub::FanOutPresence(const PresenceChange& change,
                              std::string_view transition,
                              bool transitions_only) {
  const Realm* realm = service_->FindRealmById(change.realm_id);
  if (realm == nullptr) return;
  if (!change.forced && transition.empty() &&
      options_.presence_event_user_limit &&
      realm->active_count() > *options_.presence_event_user_limit &&
      realm->CountViewers(change.user_id) >
          *options_.presence_event_user_limit) {
    return;  // Zulip's cut-off on the recipient list, when configured
  }
  const Micros now = service_->Now();
  // Plain shapes first, then their per-client variants.
  std::array<EventBodyPtr, 2 * kPresenceShapeCount> bodies;
  std::optional<ClientRowList> clients;  // read once, at the first need
  // Transitions are about the user row; a client-only write is news only to
  // queues that asked for per-client data.
  const bool plain_too = !transition.empty() || change.event_due;
  Waiters wake;
  {
    MutexLock lock(mu_);
    if (transitions_only && !transition_queues_.contains(change.realm_id)) {
      return;
    }
    auto it = by_realm_.find(change.realm_id);
    if (it == by_realm_.end()) return;
    // The fan-out of the user's previous presence event (0: none recent).
    const std::uint64_t epoch = ++fanout_epoch_;
    std::uint64_t previous = 0;
    if (options_.coalesce_presence) {
      auto [latest, fresh] = recent_presence_.try_emplace(
          {change.realm_id, change.user_id}, epoch);
      if (!fresh) {
        previous = std::exchange(latest->second, epoch);
      } else if (recent_presence_.size() > kRecentUsers) {
        // Keeps the latest kRecentUsers / 2 fan-outs' users at most.
        const std::uint64_t horizon = epoch - kRecentUsers / 2;
        boost::unordered::erase_if(recent_presence_, [&](const auto& entry) {
          return entry.second < horizon;
        });
      }
    }
    // The queues that want the event, then whether each owner may see the
    // user, read under one realm lock for all of them (not one per queue).
    std::vector<EventQueue*> wanting;
    std::vector<UserId> owners;
    wanting.reserve(it->second.size());
    owners.reserve(it->second.size());
    for (EventQueue* q : it->second) {
      const QueueSpec& spec = q->spec;
      if (transitions_only && !spec.presence_transitions) continue;
      if (!spec.WantsType(EventType::kPresence) ||
          !spec.WantsPresenceOf(change.user_id)) {
        continue;
      }
      if (!spec.per_client && !plain_too) continue;
      wanting.push_back(q);
      owners.push_back(spec.user_id);
    }
    std::vector<std::uint8_t> visible;
    realm->CanSeeEach(owners, change.user_id, visible);
    std::vector<EventQueue*> overflowed;
    for (std::size_t i = 0; i < wanting.size(); ++i) {
      if (!visible[i]) continue;
      EventQueue* q = wanting[i];
      const QueueSpec& spec = q->spec;
      auto& body = bodies[static_cast<int>(spec.shape) +
                          (spec.per_client ? kPresenceShapeCount : 0)];
      if (!body) {
        if (spec.per_client && !clients) {
          clients = realm->ClientsOf(change.user_id);
        }
        // The modern shape carries the user's whole state, and so does
        // each of its transitions: a newer one may stand for an older one.
        const bool coalesce = options_.coalesce_presence &&
                              spec.shape == PresenceShape::kModern &&
                              !spec.per_client;
        body = MakeEventBody(
            encoder_->Presence(change, spec.shape, now, transition,
                               spec.per_client ? &*clients : nullptr),
            coalesce ? change.user_id : QueuedEvent::kNotCoalesced);
      }
      AppendLocked(*q, body, wake, overflowed,
                   previous != 0 && q->answered_epoch < previous);
    }
    DropOverflowedLocked(overflowed, wake);
  }
  WakeAll(std::move(wake));
}

void EventHub::OnPresenceChange(const PresenceChange& change) {
  if (change.row_written) tracker_.OnWrite(change);
  if (change.event_due || change.client_event_due) {
    FanOutPresence(change, {}, false);
  }
}

std::size_t EventHub::TickTransitions(Micros now, std::size_t max_deadlines) {
  auto due = tracker_.Tick(*service_, now, max_deadlines);
  for (const Transition& t : due) {
    OnTransition(t.change, TrackedStatusName(t.status));
  }
  return due.size();
}

void EventHub::SeedTransitions(Micros now) { tracker_.Seed(*service_, now); }

void EventHub::OnTransition(const PresenceChange& change,
                            std::string_view transition) {
  FanOutPresence(change, transition, true);
}

void EventHub::OnPresenceEnabledChange(RealmId realm, UserId user,
                                       bool enabled) {
  std::string email;
  if (const Realm* r = service_->FindRealmById(realm)) {
    r->WithMember(user, [&](const Member* m) {
      if (m) email = m->email();
    });
  }
  const EventBodyPtr settings =
      MakeEventBody(encoder_->UserSettingsPresenceEnabled(enabled));
  const EventBodyPtr legacy = MakeEventBody(
      encoder_->GlobalNotificationsPresenceEnabled(email, enabled));
  Waiters wake;
  {
    MutexLock lock(mu_);
    auto it = by_user_.find({realm, user});
    if (it == by_user_.end()) return;
    std::vector<EventQueue*> overflowed;
    for (EventQueue* q : it->second) {
      if (q->spec.WantsType(EventType::kUserSettings)) {
        AppendLocked(*q, settings, wake, overflowed);
      }
      if (q->spec.WantsType(EventType::kUpdateGlobalNotifications)) {
        AppendLocked(*q, legacy, wake, overflowed);
      }
    }
    DropOverflowedLocked(overflowed, wake);
  }
  WakeAll(std::move(wake));
}

void EventHub::OnUserStatusChange(RealmId realm_id, UserId user,
                                  const store::UserStatus& status) {
  status_deadlines_.OnStatus(realm_id, user, status);
  const Realm* realm = service_->FindRealmById(realm_id);
  if (realm == nullptr) return;
  constexpr std::uint8_t kZulipFields = store::UserStatus::kStatusText |
                                        store::UserStatus::kEmoji |
                                        store::UserStatus::kAway;
  constexpr std::uint8_t kExtensionFields =
      store::UserStatus::kScheduledEnd | store::UserStatus::kDnd;
  // A change of the extensions alone is news only to the queues that asked
  // for them (a Zulip client sees nothing new).
  EventBodyPtr body;
  if (status.passed & kZulipFields) {
    body = MakeEventBody(encoder_->UserStatus(user, status));
  }
  EventBodyPtr extended = body;
  if (status.passed & kExtensionFields) {
    extended = MakeEventBody(encoder_->UserStatusExtended(user, status));
  }
  if (!body && !extended) return;
  Waiters wake;
  {
    MutexLock lock(mu_);
    auto it = by_realm_.find(realm_id);
    if (it == by_realm_.end()) return;
    std::vector<EventQueue*> overflowed;
    for (EventQueue* q : it->second) {
      const auto& b = q->spec.status_extensions ? extended : body;
      if (!b) continue;
      if (!q->spec.WantsType(EventType::kUserStatus)) continue;
      if (!realm->CanSee(q->spec.user_id, user)) continue;
      AppendLocked(*q, b, wake, overflowed);
    }
    DropOverflowedLocked(overflowed, wake);
  }
  WakeAll(std::move(wake));
}

void EventHub::OnUserDeactivated(RealmId realm, UserId user) {
  DropQueuesOf(realm, user);
}

}  // namespace presence
