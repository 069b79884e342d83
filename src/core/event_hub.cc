#include "core/event_hub.h"

#include <array>

#include "util/crypto.h"

namespace presence {
namespace {

// A UUID-shaped random id, as Zulip's queue ids look.
std::string NewQueueId() {
  std::string hex = HexEncode(Sha256(RandomAlnum(32)));
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) +
         "-" + hex.substr(16, 4) + "-" + hex.substr(20, 12);
}

}  // namespace

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
  auto q = std::make_unique<EventQueue>();
  q->id = queue_id_prefix_ + NewQueueId();
  q->spec = std::move(spec);
  q->last_poll = steady_now;
  std::string id = q->id;
  MutexLock lock(mu_);
  auto& list = by_realm_[q->spec.realm_id];
  q->realm_index = list.size();
  list.push_back(q.get());
  queues_.emplace(id, std::move(q));
  return id;
}

void EventHub::RemoveLocked(EventQueue* q, Waiters& wake) {
  if (auto w = q->waiter.lock()) wake.push_back(std::move(w));
  auto& list = by_realm_[q->spec.realm_id];
  EventQueue* last = list.back();
  list[q->realm_index] = last;
  last->realm_index = q->realm_index;
  list.pop_back();
  queues_.erase(q->id);  // destroys q
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

void EventHub::AppendLocked(EventQueue& q,
                            std::shared_ptr<const std::string> body,
                            Waiters& wake,
                            std::vector<EventQueue*>& overflowed) {
  q.events.push_back({q.next_event_id++, std::move(body)});
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
                          std::int64_t steady_now) {
  PollResult out;
  std::shared_ptr<QueueWaiter> superseded;
  {
    MutexLock lock(mu_);
    auto it = queues_.find(queue_id);
    if (it == queues_.end() || it->second->spec.user_id != user) return out;
    EventQueue& q = *it->second;
    q.last_poll = steady_now;
    if (last_event_id) {
      while (!q.events.empty() && q.events.front().id <= *last_event_id) {
        q.events.pop_front();
      }
    }
    if (!q.events.empty() || !block || waiter == nullptr) {
      out.status = PollStatus::kEvents;
      out.events.assign(q.events.begin(), q.events.end());
      if (q.waiter.lock() == waiter) q.waiter.reset();
      return out;
    }
    auto current = q.waiter.lock();
    if (current && current != waiter) superseded = std::move(current);
    q.waiter = waiter;
    out.status = PollStatus::kParked;
  }
  if (superseded) superseded->Supersede();
  return out;
}

void EventHub::Heartbeat(std::string_view queue_id) {
  auto body = std::make_shared<const std::string>(encoder_->Heartbeat());
  Waiters wake;
  std::vector<EventQueue*> overflowed;
  {
    MutexLock lock(mu_);
    auto it = queues_.find(queue_id);
    if (it == queues_.end()) return;
    AppendLocked(*it->second, std::move(body), wake, overflowed);
    for (EventQueue* q : overflowed) {
      ++queues_overflowed_;
      RemoveLocked(q, wake);
    }
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
  MutexLock lock(mu_);
  auto it = queues_.find(queue_id);
  if (it == queues_.end() || it->second->spec.user_id != user) return false;
  it->second->spec.presence_user_ids = std::move(user_ids);
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
    auto it = by_realm_.find(realm);
    if (it == by_realm_.end()) return;
    std::vector<EventQueue*> doomed;
    for (EventQueue* q : it->second) {
      if (q->spec.user_id == user) doomed.push_back(q);
    }
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
  std::array<std::shared_ptr<const std::string>, 2 * kPresenceShapeCount>
      bodies;
  std::optional<ClientRowList> clients;  // read once, at the first need
  // Transitions are about the user row; a client-only write is news only to
  // queues that asked for per-client data.
  const bool plain_too = !transition.empty() || change.event_due;
  Waiters wake;
  {
    MutexLock lock(mu_);
    auto it = by_realm_.find(change.realm_id);
    if (it == by_realm_.end()) return;
    std::vector<EventQueue*> overflowed;
    for (EventQueue* q : it->second) {
      const QueueSpec& spec = q->spec;
      if (transitions_only && !spec.presence_transitions) continue;
      if (!spec.WantsType("presence") ||
          !spec.WantsPresenceOf(change.user_id)) {
        continue;
      }
      if (!spec.per_client && !plain_too) continue;
      if (!realm->CanSee(spec.user_id, change.user_id)) continue;
      auto& body = bodies[static_cast<int>(spec.shape) +
                          (spec.per_client ? kPresenceShapeCount : 0)];
      if (!body) {
        if (spec.per_client && !clients) {
          clients = realm->ClientsOf(change.user_id);
        }
        body = std::make_shared<const std::string>(
            encoder_->Presence(change, spec.shape, now, transition,
                               spec.per_client ? &*clients : nullptr));
      }
      AppendLocked(*q, body, wake, overflowed);
    }
    for (EventQueue* q : overflowed) {
      ++queues_overflowed_;
      RemoveLocked(q, wake);
    }
  }
  WakeAll(std::move(wake));
}

void EventHub::OnPresenceChange(const PresenceChange& change) {
  if (change.row_written) tracker_.OnWrite(change);
  if (change.event_due || change.client_event_due) {
    FanOutPresence(change, {}, false);
  }
}

std::size_t EventHub::TickTransitions(Micros now) {
  auto due = tracker_.Tick(*service_, now);
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
  auto settings = std::make_shared<const std::string>(
      encoder_->UserSettingsPresenceEnabled(enabled));
  auto legacy = std::make_shared<const std::string>(
      encoder_->GlobalNotificationsPresenceEnabled(email, enabled));
  Waiters wake;
  {
    MutexLock lock(mu_);
    auto it = by_realm_.find(realm);
    if (it == by_realm_.end()) return;
    std::vector<EventQueue*> overflowed;
    for (EventQueue* q : it->second) {
      if (q->spec.user_id != user) continue;
      if (q->spec.WantsType("user_settings")) {
        AppendLocked(*q, settings, wake, overflowed);
      }
      if (q->spec.WantsType("update_global_notifications")) {
        AppendLocked(*q, legacy, wake, overflowed);
      }
    }
    for (EventQueue* q : overflowed) {
      ++queues_overflowed_;
      RemoveLocked(q, wake);
    }
  }
  WakeAll(std::move(wake));
}

void EventHub::OnUserDeactivated(RealmId realm, UserId user) {
  DropQueuesOf(realm, user);
}

}  // namespace presence
