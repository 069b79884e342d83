// Several PresenceService "nodes" sharing one MemorySharedStore, as presenced
// processes share Redis: changes made on one node reach the others through
// the feed, in order, with no update id handed out twice; lost feed entries
// and interrupted subscriptions are repaired by reading the realm again.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "core/constants.h"
#include "core/presence_service.h"
#include "core/rate_lease.h"
#include "testing/memory_shared_store.h"
#include "testing/recording_listener.h"

namespace presence {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

constexpr Micros kT0 = SecondsToMicros(1'700'000'000);
constexpr Micros Sec(std::int64_t s) { return SecondsToMicros(s); }

struct Node {
  std::unique_ptr<store::SharedStore> conn;
  RecordingListener listener;
  std::unique_ptr<PresenceService> service;
};

// The highest log sequence number of `realm` the node has applied.
UpdateId AppliedSeq(const Node& node, RealmId realm) {
  return dynamic_cast<const ReplicaWriter&>(node.service->writer())
      .AppliedSeq(realm);
}

class SharedServiceTest : public ::testing::Test {
 protected:
  SharedServiceTest() = default;

  std::unique_ptr<Node> StartNode(
      std::chrono::milliseconds wait = std::chrono::milliseconds(2000)) {
    auto n = std::make_unique<Node>();
    n->conn = store_.NewConnection();
    auto s = PresenceService::CreateShared(n->conn.get(), &clock_,
                                           SharedOptions{wait});
    EXPECT_TRUE(s) << s.error().message();
    if (!s) return nullptr;
    n->service = std::move(*s);
    n->service->SetListener(&n->listener);
    return n;
  }

  std::unique_ptr<Node> StartNodeWith(SharedOptions options) {
    auto n = std::make_unique<Node>();
    n->conn = store_.NewConnection();
    auto s = PresenceService::CreateShared(n->conn.get(), &clock_, options);
    EXPECT_TRUE(s) << s.error().message();
    if (!s) return nullptr;
    n->service = std::move(*s);
    n->service->SetListener(&n->listener);
    return n;
  }

  struct U {
    UserId id = 0;
    std::string key;
    std::string email;
  };
  static U AddUser(PresenceService& s, RealmId realm, std::string email,
                   Role role = Role::kMember, bool all = true) {
    NewUser u;
    u.email = email;
    u.full_name = "Name " + email;
    u.role = role;
    u.can_access_all_users = all;
    auto c = s.CreateUser(realm, u);
    EXPECT_TRUE(c) << c.error().message();
    if (!c) return {};
    return {c->user_id, c->api_key, email};
  }

  static std::variant<Caller, AuthFailure> TryAuth(PresenceService& s,
                                                   std::string_view sub,
                                                   const U& u) {
    Realm* realm = s.FindRealm(sub);
    EXPECT_NE(realm, nullptr);
    EXPECT_TRUE(s.Sync(*realm));
    return s.Authenticate(*realm, u.email, u.key);
  }
  static Caller Auth(PresenceService& s, std::string_view sub, const U& u) {
    auto r = TryAuth(s, sub, u);
    EXPECT_TRUE(std::holds_alternative<Caller>(r));
    return std::holds_alternative<Caller>(r) ? std::get<Caller>(r) : Caller{};
  }

  // user id -> (last_connected, last_update_id) as `viewer` fetches them.
  static std::map<UserId, std::pair<Micros, UpdateId>> Rows(
      PresenceService& s, const Caller& viewer, UpdateId* last = nullptr) {
    std::map<UserId, std::pair<Micros, UpdateId>> out;
    EXPECT_TRUE(s.Sync(*viewer.realm));
    UpdateId l = s.Fetch(viewer, FetchQuery{}, kT0, [&](const Member& m) {
      out[m.id] = {m.times.last_connected, m.last_update_id};
    });
    if (last != nullptr) *last = l;
    return out;
  }

  ManualClock clock_{kT0};
  store::MemorySharedStore store_;
};

TEST_F(SharedServiceTest, RealmAndUsersMadeOnOneNodeServeOnAnother) {
  auto a = StartNode();
  auto b = StartNode();
  auto realm = a->service->CreateRealm("acme", "Acme");
  ASSERT_TRUE(realm);
  U alice = AddUser(*a->service, *realm, "alice@acme.test");
  // Node b never saw the realm before: it finds it in the store.
  Caller on_b = Auth(*b->service, "acme", alice);
  EXPECT_EQ(on_b.user_id, alice.id);
  EXPECT_EQ(b->service->FindRealm("nope"), nullptr);
}

// An unknown Host costs one store read per window, not one per request; a
// realm made afterwards is found when the window ends, when the feed brings
// it, or at once on the node that made it.
TEST_F(SharedServiceTest, UnknownSubdomainsAreCachedForAShortWindow) {
  ManualClock cache_clock(kT0);
  auto start = [&] {
    auto n = std::make_unique<Node>();
    n->conn = store_.NewConnection();
    SharedOptions options;
    options.feed_wait = std::chrono::milliseconds(2000);
    options.cache_clock = &cache_clock;
    options.unknown_subdomain_window = std::chrono::milliseconds(1000);
    auto s = PresenceService::CreateShared(n->conn.get(), &clock_, options);
    EXPECT_TRUE(s) << s.error().message();
    n->service = std::move(*s);
    return n;
  };
  auto a = start();
  auto b = start();
  const std::size_t before = store_.find_realm_calls();
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(b->service->FindRealm(i % 2 ? "nope" : "NOPE"), nullptr);
  }
  EXPECT_EQ(store_.find_realm_calls(), before + 1);
  cache_clock.Advance(Sec(1) - 1);
  EXPECT_EQ(b->service->FindRealm("nope"), nullptr);
  EXPECT_EQ(store_.find_realm_calls(), before + 1);
  // The window is over: the store is asked again (and the answer cached).
  cache_clock.Advance(1);
  EXPECT_EQ(b->service->FindRealm("nope"), nullptr);
  EXPECT_EQ(b->service->FindRealm("nope"), nullptr);
  EXPECT_EQ(store_.find_realm_calls(), before + 2);

  // Made elsewhere while the feed is held back: unknown until the window
  // ends, then found.
  EXPECT_EQ(b->service->FindRealm("late"), nullptr);
  store_.PauseFeed();
  auto late = store_.InsertRealm({.subdomain = "late", .name = "Late"});
  ASSERT_TRUE(late) << late.error();
  EXPECT_EQ(b->service->FindRealm("late"), nullptr);
  cache_clock.Advance(Sec(1));
  Realm* found = b->service->FindRealm("late");
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->id(), *late);
  store_.ResumeFeed();
  store_.WaitFeedIdle();

  // Made elsewhere with the feed running: found once its entry arrived,
  // within the window.
  EXPECT_EQ(b->service->FindRealm("fed"), nullptr);
  auto fed = a->service->CreateRealm("fed", "Fed");
  ASSERT_TRUE(fed);
  store_.WaitFeedIdle();
  found = b->service->FindRealm("fed");
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->id(), *fed);

  // Made on this node: found at once.
  EXPECT_EQ(b->service->FindRealm("mine"), nullptr);
  auto mine = b->service->CreateRealm("mine", "Mine");
  ASSERT_TRUE(mine);
  found = b->service->FindRealm("mine");
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->id(), *mine);
}

TEST_F(SharedServiceTest, PingOnOneNodeIsReadOnTheOtherWithItsUpdateId) {
  auto a = StartNode();
  auto b = StartNode();
  RealmId realm = *a->service->CreateRealm("acme", "Acme");
  U alice = AddUser(*a->service, realm, "alice@acme.test");
  U bob = AddUser(*a->service, realm, "bob@acme.test");
  Caller alice_a = Auth(*a->service, "acme", alice);
  Caller bob_b = Auth(*b->service, "acme", bob);

  ASSERT_TRUE(a->service->Report(alice_a, ReportStatus::kActive, kT0));
  UpdateId last_a = 0;
  UpdateId last_b = 0;
  auto rows_a = Rows(*a->service, alice_a, &last_a);
  auto rows_b = Rows(*b->service, bob_b, &last_b);
  ASSERT_EQ(rows_b.size(), 1u);
  EXPECT_EQ(rows_b.at(alice.id).first, kT0);
  EXPECT_EQ(rows_a, rows_b);
  EXPECT_EQ(last_a, last_b);
  // The node that was told of the write announced it as Zulip would.
  b->service.get();
  store_.WaitFeedIdle();
  EXPECT_THAT(b->listener.Due(), ElementsAre(alice.id));
}

TEST_F(SharedServiceTest, TheFiftyFiveSecondRuleHoldsAcrossNodes) {
  auto a = StartNode();
  auto b = StartNode();
  RealmId realm = *a->service->CreateRealm("acme", "Acme");
  U alice = AddUser(*a->service, realm, "alice@acme.test");
  Caller on_a = Auth(*a->service, "acme", alice);
  Caller on_b = Auth(*b->service, "acme", alice);
  ASSERT_TRUE(a->service->Report(on_a, ReportStatus::kActive, kT0));
  const auto before = store_.CurrentSeq(realm);
  // 10 s later on the other node: within 55 s, nothing is written.
  ASSERT_TRUE(b->service->Report(on_b, ReportStatus::kActive, kT0 + Sec(10)));
  EXPECT_EQ(*store_.CurrentSeq(realm), *before);
  ASSERT_TRUE(b->service->Report(on_b, ReportStatus::kActive, kT0 + Sec(56)));
  EXPECT_EQ(*store_.CurrentSeq(realm), *before + 1);
  EXPECT_EQ(Rows(*a->service, on_a).at(alice.id).first, kT0 + Sec(56));
}

TEST_F(SharedServiceTest, ConcurrentWritersOnTwoNodesNeverShareAnUpdateId) {
  auto a = StartNode();
  auto b = StartNode();
  RealmId realm = *a->service->CreateRealm("acme", "Acme");
  std::vector<U> users;
  for (int i = 0; i < 8; ++i) {
    users.push_back(
        AddUser(*a->service, realm, "u" + std::to_string(i) + "@acme.test"));
  }
  std::vector<Caller> on_a, on_b;
  for (const U& u : users) {
    on_a.push_back(Auth(*a->service, "acme", u));
    on_b.push_back(Auth(*b->service, "acme", u));
  }
  const UpdateId start = *store_.CurrentSeq(realm);
  constexpr int kRounds = 40;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      PresenceService& s = t % 2 ? *b->service : *a->service;
      auto& callers = t % 2 ? on_b : on_a;
      for (int r = 0; r < kRounds; ++r) {
        // Every 60 s of presence time each user writes once (two threads
        // race for each user; the store lets exactly one through).
        const Caller& c = callers[(t / 2) * 4 + r % 4];
        ASSERT_TRUE(s.Report(c, ReportStatus::kActive, kT0 + Sec(60 * r)));
      }
    });
  }
  for (auto& t : threads) t.join();
  store_.WaitFeedIdle();
  const UpdateId end = *store_.CurrentSeq(realm);
  EXPECT_GT(end, start);
  UpdateId last_a = 0, last_b = 0;
  auto rows_a = Rows(*a->service, on_a[0], &last_a);
  auto rows_b = Rows(*b->service, on_b[0], &last_b);
  EXPECT_EQ(rows_a, rows_b);
  // The answers carry the presence update id (presence writes only, as
  // Zulip numbers them), not the log sequence.
  const UpdateId presence_id = store_.ReadRealm(realm, 0)->realm.last_update_id;
  EXPECT_EQ(last_a, presence_id);
  EXPECT_EQ(last_b, presence_id);
  // Each node saw every write once, with distinct, increasing ids.
  for (Node* n : {a.get(), b.get()}) {
    std::lock_guard lock(n->listener.mu);
    std::set<UpdateId> ids;
    for (const auto& c : n->listener.all) {
      EXPECT_TRUE(ids.insert(c.update_id).second) << c.update_id;
    }
    EXPECT_EQ(ids.size(), static_cast<std::size_t>(end - start));
  }
}

TEST_F(SharedServiceTest, ConcurrentReadBarriersSeeEveryAcknowledgedWrite) {
  auto a = StartNode();
  auto b = StartNode();
  RealmId realm = *a->service->CreateRealm("acme", "Acme");
  constexpr int kUsers = 60;
  std::vector<Caller> writers;
  for (int i = 0; i < kUsers; ++i) {
    U u = AddUser(*a->service, realm, "u" + std::to_string(i) + "@acme.test");
    writers.push_back(Auth(*a->service, "acme", u));
  }
  Caller viewer = Auth(*b->service, "acme",
                       AddUser(*a->service, realm, "viewer@acme.test"));
  std::atomic<int> acked{0};  // users whose first report was acknowledged
  std::atomic<int> misses{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> readers;
  for (int t = 0; t < 6; ++t) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        const int want = acked.load();
        // Many barriers at once share store reads; each must still see
        // every write acknowledged before it began.
        if (!b->service->Sync(*viewer.realm)) {
          ++misses;
          continue;
        }
        int seen = 0;
        b->service->Fetch(viewer, FetchQuery{}, kT0,
                          [&](const Member&) { ++seen; });
        if (seen < want) ++misses;
      }
    });
  }
  for (int i = 0; i < kUsers; ++i) {
    ASSERT_TRUE(a->service->Report(writers[i], ReportStatus::kActive, kT0));
    acked.store(i + 1);
  }
  stop.store(true);
  for (auto& t : readers) t.join();
  EXPECT_EQ(misses.load(), 0);
}

TEST_F(SharedServiceTest, LostFeedEntriesAreRepairedByReadingTheRealmAgain) {
  auto a = StartNode(std::chrono::milliseconds(50));
  auto b = StartNode();
  RealmId realm = *a->service->CreateRealm("acme", "Acme");
  U alice = AddUser(*a->service, realm, "alice@acme.test");
  U bob = AddUser(*a->service, realm, "bob@acme.test");
  Caller alice_a = Auth(*a->service, "acme", alice);
  Caller bob_a = Auth(*a->service, "acme", bob);
  Caller bob_b = Auth(*b->service, "acme", bob);
  store_.WaitFeedIdle();
  // Alice's write reaches nobody; bob's next one shows b the gap.
  store_.DropNextEntries(1);
  ASSERT_TRUE(a->service->Report(alice_a, ReportStatus::kActive, kT0));
  ASSERT_TRUE(a->service->Report(bob_a, ReportStatus::kActive, kT0));
  store_.WaitFeedIdle();
  EXPECT_EQ(AppliedSeq(*b, realm), *store_.CurrentSeq(realm));
  std::map<UserId, std::pair<Micros, UpdateId>> rows;
  b->service->Fetch(bob_b, FetchQuery{}, kT0, [&](const Member& m) {
    rows[m.id] = {m.times.last_connected, m.last_update_id};
  });
  EXPECT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows, Rows(*a->service, alice_a));
}

TEST_F(SharedServiceTest, AWriterWhoseEntryIsLostStillReadsItsOwnWrite) {
  auto a = StartNode(std::chrono::milliseconds(50));
  RealmId realm = *a->service->CreateRealm("acme", "Acme");
  U alice = AddUser(*a->service, realm, "alice@acme.test");
  Caller alice_a = Auth(*a->service, "acme", alice);
  store_.WaitFeedIdle();
  store_.DropNextEntries(1);
  ASSERT_TRUE(a->service->Report(alice_a, ReportStatus::kActive, kT0));
  // No entry came: the writer read the realm again after its wait.
  std::map<UserId, Micros> rows;
  a->service->Fetch(alice_a, FetchQuery{}, kT0,
                    [&](const Member& m) { rows[m.id] = m.times.last_active; });
  EXPECT_THAT(rows, ElementsAre(std::pair{alice.id, kT0}));
}

TEST_F(SharedServiceTest, ReadBarrierCatchesUpWhenTheFeedIsHeldBack) {
  auto a = StartNode(std::chrono::milliseconds(50));
  auto b = StartNode(std::chrono::milliseconds(50));
  RealmId realm = *a->service->CreateRealm("acme", "Acme");
  U alice = AddUser(*a->service, realm, "alice@acme.test");
  Caller alice_b = Auth(*b->service, "acme", alice);
  Caller alice_a = Auth(*a->service, "acme", alice);
  store_.WaitFeedIdle();
  store_.PauseFeed();
  // a waits for its entry, gives up after its wait and reads the realm.
  ASSERT_TRUE(a->service->Report(alice_a, ReportStatus::kActive, kT0));
  // b's barrier: the store is ahead, the feed is held, b reads the realm.
  auto rows = Rows(*b->service, alice_b);
  EXPECT_EQ(rows.size(), 1u);
  store_.ResumeFeed();
  store_.WaitFeedIdle();
  EXPECT_EQ(Rows(*b->service, alice_b), rows);  // the late entry is a no-op
}

// Issue #14 item 7 (spec 3.1: the write decision commits before the fetch).
// b's report finds the row a wrote a moment ago already fresh and writes
// nothing; b's feed is held back, so its replica has not seen a's write. The
// answer is read with no barrier of its own, as a ping's is: b must still
// serve a's row, not the one from before it.
TEST_F(SharedServiceTest, Issue14_ANoOpReportServesTheRowTheStoreSaw) {
  auto a = StartNode(std::chrono::milliseconds(50));
  auto b = StartNode(std::chrono::milliseconds(50));
  RealmId realm = *a->service->CreateRealm("acme", "Acme");
  U alice = AddUser(*a->service, realm, "alice@acme.test");
  Caller alice_a = Auth(*a->service, "acme", alice);
  Caller alice_b = Auth(*b->service, "acme", alice);
  store_.WaitFeedIdle();
  store_.PauseFeed();
  ASSERT_TRUE(a->service->Report(alice_a, ReportStatus::kActive, kT0));
  const UpdateId seen = *store_.CurrentSeq(realm);
  ASSERT_LT(AppliedSeq(*b, realm), seen);  // b is behind a's write

  ASSERT_TRUE(b->service->Report(alice_b, ReportStatus::kActive, kT0 + Sec(1)));
  EXPECT_EQ(*store_.CurrentSeq(realm), seen);  // nothing was written
  EXPECT_GE(AppliedSeq(*b, realm), seen);
  std::map<UserId, std::pair<Micros, UpdateId>> rows;
  b->service->Fetch(alice_b, FetchQuery{}, kT0 + Sec(1), [&](const Member& m) {
    rows[m.id] = {m.times.last_active, m.last_update_id};
  });
  std::map<UserId, std::pair<Micros, UpdateId>> rows_a;
  a->service->Fetch(alice_a, FetchQuery{}, kT0 + Sec(1), [&](const Member& m) {
    rows_a[m.id] = {m.times.last_active, m.last_update_id};
  });
  EXPECT_THAT(rows, ElementsAre(std::pair{alice.id, rows_a.at(alice.id)}));
  EXPECT_EQ(rows.at(alice.id).first, kT0);
  store_.ResumeFeed();
  store_.WaitFeedIdle();
}

// The same read-what-the-store-saw rule for the invisible-mode switch: a
// setting that is already what is asked still returns with the replica at
// the store's position.
TEST_F(SharedServiceTest, Issue14_ANoOpSettingChangeWaitsForTheStoresPosition) {
  auto a = StartNode(std::chrono::milliseconds(50));
  auto b = StartNode(std::chrono::milliseconds(50));
  RealmId realm = *a->service->CreateRealm("acme", "Acme");
  U alice = AddUser(*a->service, realm, "alice@acme.test");
  Caller alice_a = Auth(*a->service, "acme", alice);
  ASSERT_NE(b->service->FindRealm("acme"), nullptr);
  store_.WaitFeedIdle();
  store_.PauseFeed();
  ASSERT_TRUE(a->service->Report(alice_a, ReportStatus::kActive, kT0));
  const UpdateId seen = *store_.CurrentSeq(realm);
  ASSERT_LT(AppliedSeq(*b, realm), seen);
  UserPatch patch;
  patch.presence_enabled = true;  // already enabled: no change
  ASSERT_TRUE(b->service->UpdateUser(realm, alice.id, patch));
  EXPECT_EQ(*store_.CurrentSeq(realm), seen);
  EXPECT_GE(AppliedSeq(*b, realm), seen);
  store_.ResumeFeed();
  store_.WaitFeedIdle();
}

// Per-client rows (issue #14, item 3): written by the store's report step,
// carried by the feed, read back after a gap and at a node's start, so every
// node serves the same client rows as the node that took the report.
TEST_F(SharedServiceTest, Issue14_ClientRowsWrittenOnOneNodeServeOnEveryNode) {
  auto a = StartNode();
  auto b = StartNode();
  RealmId realm = *a->service->CreateRealm("acme", "Acme");
  U alice = AddUser(*a->service, realm, "alice@acme.test");
  U bob = AddUser(*a->service, realm, "bob@acme.test");
  Caller alice_a = Auth(*a->service, "acme", alice);
  Caller bob_a = Auth(*a->service, "acme", bob);
  Caller alice_b = Auth(*b->service, "acme", alice);
  store_.WaitFeedIdle();
  auto clients_on = [&](Node& n) {
    return n.service->FindRealm("acme")->ClientsOf(alice.id);
  };
  ASSERT_TRUE(
      a->service->Report(alice_a, ReportStatus::kActive, kT0, "website"));
  // Within 55 s: the user row stays, only the phone's row is written.
  ASSERT_TRUE(a->service->Report(alice_a, ReportStatus::kActive, kT0 + Sec(10),
                                 "ZulipMobile"));
  store_.WaitFeedIdle();
  ASSERT_EQ(clients_on(*a).size(), 2u);
  EXPECT_EQ(clients_on(*b), clients_on(*a));
  EXPECT_EQ(clients_on(*a)[0].client, "ZulipMobile");
  EXPECT_EQ(clients_on(*a)[0].times.last_active, kT0 + Sec(10));
  // b was told of the new client without a user-row write.
  std::vector<PresenceChange> changes;
  {
    std::lock_guard lock(b->listener.mu);
    changes = b->listener.all;
  }
  ASSERT_FALSE(changes.empty());
  EXPECT_FALSE(changes.back().row_written);
  EXPECT_TRUE(changes.back().client_event_due);
  // A per-client cursor on b returns alice for the phone's write.
  UpdateId cursor = 0;
  FetchQuery all;
  all.per_client = true;
  ASSERT_TRUE(b->service->Sync(*alice_b.realm));
  const Realm& on_b = *alice_b.realm;
  UpdateId top = on_b.FetchWithClients(alice_b.user_id, all, kT0 + Sec(10),
                                       [](const Member&, const auto*) {});
  EXPECT_EQ(top, clients_on(*a)[0].last_update_id);
  cursor = top - 1;
  FetchQuery since = all;
  since.last_update_id = cursor;
  std::vector<UserId> seen;
  on_b.FetchWithClients(alice_b.user_id, since, kT0 + Sec(10),
                        [&](const Member& m, const ClientRowList* rows) {
                          seen.push_back(m.id);
                          EXPECT_NE(rows, nullptr);
                        });
  EXPECT_THAT(seen, ElementsAre(alice.id));

  // A lost entry with a client-only write: the gap is repaired from the
  // store (ReadRealm carries client rows).
  store_.DropNextEntries(1);
  ASSERT_TRUE(
      a->service->Report(alice_a, ReportStatus::kIdle, kT0 + Sec(20), "curl"));
  ASSERT_TRUE(a->service->Report(bob_a, ReportStatus::kActive, kT0 + Sec(20)));
  store_.WaitFeedIdle();
  ASSERT_EQ(clients_on(*a).size(), 3u);
  EXPECT_EQ(clients_on(*b), clients_on(*a));

  // Going invisible lowers the client rows on every node: the phone's row
  // (active 10 s after the user row) no longer says more than it.
  const ClientRowList before = clients_on(*a);
  clock_.Set(kT0 + Sec(30));
  ASSERT_TRUE(a->service->UpdateUser(realm, alice.id,
                                     UserPatch{.presence_enabled = false}));
  store_.WaitFeedIdle();
  EXPECT_NE(clients_on(*a), before);
  EXPECT_EQ(clients_on(*b), clients_on(*a));

  // A node started now loads them.
  auto c = StartNode();
  EXPECT_EQ(clients_on(*c), clients_on(*a));
}

// Issue #14 item 1: Gate, the request step that does not block its thread.
// The answer comes only once the replica has the write; with the feed held
// back, it comes from the feed thread when the entry arrives, not before.
TEST_F(SharedServiceTest, Issue14_AGateAnswersOnceTheReplicaHasTheWrite) {
  auto a = StartNode();
  auto b = StartNode();
  RealmId realm = *a->service->CreateRealm("acme", "Acme");
  U alice = AddUser(*a->service, realm, "alice@acme.test");
  Caller alice_b = Auth(*b->service, "acme", alice);
  store_.WaitFeedIdle();
  store_.PauseFeed();
  ASSERT_TRUE(b->service->gates());
  std::mutex mu;
  std::condition_variable cv;
  std::optional<GateOutcome> got;
  b->service->Gate(alice_b,
                   RequestGate{.report = ReportStatus::kActive, .now = kT0},
                   [&](GateOutcome o) {
                     std::lock_guard<std::mutex> lock(mu);
                     got = o;
                     cv.notify_all();
                   });
  const UpdateId written = *store_.CurrentSeq(realm);
  {
    // Written in the store, not applied here: no answer yet.
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_FALSE(got.has_value());
    EXPECT_LT(AppliedSeq(*b, realm), written);
  }
  store_.ResumeFeed();
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return got.has_value(); });
  EXPECT_TRUE(got->status);
  EXPECT_FALSE(got->rate.has_value());  // not counted: no limit asked
  EXPECT_GE(AppliedSeq(*b, realm), written);
}

// A feed that never brings the entry: after the writer's wait, the realm is
// read again (on the writer's own thread) and the gate answers.
TEST_F(SharedServiceTest, Issue14_AGateWhoseEntryIsLostAnswersAfterAResync) {
  auto a = StartNode(std::chrono::milliseconds(50));
  RealmId realm = *a->service->CreateRealm("acme", "Acme");
  U alice = AddUser(*a->service, realm, "alice@acme.test");
  Caller alice_a = Auth(*a->service, "acme", alice);
  store_.WaitFeedIdle();
  store_.DropNextEntries(1);
  std::promise<GateOutcome> promise;
  a->service->Gate(alice_a,
                   RequestGate{.report = ReportStatus::kActive, .now = kT0},
                   [&](GateOutcome o) { promise.set_value(o); });
  GateOutcome o = promise.get_future().get();
  EXPECT_TRUE(o.status);
  EXPECT_GE(AppliedSeq(*a, realm), *store_.CurrentSeq(realm));
  EXPECT_EQ(Rows(*a->service, alice_a).at(alice.id).first, kT0);
}

// The rate limit in the same step: a refused ping reports nothing.
TEST_F(SharedServiceTest, Issue14_AGateRefusedByTheRateLimitReportsNothing) {
  auto a = StartNode();
  RealmId realm = *a->service->CreateRealm("acme", "Acme");
  U alice = AddUser(*a->service, realm, "alice@acme.test");
  Caller alice_a = Auth(*a->service, "acme", alice);
  RequestGate gate{.rate_limit = 1,
                   .rate_now = kT0,
                   .rate_window = Sec(60),
                   .report = ReportStatus::kActive,
                   .now = kT0};
  auto run = [&] {
    std::promise<GateOutcome> promise;
    a->service->Gate(alice_a, gate,
                     [&](GateOutcome o) { promise.set_value(o); });
    return promise.get_future().get();
  };
  GateOutcome first = run();
  ASSERT_TRUE(first.status);
  ASSERT_TRUE(first.rate.has_value());
  EXPECT_TRUE(first.rate->allowed);
  const UpdateId seq = *store_.CurrentSeq(realm);
  gate.rate_now += Sec(1);
  gate.now = kT0 + Sec(120);  // would write (and come online again)
  GateOutcome second = run();
  ASSERT_TRUE(second.rate.has_value());
  EXPECT_FALSE(second.rate->allowed);
  EXPECT_EQ(*store_.CurrentSeq(realm), seq);
}

// A failover that lost the last write (store_.Rewind) after both nodes had
// applied it: the store hands its numbers out again. The node whose gate
// took such a number notices (its reply is at or below what it applied),
// fences the store and reads the realm whole; the other notices an entry
// at an applied number with a row newer than its own. Both then serve the
// later write.
TEST_F(SharedServiceTest, Issue14_AWriteTheStoreLostDoesNotHideLaterWrites) {
  auto a = StartNode();
  auto b = StartNode();
  RealmId realm = *a->service->CreateRealm("acme", "Acme");
  U x = AddUser(*a->service, realm, "x@acme.test");
  U y = AddUser(*a->service, realm, "y@acme.test");
  Caller x_a = Auth(*a->service, "acme", x);
  Caller y_a = Auth(*a->service, "acme", y);
  Caller y_b = Auth(*b->service, "acme", y);
  store_.WaitFeedIdle();
  auto lost = store_.SaveCheckpoint();
  ASSERT_TRUE(a->service->Report(x_a, ReportStatus::kActive, kT0));
  store_.WaitFeedIdle();
  const UpdateId applied = AppliedSeq(*b, realm);
  store_.Rewind(*lost);
  ASSERT_LT(*store_.CurrentSeq(realm), applied);

  std::promise<GateOutcome> promise;
  a->service->Gate(y_a,
                   RequestGate{.report = ReportStatus::kActive, .now = kT0},
                   [&](GateOutcome o) { promise.set_value(o); });
  ASSERT_TRUE(promise.get_future().get().status);
  EXPECT_EQ(Rows(*a->service, y_a).count(y.id), 1u);
  store_.WaitFeedIdle();
  EXPECT_EQ(Rows(*b->service, y_b).count(y.id), 1u);
  // The store's counters are past everything the nodes applied.
  EXPECT_GT(*store_.CurrentSeq(realm), applied);
}

// A node whose feed lost both the colliding write and the fence's entry
// sees the realm's fence count change at its next resync, and reads the
// realm whole.
TEST_F(SharedServiceTest, Issue14_ANodeThatMissedAFenceReadsTheRealmWhole) {
  auto a = StartNode();
  auto b = StartNode();
  RealmId realm = *a->service->CreateRealm("acme", "Acme");
  U x = AddUser(*a->service, realm, "x@acme.test");
  U y = AddUser(*a->service, realm, "y@acme.test");
  Caller x_a = Auth(*a->service, "acme", x);
  Caller y_a = Auth(*a->service, "acme", y);
  Caller y_b = Auth(*b->service, "acme", y);
  store_.WaitFeedIdle();
  auto lost = store_.SaveCheckpoint();
  ASSERT_TRUE(a->service->Report(x_a, ReportStatus::kActive, kT0));
  store_.WaitFeedIdle();
  store_.Rewind(*lost);
  store_.DropNextEntries(2);  // y's report, the fence
  ASSERT_TRUE(a->service->Report(y_a, ReportStatus::kActive, kT0));
  EXPECT_EQ(Rows(*a->service, y_a).count(y.id), 1u);
  store_.WaitFeedIdle();
  store_.InterruptFeed();
  store_.WaitFeedIdle();
  EXPECT_EQ(Rows(*b->service, y_b).count(y.id), 1u);
}

// The first write after the loss takes a number a node applied, which
// proves the store went back: the node fences it, and every later write
// takes an update id above every one a client saw, on every node.
TEST_F(SharedServiceTest, Issue14_AfterAFenceNoUpdateIdIsHandedOutTwice) {
  auto a = StartNode();
  auto b = StartNode();
  RealmId realm = *a->service->CreateRealm("acme", "Acme");
  U x = AddUser(*a->service, realm, "x@acme.test");
  U y = AddUser(*a->service, realm, "y@acme.test");
  U z = AddUser(*a->service, realm, "z@acme.test");
  Caller x_a = Auth(*a->service, "acme", x);
  Caller y_b = Auth(*b->service, "acme", y);
  Caller z_b = Auth(*b->service, "acme", z);
  store_.WaitFeedIdle();
  auto lost = store_.SaveCheckpoint();
  ASSERT_TRUE(a->service->Report(x_a, ReportStatus::kActive, kT0));
  store_.WaitFeedIdle();
  UpdateId seen = 0;
  Rows(*b->service, y_b, &seen);
  store_.Rewind(*lost);
  // A read of the store behind the replica proves nothing (a demoted
  // master answers reads): the reconnected feed's resync changes nothing.
  store_.InterruptFeed();
  store_.WaitFeedIdle();
  ASSERT_TRUE(b->service->Report(y_b, ReportStatus::kActive, kT0));
  ASSERT_TRUE(b->service->Report(z_b, ReportStatus::kActive, kT0));
  auto rows = Rows(*b->service, y_b);
  ASSERT_EQ(rows.count(y.id), 1u);
  ASSERT_EQ(rows.count(z.id), 1u);
  EXPECT_GT(rows.at(z.id).second, seen);
  store_.WaitFeedIdle();
  auto on_a = Rows(*a->service, x_a);
  ASSERT_EQ(on_a.count(y.id), 1u);
  ASSERT_EQ(on_a.count(z.id), 1u);
  EXPECT_EQ(on_a.at(z.id).second, rows.at(z.id).second);
}

// Issue #14 item 2: a ping that writes nothing, from a client whose cursor
// the replica has, while the replica was confirmed current a moment ago,
// is answered without a store step.
GateOutcome RunGate(PresenceService& s, const Caller& caller,
                    const RequestGate& gate, bool* at_once = nullptr) {
  std::promise<GateOutcome> promise;
  // The answer may come on the feed's thread.
  std::atomic<bool> returned{false};
  bool answered_first = false;  // read after the future: no race
  s.Gate(caller, gate, [&](GateOutcome o) {
    answered_first = !returned.load();
    promise.set_value(o);
  });
  returned.store(true);
  GateOutcome o = promise.get_future().get();
  if (at_once != nullptr) *at_once = answered_first;
  return o;
}

TEST_F(SharedServiceTest, Issue14_ANoOpPingWithItsCursorTakesNoStoreStep) {
  // The bound is real time: generous, so that a slow (sanitized) step
  // cannot outlast it between the confirmation and the next ping.
  auto a = StartNodeWith(SharedOptions{.fresh_for = std::chrono::minutes(1)});
  RealmId realm = *a->service->CreateRealm("acme", "Acme");
  U alice = AddUser(*a->service, realm, "alice@acme.test");
  Caller alice_a = Auth(*a->service, "acme", alice);
  RequestGate gate{.report = ReportStatus::kActive, .now = kT0};
  ASSERT_TRUE(RunGate(*a->service, alice_a, gate).status);  // writes
  const UpdateId cursor = alice_a.realm->last_update_id();
  const std::size_t steps = store_.steps();
  // 10 s later: within 55 s, nothing to write, answered here at once.
  gate.now = kT0 + Sec(10);
  gate.cursor = cursor;
  bool at_once = false;
  EXPECT_TRUE(RunGate(*a->service, alice_a, gate, &at_once).status);
  EXPECT_TRUE(at_once);
  EXPECT_EQ(store_.steps(), steps);
  // Without a cursor, or with one this replica has not reached, or with
  // something to write: the store step.
  gate.cursor.reset();
  EXPECT_TRUE(RunGate(*a->service, alice_a, gate).status);
  EXPECT_EQ(store_.steps(), steps + 1);
  gate.cursor = cursor + 1;
  EXPECT_TRUE(RunGate(*a->service, alice_a, gate).status);
  EXPECT_EQ(store_.steps(), steps + 2);
  gate.cursor = cursor;
  gate.now = kT0 + Sec(56);
  EXPECT_TRUE(RunGate(*a->service, alice_a, gate).status);
  EXPECT_EQ(store_.steps(), steps + 3);
  EXPECT_EQ(Rows(*a->service, alice_a).at(alice.id).first, kT0 + Sec(56));
}

// The client's own write on another node is below its cursor: a replica
// that has not applied it yet does not answer from its stale row.
TEST_F(SharedServiceTest, Issue14_ACursorAheadOfTheReplicaWaitsForTheWrite) {
  // a reads its own write back from the store soon with the feed held.
  auto a = StartNode(std::chrono::milliseconds(50));
  auto b = StartNode();
  RealmId realm = *a->service->CreateRealm("acme", "Acme");
  U alice = AddUser(*a->service, realm, "alice@acme.test");
  Caller alice_a = Auth(*a->service, "acme", alice);
  Caller alice_b = Auth(*b->service, "acme", alice);
  RequestGate gate{.report = ReportStatus::kActive, .now = kT0};
  ASSERT_TRUE(RunGate(*b->service, alice_b, gate).status);
  store_.WaitFeedIdle();
  // Alice writes on node a (the clock past 55 s) while b's feed is held.
  store_.PauseFeed();
  gate.now = kT0 + Sec(60);
  ASSERT_TRUE(a->service->Report(alice_a, ReportStatus::kActive, gate.now));
  const UpdateId cursor = alice_a.realm->last_update_id();
  // Her next ping, on b, with the cursor of a's answer, at a time when b's
  // row (kT0) looks fresh: only the cursor keeps b from answering at once
  // with the row from before her write.
  gate.now = kT0 + Sec(30);
  gate.cursor = cursor;
  std::promise<GateOutcome> promise;
  b->service->Gate(alice_b, gate, [&](GateOutcome o) { promise.set_value(o); });
  auto answer = promise.get_future();
  EXPECT_EQ(answer.wait_for(std::chrono::milliseconds(0)),
            std::future_status::timeout);
  store_.ResumeFeed();
  EXPECT_TRUE(answer.get().status);
  EXPECT_GE(alice_b.realm->last_update_id(), cursor);
  EXPECT_EQ(Rows(*b->service, alice_b).at(alice.id).first, kT0 + Sec(60));
}

TEST_F(SharedServiceTest, Issue14_AReplicaNotConfirmedLatelyTakesTheStoreStep) {
  auto a =
      StartNodeWith(SharedOptions{.fresh_for = std::chrono::milliseconds(1)});
  RealmId realm = *a->service->CreateRealm("acme", "Acme");
  U alice = AddUser(*a->service, realm, "alice@acme.test");
  Caller alice_a = Auth(*a->service, "acme", alice);
  RequestGate gate{.report = ReportStatus::kActive, .now = kT0};
  ASSERT_TRUE(RunGate(*a->service, alice_a, gate).status);
  gate.now = kT0 + Sec(10);
  gate.cursor = alice_a.realm->last_update_id();
  const std::size_t steps = store_.steps();
  // Past the bound (a real-time bound: the wait is the test).
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_TRUE(RunGate(*a->service, alice_a, gate).status);
  EXPECT_EQ(store_.steps(), steps + 1);
  // 0: never without the store step.
  auto b =
      StartNodeWith(SharedOptions{.fresh_for = std::chrono::milliseconds(0)});
  Caller alice_b = Auth(*b->service, "acme", alice);
  ASSERT_TRUE(RunGate(*b->service, alice_b, gate).status);
  const std::size_t before = store_.steps();
  ASSERT_TRUE(RunGate(*b->service, alice_b, gate).status);
  EXPECT_EQ(store_.steps(), before + 1);
}

// The rate limit's lease (core/rate_lease.h): one store step counts eight
// requests; the next seven no-op pings take no store step at all.
TEST_F(SharedServiceTest, Issue14_ALeaseLetsTheNextRequestsThroughLocally) {
  // The bound is real time: generous, so that a slow (sanitized) step
  // cannot outlast it between the confirmation and the next ping.
  auto a = StartNodeWith(SharedOptions{.fresh_for = std::chrono::minutes(1)});
  RealmId realm = *a->service->CreateRealm("acme", "Acme");
  U alice = AddUser(*a->service, realm, "alice@acme.test");
  Caller alice_a = Auth(*a->service, "acme", alice);
  RequestGate gate{.rate_limit = 200,
                   .rate_now = kT0,
                   .rate_window = Sec(60),
                   .report = ReportStatus::kActive,
                   .now = kT0};
  GateOutcome first = RunGate(*a->service, alice_a, gate);
  ASSERT_TRUE(first.status);
  ASSERT_TRUE(first.rate.has_value());
  EXPECT_TRUE(first.rate->allowed);
  EXPECT_EQ(first.rate->in_window, 8);  // this one and a lease of 7
  gate.cursor = alice_a.realm->last_update_id();
  gate.now = kT0 + Sec(10);
  const std::size_t steps = store_.steps();
  for (int i = 0; i < 7; ++i) {
    GateOutcome o = RunGate(*a->service, alice_a, gate);
    ASSERT_TRUE(o.status);
    ASSERT_TRUE(o.rate.has_value());
    EXPECT_TRUE(o.rate->allowed);
  }
  EXPECT_EQ(store_.steps(), steps);
  // The lease spent: counted in the store again.
  ASSERT_TRUE(RunGate(*a->service, alice_a, gate).status);
  EXPECT_GT(store_.steps(), steps);
}

// A user at the limit across two nodes is refused within the bound: never
// more than the limit let through, at most k - 1 fewer per node.
TEST_F(SharedServiceTest, Issue14_TheLeasedLimitHoldsAcrossTwoNodes) {
  // A generous real-time bound, as above.
  const SharedOptions fresh{.fresh_for = std::chrono::minutes(1)};
  auto a = StartNodeWith(fresh);
  auto b = StartNodeWith(fresh);
  RealmId realm = *a->service->CreateRealm("acme", "Acme");
  U alice = AddUser(*a->service, realm, "alice@acme.test");
  Caller on[2] = {Auth(*a->service, "acme", alice),
                  Auth(*b->service, "acme", alice)};
  PresenceService* nodes[2] = {a->service.get(), b->service.get()};
  const std::int64_t limit = 200;
  const std::int64_t k = RateLease::Lease(limit);
  ASSERT_GT(k, 1);
  RequestGate gate{.rate_limit = limit,
                   .rate_now = kT0,
                   .rate_window = Sec(60),
                   .report = ReportStatus::kActive,
                   .now = kT0};
  std::int64_t allowed = 0;
  int refused_in_a_row = 0;
  for (int i = 0; i < 2 * limit && refused_in_a_row < 2 * k; ++i) {
    GateOutcome o = RunGate(*nodes[i % 2], on[i % 2], gate);
    ASSERT_TRUE(o.rate.has_value());
    if (o.rate->allowed) {
      ++allowed;
      refused_in_a_row = 0;
    } else {
      ++refused_in_a_row;
    }
    gate.cursor = on[i % 2].realm->last_update_id();
    gate.rate_now += 1;
  }
  EXPECT_LE(allowed, limit);
  EXPECT_GE(allowed, limit - 2 * (k - 1));
  EXPECT_EQ(refused_in_a_row, 2 * k);  // both nodes refuse, leases spent
}

TEST_F(SharedServiceTest, AnInterruptedFeedMakesEveryRealmBeReadAgain) {
  auto a = StartNode(std::chrono::milliseconds(50));
  auto b = StartNode();
  RealmId realm = *a->service->CreateRealm("acme", "Acme");
  U alice = AddUser(*a->service, realm, "alice@acme.test");
  Caller alice_a = Auth(*a->service, "acme", alice);
  Auth(*b->service, "acme", alice);
  store_.WaitFeedIdle();
  store_.DropNextEntries(1);
  ASSERT_TRUE(a->service->Report(alice_a, ReportStatus::kActive, kT0));
  EXPECT_EQ(AppliedSeq(*b, realm) + 1, *store_.CurrentSeq(realm));
  store_.InterruptFeed();
  store_.WaitFeedIdle();
  EXPECT_EQ(AppliedSeq(*b, realm), *store_.CurrentSeq(realm));
}

TEST_F(SharedServiceTest, DirectoryChangesReachEveryNodeAndItsListener) {
  auto a = StartNode();
  auto b = StartNode();
  RealmId realm = *a->service->CreateRealm("acme", "Acme");
  U alice = AddUser(*a->service, realm, "alice@acme.test");
  U bob = AddUser(*a->service, realm, "bob@acme.test");
  U guest = AddUser(*a->service, realm, "guest@acme.test", Role::kGuest,
                    /*all=*/false);
  Caller alice_a = Auth(*a->service, "acme", alice);
  Caller bob_a = Auth(*a->service, "acme", bob);
  ASSERT_TRUE(a->service->Report(alice_a, ReportStatus::kActive, kT0));
  ASSERT_TRUE(a->service->Report(bob_a, ReportStatus::kActive, kT0));

  // Access list set on a: the guest on b sees only alice (and itself).
  ASSERT_TRUE(a->service->SetAccess(realm, guest.id, {alice.id}));
  Caller guest_b = Auth(*b->service, "acme", guest);
  auto seen = Rows(*b->service, guest_b);
  EXPECT_EQ(seen.size(), 1u);
  EXPECT_TRUE(seen.contains(alice.id));

  // Invisible mode switched on a: b's listener hears it, forced.
  UserPatch invisible;
  invisible.presence_enabled = false;
  ASSERT_TRUE(a->service->UpdateUser(realm, alice.id, invisible));
  // Deactivation on a: b rejects the key and its listener drops queues.
  UserPatch off;
  off.is_active = false;
  ASSERT_TRUE(a->service->UpdateUser(realm, bob.id, off));
  EXPECT_EQ(std::get<AuthFailure>(TryAuth(*b->service, "acme", bob)),
            AuthFailure::kUserDeactivated);
  store_.WaitFeedIdle();
  {
    std::lock_guard lock(b->listener.mu);
    EXPECT_THAT(b->listener.toggles, ElementsAre(std::pair{alice.id, false}));
    EXPECT_THAT(b->listener.deactivated, ElementsAre(bob.id));
    ASSERT_FALSE(b->listener.all.empty());
    EXPECT_TRUE(b->listener.all.back().forced);
    EXPECT_EQ(b->listener.all.back().user_id, alice.id);
  }

  // Realm-wide presence switch made on b reaches a.
  ASSERT_TRUE(b->service->SetRealmPresenceDisabled(realm, true));
  ASSERT_TRUE(a->service->Sync(*a->service->FindRealmById(realm)));
  EXPECT_TRUE(a->service->FindRealmById(realm)->presence_disabled());
}

TEST_F(SharedServiceTest, AKeyAndNameChangedInTheStoreReachEveryNode) {
  auto a = StartNode();
  auto b = StartNode();
  RealmId realm = *a->service->CreateRealm("acme", "Acme");
  U alice = AddUser(*a->service, realm, "alice@acme.test");
  U bob = AddUser(*a->service, realm, "bob@acme.test");
  Auth(*b->service, "acme", alice);
  // Kept by b before the change: its strings must stay intact.
  const Member before = *b->service->FindRealmById(realm)->MemberById(alice.id);

  // Another writer (an admin tool) gives alice a new key and name.
  auto rec = a->service->FindRealmById(realm)->UserRecordOf(alice.id);
  ASSERT_TRUE(rec);
  const std::string new_key(32, 'N');
  rec->api_key_hash = Sha256(new_key);
  rec->full_name = "Alice Renamed";
  auto conn = store_.NewConnection();
  ASSERT_TRUE(conn->UpdateUser(*rec));

  for (Node* n : {a.get(), b.get()}) {
    EXPECT_EQ(std::get<AuthFailure>(TryAuth(*n->service, "acme", alice)),
              AuthFailure::kInvalidApiKey);
    U renewed = alice;
    renewed.key = new_key;
    EXPECT_EQ(Auth(*n->service, "acme", renewed).user_id, alice.id);
    EXPECT_EQ(Auth(*n->service, "acme", bob).user_id, bob.id);
    auto m = n->service->FindRealmById(realm)->MemberById(alice.id);
    EXPECT_EQ(m->full_name(), "Alice Renamed");
    EXPECT_EQ(m->email(), "alice@acme.test");
  }
  EXPECT_EQ(before.full_name(), "Name alice@acme.test");
}

TEST_F(SharedServiceTest, DuplicatesAreRefusedWhicheverNodeIsAsked) {
  auto a = StartNode();
  auto b = StartNode();
  RealmId realm = *a->service->CreateRealm("acme", "Acme");
  EXPECT_EQ(b->service->CreateRealm("acme", "Other").error(),
            make_error_code(Errc::kAlreadyExists));
  AddUser(*a->service, realm, "alice@acme.test");
  ASSERT_NE(b->service->FindRealm("acme"), nullptr);
  NewUser again;
  again.email = "ALICE@acme.test";
  again.full_name = "Alice";
  EXPECT_EQ(b->service->CreateUser(realm, again).error(),
            make_error_code(Errc::kAlreadyExists));
}

TEST_F(SharedServiceTest,
       AnUnreachableStoreRefusesWritesWithoutStickingFailed) {
  auto a = StartNode();
  RealmId realm = *a->service->CreateRealm("acme", "Acme");
  U alice = AddUser(*a->service, realm, "alice@acme.test");
  Caller alice_a = Auth(*a->service, "acme", alice);
  EXPECT_EQ(a->service->StoreUnavailable(), std::nullopt);
  store_.SetUnavailable(true);
  // /healthz's text says why, from the failed Ping's own error.
  auto why = a->service->StoreUnavailable();
  ASSERT_NE(why, std::nullopt);
  EXPECT_THAT(*why, testing::HasSubstr("shared store unreachable: "));
  EXPECT_THAT(*why, testing::HasSubstr("unavailable (test)"));
  EXPECT_EQ(a->service->Report(alice_a, ReportStatus::kActive, kT0).error(),
            make_error_code(Errc::kUnavailable));
  EXPECT_FALSE(a->service->Sync(*alice_a.realm));
  EXPECT_FALSE(a->service->failed());
  store_.SetUnavailable(false);
  EXPECT_TRUE(a->service->Report(alice_a, ReportStatus::kActive, kT0));
  EXPECT_EQ(Rows(*a->service, alice_a).size(), 1u);
}

// A gate that fails says why (the 503's message carries it): the store
// step's own error here.
TEST_F(SharedServiceTest, AFailedGateSaysWhy) {
  auto a = StartNode();
  RealmId realm = *a->service->CreateRealm("acme", "Acme");
  U alice = AddUser(*a->service, realm, "alice@acme.test");
  Caller alice_a = Auth(*a->service, "acme", alice);
  store_.WaitFeedIdle();
  store_.SetUnavailable(true);
  std::promise<GateOutcome> promise;
  a->service->Gate(alice_a,
                   RequestGate{.report = ReportStatus::kActive, .now = kT0},
                   [&](GateOutcome o) { promise.set_value(o); });
  GateOutcome o = promise.get_future().get();
  EXPECT_EQ(o.status.error(), make_error_code(Errc::kUnavailable));
  EXPECT_THAT(o.why, testing::HasSubstr("the store step failed: "));
  EXPECT_THAT(o.why, testing::HasSubstr("unavailable (test)"));
  store_.SetUnavailable(false);
}

TEST_F(SharedServiceTest, ANodeStartedLaterLoadsEverythingAndFollowsTheFeed) {
  auto a = StartNode();
  RealmId realm = *a->service->CreateRealm("acme", "Acme");
  U alice = AddUser(*a->service, realm, "alice@acme.test");
  U bob = AddUser(*a->service, realm, "bob@acme.test");
  Caller alice_a = Auth(*a->service, "acme", alice);
  ASSERT_TRUE(a->service->Report(alice_a, ReportStatus::kActive, kT0));
  auto c = StartNode();
  Caller bob_c = Auth(*c->service, "acme", bob);
  EXPECT_EQ(Rows(*c->service, bob_c), Rows(*a->service, alice_a));
  Caller bob_a = Auth(*a->service, "acme", bob);
  ASSERT_TRUE(a->service->Report(bob_a, ReportStatus::kIdle, kT0 + Sec(1)));
  store_.WaitFeedIdle();
  EXPECT_EQ(Rows(*c->service, bob_c).size(), 2u);
  EXPECT_THAT(c->listener.Due(), ElementsAre(bob.id));
}

// Issue #18: a user status written on one node is announced on every node
// (the writer's own included) exactly once, and a node started later loads
// it from the store.
TEST_F(SharedServiceTest, Issue18_UserStatusReachesEveryNode) {
  auto a = StartNode();
  auto b = StartNode();
  RealmId realm = *a->service->CreateRealm("acme", "Acme");
  U alice = AddUser(*a->service, realm, "alice@acme.test");
  StatusUpdate update;
  update.status_text = "in a meeting";
  update.away = true;
  ASSERT_TRUE(a->service->UpdateUserStatus(realm, alice.id, update));
  store_.WaitFeedIdle();
  for (Node* n : {a.get(), b.get()}) {
    auto got = n->listener.Statuses();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].first, alice.id);
    EXPECT_EQ(got[0].second.status_text, "in a meeting");
    EXPECT_EQ(got[0].second.passed, store::UserStatus::kStatusText |
                                        store::UserStatus::kAway |
                                        store::UserStatus::kAwayValue);
    // away=true turned presence_enabled off first.
    EXPECT_THAT(n->listener.Toggles(), ElementsAre(std::pair(alice.id, false)));
  }
  auto c = StartNode();
  Realm* on_c = c->service->LookupRealm(realm);
  ASSERT_NE(on_c, nullptr);
  auto status = on_c->StatusOf(alice.id);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->status_text, "in a meeting");
  EXPECT_TRUE(c->listener.Statuses().empty());
}

}  // namespace
}  // namespace presence
