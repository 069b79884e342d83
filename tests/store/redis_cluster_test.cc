// RedisStore on a real three-master Redis Cluster (started by the test on
// free loopback ports, joined with redis-cli --cluster create): realms spread
// over the shards, every SharedStore path works across them, and a slot that
// moves to another master is followed (MOVED).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>

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

  std::unique_ptr<RedisCluster> cluster_;
  std::unique_ptr<RedisStore> store_;
};

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
  const auto& nodes = cluster_->nodes();
  auto id_of = [&](int i) {
    auto r = nodes[i]->Command({"CLUSTER", "MYID"});
    EXPECT_TRUE(r.has_value());
    return r ? r->str : std::string();
  };
  const std::string from_id = id_of(from);
  const std::string to_id = id_of(to);
  const std::string s = std::to_string(slot);
  ASSERT_TRUE(
      nodes[to]->Command({"CLUSTER", "SETSLOT", s, "IMPORTING", from_id}));
  ASSERT_TRUE(
      nodes[from]->Command({"CLUSTER", "SETSLOT", s, "MIGRATING", to_id}));
  auto keys = nodes[from]->Command({"CLUSTER", "GETKEYSINSLOT", s, "100"});
  ASSERT_TRUE(keys.has_value());
  ASSERT_FALSE(keys->elements.empty());
  std::vector<std::string> migrate = {
      "MIGRATE", "127.0.0.1", std::to_string(nodes[to]->port()), "", "0",
      "5000",    "KEYS"};
  for (const RedisReply& k : keys->elements) migrate.push_back(k.str);
  auto migrated = nodes[from]->Command(migrate);
  ASSERT_TRUE(migrated.has_value());
  ASSERT_EQ(migrated->str, "OK") << migrated->str;
  // The new owner first, then the old one, then the third.
  for (int i : {to, from, 3 - to - from}) {
    auto r = nodes[i]->Command({"CLUSTER", "SETSLOT", s, "NODE", to_id});
    ASSERT_TRUE(r.has_value());
    ASSERT_EQ(r->str, "OK") << r->str;
  }

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

}  // namespace
}  // namespace presence::store
