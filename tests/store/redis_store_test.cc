// RedisStore's SharedStore methods against a real redis-server (started by
// the test process on a free loopback port): the presence rules in Lua
// against core/presence_rules.h, sequence numbers under concurrency, the
// feed, ReadRealm, the node registry and failures.
#include "store/redis_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <latch>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "core/presence_rules.h"
#include "core/realm.h"
#include "store/redis_server.h"

namespace presence::store {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

constexpr Micros kBase = 1'700'000'000'123'457;  // odd: every digit counts
// Long enough that no registration expires during a test that does not wait
// for it.
constexpr milliseconds kNodeTtl(60'000);

// Collects the feed.
class RecordingSink : public FeedSink {
 public:
  void OnFeedEntry(const FeedEntry& entry) override {
    std::lock_guard<std::mutex> lock(mu_);
    entries_.push_back(entry);
    cv_.notify_all();
  }
  void OnFeedLost() override {
    std::lock_guard<std::mutex> lock(mu_);
    ++lost_;
    cv_.notify_all();
  }

  // Waits (bounded) until at least `n` entries arrived; returns them.
  std::vector<FeedEntry> WaitForEntries(
      std::size_t n, milliseconds limit = milliseconds(5000)) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, limit, [&] { return entries_.size() >= n; });
    return entries_;
  }
  // Waits (bounded) until OnFeedLost was called `n` times.
  int WaitForLost(int n, milliseconds limit = milliseconds(5000)) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, limit, [&] { return lost_ >= n; });
    return lost_;
  }
  std::vector<FeedEntry> entries() {
    std::lock_guard<std::mutex> lock(mu_);
    return entries_;
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    entries_.clear();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<FeedEntry> entries_;
  int lost_ = 0;
};

class RedisStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = SharedRedisServer();
    ASSERT_NE(server_, nullptr);
    server_->FlushAll();
    store_ = Open();
    ASSERT_NE(store_, nullptr);
  }

  std::unique_ptr<RedisStore> Open() {
    auto opened = RedisStore::Open(server_->url());
    EXPECT_TRUE(opened.has_value()) << opened.error();
    return opened ? std::move(*opened) : nullptr;
  }

  RealmId MustInsertRealm(std::string subdomain,
                          bool presence_disabled = false) {
    auto id =
        store_->InsertRealm(RealmRecord{.subdomain = subdomain,
                                        .name = "Realm " + subdomain,
                                        .presence_disabled = presence_disabled,
                                        .date_created = kBase});
    EXPECT_TRUE(id.has_value()) << id.error();
    return id ? *id : 0;
  }

  static UserRecord User(RealmId realm, std::string email) {
    return UserRecord{.realm_id = realm,
                      .email = email,
                      .full_name = "User " + email,
                      .date_joined = kBase - 1,
                      .api_key_hash = Sha256("key-" + email)};
  }

  UserId MustInsertUser(const UserRecord& u) {
    auto id = store_->InsertUser(u);
    EXPECT_TRUE(id.has_value()) << id.error();
    return id ? *id : 0;
  }

  UpdateId MustSeq(RealmId realm) {
    auto seq = store_->CurrentSeq(realm);
    EXPECT_TRUE(seq.has_value());
    return seq ? *seq : -1;
  }

  // The realm's presence update id (not its log sequence).
  UpdateId MustUpdateId(RealmId realm) {
    auto state = store_->ReadRealm(realm, UpdateId{1} << 52);
    EXPECT_TRUE(state.has_value());
    return state ? state->realm.last_update_id : -1;
  }

  // Writes a row with exact times (the plain Store path).
  void MustWriteRow(RealmId realm, UserId user,
                    std::optional<PresenceTimes> times) {
    if (!times) return;
    PresenceRecord row{.user_id = user,
                       .realm_id = realm,
                       .last_connected = times->last_connected,
                       .last_active = times->last_active,
                       .last_update_id = MustUpdateId(realm)};
    ASSERT_TRUE(store_->WritePresence({&row, 1}, {}, {}));
  }

  RedisServer* server_ = nullptr;
  std::unique_ptr<RedisStore> store_;
};

TEST(RedisKeySlotTest, MatchesTheClusterSpecification) {
  // Known answers, computed apart from the product (a CRC16/XMODEM written
  // out from the specification, and CLUSTER KEYSLOT of redis-server 7);
  // RedisClusterTest.KeySlotsAgreeWithTheCluster asks a live cluster too.
  // The check value of CRC16/XMODEM: crc("123456789") = 0x31C3.
  EXPECT_EQ(RedisKeySlot("123456789"), 12739);
  EXPECT_EQ(RedisKeySlot(""), 0);
  // A hash tag: only the bytes between the first '{' and the next '}'.
  EXPECT_EQ(RedisKeySlot("user1000"), 3443);
  EXPECT_EQ(RedisKeySlot("{user1000}.following"), 3443);
  EXPECT_EQ(RedisKeySlot("{user1000}.followers"), 3443);
  // An empty tag: the whole key is hashed, not "" nor "bar".
  EXPECT_EQ(RedisKeySlot("foo{}{bar}"), 8363);
  EXPECT_EQ(RedisKeySlot("bar"), 5061);
  // The tag ends at the first '}': "foo{{bar}}zap" hashes "{bar".
  EXPECT_EQ(RedisKeySlot("foo{{bar}}zap"), 4015);
  EXPECT_EQ(RedisKeySlot("{bar"), 4015);
  // Only the first tag counts: "foo{bar}{zap}" hashes "bar".
  EXPECT_EQ(RedisKeySlot("foo{bar}{zap}"), 5061);
  // No closing brace: the whole key.
  EXPECT_EQ(RedisKeySlot("foo{"), 7673);
  EXPECT_EQ(RedisKeySlot("a{b"), 13340);
  // presenced's realm keys hash by their tag.
  EXPECT_EQ(RedisKeySlot("presenced:{r7}:meta"), 10383);
  EXPECT_EQ(RedisKeySlot("r7"), 10383);
}

TEST(RedisStoreOpenTest, RejectsMalformedUrlsWithAMessage) {
  for (const char* url :
       {"", "127.0.0.1:6379", "http://127.0.0.1:6379", "redis://",
        "redis://127.0.0.1", "redis://127.0.0.1:0", "redis://127.0.0.1:65536",
        "redis://127.0.0.1:63x9", "redis://127.0.0.1:6379/0",
        "redis://user@127.0.0.1:6379", "redis://127.0.0.1:6379,",
        "redis://127.0.0.1:6379,,127.0.0.1:6380", "redis://:6379",
        "rediss://127.0.0.1:6379"}) {
    auto opened = RedisStore::Open(url);
    ASSERT_FALSE(opened.has_value()) << url;
    EXPECT_EQ(opened.error(), Errc::kInvalidArgument) << url;
    EXPECT_THAT(opened.error().message(),
                ::testing::HasSubstr("redis://HOST:PORT"))
        << url;
  }
}

TEST(RedisStoreOpenTest, NothingListeningIsAClearErrorQuickly) {
  const int port = redis_test::PickPort(false);
  ASSERT_NE(port, 0);
  std::string why;
  const auto start = steady_clock::now();
  auto opened = RedisStore::Open("redis://127.0.0.1:" + std::to_string(port));
  EXPECT_LT(steady_clock::now() - start, milliseconds(2000));
  ASSERT_FALSE(opened.has_value());
  EXPECT_EQ(opened.error(), Errc::kStoreFailed);
  EXPECT_THAT(opened.error().message(),
              ::testing::HasSubstr("127.0.0.1:" + std::to_string(port)));
  EXPECT_THAT(opened.error().message(),
              ::testing::HasSubstr("Connection refused"));
}

TEST_F(RedisStoreTest, ReportMatchesCoreRulesOnRandomSequences) {
  RealmId realm = MustInsertRealm("acme");
  RealmId quiet = MustInsertRealm("quiet", /*presence_disabled=*/true);
  RecordingSink sink;
  ASSERT_TRUE(store_->Subscribe(&sink));

  struct Model {
    RealmId realm;
    UserId id;
    std::optional<PresenceTimes> row;
    UpdateId row_id = 0;
  };
  std::vector<Model> users;
  for (int i = 0; i < 4; ++i) {
    RealmId r = i < 3 ? realm : quiet;
    users.push_back(
        {r, MustInsertUser(User(r, "u" + std::to_string(i) + "@x")), {}, 0});
  }
  std::map<RealmId, UpdateId> seq = {{realm, MustSeq(realm)},
                                     {quiet, MustSeq(quiet)}};
  std::map<RealmId, UpdateId> pid = {{realm, MustUpdateId(realm)},
                                     {quiet, MustUpdateId(quiet)}};
  sink.WaitForEntries(4);
  sink.Clear();

  // Steps around every threshold of the rules (55 s, 130 s, a day), plus
  // odd microseconds.
  const Micros steps[] = {0,
                          1,
                          SecondsToMicros(1),
                          SecondsToMicros(30),
                          SecondsToMicros(54),
                          SecondsToMicros(55),
                          SecondsToMicros(55) + 1,
                          SecondsToMicros(60),
                          SecondsToMicros(129),
                          SecondsToMicros(130),
                          SecondsToMicros(130) + 1,
                          SecondsToMicros(200),
                          SecondsToMicros(86400) + 7};
  std::mt19937 rng(20240611);
  std::vector<FeedEntry> expected;
  Micros now = kBase;
  for (int i = 0; i < 400; ++i) {
    now += steps[rng() % std::size(steps)] + static_cast<Micros>(rng() % 3);
    Model& u = users[rng() % users.size()];
    ReportStatus status =
        rng() % 3 == 0 ? ReportStatus::kIdle : ReportStatus::kActive;
    ReportOutcome out = ApplyReport(u.row, now, status);
    auto got = store_->Report(u.realm, u.id, now, status);
    ASSERT_TRUE(got.has_value()) << got.error();
    ASSERT_EQ(got->wrote, out.wrote) << "step " << i;
    if (!out.wrote) {
      // No write: the realm's log position as the script saw it.
      ASSERT_EQ(got->seq, seq[u.realm]) << "step " << i;
      continue;
    }
    UpdateId s = ++seq[u.realm];
    UpdateId p = ++pid[u.realm];
    ASSERT_EQ(got->seq, s) << "step " << i;
    u.row = out.after;
    u.row_id = p;
    const bool quiet_realm = u.realm == quiet;
    expected.push_back(FeedEntry{
        .realm_id = u.realm,
        .seq = s,
        .row = PresenceRecord{.user_id = u.id,
                              .realm_id = u.realm,
                              .last_connected = out.after.last_connected,
                              .last_active = out.after.last_active,
                              .last_update_id = p},
        .event_due = (out.created || out.became_online) && !quiet_realm,
        .forced = false,
        .written_at = now});
  }
  ASSERT_GT(expected.size(), 50u);
  EXPECT_EQ(sink.WaitForEntries(expected.size()), expected);

  for (RealmId r : {realm, quiet}) {
    EXPECT_EQ(MustSeq(r), seq[r]);
    EXPECT_EQ(MustUpdateId(r), pid[r]);
    auto state = store_->ReadRealm(r, 0);
    ASSERT_TRUE(state.has_value());
    std::vector<PresenceRecord> rows;
    for (const Model& u : users) {
      if (u.realm != r || !u.row) continue;
      rows.push_back({.user_id = u.id,
                      .realm_id = r,
                      .last_connected = u.row->last_connected,
                      .last_active = u.row->last_active,
                      .last_update_id = u.row_id});
    }
    EXPECT_EQ(state->rows, rows);
  }
}

// The same rules, made in batches (lua/gate_batch.lua, as the gate batcher
// sends a realm's concurrent requests): random reports of users of two
// realms, a read barrier now and then, grouped into one call of 1 to 7
// steps per realm; every step's answer (written or not, the log position it
// saw, which counts the steps before it in its batch), the feed and the
// rows must be what the core's rules give one report at a time.
TEST_F(RedisStoreTest, Issue14_GateBatchMatchesCoreRulesOnRandomSequences) {
  RealmId realm = MustInsertRealm("acme");
  RealmId quiet = MustInsertRealm("quiet", /*presence_disabled=*/true);
  RecordingSink sink;
  ASSERT_TRUE(store_->Subscribe(&sink));
  struct Model {
    RealmId realm;
    UserId id;
    std::optional<PresenceTimes> row;
    UpdateId row_id = 0;
  };
  std::vector<Model> users;
  for (int i = 0; i < 5; ++i) {
    RealmId r = i < 4 ? realm : quiet;
    users.push_back(
        {r, MustInsertUser(User(r, "u" + std::to_string(i) + "@x")), {}, 0});
  }
  std::map<RealmId, UpdateId> seq = {{realm, MustSeq(realm)},
                                     {quiet, MustSeq(quiet)}};
  std::map<RealmId, UpdateId> pid = {{realm, MustUpdateId(realm)},
                                     {quiet, MustUpdateId(quiet)}};
  sink.WaitForEntries(5);
  sink.Clear();
  const Micros steps[] = {0,
                          1,
                          SecondsToMicros(1),
                          SecondsToMicros(54),
                          SecondsToMicros(55) + 1,
                          SecondsToMicros(60),
                          SecondsToMicros(130) + 1,
                          SecondsToMicros(86400) + 7};
  std::mt19937 rng(20261205);
  std::vector<FeedEntry> expected;
  Micros now = kBase;
  int batches = 0, wrote_in_batch = 0;
  for (int b = 0; b < 120; ++b) {
    const RealmId r = rng() % 4 == 0 ? quiet : realm;
    std::vector<Model*> of_realm;
    for (Model& u : users) {
      if (u.realm == r) of_realm.push_back(&u);
    }
    // The batch's requests, and what the core's rules say of each, one at a
    // time in order.
    std::vector<GateRequest> requests;
    struct Want {
      bool wrote;
      UpdateId seq;
    };
    std::vector<Want> want;
    const int n = 1 + static_cast<int>(rng() % 7);
    for (int i = 0; i < n; ++i) {
      now += steps[rng() % std::size(steps)] + static_cast<Micros>(rng() % 3);
      Model& u = *of_realm[rng() % of_realm.size()];
      if (rng() % 6 == 0) {  // a read barrier: no report
        requests.push_back({.user = u.id});
        want.push_back({false, seq[r]});
        continue;
      }
      const ReportStatus status =
          rng() % 3 == 0 ? ReportStatus::kIdle : ReportStatus::kActive;
      requests.push_back({.user = u.id, .report = status, .now = now});
      ReportOutcome out = ApplyReport(u.row, now, status);
      if (!out.wrote) {
        want.push_back({false, seq[r]});
        continue;
      }
      const UpdateId s = ++seq[r];
      const UpdateId p = ++pid[r];
      want.push_back({true, s});
      u.row = out.after;
      u.row_id = p;
      if (n > 1) ++wrote_in_batch;
      expected.push_back(FeedEntry{
          .realm_id = r,
          .seq = s,
          .row = PresenceRecord{.user_id = u.id,
                                .realm_id = r,
                                .last_connected = out.after.last_connected,
                                .last_active = out.after.last_active,
                                .last_update_id = p},
          .event_due = (out.created || out.became_online) && r != quiet,
          .forced = false,
          .written_at = now});
    }
    std::optional<GateBatchResult> got;
    store_->GateBatch(r, requests,
                      [&](GateBatchResult result) { got = std::move(result); });
    ASSERT_TRUE(got.has_value());
    ASSERT_TRUE(got->has_value()) << got->error();
    ASSERT_EQ((*got)->size(), requests.size());
    for (std::size_t i = 0; i < requests.size(); ++i) {
      const auto& one = (**got)[i];
      ASSERT_TRUE(one.has_value()) << one.error();
      EXPECT_TRUE(one->rate.allowed);
      ASSERT_EQ(one->write.wrote, want[i].wrote)
          << "batch " << b << " step " << i;
      ASSERT_EQ(one->write.seq, want[i].seq) << "batch " << b << " step " << i;
    }
    if (n > 1) ++batches;
  }
  ASSERT_GT(batches, 50);
  ASSERT_GT(wrote_in_batch, 50);
  EXPECT_EQ(sink.WaitForEntries(expected.size()), expected);
  for (RealmId r : {realm, quiet}) {
    EXPECT_EQ(MustSeq(r), seq[r]);
    EXPECT_EQ(MustUpdateId(r), pid[r]);
    auto state = store_->ReadRealm(r, 0);
    ASSERT_TRUE(state.has_value());
    std::vector<PresenceRecord> rows;
    for (const Model& u : users) {
      if (u.realm != r || !u.row) continue;
      rows.push_back({.user_id = u.id,
                      .realm_id = r,
                      .last_connected = u.row->last_connected,
                      .last_active = u.row->last_active,
                      .last_update_id = u.row_id});
    }
    EXPECT_EQ(state->rows, rows);
  }
}

// The per-client rules in Lua (prelude.lua: client_report, clamp_clients)
// against the core's (Realm::RecordReport, Realm::SetPresenceEnabled): the
// same random reports, with and without a client name, a low bound so that
// clients are pushed out, invisible-mode toggles, and a realm with presence
// disabled; after every step the store's answer, its feed entry and the
// rows it holds (ReadRealm) must be the realm's.
TEST_F(RedisStoreTest, ReportWithClientsMatchesRealmOnRandomSequences) {
  struct AlwaysReserve : UpdateIdReserver {
    Status ReserveUpdateIds(RealmId, UpdateId) override { return {}; }
  } reserver;
  RecordingSink sink;
  ASSERT_TRUE(store_->Subscribe(&sink));
  struct Side {
    RealmId id;
    std::unique_ptr<Realm> realm;
    std::vector<UserId> users;
  };
  std::vector<Side> sides;
  for (bool quiet : {false, true}) {
    Side side;
    side.id = MustInsertRealm(quiet ? "quiet" : "acme", quiet);
    RealmRecord rec{.id = side.id,
                    .presence_disabled = quiet,
                    .last_update_id = MustUpdateId(side.id)};
    side.realm = std::make_unique<Realm>(rec, &reserver, /*fresh=*/true);
    side.realm->SetMaxClientsPerUser(2);
    for (int i = 0; i < (quiet ? 1 : 3); ++i) {
      UserRecord u = User(
          side.id, "u" + std::to_string(i) + "@" + std::to_string(side.id));
      u.id = MustInsertUser(u);
      side.realm->AddMember(u);
      side.users.push_back(u.id);
    }
    side.realm->FinishLoad();
    sides.push_back(std::move(side));
  }
  sink.WaitForEntries(6);
  sink.Clear();

  const Micros steps[] = {0,
                          1,
                          SecondsToMicros(20),
                          SecondsToMicros(54),
                          SecondsToMicros(55) + 1,
                          SecondsToMicros(60),
                          SecondsToMicros(130) + 1,
                          SecondsToMicros(300)};
  const std::string_view names[] = {"", "website", "ZulipMobile", "curl"};
  std::mt19937 rng(20261205);
  Micros now = kBase;
  std::size_t entries = 0;
  int client_writes = 0, toggles = 0, pushed_out = 0;
  for (int i = 0; i < 500; ++i) {
    now += steps[rng() % std::size(steps)] + static_cast<Micros>(rng() % 3);
    Side& side = sides[rng() % 5 == 0 ? 1 : 0];
    const UserId user = side.users[rng() % side.users.size()];
    const ClientRowList before = side.realm->ClientsOf(user);
    std::optional<PresenceChange> change;
    StoreResult<WriteResult> got = WriteResult{};
    std::string_view name;
    if (rng() % 10 == 0) {
      const bool enabled = !side.realm->MemberById(user)->presence_enabled;
      auto c = side.realm->SetPresenceEnabled(user, enabled, now);
      ASSERT_TRUE(c.has_value());
      change = *c;
      got = store_->SetPresenceEnabled(side.id, user, enabled, now);
      ++toggles;
    } else {
      const ReportStatus status =
          rng() % 3 == 0 ? ReportStatus::kIdle : ReportStatus::kActive;
      name = names[rng() % std::size(names)];
      auto c = side.realm->RecordReport(user, now, status, name);
      ASSERT_TRUE(c.has_value());
      change = *c;
      got = store_->Report(side.id, user, now, status,
                           ReportClient{.name = name, .max_rows = 2});
      if (change && !change->row_written) ++client_writes;
      ASSERT_TRUE(got.has_value()) << got.error();
      ASSERT_EQ(got->wrote, change.has_value()) << "step " << i;
    }
    ASSERT_TRUE(got.has_value()) << got.error();
    const ClientRowList after = side.realm->ClientsOf(user);
    auto has = [](const ClientRowList& rows, std::string_view n) {
      return std::any_of(
          rows.begin(), rows.end(),
          [&](const ClientPresence& c) { return c.client == n; });
    };
    if (before.size() == 2 && !has(before, name) && has(after, name)) {
      ++pushed_out;
    }
    // What the store holds for this realm, after the step.
    auto state = store_->ReadRealm(side.id, 0);
    ASSERT_TRUE(state.has_value()) << state.error();
    EXPECT_EQ(state->realm.last_update_id, side.realm->last_update_id())
        << "step " << i;
    std::vector<ClientPresenceRecord> want;
    for (UserId u : side.users) {
      for (const ClientPresence& c : side.realm->ClientsOf(u)) {
        want.push_back({.realm_id = side.id,
                        .user_id = u,
                        .client = c.client,
                        .last_connected = c.times.last_connected,
                        .last_active = c.times.last_active,
                        .last_update_id = c.last_update_id});
      }
    }
    ASSERT_EQ(state->clients, want) << "step " << i;
    for (const PresenceRecord& row : state->rows) {
      auto m = side.realm->MemberById(row.user_id);
      ASSERT_TRUE(m.has_value());
      ASSERT_EQ(row.last_connected, m->times.last_connected) << "step " << i;
      ASSERT_EQ(row.last_active, m->times.last_active) << "step " << i;
      ASSERT_EQ(row.last_update_id, m->last_update_id) << "step " << i;
    }
    if (!got->wrote) continue;
    // The entry carries the user's client rows whenever they changed.
    auto feed = sink.WaitForEntries(++entries);
    ASSERT_EQ(feed.size(), entries);
    const FeedEntry& e = feed.back();
    std::vector<ClientPresenceRecord> mine;
    for (const auto& c : want) {
      if (c.user_id == user) mine.push_back(c);
    }
    EXPECT_EQ(e.clients.has_value(), before != after) << "step " << i;
    if (e.clients) {
      EXPECT_EQ(e.client_user, user) << "step " << i;
      EXPECT_EQ(*e.clients, mine) << "step " << i;
    }
    if (change) {
      EXPECT_EQ(e.event_due, change->event_due) << "step " << i;
      EXPECT_EQ(e.client_event_due, change->client_event_due) << "step " << i;
      if (!change->row_written) {
        EXPECT_FALSE(e.row.has_value()) << "step " << i;
        EXPECT_TRUE(e.clients.has_value()) << "step " << i;
      }
    }
  }
  // The sequence exercised what it is meant to.
  EXPECT_GT(client_writes, 10);
  EXPECT_GT(toggles, 10);
  EXPECT_GT(pushed_out, 5);
}

TEST_F(RedisStoreTest,
       TimesBeyondThirtyTwoBitsAndNearTwoToTheFiftyThreeStayExact) {
  RealmId realm = MustInsertRealm("acme");
  UserId u = MustInsertUser(User(realm, "a@x"));
  for (Micros now : {Micros{4'294'967'297}, Micros{1'800'000'000'000'001},
                     Micros{9'007'199'254'000'001}}) {
    auto got = store_->Report(realm, u, now, ReportStatus::kActive);
    ASSERT_TRUE(got.has_value()) << got.error();
    ASSERT_TRUE(got->wrote);
    auto state = store_->ReadRealm(realm, 0);
    ASSERT_TRUE(state.has_value()) << state.error();
    ASSERT_EQ(state->rows.size(), 1u);
    EXPECT_EQ(state->rows[0].last_connected, now);
    EXPECT_EQ(state->rows[0].last_active, now);
  }
}

TEST_F(RedisStoreTest, SetPresenceEnabledMatchesGoInvisibleAndBecomeVisible) {
  RealmId realm = MustInsertRealm("acme");
  RecordingSink sink;
  ASSERT_TRUE(store_->Subscribe(&sink));
  const Micros now = kBase + SecondsToMicros(10'000);
  const Micros s = kMicrosPerSecond;
  // Rows before going invisible: none, recent, stale, idle only, ...
  const std::optional<PresenceTimes> befores[] = {
      std::nullopt,
      PresenceTimes{now - 5 * s, now - 5 * s},
      PresenceTimes{now - 100 * s, now - 100 * s},
      PresenceTimes{now - 20 * s, kNoTime},
      PresenceTimes{now - 10 * s, now - 280 * s},
      PresenceTimes{now - 265 * s, now - 265 * s},
      PresenceTimes{now - 264 * s, now - 264 * s},
      PresenceTimes{now - 400 * s, now - 400 * s},
      PresenceTimes{kNoTime, now - 3 * s},
      PresenceTimes{kNoTime, kNoTime},
  };
  int n = 0;
  for (const auto& before : befores) {
    SCOPED_TRACE("case " + std::to_string(n));
    sink.Clear();
    UserRecord record = User(realm, "u" + std::to_string(n++) + "@x");
    record.id = MustInsertUser(record);
    ASSERT_EQ(sink.WaitForEntries(1).size(), 1u);  // the new user
    sink.Clear();
    MustWriteRow(realm, record.id, before);
    const UpdateId seq0 = MustSeq(realm);
    UpdateId pid = MustUpdateId(realm);  // the presence id; the row's, if any

    // Going invisible.
    std::optional<PresenceTimes> after = ApplyGoInvisible(before, now);
    auto got = store_->SetPresenceEnabled(realm, record.id, false, now);
    ASSERT_TRUE(got.has_value()) << got.error();
    EXPECT_TRUE(got->wrote);
    EXPECT_EQ(got->seq, seq0 + 1);
    record.presence_enabled = false;
    std::optional<PresenceTimes> row = after ? after : before;
    FeedEntry want{.realm_id = realm, .seq = seq0 + 1, .user = record};
    if (after) {
      // Back-dated: a write with the next presence id. Nothing to back-date:
      // no row, no event (as the single-node core).
      want.row = PresenceRecord{.user_id = record.id,
                                .realm_id = realm,
                                .last_connected = after->last_connected,
                                .last_active = after->last_active,
                                .last_update_id = ++pid};
      want.event_due = want.forced = true;
      want.written_at = now;
    }
    EXPECT_EQ(MustUpdateId(realm), pid);
    auto entries = sink.WaitForEntries(1);
    ASSERT_EQ(entries.size(), 1u);
    EXPECT_EQ(entries[0], want);

    // Invisible users write nothing; setting the same value is no change.
    auto report =
        store_->Report(realm, record.id, now + 500 * s, ReportStatus::kActive);
    ASSERT_TRUE(report.has_value());
    EXPECT_FALSE(report->wrote);
    EXPECT_EQ(report->seq, seq0 + 1);  // the log position it saw
    got = store_->SetPresenceEnabled(realm, record.id, false, now);
    ASSERT_TRUE(got.has_value());
    EXPECT_FALSE(got->wrote);
    EXPECT_EQ(got->seq, seq0 + 1);
    EXPECT_EQ(MustSeq(realm), seq0 + 1);

    // Becoming visible again, 7 s later.
    const Micros later = now + 7 * s;
    ReportOutcome visible = ApplyBecomeVisible(row, later);
    got = store_->SetPresenceEnabled(realm, record.id, true, later);
    ASSERT_TRUE(got.has_value());
    EXPECT_TRUE(got->wrote);
    EXPECT_EQ(got->seq, seq0 + 2);
    record.presence_enabled = true;
    row = visible.wrote ? std::optional<PresenceTimes>(visible.after) : row;
    ASSERT_TRUE(row.has_value());  // becoming visible always leaves a row
    want = FeedEntry{
        .realm_id = realm,
        .seq = seq0 + 2,
        .user = record,
        .row = PresenceRecord{.user_id = record.id,
                              .realm_id = realm,
                              .last_connected = row->last_connected,
                              .last_active = row->last_active,
                              .last_update_id = visible.wrote ? pid + 1 : pid},
        .event_due = true,
        .forced = true,
        .written_at = later};
    entries = sink.WaitForEntries(2);
    ASSERT_EQ(entries.size(), 2u);
    EXPECT_EQ(entries[1], want);
  }

  auto missing = store_->SetPresenceEnabled(realm, 9999, false, now);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error(), Errc::kNotFound);
  missing = store_->SetPresenceEnabled(realm + 50, 1, false, now);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error(), Errc::kNotFound);
}

TEST_F(RedisStoreTest, InvisibleBotInactiveAndUnknownUsersWriteNothing) {
  RealmId realm = MustInsertRealm("acme");
  UserRecord bot = User(realm, "bot@x");
  bot.is_bot = true;
  UserRecord inactive = User(realm, "gone@x");
  inactive.is_active = false;
  UserRecord invisible = User(realm, "hidden@x");
  invisible.presence_enabled = false;
  std::vector<UserId> ids = {MustInsertUser(bot), MustInsertUser(inactive),
                             MustInsertUser(invisible), 9999};
  const UpdateId seq0 = MustSeq(realm);
  for (UserId id : ids) {
    for (ReportStatus st : {ReportStatus::kActive, ReportStatus::kIdle}) {
      auto got = store_->Report(realm, id, kBase, st);
      ASSERT_TRUE(got.has_value()) << got.error();
      EXPECT_FALSE(got->wrote);
      EXPECT_EQ(got->seq, seq0);  // the realm's log position, unchanged
    }
  }
  EXPECT_EQ(MustSeq(realm), seq0);
  auto state = store_->ReadRealm(realm, -1);
  ASSERT_TRUE(state.has_value());
  EXPECT_TRUE(state->rows.empty());

  auto missing = store_->Report(realm + 1, ids[0], kBase, ReportStatus::kIdle);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error(), Errc::kNotFound);
  auto seq = store_->CurrentSeq(realm + 1);
  ASSERT_FALSE(seq.has_value());
  EXPECT_EQ(seq.error(), Errc::kNotFound);
}

TEST_F(RedisStoreTest, ConcurrentReportsNeverShareASequenceNumber) {
  RealmId realm = MustInsertRealm("acme");
  std::vector<UserId> users;
  for (int i = 0; i < 5; ++i) {
    users.push_back(
        MustInsertUser(User(realm, "u" + std::to_string(i) + "@x")));
  }
  const UpdateId seq0 = MustSeq(realm);
  constexpr int kThreads = 4;
  constexpr int kReports = 500;
  std::vector<std::unique_ptr<RedisStore>> stores;
  for (int t = 0; t < kThreads; ++t) stores.push_back(Open());
  std::vector<std::vector<UpdateId>> seqs(kThreads);
  std::vector<int> failures(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Threads 0 and 1 share store 0 (one connection, two threads); the
      // others have their own.
      RedisStore* store = stores[t == 1 ? 0 : t].get();
      for (int i = 0; i < kReports; ++i) {
        // Time moves in 56 s steps, so that most reports write.
        Micros now = kBase + SecondsToMicros(56) * i + t;
        auto got = store->Report(
            realm, users[(i + t) % users.size()], now,
            i % 4 == 0 ? ReportStatus::kIdle : ReportStatus::kActive);
        if (!got) {
          ++failures[t];
        } else if (got->wrote) {
          seqs[t].push_back(got->seq);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<UpdateId> all;
  std::size_t writes = 0;
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(failures[t], 0);
    writes += seqs[t].size();
    all.insert(seqs[t].begin(), seqs[t].end());
  }
  EXPECT_GT(writes, 250u);
  EXPECT_EQ(all.size(), writes);  // no number twice
  EXPECT_EQ(MustSeq(realm), seq0 + static_cast<UpdateId>(writes));
  EXPECT_EQ(*all.begin(), seq0 + 1);
  EXPECT_EQ(*all.rbegin(), seq0 + static_cast<UpdateId>(writes));
}

TEST_F(RedisStoreTest, FeedCarriesEveryKindOfChangeInOrder) {
  RecordingSink sink;
  ASSERT_TRUE(store_->Subscribe(&sink));
  std::vector<FeedEntry> want;

  RealmRecord realm{.subdomain = "Acme|1:2",
                    .name = "Acme \xE2\x9C\x93 | 3:4,5",
                    .date_created = kBase,
                    .last_update_id = 40,
                    .reserved_update_id = 90};
  auto rid = store_->InsertRealm(realm);
  ASSERT_TRUE(rid.has_value());
  realm.id = *rid;
  want.push_back({.realm_id = realm.id, .seq = 0, .realm = realm});

  UserRecord user = User(realm.id, "Pipe|Colon:Comma,x@\xC3\xA9xample.org");
  user.full_name = "3:abc|def,\xF0\x9F\x98\x80";
  user.role = Role::kGuest;
  user.can_access_all_users = false;
  for (std::size_t b = 0; b < user.api_key_hash.size(); ++b) {
    user.api_key_hash[b] = static_cast<std::uint8_t>(255 - b * 7);
  }
  user.id = MustInsertUser(user);
  want.push_back({.realm_id = realm.id, .seq = 1, .user = user});

  UserRecord other = User(realm.id, "o@x");
  other.id = MustInsertUser(other);
  want.push_back({.realm_id = realm.id, .seq = 2, .user = other});

  user.full_name = "Renamed";
  user.role = Role::kMember;
  ASSERT_TRUE(store_->UpdateUser(user));
  want.push_back({.realm_id = realm.id, .seq = 3, .user = user});

  ASSERT_TRUE(store_->SetAccess({.realm_id = realm.id,
                                 .viewer = user.id,
                                 .visible = {other.id, user.id, other.id}}));
  want.push_back({.realm_id = realm.id,
                  .seq = 4,
                  .access = AccessRecord{.realm_id = realm.id,
                                         .viewer = user.id,
                                         .visible = {user.id, other.id}}});
  ASSERT_TRUE(store_->SetAccess(
      {.realm_id = realm.id, .viewer = user.id, .visible = {}}));
  want.push_back({.realm_id = realm.id,
                  .seq = 5,
                  .access = AccessRecord{
                      .realm_id = realm.id, .viewer = user.id, .visible = {}}});

  realm.name = "New name";
  realm.presence_disabled = true;
  ASSERT_TRUE(store_->UpdateRealm(realm));
  RealmRecord announced = realm;
  // Directory changes number the log; the presence id stays at 40.
  want.push_back({.realm_id = realm.id, .seq = 6, .realm = announced});

  // presence_disabled: the row is written but no event is due.
  auto wrote = store_->Report(realm.id, other.id, kBase, ReportStatus::kIdle);
  ASSERT_TRUE(wrote.has_value());
  EXPECT_EQ(wrote->seq, 7);
  want.push_back({.realm_id = realm.id,
                  .seq = 7,
                  .row = PresenceRecord{.user_id = other.id,
                                        .realm_id = realm.id,
                                        .last_connected = kBase,
                                        .last_active = kNoTime,
                                        .last_update_id = 41},
                  .event_due = false,
                  .written_at = kBase});

  realm.presence_disabled = false;
  ASSERT_TRUE(store_->UpdateRealm(realm));
  announced = realm;
  announced.last_update_id = 41;
  want.push_back({.realm_id = realm.id, .seq = 8, .realm = announced});
  const Micros later = kBase + SecondsToMicros(131);
  wrote = store_->Report(realm.id, other.id, later, ReportStatus::kActive);
  ASSERT_TRUE(wrote.has_value());
  want.push_back({.realm_id = realm.id,
                  .seq = 9,
                  .row = PresenceRecord{.user_id = other.id,
                                        .realm_id = realm.id,
                                        .last_connected = later,
                                        .last_active = later,
                                        .last_update_id = 42},
                  .event_due = true,  // came online
                  .written_at = later});

  EXPECT_EQ(sink.WaitForEntries(want.size()), want);
  store_->Unsubscribe();
  // Nothing after Unsubscribe.
  ASSERT_TRUE(store_->Report(realm.id, user.id, later, ReportStatus::kActive));
  EXPECT_EQ(sink.entries().size(), want.size());
}

TEST_F(RedisStoreTest, FeedLostIsReportedAfterTheServerDropsTheSubscriber) {
  RealmId realm = MustInsertRealm("acme");
  UserId u = MustInsertUser(User(realm, "a@x"));
  RecordingSink sink;
  ASSERT_TRUE(store_->Subscribe(&sink));
  ASSERT_TRUE(store_->Report(realm, u, kBase, ReportStatus::kActive));
  ASSERT_EQ(sink.WaitForEntries(1).size(), 1u);

  auto killed = server_->Command({"CLIENT", "KILL", "TYPE", "pubsub"});
  ASSERT_TRUE(killed.has_value());
  EXPECT_EQ(killed->integer, 1);
  ASSERT_EQ(sink.WaitForLost(1), 1);

  // Subscribed again when OnFeedLost ran: later entries arrive.
  auto got = store_->Report(realm, u, kBase + SecondsToMicros(60),
                            ReportStatus::kActive);
  ASSERT_TRUE(got.has_value());
  auto entries = sink.WaitForEntries(2);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[1].seq, got->seq);

  // And again.
  ASSERT_TRUE(server_->Command({"CLIENT", "KILL", "TYPE", "pubsub"}));
  ASSERT_EQ(sink.WaitForLost(2), 2);
  got = store_->Report(realm, u, kBase + SecondsToMicros(120),
                       ReportStatus::kActive);
  ASSERT_TRUE(got.has_value());
  entries = sink.WaitForEntries(3);
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[2].seq, got->seq);
}

// A failover that lost writes leaves the counters behind what nodes
// applied: Fence raises them (never lowers them), counts itself in the
// realm's meta (ReadRealm's fences) and announces itself on the feed.
TEST_F(RedisStoreTest, FenceRaisesTheCountersAndAnnouncesItself) {
  RealmId realm = MustInsertRealm("acme");
  UserId u = MustInsertUser(User(realm, "a@x"));
  RecordingSink sink;
  ASSERT_TRUE(store_->Subscribe(&sink));
  const UpdateId log = MustSeq(realm);
  auto fenced = store_->Fence(realm, log + 10, 20);
  ASSERT_TRUE(fenced.has_value()) << fenced.error();
  EXPECT_EQ(*fenced, log + 11);
  auto entries = sink.WaitForEntries(1);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0],
            (FeedEntry{.realm_id = realm, .seq = log + 11, .fences = 1}));
  auto state = store_->ReadRealm(realm, 0);
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ(state->fences, 1);
  EXPECT_EQ(state->seq, log + 11);
  EXPECT_EQ(state->realm.last_update_id, 20);
  // The next write takes the numbers after them.
  auto w = store_->Report(realm, u, kBase, ReportStatus::kActive);
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(w->seq, log + 12);
  EXPECT_EQ(MustUpdateId(realm), 21);
  // Lower floors leave the counters alone; the fence still counts.
  fenced = store_->Fence(realm, 1, 1);
  ASSERT_TRUE(fenced.has_value());
  EXPECT_EQ(*fenced, log + 13);
  EXPECT_EQ(MustUpdateId(realm), 21);
  state = store_->ReadRealm(realm, 0);
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ(state->fences, 2);
  EXPECT_EQ(store_->Fence(realm + 100, 1, 1).error().code(), Errc::kNotFound);
}

TEST_F(RedisStoreTest, ReadRealmReturnsExactlyTheRowsAfterSince) {
  RealmId realm = MustInsertRealm("acme");
  RealmId other = MustInsertRealm("other");
  std::vector<UserId> users;
  for (int i = 0; i < 6; ++i) {
    users.push_back(
        MustInsertUser(User(realm, "u" + std::to_string(i) + "@x")));
  }
  MustInsertUser(User(other, "elsewhere@x"));
  ASSERT_TRUE(store_->SetAccess({.realm_id = realm,
                                 .viewer = users[2],
                                 .visible = {users[4], users[0]}}));
  std::map<UserId, UpdateId> last;  // user -> its row's update id
  Micros now = kBase;
  UpdateId pid = 0;  // presence ids of a fresh realm: 1, 2, 3, ...
  for (int round = 0; round < 3; ++round) {
    for (std::size_t i = round; i < users.size(); ++i) {
      now += SecondsToMicros(61);
      auto got = store_->Report(realm, users[i], now, ReportStatus::kActive);
      ASSERT_TRUE(got.has_value());
      ASSERT_TRUE(got->wrote);
      last[users[i]] = ++pid;
    }
  }
  ASSERT_TRUE(
      store_->Report(other, users.back() + 1, now, ReportStatus::kIdle));
  const UpdateId current = MustUpdateId(realm);
  EXPECT_EQ(current, pid);
  const UpdateId log = MustSeq(realm);
  for (UpdateId since = -1; since <= current + 1; ++since) {
    SCOPED_TRACE("since " + std::to_string(since));
    auto state = store_->ReadRealm(realm, since);
    ASSERT_TRUE(state.has_value()) << state.error();
    EXPECT_EQ(state->realm.id, realm);
    EXPECT_EQ(state->realm.subdomain, "acme");
    EXPECT_EQ(state->realm.last_update_id, current);
    EXPECT_EQ(state->seq, log);
    ASSERT_EQ(state->users.size(), users.size());
    for (std::size_t i = 0; i < users.size(); ++i) {
      EXPECT_EQ(state->users[i].id, users[i]);
    }
    std::vector<UserId> want;
    for (const auto& [user, id] : last) {
      if (id > since) want.push_back(user);
    }
    std::vector<UserId> got;
    for (const PresenceRecord& row : state->rows) {
      EXPECT_EQ(row.realm_id, realm);
      EXPECT_GT(row.last_update_id, since);
      EXPECT_EQ(row.last_update_id, last[row.user_id]);
      got.push_back(row.user_id);
    }
    EXPECT_EQ(got, want);
    EXPECT_THAT(state->access, ::testing::ElementsAre(AccessRecord{
                                   .realm_id = realm,
                                   .viewer = users[2],
                                   .visible = {users[0], users[4]}}));
  }
  auto missing = store_->ReadRealm(other + 10, 0);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error(), Errc::kNotFound);
}

TEST_F(RedisStoreTest, FindRealmIdIgnoresAsciiCaseAndFollowsRenames) {
  RealmId acme = MustInsertRealm("Acme");
  MustInsertRealm("zeta");
  auto found = store_->FindRealmId("aCME");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(*found, std::optional<RealmId>(acme));
  found = store_->FindRealmId("nope");
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(*found, std::nullopt);

  ASSERT_TRUE(store_->UpdateRealm(RealmRecord{
      .id = acme, .subdomain = "Beta", .name = "B", .date_created = kBase}));
  EXPECT_EQ(*store_->FindRealmId("acme"), std::nullopt);
  EXPECT_EQ(*store_->FindRealmId("BETA"), std::optional<RealmId>(acme));
  // The freed name can be taken again.
  RealmId again = MustInsertRealm("ACME");
  EXPECT_EQ(*store_->FindRealmId("acme"), std::optional<RealmId>(again));
}

TEST_F(RedisStoreTest, NodesGetDistinctIdsAndAddresses) {
  auto a = store_->RegisterNode("10.0.0.1:8080", kNodeTtl);
  auto b = store_->RegisterNode("10.0.0.2:8080", kNodeTtl);
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(b.has_value());
  EXPECT_NE(*a, *b);
  EXPECT_EQ(*store_->NodeAddress(*a), "10.0.0.1:8080");
  EXPECT_EQ(*store_->NodeAddress(*b), "10.0.0.2:8080");
  EXPECT_EQ(*store_->NodeAddress(*b + 100), std::nullopt);
  // Another process sees the same registry.
  auto second = Open();
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(*second->NodeAddress(*a), "10.0.0.1:8080");
  auto c = second->RegisterNode("10.0.0.3:8080", kNodeTtl);
  ASSERT_TRUE(c.has_value());
  EXPECT_GT(*c, *b);
}

TEST_F(RedisStoreTest, ANodeThatStopsRefreshingExpiresAndIsPruned) {
  const auto start = steady_clock::now();
  auto dead = store_->RegisterNode("127.0.0.1:7001", milliseconds(1000));
  auto alive = store_->RegisterNode("127.0.0.1:7002", milliseconds(1000));
  ASSERT_TRUE(dead.has_value()) << dead.error();
  ASSERT_TRUE(alive.has_value()) << alive.error();
  EXPECT_EQ(*store_->NodeAddress(*dead), "127.0.0.1:7001");
  // Only `alive` refreshes, to far ahead.
  ASSERT_TRUE(store_->RefreshNode(*alive, "127.0.0.1:7002", kNodeTtl));
  // Wait (bounded) for Redis's clock to pass the dead node's deadline.
  std::optional<std::string> seen = "127.0.0.1:7001";
  while (seen && steady_clock::now() - start < std::chrono::seconds(10)) {
    auto got = store_->NodeAddress(*dead);
    ASSERT_TRUE(got.has_value()) << got.error();
    seen = *got;
    if (seen) std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_EQ(seen, std::nullopt);
  EXPECT_GE(steady_clock::now() - start, milliseconds(1000));
  EXPECT_EQ(*store_->NodeAddress(*alive), "127.0.0.1:7002");
  auto live = store_->LiveNodes();
  ASSERT_TRUE(live.has_value()) << live.error();
  EXPECT_EQ(*live, (std::vector<std::pair<std::int64_t, std::string>>{
                       {*alive, "127.0.0.1:7002"}}));
  // Expired but not yet pruned: the entry is still in the hash ...
  const std::string nodes = "presenced:{presenced}:nodes";
  auto kept = server_->Command({"HEXISTS", nodes, std::to_string(*dead)});
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->integer, 1);
  // ... until the next registration or refresh drops it.
  ASSERT_TRUE(store_->RefreshNode(*alive, "127.0.0.1:7002", kNodeTtl));
  auto pruned = server_->Command({"HEXISTS", nodes, std::to_string(*dead)});
  ASSERT_TRUE(pruned.has_value());
  EXPECT_EQ(pruned->integer, 0);
  auto deadlines =
      server_->Command({"ZCARD", "presenced:{presenced}:node_deadlines"});
  ASSERT_TRUE(deadlines.has_value());
  EXPECT_EQ(deadlines->integer, 1);
  // A node that comes back (it was only slow) registers again under its id.
  ASSERT_TRUE(store_->RefreshNode(*dead, "127.0.0.1:7001", kNodeTtl));
  EXPECT_EQ(*store_->NodeAddress(*dead), "127.0.0.1:7001");
}

TEST_F(RedisStoreTest, ScriptsAreReloadedAfterTheServerForgetsThem) {
  RealmId realm = MustInsertRealm("acme");
  UserId u = MustInsertUser(User(realm, "a@x"));
  ASSERT_TRUE(server_->Command({"SCRIPT", "FLUSH"}));
  auto got = store_->Report(realm, u, kBase, ReportStatus::kActive);
  ASSERT_TRUE(got.has_value()) << got.error();
  EXPECT_TRUE(got->wrote);
}

// Two threads failing at once against a dead server each get the reason of
// their own call: the command that failed and the address it could not reach.
TEST(RedisStoreDownTest, ConcurrentFailuresEachCarryTheirOwnReason) {
  std::string why;
  auto server = RedisServer::Start({}, false, &why);
  ASSERT_NE(server, nullptr) << why;
  RedisStore::Options options;
  options.timeouts.connect = milliseconds(500);
  options.timeouts.io = milliseconds(1000);
  options.connections = 2;
  auto opened = RedisStore::Open(server->url(), options);
  ASSERT_TRUE(opened.has_value()) << opened.error();
  std::unique_ptr<RedisStore> store = std::move(*opened);
  auto realm = store->InsertRealm({.subdomain = "acme", .name = "A"});
  ASSERT_TRUE(realm.has_value()) << realm.error();
  server->Kill();
  const std::string where = server->address();

  constexpr int kRounds = 50;
  std::latch start(2);
  std::vector<std::string> reads;
  std::vector<std::string> registers;
  std::thread reader([&] {
    start.arrive_and_wait();
    for (int i = 0; i < kRounds; ++i) {
      auto seq = store->CurrentSeq(*realm);
      reads.push_back(seq ? "succeeded" : seq.error().message());
    }
  });
  std::thread registrar([&] {
    start.arrive_and_wait();
    for (int i = 0; i < kRounds; ++i) {
      auto node = store->RegisterNode("x:" + std::to_string(i), kNodeTtl);
      registers.push_back(node ? "succeeded" : node.error().message());
    }
  });
  reader.join();
  registrar.join();
  ASSERT_EQ(reads.size(), static_cast<std::size_t>(kRounds));
  ASSERT_EQ(registers.size(), static_cast<std::size_t>(kRounds));
  for (const std::string& r : reads) {
    EXPECT_THAT(r, ::testing::HasSubstr("HMGET"));
    EXPECT_THAT(r, ::testing::HasSubstr(where));
  }
  for (const std::string& r : registers) {
    EXPECT_THAT(r, ::testing::HasSubstr("register_node"));
    EXPECT_THAT(r, ::testing::Not(::testing::HasSubstr("HMGET")));
    EXPECT_THAT(r, ::testing::HasSubstr(where));
  }
}

TEST(RedisStoreDownTest, ADeadServerGivesErrorsNotHangs) {
  std::string why;
  auto server = RedisServer::Start({}, false, &why);
  ASSERT_NE(server, nullptr) << why;
  RedisStore::Options options;
  options.timeouts.connect = milliseconds(500);
  options.timeouts.io = milliseconds(1000);
  auto opened = RedisStore::Open(server->url(), options);
  ASSERT_TRUE(opened.has_value()) << opened.error();
  std::unique_ptr<RedisStore> store = std::move(*opened);
  auto realm = store->InsertRealm({.subdomain = "acme", .name = "A"});
  ASSERT_TRUE(realm.has_value());
  RecordingSink sink;
  ASSERT_TRUE(store->Subscribe(&sink));

  server->Kill();
  const std::string where = server->address();
  auto check_fast = [&](auto&& call, const char* what) {
    const auto start = steady_clock::now();
    auto result = call();
    EXPECT_LT(steady_clock::now() - start, milliseconds(1500)) << what;
    ASSERT_FALSE(result.has_value()) << what;
    EXPECT_EQ(result.error(), Errc::kStoreFailed) << what;
    // The failed call's own error names the server.
    EXPECT_THAT(result.error().message(), ::testing::HasSubstr(where)) << what;
  };
  check_fast([&] { return store->CurrentSeq(*realm); }, "CurrentSeq");
  check_fast(
      [&] { return store->Report(*realm, 1, kBase, ReportStatus::kActive); },
      "Report");
  check_fast([&] { return store->Load(); }, "Load");
  check_fast([&] { return store->InsertRealm({.subdomain = "b"}); },
             "InsertRealm");
  check_fast([&] { return store->ReadRealm(*realm, 0); }, "ReadRealm");
  check_fast([&] { return store->RegisterNode("x:1", kNodeTtl); },
             "RegisterNode");
  auto refused = store->RegisterNode("x:2", kNodeTtl);
  ASSERT_FALSE(refused.has_value());
  EXPECT_THAT(refused.error().message(),
              ::testing::HasSubstr("Connection refused"));

  // The feed is retrying in the background; Unsubscribe stops it promptly.
  const auto start = steady_clock::now();
  store->Unsubscribe();
  EXPECT_LT(steady_clock::now() - start, milliseconds(1000));
  EXPECT_EQ(sink.WaitForLost(1, milliseconds(0)), 0);
}

TEST_F(RedisStoreTest,
       ReconnectsOnTheNextCallAfterTheServerClosedTheConnection) {
  RealmId realm = MustInsertRealm("acme");
  ASSERT_TRUE(
      server_->Command({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"}));
  auto seq = store_->CurrentSeq(realm);
  ASSERT_TRUE(seq.has_value()) << seq.error();
}

TEST_F(RedisStoreTest, SubscribeTwiceIsRefusedAndUnsubscribeIsIdempotent) {
  RecordingSink a;
  RecordingSink b;
  ASSERT_TRUE(store_->Subscribe(&a));
  auto again = store_->Subscribe(&b);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error(), Errc::kInvalidArgument);
  store_->Unsubscribe();
  store_->Unsubscribe();
  ASSERT_TRUE(store_->Subscribe(&b));
  RealmId realm = MustInsertRealm("acme");
  auto entries = b.WaitForEntries(1);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].realm_id, realm);
  EXPECT_TRUE(a.entries().empty());
}

}  // namespace
}  // namespace presence::store

namespace presence::store {
namespace {

TEST_F(RedisStoreTest, CountRequestIsASlidingLogPerUserSharedByConnections) {
  auto second = RedisStore::Open(server_->url());
  ASSERT_TRUE(second.has_value()) << second.error();
  const Micros window = SecondsToMicros(60);
  // Three requests allowed per window, counted across both connections.
  for (int i = 0; i < 3; ++i) {
    RedisStore* s = i % 2 ? second->get() : store_.get();
    auto c = s->CountRequest(7, kBase + i, 3, window);
    ASSERT_TRUE(c.has_value()) << c.error();
    EXPECT_TRUE(c->allowed);
    EXPECT_EQ(c->in_window, i + 1);
    EXPECT_EQ(c->oldest, kBase);
  }
  auto refused = (*second)->CountRequest(7, kBase + 10, 3, window);
  ASSERT_TRUE(refused.has_value());
  EXPECT_FALSE(refused->allowed);
  EXPECT_EQ(refused->in_window, 3);  // a refused request is not counted
  // Another user has its own log.
  EXPECT_TRUE(store_->CountRequest(8, kBase + 10, 3, window)->allowed);
  // Exactly one window after the first request it has left the window.
  auto later = store_->CountRequest(7, kBase + window, 3, window);
  ASSERT_TRUE(later.has_value());
  EXPECT_TRUE(later->allowed);
  EXPECT_EQ(later->in_window, 3);
  EXPECT_EQ(later->oldest, kBase + 1);
}

}  // namespace
}  // namespace presence::store
