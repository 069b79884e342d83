// The Store contract, run against every implementation: MemoryStore,
// SqliteStore (fresh directory per test), a FaultyStore that is not
// failing (it must be transparent), MemorySharedStore (the test double of
// the shared stores) and RedisStore (a redis-server of this test process,
// flushed before each test).
//
// Shared stores number every directory write in a separate log sequence
// (shared_store.h); the realm's last_update_id moves as in the others.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "store/faulty_store.h"
#include "store/redis_server.h"
#include "store/redis_store.h"
#include "store/sqlite_store.h"
#include "store/temp_dir.h"
#include "testing/memory_shared_store.h"
#include "testing/memory_store.h"

namespace presence::store {
namespace {

struct MemoryImpl {
  static constexpr const char* kName = "Memory";
  explicit MemoryImpl(const std::string& /*dir*/) {}
  Store* get() { return &store; }
  MemoryStore store;
};

struct SqliteImpl {
  static constexpr const char* kName = "Sqlite";
  explicit SqliteImpl(const std::string& dir) {
    auto opened = SqliteStore::Open(dir);
    EXPECT_TRUE(opened.has_value()) << opened.error();
    if (opened) store = std::move(*opened);
  }
  Store* get() { return store.get(); }
  std::unique_ptr<SqliteStore> store;
};

struct FaultyMemoryImpl {
  static constexpr const char* kName = "FaultyMemory";
  explicit FaultyMemoryImpl(const std::string& /*dir*/) {}
  Store* get() { return &faulty; }
  MemoryStore inner;
  FaultyStore faulty{&inner};
};

struct MemorySharedImpl {
  static constexpr const char* kName = "MemoryShared";
  explicit MemorySharedImpl(const std::string& /*dir*/) {}
  Store* get() { return &store; }
  MemorySharedStore store;
};

struct RedisImpl {
  static constexpr const char* kName = "Redis";
  explicit RedisImpl(const std::string& /*dir*/) {
    RedisServer* server = SharedRedisServer();
    if (server == nullptr) return;
    server->FlushAll();
    auto opened = RedisStore::Open(server->url());
    EXPECT_TRUE(opened.has_value()) << opened.error();
    if (opened) store = std::move(*opened);
  }
  Store* get() { return store.get(); }
  std::unique_ptr<RedisStore> store;
};

struct ImplName {
  template <class T>
  static std::string GetName(int) {
    return T::kName;
  }
};

template <class Impl>
class StoreTest : public ::testing::Test {
 protected:
  StoreTest() : impl_(dir_.path()), store_(impl_.get()) {}

  void SetUp() override { ASSERT_NE(store_, nullptr); }

  Snapshot MustLoad() {
    auto snap = store_->Load();
    EXPECT_TRUE(snap.has_value()) << snap.error().message();
    return snap ? *snap : Snapshot{};
  }

  static RealmRecord Realm(std::string subdomain) {
    return RealmRecord{.subdomain = subdomain,
                       .name = "Realm " + subdomain,
                       .date_created = 1'700'000'000'000'000};
  }

  static UserRecord User(RealmId realm, std::string email) {
    return UserRecord{.realm_id = realm,
                      .email = email,
                      .full_name = "User " + email,
                      .date_joined = 1'700'000'000'000'001,
                      .api_key_hash = Sha256("key-" + email)};
  }

  RealmId MustInsertRealm(std::string subdomain) {
    auto id = store_->InsertRealm(Realm(subdomain));
    EXPECT_TRUE(id.has_value()) << id.error().message();
    return id ? *id : 0;
  }

  UserId MustInsertUser(RealmId realm, std::string email) {
    auto id = store_->InsertUser(User(realm, email));
    EXPECT_TRUE(id.has_value()) << id.error().message();
    return id ? *id : 0;
  }

  TempDir dir_;
  Impl impl_;
  Store* store_;
};

using Implementations =
    ::testing::Types<MemoryImpl, SqliteImpl, FaultyMemoryImpl, MemorySharedImpl,
                     RedisImpl>;
TYPED_TEST_SUITE(StoreTest, Implementations, ImplName);

TYPED_TEST(StoreTest, EmptyStoreLoadsEmptySnapshot) {
  Snapshot snap = this->MustLoad();
  EXPECT_TRUE(snap.realms.empty());
  EXPECT_TRUE(snap.users.empty());
  EXPECT_TRUE(snap.presence.empty());
  EXPECT_TRUE(snap.access.empty());
}

TYPED_TEST(StoreTest, RealmRoundTripKeepsEveryField) {
  RealmRecord a{.id = 77,  // ignored
                .subdomain = "acme",
                .name = "Acme Corp \xE2\x9C\x93",
                .presence_disabled = true,
                .deactivated = false,
                .date_created = 1'600'000'000'123'456,
                .last_update_id = 41,
                .reserved_update_id = 1041};
  RealmRecord b{.subdomain = "zeta",
                .name = "",
                .presence_disabled = false,
                .deactivated = true,
                .date_created = -5,
                .last_update_id = 0,
                .reserved_update_id = 0};
  auto id_a = this->store_->InsertRealm(a);
  auto id_b = this->store_->InsertRealm(b);
  ASSERT_TRUE(id_a.has_value());
  ASSERT_TRUE(id_b.has_value());
  a.id = *id_a;
  b.id = *id_b;
  EXPECT_EQ(a.id, 1);
  EXPECT_EQ(b.id, 2);
  EXPECT_THAT(this->MustLoad().realms, ::testing::ElementsAre(a, b));
}

TYPED_TEST(StoreTest, UserRoundTripKeepsEveryField) {
  RealmId realm = this->MustInsertRealm("acme");
  const Role roles[] = {Role::kOwner, Role::kAdministrator, Role::kModerator,
                        Role::kMember, Role::kGuest};
  std::vector<UserRecord> expected;
  for (int i = 0; i < 5; ++i) {
    UserRecord u{
        .realm_id = realm,
        .email = "Person" + std::to_string(i) + "@Example.COM",
        .full_name = "Pers\xC3\xB6n " + std::to_string(i),
        .role = roles[i],
        .is_bot = i % 2 == 0,
        .is_active = i % 3 != 0,
        .presence_enabled = i % 2 == 1,
        .can_access_all_users = i != 4,
        .date_joined = 1'650'000'000'000'000 + i,
    };
    // Every byte value appears in some hash, including 0x00 and 0xff.
    for (std::size_t b = 0; b < u.api_key_hash.size(); ++b) {
      u.api_key_hash[b] = static_cast<std::uint8_t>(b * 8 + i * 51 + (i == 4));
    }
    auto id = this->store_->InsertUser(u);
    ASSERT_TRUE(id.has_value()) << id.error().message();
    u.id = *id;
    expected.push_back(u);
  }
  expected[0].api_key_hash.fill(0x00);
  expected[1].api_key_hash.fill(0xff);
  ASSERT_TRUE(this->store_->UpdateUser(expected[0]));
  ASSERT_TRUE(this->store_->UpdateUser(expected[1]));
  EXPECT_EQ(this->MustLoad().users, expected);
}

TYPED_TEST(StoreTest, UpdateUserReplacesEveryField) {
  RealmId r1 = this->MustInsertRealm("one");
  RealmId r2 = this->MustInsertRealm("two");
  UserId id = this->MustInsertUser(r1, "a@x.org");
  UserRecord u{.id = id,
               .realm_id = r2,
               .email = "B@y.org",
               .full_name = "Renamed",
               .role = Role::kGuest,
               .is_bot = true,
               .is_active = false,
               .presence_enabled = false,
               .can_access_all_users = false,
               .date_joined = 42,
               .api_key_hash = Sha256("rotated")};
  ASSERT_TRUE(this->store_->UpdateUser(u));
  EXPECT_THAT(this->MustLoad().users, ::testing::ElementsAre(u));
}

// Issue #18: the user status is part of the user's record: written with
// it, loaded with it (UTF-8 and empty fields included), and cleared to
// "never set" by a record without one.
TYPED_TEST(StoreTest, Issue18_UserStatusRoundTrips) {
  RealmId r = this->MustInsertRealm("acme");
  UserId id = this->MustInsertUser(r, "a@x.org");
  auto users = this->MustLoad().users;
  ASSERT_EQ(users.size(), 1u);
  EXPECT_FALSE(users[0].status);
  UserRecord u = users[0];
  u.status = UserStatus{.status_text = "en r\u00e9union: 10:00",
                        .emoji_name = "",
                        .emoji_code = "",
                        .reaction_type = "unicode_emoji",
                        .timestamp = 1'700'000'000'000'001,
                        .passed = UserStatus::kStatusText | UserStatus::kAway};
  ASSERT_TRUE(this->store_->UpdateUser(u));
  EXPECT_THAT(this->MustLoad().users, ::testing::ElementsAre(u));
  u.status->emoji_name = "car";
  u.status->emoji_code = "1f697";
  ASSERT_TRUE(this->store_->UpdateUser(u));
  EXPECT_THAT(this->MustLoad().users, ::testing::ElementsAre(u));
  // The extensions (end times, do-not-disturb) round-trip too.
  u.status->scheduled_end_time = 1'700'000'060;
  u.status->dnd = true;
  u.status->dnd_end_time = 1'700'000'030;
  ASSERT_TRUE(this->store_->UpdateUser(u));
  EXPECT_THAT(this->MustLoad().users, ::testing::ElementsAre(u));
  u.status.reset();
  ASSERT_TRUE(this->store_->UpdateUser(u));
  EXPECT_THAT(this->MustLoad().users, ::testing::ElementsAre(u));
  (void)id;
}

TYPED_TEST(StoreTest, UpdateRealmLeavesSequenceStateAlone) {
  RealmRecord r = this->Realm("acme");
  r.last_update_id = 10;
  r.reserved_update_id = 20;
  auto id = this->store_->InsertRealm(r);
  ASSERT_TRUE(id.has_value());
  RealmRecord changed{.id = *id,
                      .subdomain = "acme2",
                      .name = "New name",
                      .presence_disabled = true,
                      .deactivated = true,
                      .date_created = r.date_created,
                      .last_update_id = 999,
                      .reserved_update_id = 1};
  ASSERT_TRUE(this->store_->UpdateRealm(changed));
  RealmRecord expected = changed;
  // UpdateRealm took one sequence number in a shared store.
  expected.last_update_id = 10;
  expected.reserved_update_id = 20;
  EXPECT_THAT(this->MustLoad().realms, ::testing::ElementsAre(expected));
}

TYPED_TEST(StoreTest, PresenceRoundTripIncludingNullTimes) {
  RealmId realm = this->MustInsertRealm("acme");
  std::vector<PresenceRecord> rows;
  const Micros times[][2] = {{kNoTime, kNoTime},
                             {1'700'000'000'000'000, kNoTime},
                             {kNoTime, 5},
                             {0, 0},
                             {std::numeric_limits<Micros>::max(), -1}};
  for (int i = 0; i < 5; ++i) {
    UserId u = this->MustInsertUser(realm, "u" + std::to_string(i) + "@x");
    rows.push_back(PresenceRecord{.user_id = u,
                                  .realm_id = realm,
                                  .last_connected = times[i][0],
                                  .last_active = times[i][1],
                                  .last_update_id = 100 + i});
  }
  // Written in reverse; loaded ordered by user id.
  std::vector<PresenceRecord> reversed(rows.rbegin(), rows.rend());
  ASSERT_TRUE(this->store_->WritePresence(reversed, {}, {}));
  EXPECT_EQ(this->MustLoad().presence, rows);
}

TYPED_TEST(StoreTest, AccessListsReplaceAndEmptyClears) {
  RealmId realm = this->MustInsertRealm("acme");
  std::vector<UserId> u;
  for (int i = 0; i < 5; ++i) {
    u.push_back(this->MustInsertUser(realm, "u" + std::to_string(i) + "@x"));
  }
  ASSERT_TRUE(this->store_->SetAccess(
      {.realm_id = realm, .viewer = u[3], .visible = {u[2], u[0], u[2]}}));
  ASSERT_TRUE(this->store_->SetAccess(
      {.realm_id = realm, .viewer = u[1], .visible = {u[4]}}));
  EXPECT_THAT(
      this->MustLoad().access,
      ::testing::ElementsAre(
          AccessRecord{.realm_id = realm, .viewer = u[1], .visible = {u[4]}},
          AccessRecord{
              .realm_id = realm, .viewer = u[3], .visible = {u[0], u[2]}}));

  // Replace, not merge.
  ASSERT_TRUE(this->store_->SetAccess(
      {.realm_id = realm, .viewer = u[3], .visible = {u[4], u[1]}}));
  EXPECT_THAT(
      this->MustLoad().access,
      ::testing::ElementsAre(
          AccessRecord{.realm_id = realm, .viewer = u[1], .visible = {u[4]}},
          AccessRecord{
              .realm_id = realm, .viewer = u[3], .visible = {u[1], u[4]}}));

  // An empty list clears; clearing twice is fine.
  ASSERT_TRUE(this->store_->SetAccess(
      {.realm_id = realm, .viewer = u[3], .visible = {}}));
  ASSERT_TRUE(this->store_->SetAccess(
      {.realm_id = realm, .viewer = u[3], .visible = {}}));
  EXPECT_THAT(this->MustLoad().access,
              ::testing::ElementsAre(AccessRecord{
                  .realm_id = realm, .viewer = u[1], .visible = {u[4]}}));
}

TYPED_TEST(StoreTest, DuplicateSubdomainIsAlreadyExists) {
  RealmId acme = this->MustInsertRealm("acme");
  RealmId other = this->MustInsertRealm("other");
  auto dup = this->store_->InsertRealm(this->Realm("acme"));
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error(), Errc::kAlreadyExists);
  // Host names ignore case.
  dup = this->store_->InsertRealm(this->Realm("ACMe"));
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error(), Errc::kAlreadyExists);

  RealmRecord rename = this->Realm("Acme");
  rename.id = other;
  auto st = this->store_->UpdateRealm(rename);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error(), Errc::kAlreadyExists);
  // A realm may keep (or re-case) its own subdomain.
  rename.id = acme;
  EXPECT_TRUE(this->store_->UpdateRealm(rename));

  Snapshot snap = this->MustLoad();
  ASSERT_EQ(snap.realms.size(), 2u);
  EXPECT_EQ(snap.realms[0].subdomain, "Acme");
  EXPECT_EQ(snap.realms[1].subdomain, "other");
}

TYPED_TEST(StoreTest, DuplicateEmailInRealmIsAlreadyExistsIgnoringCase) {
  RealmId r1 = this->MustInsertRealm("one");
  RealmId r2 = this->MustInsertRealm("two");
  UserId alice = this->MustInsertUser(r1, "Alice@Example.com");
  auto dup = this->store_->InsertUser(this->User(r1, "alice@example.COM"));
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error(), Errc::kAlreadyExists);
  // The same email in another realm is another user.
  this->MustInsertUser(r2, "alice@example.com");
  // Only ASCII folds: a different non-ASCII byte is a different email.
  this->MustInsertUser(r1, "\xC3\x84lice@example.com");

  UserId bob = this->MustInsertUser(r1, "bob@example.com");
  UserRecord u = this->User(r1, "ALICE@example.com");
  u.id = bob;
  auto st = this->store_->UpdateUser(u);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error(), Errc::kAlreadyExists);
  // Re-casing one's own email is not a clash.
  u.id = alice;
  EXPECT_TRUE(this->store_->UpdateUser(u));

  Snapshot snap = this->MustLoad();
  ASSERT_EQ(snap.users.size(), 4u);
  EXPECT_EQ(snap.users[0].email, "ALICE@example.com");
  EXPECT_EQ(snap.users[3].email, "bob@example.com");
}

TYPED_TEST(StoreTest, UpdatesOfMissingIdsAreNotFound) {
  RealmId realm = this->MustInsertRealm("acme");
  RealmRecord r = this->Realm("nope");
  r.id = realm + 100;
  auto st = this->store_->UpdateRealm(r);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error(), Errc::kNotFound);

  UserRecord u = this->User(realm, "ghost@x");
  u.id = 12345;
  st = this->store_->UpdateUser(u);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error(), Errc::kNotFound);

  st = this->store_->ReserveUpdateIds(realm + 100, 10);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error(), Errc::kNotFound);

  Snapshot snap = this->MustLoad();
  EXPECT_EQ(snap.realms.size(), 1u);
  EXPECT_TRUE(snap.users.empty());
}

TYPED_TEST(StoreTest, MissingReferencesAreNotFoundAndChangeNothing) {
  RealmId realm = this->MustInsertRealm("acme");
  UserId user = this->MustInsertUser(realm, "a@x");

  auto id = this->store_->InsertUser(this->User(realm + 7, "b@x"));
  ASSERT_FALSE(id.has_value());
  EXPECT_EQ(id.error(), Errc::kNotFound);

  UserRecord moved = this->User(realm + 7, "a@x");
  moved.id = user;
  auto st = this->store_->UpdateUser(moved);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error(), Errc::kNotFound);

  for (const AccessRecord& bad : {
           AccessRecord{.realm_id = realm, .viewer = 999, .visible = {}},
           AccessRecord{.realm_id = realm, .viewer = 999, .visible = {user}},
           AccessRecord{.realm_id = realm, .viewer = user, .visible = {999}},
           AccessRecord{.realm_id = 999, .viewer = user, .visible = {user}},
       }) {
    st = this->store_->SetAccess(bad);
    ASSERT_FALSE(st.has_value());
    EXPECT_EQ(st.error(), Errc::kNotFound);
  }

  // A batch with one bad row or sequence is refused whole.
  PresenceRecord good{.user_id = user,
                      .realm_id = realm,
                      .last_connected = 10,
                      .last_active = 10,
                      .last_update_id = 1};
  PresenceRecord unknown_user = good;
  unknown_user.user_id = 999;
  std::vector<PresenceRecord> rows = {good, unknown_user};
  std::vector<SequenceRecord> seqs = {
      {.realm_id = realm, .last_update_id = 1, .reserved_update_id = 50}};
  st = this->store_->WritePresence(rows, {}, seqs);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error(), Errc::kNotFound);

  rows = {good};
  seqs.push_back(
      {.realm_id = 999, .last_update_id = 1, .reserved_update_id = 50});
  st = this->store_->WritePresence(rows, {}, seqs);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error(), Errc::kNotFound);

  Snapshot snap = this->MustLoad();
  ASSERT_EQ(snap.realms.size(), 1u);
  // Only the successful InsertUser took a sequence number (shared stores).
  EXPECT_EQ(snap.realms[0].last_update_id, 0);
  EXPECT_EQ(snap.realms[0].reserved_update_id, 0);
  ASSERT_EQ(snap.users.size(), 1u);
  EXPECT_EQ(snap.users[0].realm_id, realm);
  EXPECT_TRUE(snap.presence.empty());
  EXPECT_TRUE(snap.access.empty());
}

TYPED_TEST(StoreTest, WritePresenceUpsertsLastWriteWins) {
  RealmId realm = this->MustInsertRealm("acme");
  UserId a = this->MustInsertUser(realm, "a@x");
  UserId b = this->MustInsertUser(realm, "b@x");
  auto row = [&](UserId u, Micros connected, Micros active, UpdateId id) {
    return PresenceRecord{.user_id = u,
                          .realm_id = realm,
                          .last_connected = connected,
                          .last_active = active,
                          .last_update_id = id};
  };
  std::vector<PresenceRecord> first = {
      row(a, 100, 100, 1), row(b, 200, kNoTime, 2), row(a, 300, 100, 3)};
  ASSERT_TRUE(this->store_->WritePresence(first, {}, {}));
  EXPECT_THAT(
      this->MustLoad().presence,
      ::testing::ElementsAre(row(a, 300, 100, 3), row(b, 200, kNoTime, 2)));

  // A later batch overwrites, including back to NULL.
  std::vector<PresenceRecord> second = {row(b, kNoTime, 400, 4)};
  ASSERT_TRUE(this->store_->WritePresence(second, {}, {}));
  EXPECT_THAT(
      this->MustLoad().presence,
      ::testing::ElementsAre(row(a, 300, 100, 3), row(b, kNoTime, 400, 4)));

  // An empty batch is a no-op.
  EXPECT_TRUE(this->store_->WritePresence({}, {}, {}));
  EXPECT_EQ(this->MustLoad().presence.size(), 2u);
}

TYPED_TEST(StoreTest, ClientRowsReplacePerUserAndLoadOrdered) {
  RealmId realm = this->MustInsertRealm("acme");
  UserId a = this->MustInsertUser(realm, "a@x");
  UserId b = this->MustInsertUser(realm, "b@x");
  auto row = [&](UserId u, std::string client, Micros connected, Micros active,
                 UpdateId id) {
    return ClientPresenceRecord{.realm_id = realm,
                                .user_id = u,
                                .client = client,
                                .last_connected = connected,
                                .last_active = active,
                                .last_update_id = id};
  };
  std::vector<ClientPresenceRecord> first = {
      row(b, "website", 200, kNoTime, 2), row(a, "website", 100, 100, 1),
      row(a, "ZulipMobile", 150, 150, 3)};
  ASSERT_TRUE(this->store_->WritePresence({}, first, {}));
  EXPECT_THAT(this->MustLoad().client_presence,
              ::testing::ElementsAre(row(a, "ZulipMobile", 150, 150, 3),
                                     row(a, "website", 100, 100, 1),
                                     row(b, "website", 200, kNoTime, 2)));

  // A user named in a batch gets exactly that batch's rows ("website" of a
  // is dropped); users not named keep theirs.
  std::vector<ClientPresenceRecord> second = {
      row(a, "ZulipMobile", 300, 300, 4), row(a, "ZulipTerminal", 310, 0, 5)};
  ASSERT_TRUE(this->store_->WritePresence({}, second, {}));
  EXPECT_THAT(this->MustLoad().client_presence,
              ::testing::ElementsAre(row(a, "ZulipMobile", 300, 300, 4),
                                     row(a, "ZulipTerminal", 310, 0, 5),
                                     row(b, "website", 200, kNoTime, 2)));

  // One row for a user (every ping of a one-client user): a user with other
  // rows loses them, a user with only that client has it updated.
  std::vector<ClientPresenceRecord> third = {
      row(a, "ZulipTerminal", 400, 400, 6), row(b, "website", 410, 410, 7)};
  ASSERT_TRUE(this->store_->WritePresence({}, third, {}));
  EXPECT_THAT(this->MustLoad().client_presence,
              ::testing::ElementsAre(row(a, "ZulipTerminal", 400, 400, 6),
                                     row(b, "website", 410, 410, 7)));
  // And again, when the user has no other row left.
  std::vector<ClientPresenceRecord> fourth = {
      row(a, "ZulipTerminal", 500, 400, 8)};
  ASSERT_TRUE(this->store_->WritePresence({}, fourth, {}));
  EXPECT_THAT(this->MustLoad().client_presence,
              ::testing::ElementsAre(row(a, "ZulipTerminal", 500, 400, 8),
                                     row(b, "website", 410, 410, 7)));
}

TYPED_TEST(StoreTest, ClientRowsOfUnknownUsersFailTheWholeBatch) {
  RealmId realm = this->MustInsertRealm("acme");
  UserId a = this->MustInsertUser(realm, "a@x");
  PresenceRecord presence{.user_id = a,
                          .realm_id = realm,
                          .last_connected = 100,
                          .last_active = 100,
                          .last_update_id = 1};
  std::vector<ClientPresenceRecord> clients = {{.realm_id = realm,
                                                .user_id = a,
                                                .client = "website",
                                                .last_connected = 100,
                                                .last_active = 100,
                                                .last_update_id = 1},
                                               {.realm_id = realm,
                                                .user_id = a + 99,
                                                .client = "website",
                                                .last_connected = 100,
                                                .last_active = 100,
                                                .last_update_id = 1}};
  auto st = this->store_->WritePresence({&presence, 1}, clients, {});
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error(), Errc::kNotFound);
  Snapshot snap = this->MustLoad();
  EXPECT_TRUE(snap.presence.empty());
  EXPECT_TRUE(snap.client_presence.empty());
}

TYPED_TEST(StoreTest, SequencesSetLastAndNeverLowerReservation) {
  RealmId r1 = this->MustInsertRealm("one");
  RealmId r2 = this->MustInsertRealm("two");
  ASSERT_TRUE(this->store_->ReserveUpdateIds(r1, 100));
  ASSERT_TRUE(this->store_->ReserveUpdateIds(r2, 10));

  std::vector<SequenceRecord> seqs = {
      {.realm_id = r1, .last_update_id = 5, .reserved_update_id = 50},
      {.realm_id = r2, .last_update_id = 7, .reserved_update_id = 200}};
  ASSERT_TRUE(this->store_->WritePresence({}, {}, seqs));
  Snapshot snap = this->MustLoad();
  ASSERT_EQ(snap.realms.size(), 2u);
  EXPECT_EQ(snap.realms[0].last_update_id, 5);
  EXPECT_EQ(snap.realms[0].reserved_update_id, 100);  // not lowered to 50
  EXPECT_EQ(snap.realms[1].last_update_id, 7);
  EXPECT_EQ(snap.realms[1].reserved_update_id, 200);

  // ReserveUpdateIds only raises as well.
  ASSERT_TRUE(this->store_->ReserveUpdateIds(r1, 60));
  ASSERT_TRUE(this->store_->ReserveUpdateIds(r2, 300));
  snap = this->MustLoad();
  EXPECT_EQ(snap.realms[0].reserved_update_id, 100);
  EXPECT_EQ(snap.realms[1].reserved_update_id, 300);
  EXPECT_EQ(snap.realms[0].last_update_id, 5);
}

TYPED_TEST(StoreTest, IdsIncreaseFromOneAndFailedInsertsUseNone) {
  EXPECT_EQ(this->MustInsertRealm("a"), 1);
  EXPECT_EQ(this->MustInsertRealm("b"), 2);
  EXPECT_FALSE(this->store_->InsertRealm(this->Realm("a")).has_value());
  EXPECT_EQ(this->MustInsertRealm("c"), 3);

  // Users count separately from realms.
  EXPECT_EQ(this->MustInsertUser(1, "x@x"), 1);
  EXPECT_FALSE(this->store_->InsertUser(this->User(1, "X@x")).has_value());
  EXPECT_FALSE(this->store_->InsertUser(this->User(99, "y@x")).has_value());
  EXPECT_EQ(this->MustInsertUser(2, "x@x"), 2);
  EXPECT_EQ(this->MustInsertUser(3, "x@x"), 3);

  // The id in the record is ignored by inserts.
  UserRecord u = this->User(1, "z@x");
  u.id = 2;
  auto id = this->store_->InsertUser(u);
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(*id, 4);
  Snapshot snap = this->MustLoad();
  ASSERT_EQ(snap.users.size(), 4u);
  EXPECT_EQ(snap.users[1].email, "x@x");
  EXPECT_EQ(snap.users[1].realm_id, 2);
}

TYPED_TEST(StoreTest, ConcurrentInsertsGetDistinctIds) {
  RealmId realm = this->MustInsertRealm("acme");
  constexpr int kThreads = 4;
  constexpr int kPerThread = 25;
  std::vector<std::vector<UserId>> ids(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t, realm, &ids] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string email =
            "t" + std::to_string(t) + "-" + std::to_string(i) + "@x";
        auto id = this->store_->InsertUser(this->User(realm, email));
        if (id) ids[t].push_back(*id);
        PresenceRecord row{
            .user_id = id ? *id : 0, .realm_id = realm, .last_update_id = i};
        if (id) (void)this->store_->WritePresence({&row, 1}, {}, {});
        (void)this->store_->Load();
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<UserId> all;
  for (const auto& v : ids) {
    EXPECT_EQ(v.size(), static_cast<std::size_t>(kPerThread));
    EXPECT_TRUE(std::is_sorted(v.begin(), v.end()));
    all.insert(v.begin(), v.end());
  }
  ASSERT_EQ(all.size(), static_cast<std::size_t>(kThreads * kPerThread));
  EXPECT_EQ(*all.begin(), 1);
  EXPECT_EQ(*all.rbegin(), kThreads * kPerThread);
  Snapshot snap = this->MustLoad();
  EXPECT_EQ(snap.users.size(), all.size());
  EXPECT_EQ(snap.presence.size(), all.size());
}

}  // namespace
}  // namespace presence::store
