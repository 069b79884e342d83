// Statuses that end on their own (issue #18's extensions): the deadline
// structure, the service's expiry (re-checked, written as any status
// update), a restart, and a group of nodes where exactly one clears.
#include "core/status_deadlines.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/constants.h"
#include "core/presence_service.h"
#include "testing/memory_shared_store.h"
#include "testing/memory_store.h"
#include "testing/recording_listener.h"

namespace presence {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr std::int64_t kT0s = 1'700'000'000;
constexpr Micros kT0 = SecondsToMicros(kT0s);

store::UserStatus WithEnd(std::int64_t end) {
  store::UserStatus s;
  s.status_text = "in a meeting";
  s.scheduled_end_time = end;
  return s;
}

store::UserStatus WithDnd(bool dnd, std::int64_t end) {
  store::UserStatus s;
  s.dnd = dnd;
  s.dnd_end_time = end;
  return s;
}

TEST(StatusDeadlinesTest, AnEndComesOnceAtItsTime) {
  StatusDeadlines d;
  d.OnStatus(1, 7, WithEnd(kT0s + 60));
  EXPECT_EQ(d.pending(), 1u);
  EXPECT_THAT(d.TakeDue(kT0s + 59), IsEmpty());
  EXPECT_THAT(
      d.TakeDue(kT0s + 60),
      ElementsAre(DueStatusEnd{1, 7, StatusEndKind::kStatus, kT0s + 60}));
  EXPECT_THAT(d.TakeDue(kT0s + 3600), IsEmpty());
  EXPECT_EQ(d.pending(), 0u);
}

TEST(StatusDeadlinesTest, ANewerWriteMovesOrRemovesTheEnd) {
  StatusDeadlines d;
  d.OnStatus(1, 7, WithEnd(kT0s + 60));
  d.OnStatus(1, 7, WithEnd(kT0s + 120));  // moved later
  d.OnStatus(1, 8, WithEnd(kT0s + 30));
  d.OnStatus(1, 8, WithEnd(0));  // removed
  EXPECT_THAT(d.TakeDue(kT0s + 100), IsEmpty());
  EXPECT_THAT(
      d.TakeDue(kT0s + 120),
      ElementsAre(DueStatusEnd{1, 7, StatusEndKind::kStatus, kT0s + 120}));
  // Moved earlier: the earlier one counts, the old entry is stale.
  d.OnStatus(1, 9, WithEnd(kT0s + 500));
  d.OnStatus(1, 9, WithEnd(kT0s + 200));
  EXPECT_THAT(
      d.TakeDue(kT0s + 1000),
      ElementsAre(DueStatusEnd{1, 9, StatusEndKind::kStatus, kT0s + 200}));
}

TEST(StatusDeadlinesTest, DndEndCountsOnlyWithDnd) {
  StatusDeadlines d;
  d.OnStatus(1, 7, WithDnd(false, kT0s + 10));
  EXPECT_EQ(d.pending(), 0u);
  store::UserStatus both = WithDnd(true, kT0s + 10);
  both.scheduled_end_time = kT0s + 20;
  d.OnStatus(1, 7, both);
  EXPECT_EQ(d.pending(), 2u);
  EXPECT_THAT(
      d.TakeDue(kT0s + 30),
      ElementsAre(DueStatusEnd{1, 7, StatusEndKind::kDnd, kT0s + 10},
                  DueStatusEnd{1, 7, StatusEndKind::kStatus, kT0s + 20}));
}

TEST(StatusDeadlinesTest, RetryComesAgainUnlessAWriteChangedTheEnd) {
  StatusDeadlines d;
  d.OnStatus(1, 7, WithEnd(kT0s + 10));
  auto due = d.TakeDue(kT0s + 10);
  ASSERT_EQ(due.size(), 1u);
  d.Retry(due[0], kT0s + 15);
  EXPECT_THAT(d.TakeDue(kT0s + 14), IsEmpty());
  EXPECT_THAT(d.TakeDue(kT0s + 15), ElementsAre(due[0]));
  d.Retry(due[0], kT0s + 20);
  d.OnStatus(1, 7, WithEnd(kT0s + 100));  // a new status meanwhile
  EXPECT_THAT(d.TakeDue(kT0s + 50), IsEmpty());
}

// Feeds the deadlines as the event hub does, and records.
struct Listener : RecordingListener {
  void OnUserStatusChange(RealmId realm, UserId user,
                          const store::UserStatus& status) override {
    deadlines.OnStatus(realm, user, status);
    RecordingListener::OnUserStatusChange(realm, user, status);
  }
  StatusDeadlines deadlines;
};

class StatusExpiryTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }
  void Start() {
    listener_ = std::make_unique<Listener>();
    auto s = PresenceService::Create(&store_, &clock_);
    ASSERT_TRUE(s) << s.error().message();
    service_ = std::move(*s);
    service_->SetListener(listener_.get());
  }
  UserId AddUser(RealmId realm, std::string email) {
    NewUser u;
    u.email = email;
    u.full_name = "Name";
    auto c = service_->CreateUser(realm, u);
    EXPECT_TRUE(c);
    return c ? c->user_id : 0;
  }
  std::optional<store::UserStatus> StatusOf(RealmId realm, UserId user) {
    return service_->FindRealmById(realm)->StatusOf(user);
  }
  std::size_t Tick() {
    return ExpireDueStatuses(listener_->deadlines, *service_);
  }

  ManualClock clock_{kT0};
  store::MemoryStore store_;
  std::unique_ptr<Listener> listener_;
  std::unique_ptr<PresenceService> service_;
};

TEST_F(StatusExpiryTest, TextAndEmojiClearAtTheEndAndAreAnnounced) {
  RealmId realm = *service_->CreateRealm("acme", "Acme");
  UserId alice = AddUser(realm, "alice@acme.test");
  StatusUpdate u;
  u.away = true;
  u.status_text = "in a meeting";
  u.emoji_name = "car";
  u.emoji_code = "1f697";
  u.reaction_type = "unicode_emoji";
  u.scheduled_end_time = kT0s + 60;
  u.dnd = true;
  ASSERT_TRUE(service_->UpdateUserStatus(realm, alice, u));
  EXPECT_EQ(StatusOf(realm, alice)->passed,
            store::UserStatus::kStatusText | store::UserStatus::kEmoji |
                store::UserStatus::kAway | store::UserStatus::kAwayValue |
                store::UserStatus::kScheduledEnd | store::UserStatus::kDnd);
  clock_.Advance(SecondsToMicros(59));
  EXPECT_EQ(Tick(), 0u);
  clock_.Advance(SecondsToMicros(1));
  EXPECT_EQ(Tick(), 1u);
  auto s = StatusOf(realm, alice);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->status_text, "");
  EXPECT_EQ(s->emoji_name, "");
  EXPECT_EQ(s->emoji_code, "");
  EXPECT_EQ(s->reaction_type, "unicode_emoji");
  EXPECT_EQ(s->scheduled_end_time, 0);
  EXPECT_TRUE(s->dnd);  // its own end (none here)
  EXPECT_FALSE(
      service_->FindRealmById(realm)->MemberById(alice)->presence_enabled);
  EXPECT_EQ(s->passed, store::UserStatus::kStatusText |
                           store::UserStatus::kEmoji |
                           store::UserStatus::kScheduledEnd);
  EXPECT_EQ(listener_->Statuses().back().second, *s);
  EXPECT_EQ(Tick(), 0u);
}

TEST_F(StatusExpiryTest, DndEndsAlone) {
  RealmId realm = *service_->CreateRealm("acme", "Acme");
  UserId alice = AddUser(realm, "alice@acme.test");
  StatusUpdate u;
  u.status_text = "focusing";
  u.dnd = true;
  u.dnd_end_time = kT0s + 30;
  ASSERT_TRUE(service_->UpdateUserStatus(realm, alice, u));
  clock_.Advance(SecondsToMicros(30));
  EXPECT_EQ(Tick(), 1u);
  auto s = StatusOf(realm, alice);
  EXPECT_FALSE(s->dnd);
  EXPECT_EQ(s->dnd_end_time, 0);
  EXPECT_EQ(s->status_text, "focusing");
  EXPECT_EQ(s->passed, store::UserStatus::kDnd);
}

TEST_F(StatusExpiryTest, ANewStatusWithoutAnEndRemovesTheOldEnd) {
  RealmId realm = *service_->CreateRealm("acme", "Acme");
  UserId alice = AddUser(realm, "alice@acme.test");
  StatusUpdate u;
  u.status_text = "in a meeting";
  u.scheduled_end_time = kT0s + 60;
  ASSERT_TRUE(service_->UpdateUserStatus(realm, alice, u));
  StatusUpdate text;
  text.status_text = "on vacation";
  ASSERT_TRUE(service_->UpdateUserStatus(realm, alice, text));
  auto s = StatusOf(realm, alice);
  EXPECT_EQ(s->scheduled_end_time, 0);
  // The end changed: the event names it.
  EXPECT_EQ(s->passed,
            store::UserStatus::kStatusText | store::UserStatus::kScheduledEnd);
  // dnd alone keeps the end of the status.
  StatusUpdate end;
  end.scheduled_end_time = kT0s + 90;
  ASSERT_TRUE(service_->UpdateUserStatus(realm, alice, end));
  StatusUpdate dnd;
  dnd.dnd = true;
  ASSERT_TRUE(service_->UpdateUserStatus(realm, alice, dnd));
  EXPECT_EQ(StatusOf(realm, alice)->scheduled_end_time, kT0s + 90);
  EXPECT_EQ(StatusOf(realm, alice)->passed, store::UserStatus::kDnd);
  clock_.Advance(SecondsToMicros(200));
  EXPECT_EQ(Tick(), 1u);
  EXPECT_EQ(StatusOf(realm, alice)->status_text, "");
}

TEST_F(StatusExpiryTest, AnEndNoLongerTheUsersClearsNothing) {
  RealmId realm = *service_->CreateRealm("acme", "Acme");
  UserId alice = AddUser(realm, "alice@acme.test");
  StatusUpdate u;
  u.status_text = "in a meeting";
  u.scheduled_end_time = kT0s + 60;
  ASSERT_TRUE(service_->UpdateUserStatus(realm, alice, u));
  u.scheduled_end_time = kT0s + 120;
  ASSERT_TRUE(service_->UpdateUserStatus(realm, alice, u));
  const std::size_t told = listener_->Statuses().size();
  clock_.Advance(SecondsToMicros(60));
  auto r = service_->ExpireUserStatus(realm, alice, StatusEndKind::kStatus,
                                      kT0s + 60);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, WriteIf::kStale);
  EXPECT_EQ(listener_->Statuses().size(), told);
  EXPECT_EQ(StatusOf(realm, alice)->status_text, "in a meeting");
}

TEST_F(StatusExpiryTest, EndsSurviveARestart) {
  RealmId realm = *service_->CreateRealm("acme", "Acme");
  UserId alice = AddUser(realm, "alice@acme.test");
  StatusUpdate u;
  u.status_text = "in a meeting";
  u.scheduled_end_time = kT0s + 60;
  u.dnd = true;
  u.dnd_end_time = kT0s + 90;
  ASSERT_TRUE(service_->UpdateUserStatus(realm, alice, u));
  service_.reset();
  Start();  // a fresh listener: only the store knows the ends
  EXPECT_EQ(StatusOf(realm, alice)->scheduled_end_time, kT0s + 60);
  EXPECT_EQ(StatusOf(realm, alice)->dnd_end_time, kT0s + 90);
  clock_.Advance(SecondsToMicros(100));
  EXPECT_EQ(Tick(), 2u);
  EXPECT_EQ(StatusOf(realm, alice)->status_text, "");
  EXPECT_FALSE(StatusOf(realm, alice)->dnd);
}

// Nodes of a group: each has every end (from its replica), and exactly one
// clears it; every node announces the clearing once, from the feed.
TEST(StatusExpiryGroupTest, ExactlyOneNodeClears) {
  ManualClock clock{kT0};
  store::MemorySharedStore store;
  struct Node {
    std::unique_ptr<store::SharedStore> conn;
    Listener listener;
    std::unique_ptr<PresenceService> service;
  };
  std::vector<std::unique_ptr<Node>> nodes;
  for (int i = 0; i < 3; ++i) {
    auto n = std::make_unique<Node>();
    n->conn = store.NewConnection();
    auto s =
        PresenceService::CreateShared(n->conn.get(), &clock, SharedOptions{});
    ASSERT_TRUE(s) << s.error().message();
    n->service = std::move(*s);
    n->service->SetListener(&n->listener);
    nodes.push_back(std::move(n));
  }
  PresenceService& first = *nodes[0]->service;
  RealmId realm = *first.CreateRealm("acme", "Acme");
  NewUser nu;
  nu.email = "alice@acme.test";
  nu.full_name = "Alice";
  UserId alice = first.CreateUser(realm, nu)->user_id;
  StatusUpdate u;
  u.status_text = "in a meeting";
  u.scheduled_end_time = kT0s + 60;
  ASSERT_TRUE(first.UpdateUserStatus(realm, alice, u));
  // Each node loads the realm (a request of it would) and has the end:
  // every node, before any of them clears it. (A node that first loads the
  // realm after the clearing never had the status, and has nothing to
  // announce: loading the nodes one by one between the clearings made the
  // test depend on whether the feed had brought them the realm first.)
  for (auto& n : nodes) {
    ASSERT_NE(n->service->LookupRealm(realm), nullptr);
    ASSERT_TRUE(n->service->Sync(*n->service->FindRealmById(realm)));
    EXPECT_EQ(n->service->FindRealmById(realm)->StatusOf(alice)->status_text,
              "in a meeting");
  }
  clock.Advance(SecondsToMicros(60));
  std::size_t cleared = 0;
  for (auto& n : nodes) {
    cleared += ExpireDueStatuses(n->listener.deadlines, *n->service);
  }
  EXPECT_EQ(cleared, 1u);
  for (auto& n : nodes) {
    ASSERT_TRUE(n->service->Sync(*n->service->FindRealmById(realm)));
    EXPECT_EQ(n->service->FindRealmById(realm)->StatusOf(alice)->status_text,
              "");
    int clears = 0;
    for (const auto& [user, s] : n->listener.Statuses()) {
      if (user == alice && s.status_text.empty()) ++clears;
    }
    EXPECT_EQ(clears, 1);
  }
}

}  // namespace
}  // namespace presence
