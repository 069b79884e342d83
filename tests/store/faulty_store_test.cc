#include "store/faulty_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "testing/memory_store.h"

namespace presence::store {
namespace {

RealmRecord RealmNamed(std::string subdomain) {
  return RealmRecord{.subdomain = std::move(subdomain), .name = "Realm"};
}

UserRecord WithId(UserRecord u, UserId id) {
  u.id = id;
  return u;
}

UserRecord UserNamed(RealmId realm, std::string email) {
  return UserRecord{
      .realm_id = realm, .email = std::move(email), .full_name = "User"};
}

class FaultyStoreTest : public ::testing::Test {
 protected:
  // Runs each of the seven write kinds once; returns how many succeeded.
  int RunEveryWrite(Store* store, RealmId realm, UserId user) {
    int ok = 0;
    ok +=
        store->InsertRealm(RealmNamed("r" + std::to_string(n_++))).has_value();
    ok += store->UpdateRealm({.id = realm, .subdomain = "acme", .name = "N"})
              .has_value();
    ok += store->InsertUser(UserNamed(realm, "u" + std::to_string(n_++)))
              .has_value();
    ok += store->UpdateUser(WithId(UserNamed(realm, "a@x"), user)).has_value();
    ok += store->SetAccess({.realm_id = realm, .viewer = user, .visible = {}})
              .has_value();
    ok += store->ReserveUpdateIds(realm, 10).has_value();
    PresenceRecord row{.user_id = user, .realm_id = realm};
    ok += store->WritePresence({&row, 1}, {}, {}).has_value();
    return ok;
  }

  MemoryStore inner_;
  FaultyStore faulty_{&inner_};
  int n_ = 0;
};

TEST_F(FaultyStoreTest, PassesEverythingThroughByDefault) {
  auto realm = faulty_.InsertRealm(RealmNamed("acme"));
  ASSERT_TRUE(realm.has_value());
  auto user = faulty_.InsertUser(UserNamed(*realm, "a@x"));
  ASSERT_TRUE(user.has_value());
  EXPECT_EQ(RunEveryWrite(&faulty_, *realm, *user), 7);
  EXPECT_EQ(faulty_.write_count(), 9);
  EXPECT_EQ(faulty_.failed_write_count(), 0);
  // Errors of the wrapped store come through unchanged.
  auto dup = faulty_.InsertRealm(RealmNamed("acme"));
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error(), Errc::kAlreadyExists);
}

TEST_F(FaultyStoreTest, FailingWritesReturnStoreFailedAndReachNothing) {
  RealmId realm = faulty_.InsertRealm(RealmNamed("acme")).value();
  UserId user = faulty_.InsertUser(UserNamed(realm, "a@x")).value();
  Snapshot before = inner_.Load().value();

  faulty_.SetFailWrites(true);
  EXPECT_EQ(RunEveryWrite(&faulty_, realm, user), 0);
  EXPECT_EQ(faulty_.failed_write_count(), 7);
  auto st = faulty_.ReserveUpdateIds(realm, 99);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error(), Errc::kStoreFailed);
  // The error says the failure was injected.
  EXPECT_EQ(st.error().detail(), "injected failure (FaultyStore)");

  // Reads pass through, and the wrapped store saw none of the writes.
  auto snap = faulty_.Load();
  ASSERT_TRUE(snap.has_value());
  EXPECT_EQ(snap->realms, before.realms);
  EXPECT_EQ(snap->users, before.users);
  EXPECT_TRUE(snap->presence.empty());

  faulty_.SetFailWrites(false);
  EXPECT_EQ(RunEveryWrite(&faulty_, realm, user), 7);
}

TEST_F(FaultyStoreTest, InjectedFailuresSaySoAndExpectedErrorsStayBare) {
  RealmId realm = faulty_.InsertRealm(RealmNamed("acme")).value();
  // An outcome of the wrapped store reaches the caller as it was made.
  auto dup = faulty_.InsertRealm(RealmNamed("acme"));
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error(), Errc::kAlreadyExists);
  EXPECT_EQ(dup.error().detail(), "");

  faulty_.SetFailLoad(true);
  auto snap = faulty_.Load();
  ASSERT_FALSE(snap.has_value());
  EXPECT_EQ(snap.error(), Errc::kStoreFailed);
  EXPECT_EQ(snap.error().message(), "injected failure (FaultyStore)");

  faulty_.SetFailWrites(true);
  auto id = faulty_.InsertUser(UserNamed(realm, "a@x"));
  ASSERT_FALSE(id.has_value());
  EXPECT_EQ(id.error(), Errc::kStoreFailed);
  EXPECT_EQ(id.error().message(), "injected failure (FaultyStore)");
}

TEST_F(FaultyStoreTest, FailWritesAfterLetsTheFirstNThrough) {
  faulty_.FailWritesAfter(2);
  EXPECT_TRUE(faulty_.InsertRealm(RealmNamed("a")));
  EXPECT_TRUE(faulty_.InsertRealm(RealmNamed("b")));
  for (int i = 0; i < 3; ++i) {
    auto id = faulty_.InsertRealm(RealmNamed("c"));
    ASSERT_FALSE(id.has_value());
    EXPECT_EQ(id.error(), Errc::kStoreFailed);
  }
  EXPECT_EQ(inner_.Load().value().realms.size(), 2u);
  faulty_.SetFailWrites(false);
  EXPECT_TRUE(faulty_.InsertRealm(RealmNamed("c")));

  faulty_.FailWritesAfter(0);
  EXPECT_FALSE(faulty_.InsertRealm(RealmNamed("d")));
}

TEST_F(FaultyStoreTest, LoadCanFailToo) {
  faulty_.SetFailLoad(true);
  auto snap = faulty_.Load();
  ASSERT_FALSE(snap.has_value());
  EXPECT_EQ(snap.error(), Errc::kStoreFailed);
  // Writes are unaffected by SetFailLoad.
  EXPECT_TRUE(faulty_.InsertRealm(RealmNamed("a")));
  faulty_.SetFailLoad(false);
  EXPECT_TRUE(faulty_.Load());
}

TEST_F(FaultyStoreTest, FailureCanBeSwitchedWhileOtherThreadsWrite) {
  RealmId realm = faulty_.InsertRealm(RealmNamed("acme")).value();
  std::atomic<bool> stop{false};
  std::atomic<int> failed{0};
  std::thread writer([&] {
    for (int i = 0; !stop; ++i) {
      if (!faulty_.ReserveUpdateIds(realm, i)) ++failed;
    }
  });
  faulty_.FailWritesAfter(50);
  while (failed.load() < 10) std::this_thread::yield();
  stop = true;
  writer.join();
  EXPECT_EQ(faulty_.failed_write_count(), failed.load());
}

}  // namespace
}  // namespace presence::store
