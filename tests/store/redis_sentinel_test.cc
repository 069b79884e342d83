// The Redis store's availability pieces that need no failover to test: the
// redis-sentinel:// url, how a sentinel client reports what it could not
// resolve, and WAIT after writes (RedisWait) against a real master with and
// without a replica. The failover itself is tested end to end with real
// sentinels in tests/blackbox/test_sentinel.py.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "store/redis_client.h"
#include "store/redis_server.h"
#include "store/redis_store.h"

namespace presence::store {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;
using ::testing::HasSubstr;

TEST(RedisSentinelUrlTest, ParsesSentinelsAndMasterName) {
  auto one = ParseRedisSentinelUrl("redis-sentinel://127.0.0.1:26379/mymaster");
  ASSERT_TRUE(one.has_value()) << one.error();
  EXPECT_EQ(one->sentinels,
            (std::vector<RedisAddress>{{.host = "127.0.0.1", .port = 26379}}));
  EXPECT_EQ(one->master_name, "mymaster");

  auto three = ParseRedisSentinelUrl(
      "redis-sentinel://127.0.0.1:1,localhost:2,::1:3/presence-main_1.x");
  ASSERT_TRUE(three.has_value()) << three.error();
  EXPECT_EQ(three->sentinels,
            (std::vector<RedisAddress>{{.host = "127.0.0.1", .port = 1},
                                       {.host = "localhost", .port = 2},
                                       {.host = "::1", .port = 3}}));
  EXPECT_EQ(three->master_name, "presence-main_1.x");
}

TEST(RedisSentinelUrlTest, RejectsMalformedUrlsWithAMessage) {
  const struct {
    const char* url;
    const char* says;
  } cases[] = {
      {"", "redis-sentinel://HOST:PORT"},
      {"redis://127.0.0.1:26379/m", "(got"},
      {"redis-sentinel:/127.0.0.1:26379/m", "(got"},
      {"redis-sentinel://127.0.0.1:26379", "no /MASTERNAME"},
      {"redis-sentinel://127.0.0.1:26379/", "empty master name"},
      {"redis-sentinel:///m", "bad address ''"},
      {"redis-sentinel://127.0.0.1/m", "bad address '127.0.0.1'"},
      {"redis-sentinel://127.0.0.1:0/m", "bad address"},
      {"redis-sentinel://127.0.0.1:65536/m", "bad address"},
      {"redis-sentinel://127.0.0.1:1,/m", "bad address ''"},
      {"redis-sentinel://u@127.0.0.1:1/m", "bad address"},
      {"redis-sentinel://127.0.0.1:1/m/x", "bad master name 'm/x'"},
      {"redis-sentinel://127.0.0.1:1/m x", "bad master name"},
      {"redis-sentinel://127.0.0.1:1/m?db=0", "bad master name"},
      {"redis-sentinel://127.0.0.1:1/a,b", "bad master name"},
      {"redis-sentinel://127.0.0.1:1/m\n", "bad master name"},
  };
  for (const auto& c : cases) {
    auto parsed = ParseRedisSentinelUrl(c.url);
    ASSERT_FALSE(parsed.has_value()) << c.url;
    EXPECT_EQ(parsed.error(), Errc::kInvalidArgument) << c.url;
    EXPECT_THAT(parsed.error().message(), HasSubstr(c.says)) << c.url;
    EXPECT_THAT(parsed.error().message(),
                HasSubstr("redis-sentinel://HOST:PORT[,HOST:PORT...]/"
                          "MASTERNAME"))
        << c.url;
    // The store says the same when opened with it.
    if (std::string_view(c.url).starts_with("redis-sentinel://")) {
      auto opened = RedisStore::Open(c.url);
      ASSERT_FALSE(opened.has_value()) << c.url;
      EXPECT_EQ(opened.error(), Errc::kInvalidArgument) << c.url;
    }
  }
}

TEST(RedisSentinelUrlTest, BothSchemesNameARedisStore) {
  EXPECT_TRUE(IsRedisStoreUrl("redis://127.0.0.1:6379"));
  EXPECT_TRUE(IsRedisStoreUrl("redis-sentinel://127.0.0.1:26379/m"));
  EXPECT_FALSE(IsRedisStoreUrl("sqlite"));
  EXPECT_FALSE(IsRedisStoreUrl("rediss://127.0.0.1:6379"));
  EXPECT_FALSE(IsRedisStoreUrl("redis-sentinel:/x"));
}

TEST(RedisSentinelClientTest, NoSentinelListeningIsAClearErrorQuickly) {
  const int port = redis_test::PickPort(false);
  ASSERT_NE(port, 0);
  const auto start = steady_clock::now();
  auto opened = RedisStore::Open(
      "redis-sentinel://127.0.0.1:" + std::to_string(port) + "/mymaster");
  EXPECT_LT(steady_clock::now() - start, milliseconds(2000));
  ASSERT_FALSE(opened.has_value());
  EXPECT_EQ(opened.error(), Errc::kStoreFailed);
  EXPECT_THAT(opened.error().message(),
              HasSubstr("127.0.0.1:" + std::to_string(port)));
  EXPECT_THAT(opened.error().message(), HasSubstr("Connection refused"));
}

// A server that is not a sentinel does not know the command: said, with
// its address, instead of taking its error for a master's address.
TEST(RedisSentinelClientTest, AServerThatIsNotASentinelIsSaidSo) {
  std::string why;
  auto server = RedisServer::Start({}, false, &why);
  ASSERT_NE(server, nullptr) << why;
  auto client = RedisClient::ConnectSentinel(
      {{.host = "127.0.0.1", .port = server->port()}}, "mymaster",
      RedisTimeouts{});
  ASSERT_FALSE(client.has_value());
  EXPECT_EQ(client.error(), Errc::kStoreFailed);
  EXPECT_THAT(client.error().message(), HasSubstr(server->address()));
  EXPECT_THAT(client.error().message(),
              HasSubstr("SENTINEL get-master-addr-by-name"));
}

TEST(RedisWaitTest, AWriteNoReplicaAcknowledgedFailsAndSaysSo) {
  std::string why;
  auto master = RedisServer::Start({}, false, &why);
  ASSERT_NE(master, nullptr) << why;
  RedisStore::Options options;
  options.connections = 1;
  options.wait = {.replicas = 1, .timeout = milliseconds(50)};
  auto opened = RedisStore::Open(master->url(), options);
  ASSERT_TRUE(opened.has_value()) << opened.error();
  auto realm = (*opened)->InsertRealm({.subdomain = "acme", .name = "A"});
  ASSERT_FALSE(realm.has_value());
  EXPECT_EQ(realm.error(), Errc::kStoreFailed);
  EXPECT_THAT(realm.error().message(),
              HasSubstr("0 of 1 replicas acknowledged the write within 50 ms"));
  // Reads wait for no replica.
  EXPECT_TRUE((*opened)->FindRealmId("acme").has_value());
}

TEST(RedisWaitTest, WritesSucceedOnceAReplicaAcknowledgesThem) {
  std::string why;
  // No 5 s pause before the replica's first sync (Redis 7's default).
  auto master =
      RedisServer::Start({"--repl-diskless-sync-delay", "0"}, false, &why);
  ASSERT_NE(master, nullptr) << why;
  auto replica = RedisServer::Start(
      {"--replicaof", "127.0.0.1", std::to_string(master->port())}, false,
      &why);
  ASSERT_NE(replica, nullptr) << why;
  ASSERT_TRUE(master->WaitForReplicas(1));
  RedisStore::Options options;
  options.connections = 1;
  options.wait = {.replicas = 1, .timeout = milliseconds(5000)};
  auto opened = RedisStore::Open(master->url(), options);
  ASSERT_TRUE(opened.has_value()) << opened.error();
  RedisStore& store = **opened;
  auto realm = store.InsertRealm({.subdomain = "acme", .name = "A"});
  ASSERT_TRUE(realm.has_value()) << realm.error();
  auto user = store.InsertUser(
      {.realm_id = *realm, .email = "a@example.com", .full_name = "A"});
  ASSERT_TRUE(user.has_value()) << user.error();
  auto wrote =
      store.Report(*realm, *user, 1'700'000'000'000'000, ReportStatus::kActive);
  ASSERT_TRUE(wrote.has_value()) << wrote.error();
  EXPECT_TRUE(wrote->wrote);
  // Acknowledged: the replica has the row the moment the write returned.
  auto row = replica->Command(
      {"HEXISTS", "presenced:{r" + std::to_string(*realm) + "}:rows",
       std::to_string(*user)});
  ASSERT_TRUE(row.has_value()) << row.error();
  EXPECT_EQ(row->integer, 1);
}

}  // namespace
}  // namespace presence::store
