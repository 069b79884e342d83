// The contract both write paths keep (core/presence_writer.h): the same
// PresenceService behaviour over a LocalWriter on its own store and over a
// ReplicaWriter on a shared store. A test here fails for a writer that
// breaks a Zulip rule or the service's promises, whichever mode it is.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>

#include "core/constants.h"
#include "core/local_writer.h"
#include "core/presence_service.h"
#include "core/replica_writer.h"
#include "testing/memory_shared_store.h"
#include "testing/memory_store.h"
#include "testing/recording_listener.h"

namespace presence {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

constexpr Micros kT0 = SecondsToMicros(1'700'000'000);
constexpr Micros Sec(std::int64_t s) { return SecondsToMicros(s); }

enum class Mode { kLocal, kReplica };

class PresenceWriterTest : public ::testing::TestWithParam<Mode> {
 protected:
  void SetUp() override { service_ = Start(recorder_); }

  // A service on the test's store: a new node of the group (replica), or
  // the same node started again (local).
  std::unique_ptr<PresenceService> Start(RecordingListener& recorder) {
    std::unique_ptr<PresenceWriter> writer;
    if (GetParam() == Mode::kLocal) {
      writer = std::make_unique<LocalWriter>(&memory_);
    } else {
      connections_.push_back(shared_.NewConnection());
      writer = std::make_unique<ReplicaWriter>(
          connections_.back().get(), SharedOptions{std::chrono::seconds(5)});
    }
    auto s = PresenceService::Create(std::move(writer), &clock_);
    EXPECT_TRUE(s) << s.error().message();
    if (!s) return nullptr;
    (*s)->SetListener(&recorder);
    return std::move(*s);
  }

  struct U {
    UserId id = 0;
    std::string key;
    std::string email;
  };
  U AddUser(RealmId realm, std::string email, bool all = true) {
    NewUser u;
    u.email = email;
    u.full_name = "Name";
    u.role = all ? Role::kMember : Role::kGuest;
    u.can_access_all_users = all;
    auto c = service_->CreateUser(realm, u);
    EXPECT_TRUE(c) << c.error().message();
    if (!c) return {};
    return {c->user_id, c->api_key, email};
  }
  Caller Auth(PresenceService& s, RealmId realm, const U& u) {
    Realm* r = s.LookupRealm(realm);
    EXPECT_NE(r, nullptr);
    auto a = s.Authenticate(*r, u.email, u.key);
    EXPECT_TRUE(std::holds_alternative<Caller>(a));
    return std::get<Caller>(a);
  }
  // user id -> (update id, last_active) of what a full fetch returns.
  std::map<UserId, std::pair<UpdateId, Micros>> Rows(PresenceService& s,
                                                     const Caller& c) {
    EXPECT_TRUE(s.Sync(*c.realm));
    std::map<UserId, std::pair<UpdateId, Micros>> rows;
    s.Fetch(c, FetchQuery{}, clock_.NowMicros(), [&](const Member& m) {
      rows[m.id] = {m.last_update_id, m.times.last_active};
    });
    return rows;
  }

  ManualClock clock_{kT0};
  store::MemoryStore memory_;
  store::MemorySharedStore shared_;
  std::vector<std::unique_ptr<store::SharedStore>> connections_;
  RecordingListener recorder_;
  std::unique_ptr<PresenceService> service_;
};

TEST_P(PresenceWriterTest, AReportIsFetchedWithTheRealmsNextUpdateId) {
  RealmId realm = *service_->CreateRealm("acme", "Acme");
  U alice = AddUser(realm, "alice@example.com");
  Caller a = Auth(*service_, realm, alice);
  ASSERT_TRUE(service_->Report(a, ReportStatus::kActive, kT0));
  EXPECT_THAT(Rows(*service_, a), ElementsAre(Pair(alice.id, Pair(1, kT0))));
  EXPECT_THAT(recorder_.Due(), ElementsAre(alice.id));
}

TEST_P(PresenceWriterTest, APingWithin55SecondsWritesNothing) {
  RealmId realm = *service_->CreateRealm("acme", "Acme");
  U alice = AddUser(realm, "alice@example.com");
  Caller a = Auth(*service_, realm, alice);
  ASSERT_TRUE(service_->Report(a, ReportStatus::kActive, kT0));
  clock_.Set(kT0 + Sec(30));
  ASSERT_TRUE(service_->Report(a, ReportStatus::kActive, kT0 + Sec(30)));
  EXPECT_THAT(Rows(*service_, a), ElementsAre(Pair(alice.id, Pair(1, kT0))));
  EXPECT_THAT(recorder_.Due(), ElementsAre(alice.id));
}

TEST_P(PresenceWriterTest, ComingBackAfterTheOfflineThresholdIsAnEvent) {
  RealmId realm = *service_->CreateRealm("acme", "Acme");
  U alice = AddUser(realm, "alice@example.com");
  Caller a = Auth(*service_, realm, alice);
  ASSERT_TRUE(service_->Report(a, ReportStatus::kActive, kT0));
  clock_.Set(kT0 + Sec(200));
  ASSERT_TRUE(service_->Report(a, ReportStatus::kActive, kT0 + Sec(200)));
  EXPECT_THAT(Rows(*service_, a),
              ElementsAre(Pair(alice.id, Pair(2, kT0 + Sec(200)))));
  EXPECT_THAT(recorder_.Due(), ElementsAre(alice.id, alice.id));
}

TEST_P(PresenceWriterTest, GoingInvisibleBackdatesTheRowAndTellsWatchers) {
  RealmId realm = *service_->CreateRealm("acme", "Acme");
  U alice = AddUser(realm, "alice@example.com");
  U bob = AddUser(realm, "bob@example.com");
  Caller a = Auth(*service_, realm, alice);
  ASSERT_TRUE(service_->Report(a, ReportStatus::kActive, kT0));
  clock_.Set(kT0 + Sec(5));
  ASSERT_TRUE(service_->SetPresenceEnabled(realm, alice.id, false));
  EXPECT_THAT(recorder_.Toggles(), ElementsAre(Pair(alice.id, false)));
  Caller b = Auth(*service_, realm, bob);
  EXPECT_THAT(Rows(*service_, b),
              ElementsAre(Pair(alice.id, Pair(2, kT0 + Sec(5) - Sec(265)))));
  // Invisible: a report changes nothing.
  clock_.Set(kT0 + Sec(400));
  ASSERT_TRUE(service_->Report(a, ReportStatus::kActive, kT0 + Sec(400)));
  EXPECT_THAT(Rows(*service_, b),
              ElementsAre(Pair(alice.id, Pair(2, kT0 + Sec(5) - Sec(265)))));
}

TEST_P(PresenceWriterTest, AnEmailIsTakenWhateverItsCase) {
  RealmId realm = *service_->CreateRealm("acme", "Acme");
  AddUser(realm, "alice@example.com");
  NewUser again;
  again.email = "ALICE@example.com";
  again.full_name = "Alice again";
  auto c = service_->CreateUser(realm, again);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error(), Errc::kAlreadyExists);
  auto r = service_->CreateRealm("acme", "Acme again");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), Errc::kAlreadyExists);
}

TEST_P(PresenceWriterTest, UnknownUsersAndRealmsAreNotFound) {
  RealmId realm = *service_->CreateRealm("acme", "Acme");
  UserPatch patch;
  patch.is_active = false;
  auto st = service_->UpdateUser(realm, 999, patch);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error(), Errc::kNotFound);
  auto other = service_->UpdateUser(realm + 100, 1, patch);
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error(), Errc::kNotFound);
}

TEST_P(PresenceWriterTest, ADeactivatedUserIsAnnouncedAndCannotLogIn) {
  RealmId realm = *service_->CreateRealm("acme", "Acme");
  U alice = AddUser(realm, "alice@example.com");
  UserPatch patch;
  patch.is_active = false;
  ASSERT_TRUE(service_->UpdateUser(realm, alice.id, patch));
  EXPECT_THAT(recorder_.Deactivated(), ElementsAre(alice.id));
  auto a = service_->Authenticate(*service_->FindRealmById(realm), alice.email,
                                  alice.key);
  ASSERT_TRUE(std::holds_alternative<AuthFailure>(a));
  EXPECT_EQ(std::get<AuthFailure>(a), AuthFailure::kUserDeactivated);
}

TEST_P(PresenceWriterTest, AGuestWithLimitedAccessSeesOnlyItsList) {
  RealmId realm = *service_->CreateRealm("acme", "Acme");
  U alice = AddUser(realm, "alice@example.com");
  U bob = AddUser(realm, "bob@example.com");
  U guest = AddUser(realm, "guest@example.com", /*all=*/false);
  ASSERT_TRUE(service_->SetAccess(realm, guest.id, {bob.id}));
  ASSERT_TRUE(service_->Report(Auth(*service_, realm, alice),
                               ReportStatus::kActive, kT0));
  ASSERT_TRUE(service_->Report(Auth(*service_, realm, bob),
                               ReportStatus::kActive, kT0));
  auto rows = Rows(*service_, Auth(*service_, realm, guest));
  EXPECT_THAT(rows, ElementsAre(Pair(bob.id, Pair(2, kT0))));
}

TEST_P(PresenceWriterTest, ARealmWithPresenceDisabledShowsNoRows) {
  RealmId realm = *service_->CreateRealm("acme", "Acme");
  U alice = AddUser(realm, "alice@example.com");
  Caller a = Auth(*service_, realm, alice);
  ASSERT_TRUE(service_->Report(a, ReportStatus::kActive, kT0));
  ASSERT_TRUE(service_->SetRealmPresenceDisabled(realm, true));
  EXPECT_TRUE(Rows(*service_, a).empty());
  EXPECT_TRUE(service_->FindRealmById(realm)->presence_disabled());
}

TEST_P(PresenceWriterTest, AnotherServiceOnTheStoreSeesEveryChange) {
  RealmId realm = *service_->CreateRealm("acme", "Acme");
  U alice = AddUser(realm, "alice@example.com");
  ASSERT_TRUE(service_->Report(Auth(*service_, realm, alice),
                               ReportStatus::kActive, kT0));
  // What a local writer keeps behind reaches its store here; a replica has
  // nothing behind.
  auto flushed = service_->Flush();
  ASSERT_TRUE(flushed) << flushed.error().message();
  EXPECT_EQ(service_->failure(), "");
  EXPECT_FALSE(service_->failed());
  EXPECT_EQ(service_->StoreUnavailable(), std::nullopt);
  if (GetParam() == Mode::kLocal) service_.reset();  // one node, restarted
  RecordingListener other;
  auto again = Start(other);
  ASSERT_NE(again, nullptr);
  Caller a = Auth(*again, realm, alice);
  EXPECT_THAT(Rows(*again, a), ElementsAre(Pair(alice.id, Pair(1, kT0))));
}

TEST_P(PresenceWriterTest, ClientRowsKeepTheirOwnRulesAndSurviveAStart) {
  RealmId realm = *service_->CreateRealm("acme", "Acme");
  U alice = AddUser(realm, "alice@example.com");
  Caller a = Auth(*service_, realm, alice);
  ASSERT_TRUE(service_->Report(a, ReportStatus::kActive, kT0, "website"));
  clock_.Set(kT0 + Sec(10));
  // Within 55 s: only the phone's row is written, with the next update id.
  ASSERT_TRUE(
      service_->Report(a, ReportStatus::kIdle, kT0 + Sec(10), "ZulipMobile"));
  const ClientRowList want = {
      ClientPresence{"ZulipMobile", {kT0 + Sec(10), kNoTime}, 2},
      ClientPresence{"website", {kT0, kT0}, 1}};
  EXPECT_EQ(a.realm->ClientsOf(alice.id), want);
  EXPECT_THAT(Rows(*service_, a), ElementsAre(Pair(alice.id, Pair(1, kT0))));
  {
    std::lock_guard lock(recorder_.mu);
    ASSERT_EQ(recorder_.all.size(), 2u);
    EXPECT_FALSE(recorder_.all[1].row_written);
    EXPECT_TRUE(recorder_.all[1].client_event_due);
  }
  auto flushed = service_->Flush();
  ASSERT_TRUE(flushed) << flushed.error().message();
  if (GetParam() == Mode::kLocal) service_.reset();  // one node, restarted
  RecordingListener other;
  auto again = Start(other);
  ASSERT_NE(again, nullptr);
  Caller on_again = Auth(*again, realm, alice);
  EXPECT_EQ(on_again.realm->ClientsOf(alice.id), want);
}

INSTANTIATE_TEST_SUITE_P(Writers, PresenceWriterTest,
                         ::testing::Values(Mode::kLocal, Mode::kReplica),
                         [](const auto& info) {
                           return info.param == Mode::kLocal ? "Local"
                                                             : "Replica";
                         });

}  // namespace
}  // namespace presence
