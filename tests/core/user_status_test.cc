// Zulip's user status in the core (issue #18): PresenceService's update
// merges only what was passed, announces what was passed, maps the
// deprecated `away` onto presence_enabled, and the status lives in the
// store with the user.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/constants.h"
#include "core/presence_service.h"
#include "testing/memory_store.h"
#include "testing/recording_listener.h"

namespace presence {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr Micros kT0 = SecondsToMicros(1'700'000'000);

class UserStatusTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(); }

  void Start() {
    auto s = PresenceService::Create(&store_, &clock_);
    ASSERT_TRUE(s) << s.error().message();
    service_ = std::move(*s);
    service_->SetListener(&listener_);
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

  ManualClock clock_{kT0};
  store::MemoryStore store_;
  RecordingListener listener_;
  std::unique_ptr<PresenceService> service_;
};

TEST_F(UserStatusTest, NoStatusUntilOneIsSet) {
  RealmId realm = *service_->CreateRealm("acme", "Acme");
  UserId alice = AddUser(realm, "alice@acme.test");
  EXPECT_FALSE(StatusOf(realm, alice));
  EXPECT_THAT(listener_.Statuses(), IsEmpty());
}

TEST_F(UserStatusTest, OnlyPassedFieldsChangeAndEachWriteIsAnnounced) {
  RealmId realm = *service_->CreateRealm("acme", "Acme");
  UserId alice = AddUser(realm, "alice@acme.test");
  StatusUpdate both;
  both.status_text = "on vacation";
  both.emoji_name = "car";
  both.emoji_code = "1f697";
  both.reaction_type = "unicode_emoji";
  ASSERT_TRUE(service_->UpdateUserStatus(realm, alice, both));
  StatusUpdate text;
  text.status_text = "back monday";
  ASSERT_TRUE(service_->UpdateUserStatus(realm, alice, text));
  auto s = StatusOf(realm, alice);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->status_text, "back monday");
  EXPECT_EQ(s->emoji_name, "car");
  EXPECT_EQ(s->emoji_code, "1f697");
  EXPECT_EQ(s->passed, store::UserStatus::kStatusText);
  auto told = listener_.Statuses();
  ASSERT_EQ(told.size(), 2u);
  EXPECT_EQ(told[0].second.passed,
            store::UserStatus::kStatusText | store::UserStatus::kEmoji);
  EXPECT_EQ(told[1].second, *s);
  // The same update again is written and announced again (Zulip does).
  ASSERT_TRUE(service_->UpdateUserStatus(realm, alice, text));
  EXPECT_EQ(listener_.Statuses().size(), 3u);
  EXPECT_GT(StatusOf(realm, alice)->timestamp, s->timestamp);
}

TEST_F(UserStatusTest, AwayTurnsPresenceOffFirstAndOnlyWhenItDiffers) {
  RealmId realm = *service_->CreateRealm("acme", "Acme");
  UserId alice = AddUser(realm, "alice@acme.test");
  StatusUpdate away;
  away.away = true;
  ASSERT_TRUE(service_->UpdateUserStatus(realm, alice, away));
  ASSERT_TRUE(service_->UpdateUserStatus(realm, alice, away));
  EXPECT_THAT(listener_.Toggles(), ElementsAre(std::pair(alice, false)));
  auto told = listener_.Statuses();
  ASSERT_EQ(told.size(), 2u);
  EXPECT_EQ(told[1].second.passed,
            store::UserStatus::kAway | store::UserStatus::kAwayValue);
  EXPECT_FALSE(
      service_->FindRealmById(realm)->MemberById(alice)->presence_enabled);
  StatusUpdate back;
  back.away = false;
  ASSERT_TRUE(service_->UpdateUserStatus(realm, alice, back));
  EXPECT_THAT(listener_.Toggles(),
              ElementsAre(std::pair(alice, false), std::pair(alice, true)));
  EXPECT_EQ(listener_.Statuses().back().second.passed,
            store::UserStatus::kAway);
}

TEST_F(UserStatusTest, StatusIsCommittedWithTheUserAndLoadedAgain) {
  RealmId realm = *service_->CreateRealm("acme", "Acme");
  UserId alice = AddUser(realm, "alice@acme.test");
  StatusUpdate u;
  u.status_text = "focusing";
  ASSERT_TRUE(service_->UpdateUserStatus(realm, alice, u));
  auto before = StatusOf(realm, alice);
  service_.reset();
  Start();
  EXPECT_EQ(StatusOf(realm, alice), before);
}

TEST_F(UserStatusTest, UnknownUserIsNotFound) {
  RealmId realm = *service_->CreateRealm("acme", "Acme");
  StatusUpdate u;
  u.status_text = "x";
  EXPECT_EQ(service_->UpdateUserStatus(realm, 999, u).error(),
            make_error_code(Errc::kNotFound));
}

TEST_F(UserStatusTest, RealmUpsertReportsAStatusChangeOnly) {
  RealmId realm = *service_->CreateRealm("acme", "Acme");
  UserId alice = AddUser(realm, "alice@acme.test");
  Realm& r = *service_->FindRealmById(realm);
  auto rec = r.UserRecordOf(alice);
  ASSERT_TRUE(rec);
  EXPECT_FALSE(r.UpsertMember(*rec).status_changed);
  rec->status = store::UserStatus{.status_text = "hi", .timestamp = 1};
  EXPECT_TRUE(r.UpsertMember(*rec).status_changed);
  EXPECT_FALSE(r.UpsertMember(*rec).status_changed);
  EXPECT_EQ(r.StatusOf(alice)->status_text, "hi");
}

}  // namespace
}  // namespace presence
