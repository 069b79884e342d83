// Per-client presence rows (issue #8): recorded beside the user row, which
// stays exactly as Zulip's; bounded per user; seen by per-client fetches.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "core/presence_service.h"
#include "store/faulty_store.h"
#include "testing/memory_store.h"

namespace presence {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr Micros kT0 = SecondsToMicros(1'700'000'000);
constexpr Micros Sec(std::int64_t s) { return SecondsToMicros(s); }

class AllChanges : public PresenceListener {
 public:
  void OnPresenceChange(const PresenceChange& c) override {
    changes.push_back(c);
  }
  std::vector<PresenceChange> changes;
};

class PerClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Start();
    realm_ = *service_->CreateRealm("acme", "Acme");
    alice_ = AddUser("alice@example.com");
    bob_ = AddUser("bob@example.com");
  }

  void Start(std::size_t max_clients = 8) {
    if (service_) service_->SetListener(nullptr);
    auto s = PresenceService::Create(&faulty_, &clock_, max_clients);
    ASSERT_TRUE(s) << s.error().message();
    service_ = std::move(*s);
    service_->SetListener(&listener_);
  }

  UserId AddUser(std::string email) {
    NewUser u;
    u.email = email;
    u.full_name = email;
    return service_->CreateUser(realm_, u)->user_id;
  }

  Caller CallerOf(UserId id) {
    Caller c;
    c.realm = service_->FindRealmById(realm_);
    c.user_id = id;
    return c;
  }

  void Report(UserId u, std::string_view client,
              ReportStatus s = ReportStatus::kActive) {
    ASSERT_TRUE(service_->Report(CallerOf(u), s, clock_.NowMicros(), client));
  }

  // user id -> (user row's update id, client names) and the cursor.
  struct Seen {
    std::map<UserId, UpdateId> ids;
    std::map<UserId, std::vector<std::string>> clients;
    UpdateId last = 0;
  };
  Seen Fetch(UserId viewer, FetchQuery q) {
    Seen out;
    out.last = service_->FetchWithClients(
        CallerOf(viewer), q, clock_.NowMicros(),
        [&](const Member& m, const ClientRowList* rows) {
          out.ids[m.id] = m.last_update_id;
          auto& names = out.clients[m.id];
          if (rows != nullptr) {
            for (const auto& r : *rows) names.push_back(r.client);
          }
        });
    return out;
  }

  ClientRowList ClientsOf(UserId u) {
    return service_->FindRealmById(realm_)->ClientsOf(u);
  }

  ManualClock clock_{kT0};
  store::MemoryStore memory_;
  store::FaultyStore faulty_{&memory_};
  AllChanges listener_;
  std::unique_ptr<PresenceService> service_;
  RealmId realm_ = 0;
  UserId alice_ = 0, bob_ = 0;
};

TEST_F(PerClientTest, UserRowAndItsIdsAreExactlyAsWithoutClients) {
  Report(alice_, "ZulipMobile");
  clock_.Advance(Sec(10));
  Report(alice_, "website");  // user row: within 55 s, no write
  Member m = *service_->FindRealmById(realm_)->MemberById(alice_);
  EXPECT_EQ(m.last_update_id, 1);
  EXPECT_EQ(m.times, (PresenceTimes{kT0, kT0}));
  FetchQuery plain;
  plain.last_update_id = 1;
  Seen s = Fetch(bob_, plain);
  EXPECT_THAT(s.ids, IsEmpty()) << "a plain cursor sees no client-only write";
  EXPECT_EQ(s.last, 1);
}

TEST_F(PerClientTest, ClientOnlyWriteTakesItsOwnIdSeenByPerClientCursor) {
  Report(alice_, "ZulipMobile");
  clock_.Advance(Sec(10));
  Report(alice_, "website");
  FetchQuery q;
  q.last_update_id = 1;
  q.per_client = true;
  Seen s = Fetch(bob_, q);
  EXPECT_EQ(s.last, 2);
  EXPECT_THAT(s.clients[alice_], ElementsAre("ZulipMobile", "website"));
  ClientRowList rows = ClientsOf(alice_);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].last_update_id, 1);  // shared with the user row write
  EXPECT_EQ(rows[1].last_update_id, 2);
  EXPECT_EQ(rows[1].times, (PresenceTimes{kT0 + Sec(10), kT0 + Sec(10)}));
  q.last_update_id = 2;
  EXPECT_THAT(Fetch(bob_, q).ids, IsEmpty());
}

TEST_F(PerClientTest, EachClientRowFollowsThe55SecondRule) {
  Report(alice_, "website");
  clock_.Advance(Sec(30));
  Report(alice_, "website", ReportStatus::kIdle);  // within 55 s: nothing
  EXPECT_EQ(ClientsOf(alice_)[0].times, (PresenceTimes{kT0, kT0}));
  clock_.Advance(Sec(30));
  Report(alice_, "website", ReportStatus::kIdle);
  EXPECT_EQ(ClientsOf(alice_)[0].times, (PresenceTimes{kT0 + Sec(60), kT0}));
}

TEST_F(PerClientTest, NewClientAndComingOnlineAreClientEventsOnly) {
  Report(alice_, "website");
  ASSERT_EQ(listener_.changes.size(), 1u);
  EXPECT_TRUE(listener_.changes[0].event_due);
  clock_.Advance(Sec(10));
  Report(alice_, "ZulipMobile");
  ASSERT_EQ(listener_.changes.size(), 2u);
  EXPECT_FALSE(listener_.changes[1].event_due);
  EXPECT_FALSE(listener_.changes[1].row_written);
  EXPECT_TRUE(listener_.changes[1].client_event_due);
  clock_.Advance(Sec(60));
  Report(alice_, "ZulipMobile");  // a regular ping: written, no event
  ASSERT_EQ(listener_.changes.size(), 3u);
  EXPECT_TRUE(listener_.changes[2].row_written);
  EXPECT_FALSE(listener_.changes[2].event_due);
  EXPECT_FALSE(listener_.changes[2].client_event_due);
}

TEST_F(PerClientTest, BoundDropsTheStalestClient) {
  Start(/*max_clients=*/2);
  Report(alice_, "a");
  clock_.Advance(Sec(10));
  Report(alice_, "b");
  clock_.Advance(Sec(60));
  Report(alice_, "a");  // "b" is now the stalest
  clock_.Advance(Sec(10));
  Report(alice_, "c");
  ClientRowList rows = ClientsOf(alice_);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].client, "a");
  EXPECT_EQ(rows[1].client, "c");
}

TEST_F(PerClientTest, NoClientNameRecordsNoClientRow) {
  Report(alice_, "");
  EXPECT_THAT(ClientsOf(alice_), IsEmpty());
  EXPECT_TRUE(service_->FindRealmById(realm_)->MemberById(alice_)->has_row);
}

TEST_F(PerClientTest, GoingInvisibleBackdatesClientRowsToo) {
  Report(alice_, "ZulipMobile");
  clock_.Advance(Sec(30));
  Report(alice_, "website");
  clock_.Advance(Sec(5));
  ASSERT_TRUE(service_->SetPresenceEnabled(realm_, alice_, false));
  Member m = *service_->FindRealmById(realm_)->MemberById(alice_);
  for (const ClientPresence& c : ClientsOf(alice_)) {
    EXPECT_LE(c.times.last_connected, m.times.last_connected) << c.client;
    EXPECT_LE(c.times.last_active, m.times.last_active) << c.client;
    EXPECT_EQ(c.last_update_id, m.last_update_id) << c.client;
  }
  // Invisible users' reports record nothing, per client either.
  clock_.Advance(Sec(100));
  Report(alice_, "ZulipTerminal");
  EXPECT_EQ(ClientsOf(alice_).size(), 2u);
}

TEST_F(PerClientTest, ClientRowsSurviveARestartAfterFlush) {
  Report(alice_, "ZulipMobile");
  clock_.Advance(Sec(10));
  Report(alice_, "website");
  ClientRowList before = ClientsOf(alice_);
  ASSERT_TRUE(service_->Flush());
  Start();
  EXPECT_EQ(ClientsOf(alice_), before);
  FetchQuery q;
  q.last_update_id = 1;
  q.per_client = true;
  Seen s = Fetch(bob_, q);
  EXPECT_EQ(s.last, 2) << "the client list is rebuilt in update order";
  // New ids continue above every loaded one (the reservation).
  clock_.Advance(Sec(60));
  Report(bob_, "website");
  EXPECT_GT(service_->FindRealmById(realm_)->MemberById(bob_)->last_update_id,
            2);
}

TEST_F(PerClientTest, ALoweredBoundTrimsStoredRowsAtLoad) {
  Report(alice_, "a");
  clock_.Advance(Sec(10));
  Report(alice_, "b");
  clock_.Advance(Sec(10));
  Report(alice_, "c");
  ASSERT_TRUE(service_->Flush());
  Start(/*max_clients=*/1);
  ClientRowList rows = ClientsOf(alice_);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].client, "c");
  ASSERT_TRUE(service_->Flush());  // the trimmed set is written back
  auto snap = memory_.Load();
  ASSERT_TRUE(snap);
  ASSERT_EQ(snap->client_presence.size(), 1u);
  EXPECT_EQ(snap->client_presence[0].client, "c");
}

TEST_F(PerClientTest, FailedFlushKeepsClientRowsDirty) {
  Report(alice_, "website");
  faulty_.SetFailWrites(true);
  EXPECT_FALSE(service_->Flush());
  faulty_.SetFailWrites(false);
  // The failure is sticky for the service; a new one (restart) would write.
  // Here we only check the rows were collected again by a direct flush.
  std::vector<store::PresenceRecord> rows;
  std::vector<store::ClientPresenceRecord> clients;
  store::SequenceRecord seq;
  ASSERT_TRUE(
      service_->FindRealmById(realm_)->CollectDirty(rows, clients, seq));
  ASSERT_EQ(clients.size(), 1u);
  EXPECT_EQ(clients[0].client, "website");
  EXPECT_EQ(clients[0].user_id, alice_);
}

// CollectDirty reads a large batch kCollectChunk rows per hold of the
// realm's lock: every dirty row and client row still comes out exactly
// once, the sequence covers them all, and only what is written afterwards
// is dirty again.
TEST_F(PerClientTest, CollectDirtyReadsEveryRowOnceAcrossChunks) {
  const std::size_t n = 2 * Realm::kCollectChunk + 500;
  std::vector<UserId> users;
  for (std::size_t i = 0; i < n; ++i) {
    users.push_back(AddUser("u" + std::to_string(i) + "@example.com"));
    Report(users.back(), "website");
  }
  Realm* realm = service_->FindRealmById(realm_);
  std::vector<store::PresenceRecord> rows;
  std::vector<store::ClientPresenceRecord> clients;
  store::SequenceRecord seq;
  ASSERT_TRUE(realm->CollectDirty(rows, clients, seq));
  ASSERT_EQ(rows.size(), n);
  ASSERT_EQ(clients.size(), n);
  std::map<UserId, int> row_count, client_count;
  UpdateId highest = 0;
  for (const auto& r : rows) {
    ++row_count[r.user_id];
    highest = std::max(highest, r.last_update_id);
  }
  for (const auto& c : clients) {
    ++client_count[c.user_id];
    EXPECT_EQ(c.client, "website");
    highest = std::max(highest, c.last_update_id);
  }
  for (UserId u : users) {
    EXPECT_EQ(row_count[u], 1) << u;
    EXPECT_EQ(client_count[u], 1) << u;
  }
  EXPECT_EQ(seq.realm_id, realm_);
  EXPECT_GE(seq.last_update_id, highest);
  EXPECT_GE(seq.reserved_update_id, seq.last_update_id);

  // Nothing is left dirty; a new write is.
  rows.clear();
  clients.clear();
  realm->CollectDirty(rows, clients, seq);
  EXPECT_THAT(rows, IsEmpty());
  EXPECT_THAT(clients, IsEmpty());
  clock_.Advance(Sec(61));
  Report(users[n - 1], "website");
  realm->CollectDirty(rows, clients, seq);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].user_id, users[n - 1]);
  ASSERT_EQ(clients.size(), 1u);
  EXPECT_EQ(clients[0].user_id, users[n - 1]);
}

}  // namespace
}  // namespace presence
