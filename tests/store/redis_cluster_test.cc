// RedisStore on a real three-master Redis Cluster (started by the test on
// free loopback ports, joined with redis-cli --cluster create): realms spread
// over the shards, every SharedStore path works across them, and a slot that
// moves to another master is followed: ASK while it migrates (the client
// retries on the importing node after ASKING, without changing its slot
// map), TRYAGAIN while a multi-key script's keys are split, MOVED once the
// migration is done.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "store/redis_server.h"
#include "store/redis_store.h"

namespace presence::store {
namespace {

constexpr Micros kBase = 1'700'000'000'000'001;

class Sink : public FeedSink {
 public:
  void OnFeedEntry(const FeedEntry& entry) override {
    std::lock_guard<std::mutex> lock(mu_);
    entries_.push_back(entry);
    cv_.notify_all();
  }
  void OnFeedLost() override {}
  std::vector<FeedEntry> WaitFor(std::size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(10),
                 [&] { return entries_.size() >= n; });
    return entries_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<FeedEntry> entries_;
};

std::string MetaKey(RealmId realm) {
  return "presenced:{r" + std::to_string(realm) + "}:meta";
}

class RedisClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    cluster_ = RedisCluster::Start(&why);
    ASSERT_NE(cluster_, nullptr) << why;
    auto opened = RedisStore::Open(cluster_->url());
    ASSERT_TRUE(opened.has_value()) << opened.error();
    store_ = std::move(*opened);
    ASSERT_TRUE(store_->cluster());
  }

  // The node (index) that owns `slot`.
  int Owner(int slot) {
    auto slots = cluster_->nodes()[0]->Command({"CLUSTER", "SLOTS"});
    EXPECT_TRUE(slots.has_value());
    if (!slots) return -1;
    for (const RedisReply& range : slots->elements) {
      if (slot < range.elements[0].integer ||
          slot > range.elements[1].integer) {
        continue;
      }
      const int port = static_cast<int>(range.elements[2].elements[1].integer);
      for (std::size_t i = 0; i < cluster_->nodes().size(); ++i) {
        if (cluster_->nodes()[i]->port() == port) return static_cast<int>(i);
      }
    }
    return -1;
  }

  // CLUSTER MYID of node `i`.
  std::string IdOf(int i) {
    auto r = cluster_->nodes()[i]->Command({"CLUSTER", "MYID"});
    EXPECT_TRUE(r.has_value());
    return r ? r->str : std::string();
  }

  // A counter of node `i`'s INFO `section` (0 if absent): `field` is e.g.
  // "cmdstat_asking" (calls=) or "errorstat_ASK" (count=).
  long long InfoCount(int i, const std::string& section,
                      const std::string& field) {
    auto r = cluster_->nodes()[i]->Command({"INFO", section});
    EXPECT_TRUE(r.has_value());
    if (!r) return -1;
    const std::size_t at = r->str.find(field + ":");
    if (at == std::string::npos) return 0;
    const std::size_t eq = r->str.find('=', at);
    return std::atoll(r->str.c_str() + eq + 1);
  }
  long long AskingCalls(int i) {
    return InfoCount(i, "commandstats", "cmdstat_asking");
  }
  long long Errors(int i, const std::string& prefix) {
    return InfoCount(i, "errorstats", "errorstat_" + prefix);
  }

  // Starts moving `slot` from node `from` to node `to` (as redis-cli
  // --cluster reshard does): IMPORTING on the target, then MIGRATING on the
  // source.
  void BeginMigration(int slot, int from, int to) {
    const auto& nodes = cluster_->nodes();
    const std::string s = std::to_string(slot);
    auto imp =
        nodes[to]->Command({"CLUSTER", "SETSLOT", s, "IMPORTING", IdOf(from)});
    ASSERT_TRUE(imp.has_value());
    ASSERT_EQ(imp->str, "OK") << imp->str;
    auto mig =
        nodes[from]->Command({"CLUSTER", "SETSLOT", s, "MIGRATING", IdOf(to)});
    ASSERT_TRUE(mig.has_value());
    ASSERT_EQ(mig->str, "OK") << mig->str;
  }

  // MIGRATEs `keys` (all of the slot's if empty) from node `from` to `to`.
  void MigrateKeys(int slot, int from, int to,
                   std::vector<std::string> keys = {}) {
    const auto& nodes = cluster_->nodes();
    if (keys.empty()) {
      auto in_slot = nodes[from]->Command(
          {"CLUSTER", "GETKEYSINSLOT", std::to_string(slot), "100"});
      ASSERT_TRUE(in_slot.has_value());
      for (const RedisReply& k : in_slot->elements) keys.push_back(k.str);
    }
    ASSERT_FALSE(keys.empty());
    std::vector<std::string> migrate = {
        "MIGRATE", "127.0.0.1", std::to_string(nodes[to]->port()), "", "0",
        "5000",    "KEYS"};
    migrate.insert(migrate.end(), keys.begin(), keys.end());
    auto migrated = nodes[from]->Command(migrate);
    ASSERT_TRUE(migrated.has_value());
    ASSERT_EQ(migrated->str, "OK") << migrated->str;
  }

  // Gives `slot` to node `to` on every node: the new owner first, then the
  // others (the old owner before the third).
  void EndMigration(int slot, int from, int to) {
    const auto& nodes = cluster_->nodes();
    for (int i : {to, from, 3 - to - from}) {
      auto r = nodes[i]->Command(
          {"CLUSTER", "SETSLOT", std::to_string(slot), "NODE", IdOf(to)});
      ASSERT_TRUE(r.has_value());
      ASSERT_EQ(r->str, "OK") << r->str;
    }
  }

  std::unique_ptr<RedisCluster> cluster_;
  std::unique_ptr<RedisStore> store_;
};

TEST_F(RedisClusterTest, Issue14_ScriptsAreLoadedOnEveryMaster) {
  // A script runs on its keys' shard: one that never saw SCRIPT LOAD
  // would answer NOSCRIPT (and cost a round trip) once per script.
  for (const auto& node : cluster_->nodes()) {
    ASSERT_TRUE(node->Command({"SCRIPT", "FLUSH"}));
  }
  auto opened = RedisStore::Open(cluster_->url());
  ASSERT_TRUE(opened.has_value()) << opened.error();
  for (const auto& node : cluster_->nodes()) {
    auto info = node->Command({"INFO", "memory"});
    ASSERT_TRUE(info);
    const std::string key = "number_of_cached_scripts:";
    const auto at = info->str.find(key);
    ASSERT_NE(at, std::string::npos) << info->str;
    EXPECT_GT(std::stoi(info->str.substr(at + key.size())), 0)
        << "master on port " << node->port();
  }
}

TEST_F(RedisClusterTest, KeySlotsAgreeWithTheCluster) {
  const std::string keys[] = {"123456789",
                              "{user1000}.following",
                              "foo{}{bar}",
                              "foo{{bar}}zap",
                              "foo{bar}{zap}",
                              "foo{",
                              "}{",
                              "{}",
                              "presenced:{presenced}:nodes",
                              "presenced:{r12}:rows",
                              std::string("bin\0{\xff}", 7)};
  for (const std::string& key : keys) {
    auto slot = cluster_->nodes()[0]->Command({"CLUSTER", "KEYSLOT", key});
    ASSERT_TRUE(slot.has_value()) << key;
    ASSERT_EQ(slot->type, RedisReply::Type::kInteger) << slot->str;
    EXPECT_EQ(RedisKeySlot(key), slot->integer) << key;
  }
}

TEST_F(RedisClusterTest, RealmsSpreadOverMastersAndEverythingWorks) {
  // A second process that knows only one seed finds the others itself.
  auto one_seed =
      RedisStore::Open("redis://" + cluster_->nodes()[1]->address());
  ASSERT_TRUE(one_seed.has_value()) << one_seed.error();
  RedisStore* other = one_seed->get();
  EXPECT_TRUE(other->cluster());

  Sink sink;
  ASSERT_TRUE(store_->Subscribe(&sink));
  constexpr int kRealms = 20;
  constexpr int kUsers = 3;
  std::vector<RealmId> realms;
  std::vector<UserId> users;
  std::size_t expected_entries = 0;
  for (int r = 0; r < kRealms; ++r) {
    RedisStore* s = r % 2 == 0 ? store_.get() : other;
    auto realm =
        s->InsertRealm({.subdomain = "realm" + std::to_string(r), .name = "R"});
    ASSERT_TRUE(realm.has_value()) << realm.error();
    EXPECT_EQ(*realm, r + 1);  // dense ids across slots
    realms.push_back(*realm);
    ++expected_entries;
    for (int u = 0; u < kUsers; ++u) {
      auto id = s->InsertUser({.realm_id = *realm,
                               .email = "u" + std::to_string(u) + "@x",
                               .full_name = "U",
                               .date_joined = kBase});
      ASSERT_TRUE(id.has_value()) << id.error();
      EXPECT_EQ(*id, static_cast<UserId>(users.size() + 1));
      users.push_back(*id);
      auto wrote = s->Report(*realm, *id, kBase + u, ReportStatus::kActive);
      ASSERT_TRUE(wrote.has_value()) << wrote.error();
      EXPECT_TRUE(wrote->wrote);
      expected_entries += 2;
    }
  }
  // Uniqueness still holds across slots.
  auto dup_realm = other->InsertRealm({.subdomain = "REALM3"});
  ASSERT_FALSE(dup_realm.has_value());
  EXPECT_EQ(dup_realm.error(), Errc::kAlreadyExists);
  auto dup_user = store_->InsertUser({.realm_id = realms[4], .email = "U1@X"});
  ASSERT_FALSE(dup_user.has_value());
  EXPECT_EQ(dup_user.error(), Errc::kAlreadyExists);

  auto snap = other->Load();
  ASSERT_TRUE(snap.has_value()) << snap.error();
  ASSERT_EQ(snap->realms.size(), static_cast<std::size_t>(kRealms));
  ASSERT_EQ(snap->users.size(), users.size());
  ASSERT_EQ(snap->presence.size(), users.size());
  for (int r = 0; r < kRealms; ++r) {
    EXPECT_EQ(snap->realms[r].id, realms[r]);
    // Presence ids count presence writes only (the log numbers the rest).
    EXPECT_EQ(snap->realms[r].last_update_id, kUsers);
  }
  for (std::size_t i = 0; i < users.size(); ++i) {
    EXPECT_EQ(snap->users[i].id, users[i]);
    EXPECT_EQ(snap->presence[i].user_id, users[i]);
  }
  for (int r = 0; r < kRealms; ++r) {
    auto state = store_->ReadRealm(realms[r], kUsers - 1);
    ASSERT_TRUE(state.has_value()) << state.error();
    EXPECT_EQ(state->users.size(), static_cast<std::size_t>(kUsers));
    ASSERT_EQ(state->rows.size(), 1u);  // only the last report is after
    EXPECT_EQ(state->rows[0].last_update_id, kUsers);
    EXPECT_EQ(state->seq, 2 * kUsers);
    auto found = other->FindRealmId("Realm" + std::to_string(r));
    ASSERT_TRUE(found.has_value());
    EXPECT_EQ(*found, std::optional<RealmId>(realms[r]));
  }

  // The feed carries every realm's entries, each realm's in order.
  auto entries = sink.WaitFor(expected_entries);
  ASSERT_EQ(entries.size(), expected_entries);
  std::map<RealmId, std::vector<UpdateId>> seqs;
  for (const FeedEntry& e : entries) seqs[e.realm_id].push_back(e.seq);
  ASSERT_EQ(seqs.size(), static_cast<std::size_t>(kRealms));
  for (const auto& [realm, list] : seqs) {
    std::vector<UpdateId> want;
    for (UpdateId s = 0; s <= 2 * kUsers; ++s) want.push_back(s);
    EXPECT_EQ(list, want) << "realm " << realm;
  }

  // The client computes the slots the server computes, and the realms live
  // on more than one master.
  std::set<int> owners;
  for (RealmId realm : realms) {
    auto slot =
        cluster_->nodes()[0]->Command({"CLUSTER", "KEYSLOT", MetaKey(realm)});
    ASSERT_TRUE(slot.has_value());
    EXPECT_EQ(slot->integer, RedisKeySlot(MetaKey(realm)));
    owners.insert(Owner(RedisKeySlot(MetaKey(realm))));
  }
  EXPECT_GE(owners.size(), 2u);
  int nonempty = 0;
  for (const auto& node : cluster_->nodes()) {
    auto n = node->Command({"DBSIZE"});
    ASSERT_TRUE(n.has_value());
    if (n->integer > 0) ++nonempty;
  }
  EXPECT_GE(nonempty, 2);

  auto node = other->RegisterNode("127.0.0.1:9000", std::chrono::seconds(60));
  ASSERT_TRUE(node.has_value());
  EXPECT_EQ(*store_->NodeAddress(*node), "127.0.0.1:9000");
}

TEST_F(RedisClusterTest, FollowsARealmWhoseSlotMovedToAnotherMaster) {
  auto realm = store_->InsertRealm({.subdomain = "acme", .name = "A"});
  ASSERT_TRUE(realm.has_value()) << realm.error();
  auto user = store_->InsertUser({.realm_id = *realm, .email = "a@x"});
  ASSERT_TRUE(user.has_value());
  ASSERT_TRUE(store_->Report(*realm, *user, kBase, ReportStatus::kActive));

  // Move the realm's slot, keys included, to another master by hand (as
  // redis-cli --cluster reshard does); store_ still has the old map.
  const int slot = RedisKeySlot(MetaKey(*realm));
  const int from = Owner(slot);
  ASSERT_GE(from, 0);
  const int to = (from + 1) % 3;
  ASSERT_NO_FATAL_FAILURE(BeginMigration(slot, from, to));
  ASSERT_NO_FATAL_FAILURE(MigrateKeys(slot, from, to));
  ASSERT_NO_FATAL_FAILURE(EndMigration(slot, from, to));

  auto wrote =
      store_->Report(*realm, *user, kBase + 60'000'000, ReportStatus::kActive);
  ASSERT_TRUE(wrote.has_value()) << wrote.error();
  EXPECT_TRUE(wrote->wrote);
  auto state = store_->ReadRealm(*realm, 0);
  ASSERT_TRUE(state.has_value()) << state.error();
  ASSERT_EQ(state->rows.size(), 1u);
  EXPECT_EQ(state->rows[0].last_connected, kBase + 60'000'000);
  EXPECT_EQ(Owner(slot), to);
}

TEST_F(RedisClusterTest, AskRedirectRetriesOnTheImportingNodeWithAsking) {
  auto seeds = ParseRedisUrl(cluster_->url());
  ASSERT_TRUE(seeds.has_value());
  auto client = RedisClient::Connect(*seeds, RedisTimeouts{});
  ASSERT_TRUE(client.has_value()) << client.error();
  RedisClient& c = **client;
  ASSERT_TRUE(c.cluster());
  // Two keys of one slot: one will have moved, one not yet.
  const std::string moved = "{ask}:moved";
  const std::string stays = "{ask}:stays";
  for (const std::string& k : {moved, stays}) {
    const std::string set[] = {"SET", k, "value of " + k};
    auto r = c.Run(set, k);
    ASSERT_TRUE(r.has_value()) << r.error();
    ASSERT_EQ(r->str, "OK");
  }
  const int slot = RedisKeySlot(moved);
  const int from = Owner(slot);
  ASSERT_GE(from, 0);
  const int to = (from + 1) % 3;
  ASSERT_NO_FATAL_FAILURE(BeginMigration(slot, from, to));
  ASSERT_NO_FATAL_FAILURE(MigrateKeys(slot, from, to, {moved}));

  // The source no longer has `moved`: it answers ASK; the client sends
  // ASKING and the command to the target, which serves it.
  const long long ask_before = Errors(from, "ASK");
  const long long asking_before = AskingCalls(to);
  const std::string get_moved[] = {"GET", moved};
  auto got = c.Run(get_moved, moved);
  ASSERT_TRUE(got.has_value()) << got.error();
  EXPECT_EQ(got->type, RedisReply::Type::kString) << got->str;
  EXPECT_EQ(got->str, "value of " + moved);
  EXPECT_EQ(Errors(from, "ASK"), ask_before + 1);
  EXPECT_EQ(AskingCalls(to), asking_before + 1);

  // ASK is for one command: the slot map still names the source, which
  // still serves the key it has, with no redirect and no ASKING.
  const std::string get_stays[] = {"GET", stays};
  auto kept = c.Run(get_stays, stays);
  ASSERT_TRUE(kept.has_value()) << kept.error();
  EXPECT_EQ(kept->str, "value of " + stays);
  EXPECT_EQ(Errors(from, "ASK"), ask_before + 1);
  EXPECT_EQ(AskingCalls(to), asking_before + 1);

  // A write to a key of the slot that exists nowhere goes the same way.
  const std::string set_new[] = {"SET", "{ask}:new", "fresh"};
  auto created = c.Run(set_new, "{ask}:new");
  ASSERT_TRUE(created.has_value()) << created.error();
  EXPECT_EQ(created->str, "OK");
  EXPECT_EQ(AskingCalls(to), asking_before + 2);
  // Where the keys are now: the target holds the moved and the new one.
  auto count = [&](int i) {
    auto r = cluster_->nodes()[i]->Command(
        {"CLUSTER", "COUNTKEYSINSLOT", std::to_string(slot)});
    EXPECT_TRUE(r.has_value());
    return r ? r->integer : -1;
  };
  EXPECT_EQ(count(from), 1);
  EXPECT_EQ(count(to), 2);
}

TEST_F(RedisClusterTest, ARealmWhoseSlotIsMigratingKeepsWorking) {
  auto realm = store_->InsertRealm({.subdomain = "acme", .name = "A"});
  ASSERT_TRUE(realm.has_value()) << realm.error();
  auto user = store_->InsertUser({.realm_id = *realm, .email = "a@x"});
  ASSERT_TRUE(user.has_value());
  ASSERT_TRUE(store_->Report(*realm, *user, kBase, ReportStatus::kActive));
  auto seq_before = store_->CurrentSeq(*realm);
  ASSERT_TRUE(seq_before.has_value()) << seq_before.error();

  const int slot = RedisKeySlot(MetaKey(*realm));
  const int from = Owner(slot);
  ASSERT_GE(from, 0);
  const int to = (from + 1) % 3;
  ASSERT_NO_FATAL_FAILURE(BeginMigration(slot, from, to));
  ASSERT_NO_FATAL_FAILURE(MigrateKeys(slot, from, to));

  // The read barrier (one key) follows ASK to the importing node.
  const long long asking_before = AskingCalls(to);
  auto seq = store_->CurrentSeq(*realm);
  ASSERT_TRUE(seq.has_value()) << seq.error();
  EXPECT_EQ(*seq, *seq_before);
  EXPECT_GT(AskingCalls(to), asking_before);

  // A realm script names keys the realm does not have yet, so while the
  // slot is split the target answers TRYAGAIN even after ASKING; the client
  // retries, and the report lands once the migration completes.
  const long long tryagain_before = Errors(to, "TRYAGAIN");
  auto report = std::async(std::launch::async, [&] {
    return store_->Report(*realm, *user, kBase + 60'000'000,
                          ReportStatus::kActive);
  });
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (Errors(to, "TRYAGAIN") == tryagain_before &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_GT(Errors(to, "TRYAGAIN"), tryagain_before);
  ASSERT_NO_FATAL_FAILURE(EndMigration(slot, from, to));
  auto wrote = report.get();
  ASSERT_TRUE(wrote.has_value()) << wrote.error();
  EXPECT_TRUE(wrote->wrote);

  // Done: every key is on the new owner, and reads follow it.
  auto state = store_->ReadRealm(*realm, 0);
  ASSERT_TRUE(state.has_value()) << state.error();
  ASSERT_EQ(state->rows.size(), 1u);
  EXPECT_EQ(state->rows[0].last_connected, kBase + 60'000'000);
  EXPECT_EQ(Owner(slot), to);
  auto on_old = cluster_->nodes()[from]->Command(
      {"CLUSTER", "COUNTKEYSINSLOT", std::to_string(slot)});
  ASSERT_TRUE(on_old.has_value());
  EXPECT_EQ(on_old->integer, 0);
}

}  // namespace
}  // namespace presence::store
