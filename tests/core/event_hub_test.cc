#include "core/event_hub.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <span>

#include "testing/memory_store.h"

namespace presence {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Encodes just enough to tell events apart.
class FakeEncoder : public EventEncoder {
 public:
  std::string Presence(const PresenceChange& c, PresenceShape shape, Micros,
                       std::string_view transition,
                       const ClientRowList* clients) const override {
    ++encoded;
    std::string per_client;
    if (clients != nullptr) {
      per_client = ":clients";
      for (const auto& c : *clients) per_client += "," + c.client;
    }
    return "presence:" + std::to_string(c.user_id) + ":" +
           std::to_string(static_cast<int>(shape)) + ":" +
           std::string(transition) + (c.forced ? ":forced" : "") + per_client +
           "}";
  }
  std::string UserSettingsPresenceEnabled(bool e) const override {
    return std::string("settings:") + (e ? "on" : "off") + "}";
  }
  std::string GlobalNotificationsPresenceEnabled(std::string_view,
                                                 bool e) const override {
    return std::string("global:") + (e ? "on" : "off") + "}";
  }
  std::string UserStatus(UserId user,
                         const store::UserStatus& status) const override {
    return std::string("status:") + std::to_string(user) + ":" +
           status.status_text + "}";
  }
  std::string UserStatusExtended(
      UserId user, const store::UserStatus& status) const override {
    return std::string("xstatus:") + std::to_string(user) + ":" +
           status.status_text + (status.dnd ? ":dnd" : "") + "}";
  }
  std::string Heartbeat() const override { return "heartbeat}"; }
  mutable int encoded = 0;
};

class FakeWaiter : public QueueWaiter {
 public:
  void Wake() override { ++woken; }
  void Supersede() override { ++superseded; }
  int woken = 0;
  int superseded = 0;
};

class EventHubTest : public ::testing::Test {
 protected:
  void SetUp() override { Make({}); }

  void Make(HubOptions options) {
    if (service_) service_->SetListener(nullptr);
    hub_.reset();
    service_.reset();
    store_ = std::make_unique<store::MemoryStore>();
    service_ = std::move(*PresenceService::Create(store_.get(), &clock_));
    hub_ = std::make_unique<EventHub>(service_.get(), &encoder_, options);
    service_->SetListener(hub_.get());
    realm_ = *service_->CreateRealm("", "R");
  }

  UserId AddUser(std::string email, Role role = Role::kMember,
                 bool all = true) {
    NewUser u;
    u.email = email;
    u.full_name = email;
    u.role = role;
    u.can_access_all_users = all;
    return service_->CreateUser(realm_, u)->user_id;
  }

  Caller CallerOf(UserId id) {
    Caller c;
    c.realm = service_->FindRealmById(realm_);
    c.user_id = id;
    return c;
  }

  void Ping(UserId id, ReportStatus s = ReportStatus::kActive) {
    ASSERT_TRUE(service_->Report(CallerOf(id), s, clock_.NowMicros()));
  }

  std::string Register(UserId user,
                       PresenceShape shape = PresenceShape::kLegacy,
                       std::optional<std::vector<std::string>> types = {}) {
    QueueSpec spec;
    spec.realm_id = realm_;
    spec.user_id = user;
    spec.shape = shape;
    spec.event_types = EventTypeSet::Of(types);
    return hub_->Register(spec, steady_);
  }

  // The bodies of the events in the queue after `last`, without waiting.
  std::vector<std::string> Drain(const std::string& q, UserId user,
                                 std::optional<std::int64_t> last = {}) {
    auto r = hub_->Poll(q, user, last, false, nullptr, steady_);
    std::vector<std::string> out;
    for (auto& e : r.events) out.push_back(e.body->json());
    return out;
  }

  ManualClock clock_{SecondsToMicros(1'700'000'000)};
  std::int64_t steady_ = 1'000'000;
  std::unique_ptr<store::MemoryStore> store_;
  FakeEncoder encoder_;
  std::unique_ptr<PresenceService> service_;
  std::unique_ptr<EventHub> hub_;
  RealmId realm_ = 0;
};

TEST_F(EventHubTest, RowCreationAndComingOnlineAreEventsRegularPingsAreNot) {
  UserId a = AddUser("a@example.com"), b = AddUser("b@example.com");
  std::string q = Register(b);
  Ping(a);
  clock_.Advance(SecondsToMicros(60));
  Ping(a);
  clock_.Advance(SecondsToMicros(200));
  Ping(a);
  EXPECT_THAT(Drain(q, b), ElementsAre("presence:1:0:}", "presence:1:0:}"));
}

TEST_F(EventHubTest, OneBufferPerShapeSharedByEveryQueue) {
  UserId a = AddUser("a@example.com");
  std::vector<std::string> queues;
  for (int i = 0; i < 10; ++i) {
    UserId u = AddUser("u" + std::to_string(i) + "@example.com");
    queues.push_back(Register(u, static_cast<PresenceShape>(i % 3)));
  }
  Ping(a);
  EXPECT_EQ(encoder_.encoded, 3);  // once per shape, not per queue
  auto r1 = hub_->Poll(queues[0], 2, {}, false, nullptr, steady_);
  auto r4 = hub_->Poll(queues[3], 5, {}, false, nullptr, steady_);
  ASSERT_EQ(r1.events.size(), 1u);
  ASSERT_EQ(r4.events.size(), 1u);
  EXPECT_EQ(r1.events[0].body.get(), r4.events[0].body.get());
}

TEST_F(EventHubTest, EventIdsIncreaseAndPollsAcknowledge) {
  UserId a = AddUser("a@example.com"), b = AddUser("b@example.com");
  std::string q = Register(b);
  Ping(a);
  hub_->Heartbeat(q);
  auto r = hub_->Poll(q, b, {}, false, nullptr, steady_);
  ASSERT_EQ(r.events.size(), 2u);
  EXPECT_EQ(r.events[0].id, 0);
  EXPECT_EQ(r.events[1].id, 1);
  EXPECT_THAT(Drain(q, b, 0), ElementsAre("heartbeat}"));
  EXPECT_TRUE(Drain(q, b, 1).empty());
}

// Issue #17: an answer's events are lent to the caller under the hub's lock
// instead of copied out (no shared_ptr copy per event per answer): the same
// events, ids and order, acknowledged as before; nothing is lent to a poll
// that parks, and the body is still shared, not copied.
TEST_F(EventHubTest, Issue17_PollLendsTheEventsInsteadOfCopyingThem) {
  UserId a = AddUser("a@example.com"), b = AddUser("b@example.com");
  std::string q = Register(b);
  Ping(a);
  hub_->Heartbeat(q);
  int calls = 0;
  std::vector<std::int64_t> ids;
  std::vector<std::string> bodies;
  long owners = 0;
  auto take = [&](std::span<const QueuedEvent> events) {
    ++calls;
    for (const QueuedEvent& e : events) {
      ids.push_back(e.id);
      bodies.push_back(e.body->json());
    }
    if (!events.empty()) owners = events[0].body->use_count();
  };
  auto admit = [] { return true; };
  auto r = hub_->Poll(q, b, -1, true, nullptr, steady_, admit, take);
  EXPECT_EQ(r.status, PollStatus::kEvents);
  EXPECT_TRUE(r.events.empty());
  EXPECT_EQ(calls, 1);
  EXPECT_THAT(ids, ElementsAre(0, 1));
  EXPECT_EQ(bodies[1], "heartbeat}");
  EXPECT_EQ(owners, 1) << "the queue's own reference only";
  // Acknowledged up to 0: event 1 stays, lent again.
  ids.clear();
  hub_->Poll(q, b, 0, false, nullptr, steady_, admit, take);
  EXPECT_THAT(ids, ElementsAre(1));
  // All acknowledged: a blocking poll parks and is lent nothing.
  calls = 0;
  auto w = std::make_shared<FakeWaiter>();
  EXPECT_EQ(hub_->Poll(q, b, 1, true, w, steady_, admit, take).status,
            PollStatus::kParked);
  EXPECT_EQ(calls, 0);
}

TEST_F(EventHubTest, Issue17_AHandleFindsItsQueueWithoutTheIdNeverAGoneOne) {
  UserId a = AddUser("a@example.com"), b = AddUser("b@example.com");
  std::string q = Register(b);
  auto admit = [] { return true; };
  std::vector<std::int64_t> ids;
  auto take = [&](std::span<const QueuedEvent> events) {
    for (const QueuedEvent& e : events) ids.push_back(e.id);
  };
  auto w = std::make_shared<FakeWaiter>();
  std::weak_ptr<EventQueue> handle;
  EXPECT_EQ(hub_->Poll(q, b, -1, true, w, steady_, admit, take, &handle).status,
            PollStatus::kParked);
  EXPECT_FALSE(handle.expired()) << "the poll says where its queue is";
  Ping(a);
  EXPECT_EQ(w->woken, 1);
  // Through the handle the id is not looked up (an empty one would not be
  // found), and the owner is still checked.
  EXPECT_EQ(
      hub_->Poll("", a, -1, true, w, steady_, admit, take, &handle).status,
      PollStatus::kBadQueue);
  EXPECT_EQ(
      hub_->Poll("", b, -1, true, w, steady_, admit, take, &handle).status,
      PollStatus::kEvents);
  EXPECT_THAT(ids, ElementsAre(0));
  EXPECT_EQ(hub_->Poll(q, b, 0, true, w, steady_, admit, take, &handle).status,
            PollStatus::kParked);
  // Gone from the hub, gone from the handle: it kept nothing alive.
  EXPECT_TRUE(hub_->Delete(q, b));
  EXPECT_TRUE(handle.expired());
  EXPECT_EQ(hub_->Poll(q, b, 0, true, w, steady_, admit, take, &handle).status,
            PollStatus::kBadQueue);
  EXPECT_EQ(hub_->Stats().queues, 0u);
}

TEST(ReleaseSpareEventSlotsTest, KeepsTheEventsAndTheirOrder) {
  std::vector<QueuedEvent> events;
  for (int i = 0; i < 1000; ++i) {
    events.push_back({i, MakeEventBody(std::to_string(i), i)});
  }
  events.erase(events.begin(), events.begin() + 995);
  const std::size_t before = events.capacity();
  ReleaseSpareEventSlots(events);
  EXPECT_LT(events.capacity(), before);
  EXPECT_EQ(events.capacity(), kEventSlotsKept);
  ASSERT_EQ(events.size(), 5u);
  for (std::size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].id, static_cast<std::int64_t>(995 + i));
    EXPECT_EQ(events[i].coalesce_user(), static_cast<UserId>(995 + i));
    EXPECT_EQ(events[i].body->json(), std::to_string(995 + i));
    EXPECT_EQ(events[i].body->use_count(), 1) << "moved, not copied";
  }
}

TEST(ReleaseSpareEventSlotsTest, LeavesASmallOrWellUsedVectorAlone) {
  std::vector<QueuedEvent> small;
  for (int i = 0; i < 30; ++i) small.push_back({i, nullptr});
  small.clear();
  const std::size_t small_capacity = small.capacity();
  ReleaseSpareEventSlots(small);
  EXPECT_EQ(small.capacity(), small_capacity) << "a drained queue keeps room";
  std::vector<QueuedEvent> used;
  used.reserve(256);
  for (int i = 0; i < 64; ++i) used.push_back({i, nullptr});
  ReleaseSpareEventSlots(used);
  EXPECT_EQ(used.capacity(), 256u) << "a quarter in use: not worth a move";
  used.pop_back();
  ReleaseSpareEventSlots(used);
  EXPECT_EQ(used.capacity(), 126u) << "twice what it holds";
  EXPECT_EQ(used.size(), 63u);
}

TEST_F(EventHubTest, Issue17_AnAcknowledgedBacklogGivesItsRoomBack) {
  UserId b = AddUser("b@example.com");
  std::vector<UserId> others;
  for (int i = 0; i < 300; ++i) {
    others.push_back(AddUser("u" + std::to_string(i) + "@example.com"));
  }
  std::string q = Register(b);
  auto admit = [] { return true; };
  std::int64_t last = -1;
  std::size_t taken = 0;
  auto take = [&](std::span<const QueuedEvent> events) {
    taken = events.size();
    if (!events.empty()) last = events.back().id;
  };
  std::weak_ptr<EventQueue> handle;
  ASSERT_EQ(hub_->Poll(q, b, -1, false, nullptr, steady_, admit, take, &handle)
                .status,
            PollStatus::kEvents);
  for (UserId u : others) Ping(u);  // 300 users come online: a backlog
  ASSERT_EQ(
      hub_->Poll(q, b, last, false, nullptr, steady_, admit, take, &handle)
          .status,
      PollStatus::kEvents);
  EXPECT_EQ(taken, others.size());
  auto queue = handle.lock();
  ASSERT_NE(queue, nullptr);
  EXPECT_GE(queue->events.capacity(), others.size());
  // The client acknowledges the backlog: the queue's room goes back.
  hub_->Poll(q, b, last, false, nullptr, steady_, admit, take, &handle);
  EXPECT_EQ(taken, 0u);
  EXPECT_TRUE(queue->events.empty());
  EXPECT_LE(queue->events.capacity(), kEventSlotsKept);
  // A steady trickle afterwards reuses the room it kept.
  clock_.Advance(SecondsToMicros(400));  // everyone has gone offline
  const QueuedEvent* storage = nullptr;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 10; ++i) Ping(others[round * 10 + i]);
    hub_->Poll(q, b, last, false, nullptr, steady_, admit, take, &handle);
    EXPECT_EQ(taken, 10u);
    if (round == 0) storage = queue->events.data();
    EXPECT_EQ(queue->events.data(), storage) << "round " << round;
  }
}

TEST_F(EventHubTest, ParkedPollIsWokenByAnEventAndSupersededByANewerPoll) {
  UserId a = AddUser("a@example.com"), b = AddUser("b@example.com");
  std::string q = Register(b);
  auto w1 = std::make_shared<FakeWaiter>();
  auto w2 = std::make_shared<FakeWaiter>();
  EXPECT_EQ(hub_->Poll(q, b, -1, true, w1, steady_).status,
            PollStatus::kParked);
  EXPECT_EQ(hub_->Poll(q, b, -1, true, w2, steady_).status,
            PollStatus::kParked);
  EXPECT_EQ(w1->superseded, 1);
  Ping(a);
  EXPECT_EQ(w1->woken, 0);
  EXPECT_EQ(w2->woken, 1);
  EXPECT_EQ(hub_->Poll(q, b, -1, true, w2, steady_).status,
            PollStatus::kEvents);
}

TEST_F(EventHubTest, OtherUsersQueueIsABadQueue) {
  UserId a = AddUser("a@example.com"), b = AddUser("b@example.com");
  std::string q = Register(b);
  EXPECT_EQ(hub_->Poll(q, a, {}, false, nullptr, steady_).status,
            PollStatus::kBadQueue);
  EXPECT_FALSE(hub_->Delete(q, a));
  EXPECT_EQ(hub_->Poll("nope", b, {}, false, nullptr, steady_).status,
            PollStatus::kBadQueue);
}

TEST_F(EventHubTest, DeleteWakesTheParkedPollAndFreesTheQueue) {
  UserId b = AddUser("b@example.com");
  std::string q = Register(b);
  auto w = std::make_shared<FakeWaiter>();
  hub_->Poll(q, b, {}, true, w, steady_);
  EXPECT_TRUE(hub_->Delete(q, b));
  EXPECT_EQ(w->woken, 1);
  EXPECT_EQ(hub_->Poll(q, b, {}, false, nullptr, steady_).status,
            PollStatus::kBadQueue);
  EXPECT_EQ(hub_->Stats().queues, 0u);
}

TEST_F(EventHubTest, OverflowingQueueIsDropped) {
  HubOptions o;
  o.max_queue_events = 3;
  Make(o);
  UserId b = AddUser("b@example.com");
  std::string q = Register(b);
  for (int i = 0; i < 3; ++i) hub_->Heartbeat(q);
  EXPECT_EQ(Drain(q, b).size(), 3u);
  hub_->Heartbeat(q);
  EXPECT_EQ(hub_->Poll(q, b, {}, false, nullptr, steady_).status,
            PollStatus::kBadQueue);
  EXPECT_EQ(hub_->Stats().queues_overflowed, 1u);
}

TEST_F(EventHubTest, Issue17_PartialAcknowledgementsKeepOrderAndBytes) {
  // Events are acknowledged a prefix at a time; what stays is returned in
  // order, once, and the queue is charged only for what it still holds.
  HubOptions o;
  o.max_queue_events = 6;
  Make(o);
  UserId b = AddUser("b@example.com");
  std::string q = Register(b);
  const std::size_t empty_bytes = hub_->Stats().queue_bytes;
  for (int i = 0; i < 5; ++i) hub_->Heartbeat(q);
  auto ids = [&](std::optional<std::int64_t> last) {
    std::vector<std::int64_t> out;
    for (auto& e : hub_->Poll(q, b, last, false, nullptr, steady_).events) {
      out.push_back(e.id);
    }
    return out;
  };
  EXPECT_THAT(ids(1), ElementsAre(2, 3, 4));
  // Room was made: 3 held, 3 more fit under the cap of 6.
  for (int i = 0; i < 3; ++i) hub_->Heartbeat(q);
  EXPECT_THAT(ids(1), ElementsAre(2, 3, 4, 5, 6, 7));
  EXPECT_THAT(ids(6), ElementsAre(7));
  EXPECT_TRUE(ids(7).empty());
  EXPECT_EQ(hub_->Stats().queue_bytes, empty_bytes);
  // The cap still counts what is held: 7 unacknowledged events overflow.
  for (int i = 0; i < 6; ++i) hub_->Heartbeat(q);
  EXPECT_THAT(ids(7), ElementsAre(8, 9, 10, 11, 12, 13));
  hub_->Heartbeat(q);
  EXPECT_EQ(hub_->Poll(q, b, 7, false, nullptr, steady_).status,
            PollStatus::kBadQueue);
  EXPECT_EQ(hub_->Stats().queues_overflowed, 1u);
}

TEST_F(EventHubTest, Issue17_QueuesStayFoundAsOthersComeAndGo) {
  // The queue map's keys are views of the queues' own ids: removing and
  // adding queues must leave every other queue found, and none twice.
  UserId a = AddUser("a@example.com");
  std::vector<std::pair<UserId, std::string>> queues;
  for (int i = 0; i < 60; ++i) {
    UserId u = AddUser("w" + std::to_string(i) + "@example.com");
    queues.emplace_back(u, Register(u));
  }
  for (std::size_t i = 0; i < queues.size(); i += 2) {
    EXPECT_TRUE(hub_->Delete(queues[i].second, queues[i].first));
  }
  for (std::size_t i = 0; i < queues.size(); i += 2) {
    queues[i].second = Register(queues[i].first);
  }
  EXPECT_EQ(hub_->Stats().queues, queues.size());
  Ping(a);
  for (auto& [user, q] : queues) {
    auto r = hub_->Poll(q, user, {}, false, nullptr, steady_);
    ASSERT_EQ(r.status, PollStatus::kEvents) << q;
    EXPECT_EQ(r.events.size(), 1u) << q;
  }
}

TEST_F(EventHubTest, IdleQueuesExpireParkedOnesDoNot) {
  HubOptions o;
  o.queue_timeout_us = 600'000'000;
  Make(o);
  UserId b = AddUser("b@example.com");
  std::string idle = Register(b), parked = Register(b);
  auto w = std::make_shared<FakeWaiter>();
  hub_->Poll(parked, b, {}, true, w, steady_);
  EXPECT_EQ(hub_->Expire(steady_ + 600'000'000), 0u);  // not yet: strictly more
  EXPECT_EQ(hub_->Expire(steady_ + 600'000'001), 1u);
  EXPECT_EQ(hub_->Poll(idle, b, {}, false, nullptr, steady_).status,
            PollStatus::kBadQueue);
  EXPECT_EQ(hub_->Stats().queues, 1u);
}

TEST_F(EventHubTest, EventTypesFilterAndSubsetSubscriptions) {
  UserId a = AddUser("a@example.com"), c = AddUser("c@example.com"),
         b = AddUser("b@example.com");
  std::string only_heartbeat = Register(b, PresenceShape::kLegacy,
                                        std::vector<std::string>{"heartbeat"});
  QueueSpec spec;
  spec.realm_id = realm_;
  spec.user_id = b;
  spec.presence_user_ids = std::vector<UserId>{c};
  std::string subset = hub_->Register(spec, steady_);
  Ping(a);
  Ping(c);
  EXPECT_TRUE(Drain(only_heartbeat, b).empty());
  EXPECT_THAT(Drain(subset, b), ElementsAre("presence:2:0:}"));
  ASSERT_TRUE(hub_->SetPresenceSubset(subset, b, std::nullopt));
  clock_.Advance(SecondsToMicros(300));
  Ping(a);
  EXPECT_EQ(Drain(subset, b, 0).back(), "presence:1:0:}");
}

TEST_F(EventHubTest, LimitedGuestsOnlyHearAboutVisibleUsers) {
  UserId a = AddUser("a@example.com"), c = AddUser("c@example.com");
  UserId g = AddUser("g@example.com", Role::kGuest, false);
  ASSERT_TRUE(service_->SetAccess(realm_, g, {c}));
  std::string q = Register(g);
  Ping(a);
  Ping(c);
  Ping(g);
  EXPECT_THAT(Drain(q, g), ElementsAre("presence:2:0:}", "presence:3:0:}"));
}

// Issue #18: a user_status event reaches every queue of the realm that asked
// for the type and may see the user (a limited guest only its list and
// itself), one shared body.
TEST_F(EventHubTest, Issue18_UserStatusReachesWhoMaySeeTheUser) {
  UserId a = AddUser("a@example.com"), b = AddUser("b@example.com");
  UserId g = AddUser("g@example.com", Role::kGuest, false);
  ASSERT_TRUE(service_->SetAccess(realm_, g, {b}));
  std::string qa = Register(a);
  std::string qb = Register(b, PresenceShape::kLegacy,
                            std::vector<std::string>{"user_status"});
  std::string qg = Register(g);
  std::string q_presence_only =
      Register(b, PresenceShape::kLegacy, std::vector<std::string>{"presence"});
  StatusUpdate u;
  u.status_text = "hi";
  ASSERT_TRUE(service_->UpdateUserStatus(realm_, a, u));
  ASSERT_TRUE(service_->UpdateUserStatus(realm_, b, u));
  EXPECT_THAT(Drain(qa, a), ElementsAre("status:1:hi}", "status:2:hi}"));
  EXPECT_THAT(Drain(qb, b), ElementsAre("status:1:hi}", "status:2:hi}"));
  EXPECT_THAT(Drain(qg, g), ElementsAre("status:2:hi}"));
  EXPECT_THAT(Drain(q_presence_only, b), IsEmpty());
}

// Issue #18's extensions: queues with the user_status_extensions capability
// get the extended event; an extension-only change reaches only them.
TEST_F(EventHubTest, Issue18_ExtensionsReachOnlyCapabilityQueues) {
  UserId a = AddUser("a@example.com"), b = AddUser("b@example.com");
  std::string zulip = Register(b);
  QueueSpec spec;
  spec.realm_id = realm_;
  spec.user_id = b;
  spec.status_extensions = true;
  std::string ext = hub_->Register(spec, steady_);
  StatusUpdate text;
  text.status_text = "hi";
  ASSERT_TRUE(service_->UpdateUserStatus(realm_, a, text));
  StatusUpdate dnd;
  dnd.dnd = true;
  ASSERT_TRUE(service_->UpdateUserStatus(realm_, a, dnd));
  EXPECT_THAT(Drain(zulip, b), ElementsAre("status:1:hi}"));
  // The text's write passed no extension field: the Zulip body, shared.
  EXPECT_THAT(Drain(ext, b), ElementsAre("status:1:hi}", "xstatus:1:hi:dnd}"));
}

TEST_F(EventHubTest, UserLimitCutsOffUnforcedEventsOnlyWhenSet) {
  HubOptions o;
  o.presence_event_user_limit = 2;
  Make(o);
  UserId a = AddUser("a@example.com"), b = AddUser("b@example.com");
  std::string q = Register(b);
  Ping(a);  // 2 active users: within the limit
  AddUser("c@example.com");
  clock_.Advance(SecondsToMicros(300));
  Ping(a);  // 3 > 2: no event
  ASSERT_TRUE(service_->SetPresenceEnabled(realm_, a, false));  // forced
  EXPECT_THAT(Drain(q, b),
              ElementsAre("presence:1:0:}", "presence:1:0::forced}"));
}

TEST_F(EventHubTest, InvisibleToggleTellsTheUsersOwnQueuesFirst) {
  UserId a = AddUser("a@example.com");
  Ping(a);
  std::string q = Register(a);
  ASSERT_TRUE(service_->SetPresenceEnabled(realm_, a, false));
  EXPECT_THAT(Drain(q, a), ElementsAre("settings:off}", "global:off}",
                                       "presence:1:0::forced}"));
}

TEST_F(EventHubTest, DeactivationDropsTheUsersQueues) {
  UserId a = AddUser("a@example.com");
  std::string q = Register(a);
  auto w = std::make_shared<FakeWaiter>();
  hub_->Poll(q, a, {}, true, w, steady_);
  ASSERT_TRUE(service_->UpdateUser(realm_, a, {.is_active = false}));
  EXPECT_EQ(w->woken, 1);
  EXPECT_EQ(hub_->Poll(q, a, {}, false, nullptr, steady_).status,
            PollStatus::kBadQueue);
}

TEST_F(EventHubTest, ManyWakeUpsGoToTheSchedulerFewRunInline) {
  std::vector<std::function<void()>> tasks;
  hub_->SetWakeScheduler(
      [&](std::function<void()> task) { tasks.push_back(std::move(task)); });
  UserId a = AddUser("a@example.com");
  auto park = [&](std::size_t n) {
    std::vector<std::shared_ptr<FakeWaiter>> waiters;
    for (std::size_t i = 0; i < n; ++i) {
      UserId u = AddUser("u" + std::to_string(waiters.size()) + "." +
                         std::to_string(n) + "@example.com");
      auto w = std::make_shared<FakeWaiter>();
      EXPECT_EQ(hub_->Poll(Register(u), u, -1, true, w, steady_).status,
                PollStatus::kParked);
      waiters.push_back(std::move(w));
    }
    return waiters;
  };
  auto woken = [](const auto& waiters) {
    int n = 0;
    for (const auto& w : waiters) n += w->woken;
    return n;
  };
  // A few: woken before the change returns, no task.
  auto few = park(EventHub::kInlineWakes);
  Ping(a);
  EXPECT_EQ(woken(few), static_cast<int>(EventHub::kInlineWakes));
  EXPECT_TRUE(tasks.empty());
  // Many: nobody is woken until the scheduler runs the task.
  auto many = park(EventHub::kInlineWakes + 1);
  clock_.Advance(SecondsToMicros(200));
  Ping(a);  // comes online again: an event to every queue
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(woken(many), 0);
  tasks[0]();
  EXPECT_EQ(woken(many), static_cast<int>(many.size()));
}

// Issue 15: a user's queues are capped; registering one more drops the
// user's stalest, preferring one with no parked poll.
TEST_F(EventHubTest, Issue15_QueuesPerUserCapDropsTheStalest) {
  HubOptions o;
  o.max_queues_per_user = 2;
  Make(o);
  UserId b = AddUser("b@example.com"), c = AddUser("c@example.com");
  std::string other = Register(c);
  std::string parked = Register(b);
  steady_ += 1'000'000;
  std::string idle = Register(b);
  auto w = std::make_shared<FakeWaiter>();
  // `parked` was polled longest ago, but a poll waits on it.
  ASSERT_EQ(hub_->Poll(parked, b, -1, true, w, steady_).status,
            PollStatus::kParked);
  steady_ += 1'000'000;
  std::string newest = Register(b);
  EXPECT_EQ(hub_->Poll(idle, b, {}, false, nullptr, steady_).status,
            PollStatus::kBadQueue);
  EXPECT_EQ(w->woken, 0);
  EXPECT_EQ(hub_->Stats().queues, 3u);
  EXPECT_EQ(hub_->Stats().queues_evicted_per_user, 1u);
  // All of b's queues parked: the least recently polled goes, its poll woken.
  auto w2 = std::make_shared<FakeWaiter>();
  ASSERT_EQ(hub_->Poll(newest, b, -1, true, w2, steady_).status,
            PollStatus::kParked);
  Register(b);
  EXPECT_EQ(w->woken, 1);
  EXPECT_EQ(hub_->Poll(parked, b, {}, false, nullptr, steady_).status,
            PollStatus::kBadQueue);
  EXPECT_EQ(hub_->Poll(other, c, {}, false, nullptr, steady_).status,
            PollStatus::kEvents);  // another user's queue is untouched
  EXPECT_EQ(hub_->Stats().queues_evicted_per_user, 2u);
}

// Issue 15: queues are charged what they hold; the count goes back to zero
// when they are emptied and freed.
TEST_F(EventHubTest, Issue15_QueueBytesFollowWhatQueuesHold) {
  UserId a = AddUser("a@example.com"), b = AddUser("b@example.com");
  EXPECT_EQ(hub_->Stats().queue_bytes, 0u);
  std::string q = Register(b);
  const std::size_t empty = hub_->Stats().queue_bytes;
  EXPECT_GT(empty, sizeof(EventQueue));
  Ping(a);
  EXPECT_EQ(hub_->Stats().queue_bytes,
            empty + QueuedEventBytes("presence:1:0:}"));
  EXPECT_EQ(Drain(q, b, 0).size(), 0u);  // acknowledged
  EXPECT_EQ(hub_->Stats().queue_bytes, empty);
  QueueSpec spec;
  spec.realm_id = realm_;
  spec.user_id = b;
  std::string subset = hub_->Register(spec, steady_);
  const std::size_t two = hub_->Stats().queue_bytes;
  std::vector<UserId> ids(1000);
  for (int i = 0; i < 1000; ++i) ids[i] = i;
  ASSERT_TRUE(hub_->SetPresenceSubset(subset, b, std::move(ids)));
  EXPECT_GE(hub_->Stats().queue_bytes, two + 1000 * sizeof(UserId));
  hub_->Heartbeat(q);
  EXPECT_TRUE(hub_->Delete(q, b));
  EXPECT_TRUE(hub_->Delete(subset, b));
  EXPECT_EQ(hub_->Stats().queue_bytes, 0u);
}

// Issue 15: event_types is a bitset: thousands of names cost a queue nothing,
// and only the types the hub sends are kept.
TEST_F(EventHubTest, Issue15_EventTypesAreABitsetNotAList) {
  std::vector<std::string> many(5000, "x");
  for (std::size_t i = 0; i < many.size(); ++i) many[i] += std::to_string(i);
  many.push_back("user_settings");
  EventTypeSet set = EventTypeSet::Of(many);
  EXPECT_TRUE(set.Has(EventType::kUserSettings));
  EXPECT_FALSE(set.Has(EventType::kPresence));
  EXPECT_FALSE(set.Has(EventType::kUpdateGlobalNotifications));
  EXPECT_TRUE(EventTypeSet::Of(std::nullopt).Has(EventType::kPresence));
  EXPECT_FALSE(
      EventTypeSet::Of(std::vector<std::string>{}).Has(EventType::kPresence));
  UserId b = AddUser("b@example.com");
  Register(b, PresenceShape::kLegacy, std::vector<std::string>{});
  const std::size_t one = hub_->Stats().queue_bytes;
  Register(b, PresenceShape::kLegacy, many);
  EXPECT_EQ(hub_->Stats().queue_bytes, 2 * one);
}

// Issue 15: past the server's cap on queue memory the queues holding the
// most are dropped (here the one nobody polls), not the ones kept drained.
TEST_F(EventHubTest, Issue15_MemoryCapDropsTheQueuesHoldingTheMost) {
  UserId watcher = AddUser("w@example.com"), idler = AddUser("i@example.com");
  Register(watcher);
  Register(idler);
  const std::size_t two_empty = hub_->Stats().queue_bytes;
  HubOptions o;
  o.max_queue_bytes = two_empty + 8 * QueuedEventBytes("presence:10:0:}");
  Make(o);
  watcher = AddUser("w@example.com");
  idler = AddUser("i@example.com");
  std::string drained = Register(watcher);
  std::string full = Register(idler);
  std::int64_t last = -1;
  for (int i = 0; i < 12; ++i) {
    Ping(AddUser("u" + std::to_string(i) + "@example.com"));
    auto r = hub_->Poll(drained, watcher, last, false, nullptr, steady_);
    ASSERT_EQ(r.status, PollStatus::kEvents) << i;
    if (!r.events.empty()) last = r.events.back().id;
  }
  EXPECT_EQ(hub_->Poll(full, idler, {}, false, nullptr, steady_).status,
            PollStatus::kBadQueue);
  HubStats s = hub_->Stats();
  EXPECT_EQ(s.queues_evicted_memory, 1u);
  EXPECT_EQ(s.queues, 1u);
  EXPECT_LE(s.queue_bytes, o.max_queue_bytes);
  EXPECT_EQ(s.max_queue_bytes, o.max_queue_bytes);
}

// Issue 15: a poll that neither parks alone nor brings a new event asks
// `admit`; refused, it changes nothing (not even the queue's expiry).
TEST_F(EventHubTest, Issue15_OnlyCostlyPollsAskTheBudget) {
  UserId a = AddUser("a@example.com"), b = AddUser("b@example.com");
  std::string q = Register(b);
  int asked = 0;
  bool allow = true;
  auto admit = [&] {
    ++asked;
    return allow;
  };
  auto w1 = std::make_shared<FakeWaiter>();
  auto w2 = std::make_shared<FakeWaiter>();
  // Parking alone: free.
  EXPECT_EQ(hub_->Poll(q, b, -1, true, w1, steady_, admit).status,
            PollStatus::kParked);
  EXPECT_EQ(asked, 0);
  // Taking a parked poll's place: costs.
  EXPECT_EQ(hub_->Poll(q, b, -1, true, w2, steady_, admit).status,
            PollStatus::kParked);
  EXPECT_EQ(asked, 1);
  // Bringing a new event: free; bringing it again: costs.
  Ping(a);
  EXPECT_EQ(hub_->Poll(q, b, -1, false, nullptr, steady_, admit).events.size(),
            1u);
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(hub_->Poll(q, b, -1, false, nullptr, steady_, admit).events.size(),
            1u);
  EXPECT_EQ(asked, 2);
  // Nothing at all, and an unknown queue: cost.
  hub_->Poll(q, b, 0, false, nullptr, steady_, admit);
  hub_->Poll("nope", b, {}, false, nullptr, steady_, admit);
  EXPECT_EQ(asked, 4);
  // Refused: kRefused, and the queue still expires on its last real poll.
  allow = false;
  const std::int64_t later = steady_ + 500'000'000;
  EXPECT_EQ(hub_->Poll(q, b, 0, false, nullptr, later, admit).status,
            PollStatus::kRefused);
  EXPECT_EQ(hub_->Poll("nope", b, {}, false, nullptr, later, admit).status,
            PollStatus::kRefused);
  EXPECT_EQ(hub_->Stats().polls_refused, 2u);
  w2.reset();  // the parked poll's connection went away
  EXPECT_EQ(hub_->Expire(steady_ + 600'000'001), 1u);
}

// Ids of the events a non-blocking poll returns after `last`.
std::vector<std::int64_t> Ids(EventHub& hub, const std::string& q, UserId user,
                              std::optional<std::int64_t> last,
                              std::int64_t steady) {
  std::vector<std::int64_t> out;
  for (auto& e : hub.Poll(q, user, last, false, nullptr, steady).events) {
    out.push_back(e.id);
  }
  return out;
}

TEST_F(EventHubTest, Issue17_ANewerPresenceEventReplacesAnUnsentOne) {
  UserId a = AddUser("a@example.com"), b = AddUser("b@example.com");
  UserId c = AddUser("c@example.com");
  std::string modern = Register(b, PresenceShape::kModern);
  std::string legacy = Register(c, PresenceShape::kLegacy);
  Ping(a);  // comes online
  hub_->Heartbeat(modern);
  clock_.Advance(SecondsToMicros(260));
  Ping(a);  // comes online again: the same user's newer state
  // The modern queue keeps a's newer event only, at the end with a new id;
  // the heartbeat keeps its place. Legacy events carry one client each:
  // every one is kept.
  EXPECT_THAT(Ids(*hub_, modern, b, {}, steady_), ElementsAre(1, 2));
  EXPECT_THAT(Drain(modern, b), ElementsAre("heartbeat}", "presence:1:2:}"));
  EXPECT_THAT(Drain(legacy, c),
              ElementsAre("presence:1:0:}", "presence:1:0:}"));
  EXPECT_EQ(hub_->Stats().events_coalesced, 1u);
}

TEST_F(EventHubTest, Issue17_AnEventAnAnswerCarriedIsNeverReplaced) {
  UserId a = AddUser("a@example.com"), b = AddUser("b@example.com");
  std::string q = Register(b, PresenceShape::kModern);
  Ping(a);
  // An answer carries event 0; its client has not acknowledged it yet.
  EXPECT_THAT(Ids(*hub_, q, b, -1, steady_), ElementsAre(0));
  clock_.Advance(SecondsToMicros(260));
  Ping(a);
  // A poll repeating last_event_id -1 (the answer was lost) gets event 0
  // back, and the newer one after it.
  EXPECT_THAT(Ids(*hub_, q, b, -1, steady_), ElementsAre(0, 1));
  // That answer carried event 1 too: a third event of a is appended.
  clock_.Advance(SecondsToMicros(260));
  Ping(a);
  EXPECT_THAT(Ids(*hub_, q, b, 0, steady_), ElementsAre(1, 2));
  EXPECT_EQ(hub_->Stats().events_coalesced, 0u);
}

TEST_F(EventHubTest, Issue17_ManyUnsentEventsHoldOnePerUser) {
  // More users than a queue scans for (the indexed path), a client that
  // acknowledges ids it was not given, and ids that stay increasing.
  constexpr int kUsers = 2 * static_cast<int>(EventHub::kCoalesceScan);
  UserId b = AddUser("b@example.com");
  std::string q = Register(b, PresenceShape::kModern);
  std::vector<UserId> users;
  for (int i = 0; i < kUsers; ++i) {
    users.push_back(AddUser("u" + std::to_string(i) + "@example.com"));
  }
  const std::size_t empty_bytes = hub_->Stats().queue_bytes;
  for (int round = 0; round < 3; ++round) {
    for (UserId u : users) Ping(u);
    clock_.Advance(SecondsToMicros(260));
  }
  std::vector<std::int64_t> ids = Ids(*hub_, q, b, {}, steady_);
  ASSERT_EQ(ids.size(), std::size_t{kUsers});
  EXPECT_EQ(ids.front(), 2 * kUsers);
  EXPECT_EQ(ids.back(), 3 * kUsers - 1);
  EXPECT_EQ(hub_->Stats().events_coalesced, 2u * kUsers);
  // Everything acknowledged: the queue is charged for nothing again.
  EXPECT_TRUE(Ids(*hub_, q, b, 3 * kUsers - 1, steady_).empty());
  EXPECT_EQ(hub_->Stats().queue_bytes, empty_bytes);
  // kUsers unsent events again, which a parked poll acknowledges without
  // being given them; then kUsers more: no event is held to replace, so
  // all are kept.
  for (UserId u : users) Ping(u);
  clock_.Advance(SecondsToMicros(260));
  auto w = std::make_shared<FakeWaiter>();
  EXPECT_EQ(hub_->Poll(q, b, 4 * kUsers - 1, true, w, steady_).status,
            PollStatus::kParked);
  for (UserId u : users) Ping(u);
  ids = Ids(*hub_, q, b, 4 * kUsers - 1, steady_);
  ASSERT_EQ(ids.size(), std::size_t{kUsers});
  EXPECT_EQ(ids.front(), 4 * kUsers);
  EXPECT_EQ(hub_->Stats().events_coalesced, 2u * kUsers);
}

TEST_F(EventHubTest, Issue17_CoalescingCanBeTurnedOff) {
  HubOptions o;
  o.coalesce_presence = false;
  Make(o);
  UserId a = AddUser("a@example.com"), b = AddUser("b@example.com");
  std::string q = Register(b, PresenceShape::kModern);
  Ping(a);
  clock_.Advance(SecondsToMicros(260));
  Ping(a);
  EXPECT_THAT(Ids(*hub_, q, b, {}, steady_), ElementsAre(0, 1));
  EXPECT_EQ(hub_->Stats().events_coalesced, 0u);
}

}  // namespace
}  // namespace presence

namespace presence {
namespace {

class PerClientHubTest : public EventHubTest {
 protected:
  std::string RegisterPerClient(UserId user, PresenceShape shape) {
    QueueSpec spec;
    spec.realm_id = realm_;
    spec.user_id = user;
    spec.shape = shape;
    spec.per_client = true;
    return hub_->Register(spec, steady_);
  }
  void Report(UserId id, std::string_view client) {
    ASSERT_TRUE(service_->Report(CallerOf(id), ReportStatus::kActive,
                                 clock_.NowMicros(), client));
  }
};

TEST_F(PerClientHubTest, PerClientQueuesGetClientDataAndDeviceChanges) {
  UserId a = AddUser("a@example.com"), b = AddUser("b@example.com");
  std::string plain = Register(b, PresenceShape::kModern);
  std::string per = RegisterPerClient(b, PresenceShape::kModern);
  Report(a, "website");
  clock_.Advance(SecondsToMicros(10));
  Report(a, "ZulipMobile");  // a new device: the user row does not change
  EXPECT_THAT(Drain(plain, b), ElementsAre("presence:1:2:}"));
  EXPECT_THAT(Drain(per, b),
              ElementsAre("presence:1:2::clients,website}",
                          "presence:1:2::clients,ZulipMobile,website}"));
}

TEST_F(PerClientHubTest, ShapesAreEncodedOncePerVariant) {
  UserId a = AddUser("a@example.com");
  for (int i = 0; i < 4; ++i) {
    UserId u = AddUser("u" + std::to_string(i) + "@example.com");
    Register(u, PresenceShape::kLegacy);
    RegisterPerClient(u, PresenceShape::kLegacy);
  }
  Report(a, "website");
  EXPECT_EQ(encoder_.encoded, 2);  // one plain body, one per-client body
}

}  // namespace
}  // namespace presence
