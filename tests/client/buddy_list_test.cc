#include "client/buddy_list.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

namespace presence::client {
namespace {

constexpr std::int64_t kNow = 1'700'000'000;

TEST(BuddyListTest, SortedActiveIdleOfflineThenByName) {
  PresenceTable t;
  t.set_offline_threshold_seconds(200);
  t.SetUsers({UserInfo{1, "zoe@x.com", "Zoe"}, UserInfo{2, "bob@x.com", "bob"},
              UserInfo{3, "amy@x.com", "Amy"}, UserInfo{4, "cat@x.com", "Cat"},
              UserInfo{5, "dan@x.com", ""}, UserInfo{6, "eve@x.com", "Eve"}});
  t.SetInfo({{1, {kNow - 5, kNow - 5}},
             {2, {kNow - 5, kNow - 5}},
             {3, {kNow - 1000, kNow - 10}},
             {4, {kNow - 300, kNow - 300}},
             {6, {kNow - 2 * 86400, kNow - 2 * 86400}}},
            kNow, 1);
  auto rows = BuddyList::Build(t, kNow, 0);
  std::vector<std::string> names;
  for (const auto& r : rows) names.push_back(r.name);
  // Case-insensitive names; Dan has no full name and shows his email; he has
  // no data (small-realm fill-in).
  EXPECT_EQ(names, (std::vector<std::string>{"bob", "Zoe", "Amy", "Cat",
                                             "dan@x.com", "Eve"}));
  EXPECT_EQ(rows[0].last_active, "Active now");
  EXPECT_EQ(rows[2].status, PresenceStatus::kIdle);
  EXPECT_EQ(rows[2].last_active, "Idle");
  EXPECT_EQ(rows[3].last_active, "5 minutes ago");
  EXPECT_EQ(rows[4].last_active, "Not active recently");
  EXPECT_EQ(rows[5].last_active, "2 days ago");
  EXPECT_EQ(rows[5].email, "eve@x.com");
}

TEST(BuddyListTest, WithoutDirectoryUsersAreNamedById) {
  PresenceTable t;
  t.SetInfo({{9, {kNow, kNow}}}, kNow, 1);
  auto rows = BuddyList::Build(t, kNow, 0);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].name, "User 9");
  EXPECT_EQ(rows[0].email, "");
}

TEST(BuddyListTest, CurrentUserIsMarked) {
  PresenceTable t;
  t.SetUsers({UserInfo{1, "me@x.com", "Me"}});
  t.set_current_user(1);
  auto rows = BuddyList::Build(t, kNow, 0);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_TRUE(rows[0].is_current_user);
  EXPECT_EQ(rows[0].status, PresenceStatus::kActive);
}

}  // namespace
}  // namespace presence::client

namespace presence::client {
namespace {

// --- User status (issue #18) ------------------------------------------------

TEST(BuddyListTest, RowsCarryTheStatusAsAReaderSeesIt) {
  PresenceTable t;
  t.SetUsers({UserInfo{1, "amy@x.com", "Amy"}, UserInfo{2, "bob@x.com", "Bob"},
              UserInfo{3, "cat@x.com", "Cat"}});
  t.SetInfo({{1, {kNow, kNow}}, {2, {kNow, kNow}}, {3, {kNow, kNow}}}, kNow, 1);
  // kNow is 22:13:20 UTC.
  ASSERT_TRUE(t.SetStatusesFromJson(boost::json::parse(
      R"({"1":{"status_text":"In a meeting","emoji_name":"calendar",)"
      R"("emoji_code":"1f4c5","reaction_type":"unicode_emoji",)"
      R"("scheduled_end_time":1700002800},)"
      R"("2":{"emoji_name":"zulip","emoji_code":"zulip",)"
      R"("reaction_type":"zulip_extra_emoji","dnd":true,)"
      R"("dnd_end_time":1700060400},)"
      R"("3":{"status_text":"Gone","scheduled_end_time":1699999000,)"
      R"("dnd":true,"dnd_end_time":1699999999}})")));
  auto rows = BuddyList::Build(t, kNow, 0);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].name, "Amy");
  EXPECT_EQ(rows[0].status_emoji, "\xf0\x9f\x93\x85");
  EXPECT_EQ(rows[0].status_text, "In a meeting");
  EXPECT_EQ(rows[0].status_until, "until 23:00");
  EXPECT_FALSE(rows[0].dnd);
  EXPECT_EQ(rows[1].status_emoji, ":zulip:");
  EXPECT_EQ(rows[1].status_text, "");
  EXPECT_EQ(rows[1].status_until, "");
  EXPECT_TRUE(rows[1].dnd);
  EXPECT_EQ(rows[1].dnd_until, "until tomorrow 15:00");
  // Both ends passed: nothing shown, even before the server's events.
  EXPECT_EQ(rows[2].status_text, "");
  EXPECT_EQ(rows[2].status_until, "");
  EXPECT_FALSE(rows[2].dnd);
}

}  // namespace
}  // namespace presence::client
