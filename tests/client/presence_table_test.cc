#include "client/presence_table.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

namespace presence::client {
namespace {

constexpr std::int64_t kBase = 1'700'000'000;

boost::json::object Json(std::string_view text) {
  return boost::json::parse(text).as_object();
}

PresenceTimes Times(std::optional<std::int64_t> a,
                    std::optional<std::int64_t> i) {
  return {a, i};
}

class PresenceTableTest : public ::testing::Test {
 protected:
  void SetUp() override { table_.set_offline_threshold_seconds(200); }
  PresenceTable table_;
};

TEST_F(PresenceTableTest, EmptyTableHasCursorMinusOneAndUnknownIsOffline) {
  EXPECT_EQ(table_.last_update_id(), -1);
  EXPECT_EQ(table_.GetStatus(42), PresenceStatus::kOffline);
  EXPECT_EQ(table_.Get(42), std::nullopt);
}

TEST_F(PresenceTableTest, DefaultThresholdIsTheOldServersFallback) {
  PresenceTable fresh;
  EXPECT_EQ(fresh.offline_threshold_seconds(), 140);
}

TEST_F(PresenceTableTest, SetInfoStoresCursorAndStatuses) {
  table_.SetInfo({{1, Times(kBase - 10, kBase - 10)},
                  {2, Times(kBase - 500, kBase - 20)},
                  {3, Times(kBase - 5000, kBase - 4000)}},
                 kBase, 41);
  EXPECT_EQ(table_.last_update_id(), 41);
  EXPECT_EQ(table_.GetStatus(1), PresenceStatus::kActive);
  EXPECT_EQ(table_.GetStatus(2), PresenceStatus::kIdle);
  EXPECT_EQ(table_.GetStatus(3), PresenceStatus::kOffline);
  EXPECT_EQ(table_.Get(3)->last_active, kBase - 5000);
}

TEST_F(PresenceTableTest, SetInfoWithoutCursorGoesBackToMinusOne) {
  table_.SetInfo({}, kBase, 41);
  table_.SetInfo({}, kBase, std::nullopt);
  EXPECT_EQ(table_.last_update_id(), -1);
}

TEST_F(PresenceTableTest, SetInfoReplacesTimesEvenWithOlderOnes) {
  table_.SetInfo({{1, Times(kBase, kBase)}}, kBase, 1);
  // Invisible mode back-dates a user: the answer is the truth.
  table_.SetInfo({{1, Times(kBase - 265, kBase - 265)}}, kBase + 1, 2);
  EXPECT_EQ(table_.Raw(1)->times, Times(kBase - 265, kBase - 265));
  EXPECT_EQ(table_.GetStatus(1), PresenceStatus::kOffline);
}

TEST_F(PresenceTableTest, UsersMissingFromIncrementalAnswerAgeIntoOffline) {
  table_.SetInfo({{1, Times(kBase, kBase)}, {2, Times(kBase - 300, kBase)}},
                 kBase, 10);
  ASSERT_EQ(table_.GetStatus(1), PresenceStatus::kActive);
  ASSERT_EQ(table_.GetStatus(2), PresenceStatus::kIdle);
  // Nothing changed on the server: an empty incremental answer, later.
  table_.SetInfo({}, kBase + 150, 10);
  EXPECT_EQ(table_.GetStatus(1), PresenceStatus::kActive);
  table_.SetInfo({}, kBase + 199, 10);
  EXPECT_EQ(table_.GetStatus(1), PresenceStatus::kActive);
  table_.SetInfo({}, kBase + 200, 10);
  EXPECT_EQ(table_.GetStatus(1), PresenceStatus::kOffline);
  EXPECT_EQ(table_.GetStatus(2), PresenceStatus::kOffline);
  // Their times were kept.
  EXPECT_EQ(table_.Raw(1)->times, Times(kBase, kBase));
  EXPECT_EQ(table_.Raw(1)->server_timestamp, kBase + 200);
}

TEST_F(PresenceTableTest, ActiveUserAgesThroughIdleIntoOffline) {
  table_.SetInfo({{1, Times(kBase - 100, kBase)}}, kBase, 5);
  ASSERT_EQ(table_.GetStatus(1), PresenceStatus::kActive);
  table_.SetInfo({}, kBase + 100, 5);  // active 200 s old, idle 100 s
  EXPECT_EQ(table_.GetStatus(1), PresenceStatus::kIdle);
  table_.SetInfo({}, kBase + 200, 5);
  EXPECT_EQ(table_.GetStatus(1), PresenceStatus::kOffline);
}

TEST_F(PresenceTableTest, OfflineUsersMissingFromAnswerAreNotTouched) {
  table_.SetInfo({{1, Times(kBase - 1000, kBase - 1000)}}, kBase, 5);
  table_.SetInfo({}, kBase + 60, 5);
  // Only users that were online are re-judged.
  EXPECT_EQ(table_.Raw(1)->server_timestamp, kBase);
}

TEST_F(PresenceTableTest, UnknownUsersAreStoredAnyway) {
  PresenceTable t;
  t.SetUsers({UserInfo{1, "a@x.com", "A"}});
  t.SetInfo({{99, Times(kBase, kBase)}}, kBase, 1);
  EXPECT_EQ(t.GetStatus(99), PresenceStatus::kActive);
  EXPECT_TRUE(t.HasUsersMissingFromDirectory());
}

TEST_F(PresenceTableTest, SetInfoFromJsonModernEntries) {
  auto body = Json(R"({"10":{"active_timestamp":1700000000,
                              "idle_timestamp":1700000000},
                       "11":{"idle_timestamp":1699999990},
                       "12":{}})");
  ASSERT_TRUE(table_.SetInfoFromJson(body, kBase + 1.5, 7));
  EXPECT_EQ(table_.GetStatus(10), PresenceStatus::kActive);
  // Keys missing (servers before 7.0) count as 0: very old.
  EXPECT_EQ(table_.GetStatus(11), PresenceStatus::kIdle);
  EXPECT_EQ(table_.Raw(11)->times.active_timestamp, std::nullopt);
  EXPECT_EQ(table_.GetStatus(12), PresenceStatus::kOffline);
  EXPECT_EQ(table_.last_update_id(), 7);
}

TEST_F(PresenceTableTest, SetInfoFromJsonTruncatesFractionalTimestamps) {
  ASSERT_TRUE(table_.SetInfoFromJson(
      Json(R"({"1":{"active_timestamp":1700000000.9,"idle_timestamp":5}})"),
      kBase, 1));
  EXPECT_EQ(table_.Raw(1)->times.active_timestamp, kBase);
}

TEST_F(PresenceTableTest, SetInfoFromJsonLegacyEntriesByEmail) {
  table_.SetUsers({UserInfo{5, "Alice@Example.com", "Alice"}});
  auto body = Json(R"({"alice@example.com":{
      "aggregated":{"client":"website","status":"idle","timestamp":1700000000},
      "website":{"client":"website","status":"idle","timestamp":1700000000,
                 "pushable":false}},
    "stranger@example.com":{
      "website":{"status":"active","timestamp":1700000000}}})");
  ASSERT_TRUE(table_.SetInfoFromJson(body, kBase + 10, std::nullopt));
  EXPECT_EQ(table_.GetStatus(5), PresenceStatus::kIdle);
  EXPECT_EQ(table_.Users().size(), 1u);  // the unknown email is skipped
}

TEST_F(PresenceTableTest, SetInfoFromJsonRejectsNonObject) {
  table_.SetInfo({{1, Times(kBase, kBase)}}, kBase, 3);
  EXPECT_FALSE(table_.SetInfoFromJson(boost::json::array{}, kBase, 4));
  EXPECT_EQ(table_.last_update_id(), 3);  // unchanged
}

TEST_F(PresenceTableTest, LegacyEventMaxMergesAndNeverLowers) {
  table_.SetInfo({{1, Times(kBase - 100, kBase - 50)}}, kBase, 3);
  auto ev = Json(R"({"type":"presence","user_id":1,"email":"u1@x.com",
      "server_timestamp":1700000010.25,
      "presence":{"website":{"client":"website","status":"idle",
                             "timestamp":1700000005,"pushable":false}}})");
  ASSERT_TRUE(*table_.ApplyEvent(ev, 0));
  EXPECT_EQ(table_.Raw(1)->times, Times(kBase - 100, kBase + 5));
  EXPECT_EQ(table_.Raw(1)->server_timestamp, kBase + 10.25);
  // An older active record does not lower anything.
  auto old = Json(R"({"type":"presence","user_id":1,
      "server_timestamp":1700000011,
      "presence":{"website":{"status":"active","timestamp":1699990000}}})");
  ASSERT_TRUE(*table_.ApplyEvent(old, 0));
  EXPECT_EQ(table_.Raw(1)->times, Times(kBase - 100, kBase + 5));
  // A newer active one raises active_timestamp.
  auto active = Json(R"({"type":"presence","user_id":1,
      "server_timestamp":1700000020,
      "presence":{"website":{"status":"active","timestamp":1700000020}}})");
  ASSERT_TRUE(*table_.ApplyEvent(active, 0));
  EXPECT_EQ(table_.Raw(1)->times, Times(kBase + 20, kBase + 5));
  EXPECT_EQ(table_.GetStatus(1), PresenceStatus::kActive);
  // The cursor is a POST thing: events leave it alone.
  EXPECT_EQ(table_.last_update_id(), 3);
}

TEST_F(PresenceTableTest, SlimEventForUnseenUserStartsEmptyRecord) {
  auto ev = Json(R"({"type":"presence","user_id":8,
      "server_timestamp":1700000000,
      "presence":{"website":{"status":"idle","timestamp":1700000000}}})");
  ASSERT_TRUE(*table_.ApplyEvent(ev, 0));
  EXPECT_EQ(table_.Raw(8)->times, Times(std::nullopt, kBase));
  EXPECT_EQ(table_.GetStatus(8), PresenceStatus::kIdle);
}

TEST_F(PresenceTableTest, LegacyEventTeachesEmail) {
  auto ev = Json(R"({"type":"presence","user_id":8,"email":"e@x.com",
      "server_timestamp":1700000000,
      "presence":{"website":{"status":"active","timestamp":1700000000}}})");
  ASSERT_TRUE(*table_.ApplyEvent(ev, 0));
  ASSERT_NE(table_.FindUser(8), nullptr);
  EXPECT_EQ(table_.FindUser(8)->email, "e@x.com");
}

TEST_F(PresenceTableTest, ModernEventReplacesAndUsesReferenceTime) {
  table_.SetInfo({{1, Times(kBase, kBase)}}, kBase, 3);
  auto ev = Json(R"({"type":"presence","presences":{
      "1":{"active_timestamp":1699999000,"idle_timestamp":1700000050},
      "2":{"active_timestamp":1700000050,"idle_timestamp":1700000050}}})");
  ASSERT_TRUE(*table_.ApplyEvent(ev, kBase + 60));
  // Replaced, even though lower: the event is the user's current pair.
  EXPECT_EQ(table_.Raw(1)->times, Times(kBase - 1000, kBase + 50));
  EXPECT_EQ(table_.Raw(1)->server_timestamp, kBase + 60);
  EXPECT_EQ(table_.GetStatus(1), PresenceStatus::kIdle);
  EXPECT_EQ(table_.GetStatus(2), PresenceStatus::kActive);
}

TEST_F(PresenceTableTest, ModernEventWithItsOwnClockUsesIt) {
  // presenced's transition events carry server_timestamp.
  auto ev = Json(R"({"type":"presence","transition":"offline",
      "server_timestamp":1700000400,
      "presences":{"3":{"active_timestamp":1700000000,
                        "idle_timestamp":1700000000}}})");
  ASSERT_TRUE(*table_.ApplyEvent(ev, kBase));
  EXPECT_EQ(table_.GetStatus(3), PresenceStatus::kOffline);
}

TEST_F(PresenceTableTest, OtherEventTypesAreNotPresence) {
  auto r = table_.ApplyEvent(Json(R"({"type":"heartbeat","id":3})"), kBase);
  ASSERT_TRUE(r);
  EXPECT_FALSE(*r);
}

TEST_F(PresenceTableTest, MalformedPresenceEventsFail) {
  EXPECT_FALSE(table_.ApplyEvent(Json(R"({"type":"presence"})"), kBase));
  EXPECT_FALSE(table_.ApplyEvent(
      Json(R"({"type":"presence","presences":{"x":{}}})"), kBase));
  EXPECT_FALSE(
      table_.ApplyEvent(Json(R"({"type":"presence","presences":[]})"), kBase));
  EXPECT_FALSE(table_.ApplyEvent(
      Json(R"({"type":"presence","user_id":1,"presence":3})"), kBase));
}

TEST_F(PresenceTableTest, CurrentUserFollowsPresenceEnabledNotData) {
  table_.set_current_user(7);
  // Offline by the data, but it is me and I am visible.
  table_.SetInfo({{7, Times(kBase - 9000, kBase - 9000)}}, kBase, 1);
  EXPECT_EQ(table_.GetStatus(7), PresenceStatus::kActive);
  EXPECT_TRUE(table_.Get(7)->is_current_user);
  table_.set_presence_enabled(false);
  table_.SetInfo({{7, Times(kBase, kBase)}}, kBase, 2);
  EXPECT_EQ(table_.GetStatus(7), PresenceStatus::kOffline);
}

TEST_F(PresenceTableTest, CurrentUserHasARowWithoutData) {
  table_.set_current_user(7);
  auto users = table_.Users();
  ASSERT_EQ(users.size(), 1u);
  EXPECT_EQ(users[0].user_id, 7);
  EXPECT_EQ(users[0].status, PresenceStatus::kActive);
}

TEST_F(PresenceTableTest, SmallRealmFillInListsHumansWithoutDataAsOffline) {
  table_.SetUsers({UserInfo{1, "a@x.com", "A"}, UserInfo{2, "b@x.com", "B"},
                   UserInfo{3, "bot@x.com", "Bot", /*is_bot=*/true},
                   UserInfo{4, "gone@x.com", "Gone", false,
                            /*is_active=*/false}});
  table_.SetInfo({{1, Times(kBase, kBase)}}, kBase, 1);
  auto users = table_.Users();
  ASSERT_EQ(users.size(), 2u);
  EXPECT_EQ(users[0].user_id, 1);
  EXPECT_TRUE(users[0].has_data);
  EXPECT_EQ(users[1].user_id, 2);
  EXPECT_EQ(users[1].status, PresenceStatus::kOffline);
  EXPECT_FALSE(users[1].has_data);
  EXPECT_EQ(users[1].last_active, std::nullopt);
  EXPECT_EQ(table_.Get(3), std::nullopt);  // bots get nothing
}

TEST_F(PresenceTableTest, BigRealmGetsNoFillIn) {
  std::vector<UserInfo> users;
  for (UserId id = 1; id <= 250; ++id) {
    users.push_back(UserInfo{id, "u" + std::to_string(id) + "@x.com", ""});
  }
  table_.SetUsers(users);
  table_.SetInfo({{1, Times(kBase, kBase)}}, kBase, 1);
  EXPECT_EQ(table_.Users().size(), 1u);
  users.pop_back();  // 249 humans: small
  table_.SetUsers(users);
  EXPECT_EQ(table_.Users().size(), 249u);
}

TEST_F(PresenceTableTest, DateJoinedFromDirectoryFeedsOfflineLastActive) {
  table_.SetInfo({{1, Times(std::nullopt, kBase - 9000)}}, kBase, 1);
  EXPECT_EQ(table_.Get(1)->last_active, std::nullopt);
  UserInfo u{1, "a@x.com", "A"};
  u.date_joined = kBase - 86400;
  table_.SetUsers({u});
  EXPECT_EQ(table_.Get(1)->last_active, kBase - 86400);
}

// Per-client extension (issue #8).

TEST_F(PresenceTableTest, PerClientDataNamesTheDevice) {
  auto answer = boost::json::parse(R"({
    "7": {"active_timestamp": 1700000000, "idle_timestamp": 1700000100,
          "clients": {"ZulipMobile": {"active_timestamp": 1700000000,
                                      "idle_timestamp": 1700000000},
                      "website": {"active_timestamp": 1699990000,
                                  "idle_timestamp": 1700000100}}},
    "8": {"active_timestamp": 1699999990, "idle_timestamp": 1700000100,
          "clients": {"website": {"active_timestamp": 1699999000,
                                  "idle_timestamp": 1700000100},
                      "ZulipMobile": {"active_timestamp": 1699999990,
                                      "idle_timestamp": 1699999990}}},
    "9": {"active_timestamp": 1700000000, "idle_timestamp": 1700000000}})");
  ASSERT_TRUE(table_.SetInfoFromJson(answer, kBase + 150, 5));
  // Active: the freshest active client is the phone.
  EXPECT_EQ(table_.Get(7)->status, PresenceStatus::kActive);
  EXPECT_EQ(table_.Get(7)->device, Device::kMobile);
  // Still active (160 s < 200 s): the phone's active report is freshest.
  EXPECT_EQ(table_.Get(8)->status, PresenceStatus::kActive);
  EXPECT_EQ(table_.Get(8)->device, Device::kMobile);
  // No per-client data: no device.
  EXPECT_EQ(table_.Get(9)->device, Device::kUnknown);
  EXPECT_EQ(table_.Clients(7).size(), 2u);
}

TEST_F(PresenceTableTest, IdleUserIsOnTheDeviceThatLastReported) {
  auto answer = boost::json::parse(R"({
    "8": {"active_timestamp": 1699999000, "idle_timestamp": 1700000100,
          "clients": {"website": {"active_timestamp": 1699999000,
                                  "idle_timestamp": 1700000100},
                      "ZulipMobile": {"active_timestamp": 1699998000,
                                      "idle_timestamp": 1700000050}}}})");
  ASSERT_TRUE(table_.SetInfoFromJson(answer, kBase + 150, 5));
  EXPECT_EQ(table_.Get(8)->status, PresenceStatus::kIdle);
  EXPECT_EQ(table_.Get(8)->device, Device::kDesktop);
}

TEST_F(PresenceTableTest, ModernEventWithClientsReplacesThem) {
  ASSERT_TRUE(table_.SetInfoFromJson(
      boost::json::parse(R"({"7": {"active_timestamp": 1700000000,
        "idle_timestamp": 1700000000, "clients": {"website":
        {"active_timestamp": 1700000000, "idle_timestamp": 1700000000}}}})"),
      kBase + 10, 1));
  EXPECT_EQ(table_.Get(7)->device, Device::kDesktop);
  auto ev = Json(R"({"type": "presence", "presences": {"7": {
      "active_timestamp": 1700000000, "idle_timestamp": 1700000000,
      "clients": {"website": {"active_timestamp": 1700000000,
                              "idle_timestamp": 1700000000},
                  "ZulipMobile": {"active_timestamp": 1700000020,
                                  "idle_timestamp": 1700000020}}}}})");
  ASSERT_TRUE(*table_.ApplyEvent(ev, kBase + 30));
  EXPECT_EQ(table_.Get(7)->device, Device::kMobile);
  EXPECT_EQ(table_.Clients(7).size(), 2u);
}

TEST_F(PresenceTableTest, OfflineUsersHaveNoDevice) {
  ASSERT_TRUE(table_.SetInfoFromJson(
      boost::json::parse(R"({"7": {"active_timestamp": 1700000000,
        "idle_timestamp": 1700000000, "clients": {"ZulipMobile":
        {"active_timestamp": 1700000000, "idle_timestamp": 1700000000}}}})"),
      kBase + 1000, 1));
  EXPECT_EQ(table_.Get(7)->status, PresenceStatus::kOffline);
  EXPECT_EQ(table_.Get(7)->device, Device::kUnknown);
}

TEST(DeviceOfClientTest, ZulipClientNames) {
  EXPECT_EQ(DeviceOfClient("ZulipMobile"), Device::kMobile);
  EXPECT_EQ(DeviceOfClient("ZulipFlutter"), Device::kMobile);
  EXPECT_EQ(DeviceOfClient("website"), Device::kDesktop);
  EXPECT_EQ(DeviceOfClient("ZulipTerminal"), Device::kDesktop);
  EXPECT_EQ(DeviceOfClient("curl"), Device::kUnknown);
}

}  // namespace
}  // namespace presence::client

namespace presence::client {
namespace {

// --- User status (issue #18) ------------------------------------------------

TEST_F(PresenceTableTest, StatusSnapshotReplacesEveryStatus) {
  PresenceTable t;
  ASSERT_TRUE(t.SetStatusesFromJson(boost::json::parse(
      R"({"5":{"status_text":"Lunch"},"6":{"away":true},"x":{},"7":{}})")));
  ASSERT_NE(t.GetUserStatus(5), nullptr);
  EXPECT_EQ(t.GetUserStatus(5)->status_text, "Lunch");
  EXPECT_TRUE(t.GetUserStatus(6)->away);
  EXPECT_EQ(t.GetUserStatus(7), nullptr);  // says nothing
  // A new snapshot (a re-register) forgets what it leaves out.
  ASSERT_TRUE(
      t.SetStatusesFromJson(boost::json::parse(R"({"6":{"dnd":true}})")));
  EXPECT_EQ(t.GetUserStatus(5), nullptr);
  EXPECT_FALSE(t.GetUserStatus(6)->away);
  EXPECT_TRUE(t.GetUserStatus(6)->dnd);
  EXPECT_FALSE(t.SetStatusesFromJson(boost::json::parse("[]")));
  EXPECT_NE(t.GetUserStatus(6), nullptr);  // unchanged
}

TEST_F(PresenceTableTest, UserStatusEventsChangeWhatTheyCarry) {
  PresenceTable t;
  ASSERT_TRUE(t.SetStatusesFromJson(boost::json::parse(
      R"({"5":{"status_text":"Lunch","emoji_name":"pizza",)"
      R"("emoji_code":"1f355","reaction_type":"unicode_emoji"}})")));
  EXPECT_TRUE(t.ApplyUserStatusEvent(
      boost::json::parse(R"({"type":"user_status","user_id":5,"away":true})")
          .as_object()));
  EXPECT_EQ(t.GetUserStatus(5)->status_text, "Lunch");
  EXPECT_TRUE(t.GetUserStatus(5)->away);
  // A user without a status gets one.
  EXPECT_TRUE(t.ApplyUserStatusEvent(
      boost::json::parse(
          R"({"type":"user_status","user_id":8,"status_text":"Hi"})")
          .as_object()));
  EXPECT_EQ(t.GetUserStatus(8)->status_text, "Hi");
  // Cleared: nothing is kept.
  EXPECT_TRUE(t.ApplyUserStatusEvent(
      boost::json::parse(
          R"({"type":"user_status","user_id":8,"status_text":"",)"
          R"("emoji_name":"","emoji_code":"","reaction_type":"unicode_emoji"})")
          .as_object()));
  EXPECT_EQ(t.GetUserStatus(8), nullptr);
  EXPECT_FALSE(t.ApplyUserStatusEvent(
      boost::json::parse(R"({"type":"presence","user_id":5})").as_object()));
  EXPECT_FALSE(t.ApplyUserStatusEvent(
      boost::json::parse(R"({"type":"user_status"})").as_object()));
}

TEST_F(PresenceTableTest, DoNotDisturbHonoursItsEndLocally) {
  PresenceTable t;
  ASSERT_TRUE(t.SetStatusesFromJson(boost::json::parse(
      R"({"5":{"dnd":true,"dnd_end_time":1000},"6":{"dnd":true},)"
      R"("7":{"status_text":"Busy"}})")));
  EXPECT_TRUE(t.IsDoNotDisturb(5, 999));
  EXPECT_FALSE(t.IsDoNotDisturb(5, 1000));  // before the server says so
  EXPECT_TRUE(t.IsDoNotDisturb(6, 1e10));
  EXPECT_FALSE(t.IsDoNotDisturb(7, 0));
  EXPECT_FALSE(t.IsDoNotDisturb(99, 0));
  EXPECT_TRUE(t.ApplyUserStatusEvent(
      boost::json::parse(R"({"type":"user_status","user_id":6,"dnd":false,)"
                         R"("dnd_end_time":0})")
          .as_object()));
  EXPECT_FALSE(t.IsDoNotDisturb(6, 0));
}

}  // namespace
}  // namespace presence::client
