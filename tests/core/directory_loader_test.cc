#include "core/directory_loader.h"

#include <gtest/gtest.h>

#include <span>
#include <string>
#include <variant>
#include <vector>

#include "core/directory.h"
#include "util/ascii.h"
#include "util/crypto.h"

namespace presence {
namespace {

class NoIds : public UpdateIdReserver {
 public:
  Status ReserveUpdateIds(RealmId, UpdateId) override { return {}; }
};

std::string KeyOf(UserId id) {
  std::string key = "k" + std::to_string(id);
  key.resize(32, 'x');
  return key;
}

store::UserRecord UserOf(RealmId realm, UserId id) {
  store::UserRecord u;
  u.id = id;
  u.realm_id = realm;
  u.email = "User" + std::to_string(id) + "@Example.com";
  u.full_name = "User " + std::to_string(id);
  u.api_key_hash = Sha256(KeyOf(id));
  return u;
}

// Issue #17: a start streams users in batches and indexes them in bulk
// once they are all in (the id and email sets filled in hash order, on two
// threads above 65,536 members; the key index in prefix order). Three
// realms cover the three paths: one big enough for the two threads, one for
// the bulk fill on one thread, one below the bulk threshold. Their users
// are interleaved in id order, as a store hands them over, in batches of
// 1,000 that cut across realm runs. Every member must then be found by id,
// by email in any case, and by key, with its presence row attached.
TEST(DirectoryLoaderTest, BulkIndexedMembersAreFoundByIdEmailAndKey) {
  Directory dir;
  NoIds ids;
  std::vector<std::string> phases;
  DirectoryLoader loader(
      &dir, &ids, [&](std::string_view phase) { phases.emplace_back(phase); });
  std::vector<store::RealmRecord> realms = {
      {.id = 1, .subdomain = "big", .name = "Big"},
      {.id = 2, .subdomain = "mid", .name = "Mid"},
      {.id = 3, .subdomain = "tiny", .name = "Tiny"}};
  ASSERT_TRUE(loader.OnRealms(realms));
  std::vector<store::UserRecord> users;
  for (UserId id = 1; id <= 76'003; ++id) {
    // Every 14th user to "mid", three to "tiny", the rest to "big".
    RealmId realm = id % 14 == 0 ? 2 : 1;
    if (id == 5 || id == 40'000 || id == 76'003) realm = 3;
    users.push_back(UserOf(realm, id));
  }
  ASSERT_TRUE(loader.OnUserCount(users.size()));
  for (std::size_t i = 0; i < users.size(); i += 1000) {
    const std::size_t n = std::min<std::size_t>(1000, users.size() - i);
    ASSERT_TRUE(loader.OnUsers(std::span(users).subspan(i, n)));
  }
  // A row for every odd user, with update ids in another order than ids.
  std::vector<store::PresenceRecord> rows;
  for (const auto& u : users) {
    if (u.id % 2 == 0) continue;
    rows.push_back({.user_id = u.id,
                    .realm_id = u.realm_id,
                    .last_connected = 1'000 + u.id,
                    .last_active = 1'000 + u.id,
                    .last_update_id = 200'000 - u.id});
  }
  for (std::size_t i = 0; i < rows.size(); i += 1000) {
    const std::size_t n = std::min<std::size_t>(1000, rows.size() - i);
    ASSERT_TRUE(loader.OnPresence(std::span(rows).subspan(i, n)));
  }
  loader.Finish();
  EXPECT_EQ(phases, (std::vector<std::string>{"users", "index", "presence",
                                              "order", "done"}));

  std::size_t members = 0;
  for (const auto& r : realms) {
    members += dir.FindRealmById(r.id)->member_count();
  }
  EXPECT_EQ(members, users.size());
  EXPECT_EQ(dir.FindRealmById(3)->member_count(), 3u);
  for (const auto& u : users) {
    SCOPED_TRACE(u.id);
    Realm* realm = dir.FindRealmById(u.realm_id);
    ASSERT_NE(realm, nullptr);
    auto m = realm->MemberById(u.id);
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->email(), u.email);
    EXPECT_EQ(m->has_row, u.id % 2 == 1);
    if (u.id % 2 == 1) {
      EXPECT_EQ(m->last_update_id, 200'000 - u.id);
    }
    EXPECT_EQ(realm->FindIdByEmail(AsciiLower(u.email)), u.id);
    auto who = dir.Authenticate(*realm, u.email, KeyOf(u.id));
    ASSERT_TRUE(std::holds_alternative<Caller>(who));
    EXPECT_EQ(std::get<Caller>(who).user_id, u.id);
  }
  // The newest write is the tail: the realm continues after it.
  EXPECT_EQ(dir.FindRealmById(1)->last_update_id(), 200'000 - 1);
  // A user added after the load is indexed as before.
  Realm* big = dir.FindRealmById(1);
  big->AddMember(UserOf(1, 90'000));
  EXPECT_EQ(big->FindIdByEmail("user90000@example.com"), 90'000);
  EXPECT_TRUE(big->MemberById(90'000).has_value());
}

// Members appended by LoadMembers are indexed by whichever loading call
// comes next, so a realm is never left with members it cannot find.
TEST(DirectoryLoaderTest, LoadedMembersAreIndexedBeforeTheyAreNeeded) {
  NoIds ids;
  for (int next : {0, 1, 2}) {
    SCOPED_TRACE(next);
    Realm realm(store::RealmRecord{.id = 1, .subdomain = "r", .name = "R"},
                &ids);
    std::vector<store::UserRecord> users;
    for (UserId id = 1; id <= 5000; ++id) users.push_back(UserOf(1, id));
    realm.LoadMembers(users);
    if (next == 0) {
      realm.FinishLoad();
    } else if (next == 1) {
      store::PresenceRecord row{.user_id = 7,
                                .realm_id = 1,
                                .last_connected = 5,
                                .last_active = 5,
                                .last_update_id = 3};
      realm.LoadPresence(row);
      EXPECT_TRUE(realm.MemberById(7)->has_row);
    } else {
      realm.AddMember(UserOf(1, 6000));
    }
    // Every one (5,000 is past the bulk fill's threshold: a hash known
    // ahead and given to the wrong slot would lose that slot's email).
    for (UserId id = 1; id <= 5000; ++id) {
      ASSERT_EQ(realm.FindIdByEmail(AsciiLower(UserOf(1, id).email)), id);
      ASSERT_TRUE(realm.MemberById(id).has_value());
    }
  }
}

}  // namespace
}  // namespace presence
