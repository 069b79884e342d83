#include "client/buddy_list.h"

#include <gtest/gtest.h>

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
