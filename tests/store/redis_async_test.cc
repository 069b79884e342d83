// RedisAsync and RedisStore::Gate against a real redis-server (started by
// the test process on a free loopback port): many commands in flight on one
// connection, in order; failures as values; the gate script (rate limit,
// report, barrier in one step) on an I/O thread's connection agreeing with
// the blocking path.
#include "store/redis_async.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "store/redis_server.h"
#include "store/redis_store.h"
#include "util/crypto.h"

namespace presence::store {
namespace {

constexpr Micros kBase = 1'700'000'000'123'457;

// Runs `io` until `done()` holds (a connected client always waits to read,
// so run() alone would not return); fails after 10 s.
template <typename Done>
void RunUntil(boost::asio::io_context& io, Done done) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(10);
  io.restart();
  while (!done()) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "no answer";
    io.run_one_for(std::chrono::milliseconds(50));
  }
}

class RedisAsyncTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = SharedRedisServer();
    ASSERT_NE(server_, nullptr);
    server_->FlushAll();
    auto seeds = ParseRedisUrl(server_->url());
    ASSERT_TRUE(seeds.has_value());
    auto client = RedisClient::Connect(*seeds, RedisTimeouts{});
    ASSERT_TRUE(client.has_value()) << client.error();
    topology_ = std::move(*client);
  }

  RedisServer* server_ = nullptr;
  std::unique_ptr<RedisClient> topology_;
  boost::asio::io_context io_;
};

TEST_F(RedisAsyncTest, ManyCommandsInFlightOnOneConnectionAnswerInOrder) {
  RedisAsync redis(io_, topology_.get(), RedisTimeouts{});
  constexpr int kCommands = 2000;
  std::vector<long long> replies;
  for (int i = 0; i < kCommands; ++i) {
    redis.Run({"INCR", "pipelined"}, "pipelined",
              [&](StoreResult<RedisReply> r) {
                ASSERT_TRUE(r.has_value()) << r.error();
                replies.push_back(r->integer);
              });
  }
  // Nothing has been answered: every command is waiting on the socket, none
  // blocked the thread that sent it.
  EXPECT_EQ(redis.in_flight(), static_cast<std::size_t>(kCommands));
  EXPECT_TRUE(replies.empty());
  RunUntil(io_, [&] {
    return replies.size() == static_cast<std::size_t>(kCommands);
  });
  ASSERT_EQ(replies.size(), static_cast<std::size_t>(kCommands));
  for (int i = 0; i < kCommands; ++i) EXPECT_EQ(replies[i], i + 1);
  EXPECT_EQ(redis.in_flight(), 0u);
}

TEST_F(RedisAsyncTest, AnErrorReplyIsAReplyNotAFailure) {
  RedisAsync redis(io_, topology_.get(), RedisTimeouts{});
  std::optional<StoreResult<RedisReply>> got;
  redis.Run({"NOSUCHCOMMAND"}, "", [&](StoreResult<RedisReply> r) { got = r; });
  RunUntil(io_, [&] { return got.has_value(); });
  ASSERT_TRUE(got.has_value());
  ASSERT_TRUE(got->has_value()) << got->error();
  EXPECT_TRUE((*got)->is_error());
}

TEST_F(RedisAsyncTest, AServerThatDiesFailsWhatIsInFlightAndNamesIt) {
  std::string why;
  auto own = RedisServer::Start({}, false, &why);
  ASSERT_NE(own, nullptr) << why;
  auto seeds = ParseRedisUrl(own->url());
  ASSERT_TRUE(seeds.has_value());
  auto client = RedisClient::Connect(*seeds, RedisTimeouts{});
  ASSERT_TRUE(client.has_value());
  RedisAsync redis(io_, client->get(), RedisTimeouts{});
  // Connected and answering first.
  std::optional<bool> first;
  redis.Run({"PING"}, "", [&](StoreResult<RedisReply> r) {
    first = r.has_value() && r->str == "PONG";
  });
  RunUntil(io_, [&] { return first.has_value(); });
  ASSERT_TRUE(*first);
  // A command that blocks the server for a while is in flight when the
  // server is killed.
  std::optional<StoreResult<RedisReply>> got;
  redis.Run({"BLPOP", "never-pushed", "5"}, "",
            [&](StoreResult<RedisReply> r) { got = r; });
  io_.restart();
  io_.poll();  // written
  own->Kill();
  RunUntil(io_, [&] { return got.has_value(); });
  ASSERT_TRUE(got.has_value());
  ASSERT_FALSE(got->has_value());
  EXPECT_EQ(got->error().code(), Errc::kStoreFailed);
  EXPECT_NE(got->error().detail().find(own->address()), std::string::npos)
      << got->error().detail();
  // The next command connects again, and fails as a value too.
  std::optional<StoreResult<RedisReply>> next;
  redis.Run({"PING"}, "", [&](StoreResult<RedisReply> r) { next = r; });
  RunUntil(io_, [&] { return next.has_value(); });
  ASSERT_TRUE(next.has_value());
  EXPECT_FALSE(next->has_value());
}

TEST_F(RedisAsyncTest, NoAnswerWithinTheTimeoutFailsTheCommand) {
  RedisAsync redis(io_, topology_.get(),
                   RedisTimeouts{.connect = std::chrono::milliseconds(1000),
                                 .io = std::chrono::milliseconds(200)});
  std::optional<StoreResult<RedisReply>> got;
  redis.Run({"BLPOP", "never-pushed", "2"}, "",
            [&](StoreResult<RedisReply> r) { got = r; });
  RunUntil(io_, [&] { return got.has_value(); });
  ASSERT_TRUE(got.has_value());
  ASSERT_FALSE(got->has_value());
  EXPECT_NE(got->error().detail().find("timed out"), std::string::npos)
      << got->error().detail();
}

// The gate, on an I/O thread's connection and on the blocking one.
class GateTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    server_ = SharedRedisServer();
    ASSERT_NE(server_, nullptr);
    server_->FlushAll();
    auto opened = RedisStore::Open(server_->url());
    ASSERT_TRUE(opened.has_value()) << opened.error();
    store_ = std::move(*opened);
    if (GetParam()) store_->AttachIoThread(io_);
    auto realm = store_->InsertRealm(RealmRecord{
        .subdomain = "gate", .name = "Gate", .date_created = kBase});
    ASSERT_TRUE(realm.has_value());
    realm_ = *realm;
    auto user = store_->InsertUser(UserRecord{.realm_id = realm_,
                                              .email = "a@example.com",
                                              .full_name = "A",
                                              .date_joined = kBase - 1,
                                              .api_key_hash = Sha256("k")});
    ASSERT_TRUE(user.has_value());
    user_ = *user;
  }
  void TearDown() override {
    if (store_) store_->DetachIoThread();
  }

  StoreResult<GateResult> Gate(const GateRequest& request) {
    std::optional<StoreResult<GateResult>> got;
    store_->Gate(realm_, request,
                 [&](StoreResult<GateResult> r) { got = std::move(r); });
    if (GetParam()) {
      // Asynchronous: nothing before the thread's io_context runs.
      EXPECT_FALSE(got.has_value());
      RunUntil(io_, [&] { return got.has_value(); });
    }
    EXPECT_TRUE(got.has_value());
    return got ? std::move(*got) : Error(Errc::kUnavailable, "no answer");
  }

  GateBatchResult Batch(const std::vector<GateRequest>& requests) {
    std::optional<GateBatchResult> got;
    store_->GateBatch(realm_, requests,
                      [&](GateBatchResult r) { got = std::move(r); });
    if (GetParam()) {
      EXPECT_FALSE(got.has_value());
      RunUntil(io_, [&] { return got.has_value(); });
    }
    EXPECT_TRUE(got.has_value());
    return got ? std::move(*got) : Error(Errc::kUnavailable, "no answer");
  }

  UserId MustAddUser(const std::string& email) {
    auto user = store_->InsertUser(UserRecord{.realm_id = realm_,
                                              .email = email,
                                              .full_name = email,
                                              .date_joined = kBase - 1,
                                              .api_key_hash = Sha256(email)});
    EXPECT_TRUE(user.has_value());
    return user ? *user : 0;
  }

  // calls= of a command in INFO commandstats (0 if not listed).
  long long Calls(const std::string& command) {
    auto info = server_->Command({"INFO", "commandstats"});
    if (!info) return -1;
    const std::string key = "cmdstat_" + command + ":calls=";
    auto at = info->str.find(key);
    if (at == std::string::npos) return 0;
    return std::stoll(info->str.substr(at + key.size()));
  }

  boost::asio::io_context io_;
  RedisServer* server_ = nullptr;
  std::unique_ptr<RedisStore> store_;
  RealmId realm_ = 0;
  UserId user_ = 0;
};

// Issue #14: a batch of a realm's requests is one script call; each step
// sees the ones before it and is answered on its own.
TEST_P(GateTest, Issue14_ABatchIsOneCallAndStepsEachRequestInOrder) {
  const UserId bob = MustAddUser("b@example.com");
  auto before = store_->CurrentSeq(realm_);
  ASSERT_TRUE(before.has_value());
  const Micros window = 60'000'000;
  ASSERT_TRUE(server_->Command({"CONFIG", "RESETSTAT"}).has_value());
  auto got = Batch({
      // writes: the log's next number
      {.user = user_,
       .report = ReportStatus::kActive,
       .now = kBase + 1'000'000},
      // a second later: writes nothing, sees the write before it
      {.user = user_,
       .report = ReportStatus::kActive,
       .now = kBase + 2'000'000},
      // another user writes: the number after
      {.user = bob, .report = ReportStatus::kIdle, .now = kBase + 2'000'000},
      // a read barrier sees both
      {.user = bob},
      // the rate limit counts in order: the second of a limit of 1 is
      // refused and its report not made
      {.user = bob, .rate_limit = 1, .rate_now = kBase, .rate_window = window},
      {.user = bob,
       .rate_limit = 1,
       .rate_now = kBase + 1,
       .rate_window = window,
       .report = ReportStatus::kActive,
       .now = kBase + 300'000'000},
  });
  ASSERT_TRUE(got.has_value()) << got.error();
  ASSERT_EQ(got->size(), 6u);
  for (const auto& one : *got) ASSERT_TRUE(one.has_value()) << one.error();
  const auto& r = *got;
  EXPECT_TRUE(r[0]->write.wrote);
  EXPECT_EQ(r[0]->write.seq, *before + 1);
  EXPECT_FALSE(r[1]->write.wrote);
  EXPECT_EQ(r[1]->write.seq, *before + 1);
  EXPECT_TRUE(r[2]->write.wrote);
  EXPECT_EQ(r[2]->write.seq, *before + 2);
  EXPECT_FALSE(r[3]->write.wrote);
  EXPECT_EQ(r[3]->write.seq, *before + 2);
  EXPECT_TRUE(r[4]->rate.allowed);
  EXPECT_EQ(r[4]->rate.in_window, 1);
  EXPECT_FALSE(r[5]->rate.allowed);
  EXPECT_FALSE(r[5]->write.wrote);
  EXPECT_EQ(*store_->CurrentSeq(realm_), *before + 2);
  // One script call for the six (a barrier's HMGET inside it is no round
  // trip).
  EXPECT_EQ(Calls("evalsha") + Calls("eval"), 1);
}

// Issue #14: a step that fails on its own (here the rate log of one user is
// not a sorted set: WRONGTYPE) fails its request only.
TEST_P(GateTest, Issue14_OneFailingStepFailsOnlyItsRequest) {
  const UserId bob = MustAddUser("b@example.com");
  const std::string bobs_log = "presenced:{r" + std::to_string(realm_) +
                               "}:rate:" + std::to_string(bob) + ":requests";
  ASSERT_TRUE(server_->Command({"SET", bobs_log, "not a log"}).has_value());
  const Micros window = 60'000'000;
  GateRequest counted{.user = user_,
                      .rate_limit = 10,
                      .rate_now = kBase,
                      .rate_window = window,
                      .report = ReportStatus::kActive,
                      .now = kBase + 1'000'000};
  GateRequest broken = counted;
  broken.user = bob;
  GateRequest again = counted;
  again.rate_now += 1;
  auto got = Batch({counted, broken, again});
  ASSERT_TRUE(got.has_value()) << got.error();
  ASSERT_EQ(got->size(), 3u);
  ASSERT_TRUE((*got)[0].has_value()) << (*got)[0].error();
  EXPECT_TRUE((*got)[0]->write.wrote);
  ASSERT_FALSE((*got)[1].has_value());
  EXPECT_EQ((*got)[1].error(), Errc::kStoreFailed);
  EXPECT_NE((*got)[1].error().detail().find("WRONGTYPE"), std::string::npos)
      << (*got)[1].error().detail();
  ASSERT_TRUE((*got)[2].has_value()) << (*got)[2].error();
  EXPECT_EQ((*got)[2]->rate.in_window, 2);
  EXPECT_FALSE((*got)[2]->write.wrote);
  EXPECT_EQ((*got)[2]->write.seq, (*got)[0]->write.seq);
}

// Issue #14: an error of the call itself (here its Redis is gone) fails
// every request of the batch, with the reason.
TEST_P(GateTest, Issue14_ARedisErrorFailsTheWholeBatch) {
  std::string why;
  auto own = RedisServer::Start({}, false, &why);
  ASSERT_NE(own, nullptr) << why;
  auto opened = RedisStore::Open(own->url());
  ASSERT_TRUE(opened.has_value()) << opened.error();
  std::unique_ptr<RedisStore> store = std::move(*opened);
  auto realm = store->InsertRealm(
      RealmRecord{.subdomain = "own", .name = "Own", .date_created = kBase});
  ASSERT_TRUE(realm.has_value());
  boost::asio::io_context io;
  if (GetParam()) store->AttachIoThread(io);
  own->Kill();
  const std::vector<GateRequest> requests = {
      {.user = 1, .report = ReportStatus::kActive, .now = kBase}, {.user = 2}};
  std::optional<GateBatchResult> got;
  store->GateBatch(*realm, requests,
                   [&](GateBatchResult r) { got = std::move(r); });
  if (GetParam()) RunUntil(io, [&] { return got.has_value(); });
  if (GetParam()) store->DetachIoThread();
  ASSERT_TRUE(got.has_value());
  ASSERT_FALSE(got->has_value());
  EXPECT_EQ(got->error(), Errc::kStoreFailed);
  EXPECT_NE(got->error().detail().find(own->address()), std::string::npos)
      << got->error().detail();
}

// --redis-wait-replicas: a ping acknowledges the user's presence as stored
// on that many replicas, also when its step writes nothing (an earlier
// attempt wrote the row, and its WAIT failed: the client was told so and
// tries again). With no replica in sync it fails, on both paths, as a step
// that wrote does.
TEST_P(GateTest, ADurablePingThatWritesNothingStillWaitsForAReplica) {
  std::string why;
  auto master =
      RedisServer::Start({"--repl-diskless-sync-delay", "0"}, false, &why);
  ASSERT_NE(master, nullptr) << why;
  auto replica = RedisServer::Start(
      {"--replicaof", "127.0.0.1", std::to_string(master->port())}, false,
      &why);
  ASSERT_NE(replica, nullptr) << why;
  ASSERT_TRUE(master->WaitForReplicas(1));
  RedisStore::Options options;
  // Long enough for a loaded machine's replica to acknowledge; the failing
  // ping below waits it out once.
  options.wait = {.replicas = 1, .timeout = std::chrono::milliseconds(2000)};
  auto opened = RedisStore::Open(master->url(), options);
  ASSERT_TRUE(opened.has_value()) << opened.error();
  std::unique_ptr<RedisStore> store = std::move(*opened);
  auto realm = store->InsertRealm(
      RealmRecord{.subdomain = "own", .name = "Own", .date_created = kBase});
  ASSERT_TRUE(realm.has_value()) << realm.error();
  auto user = store->InsertUser(UserRecord{.realm_id = *realm,
                                           .email = "a@example.com",
                                           .full_name = "A",
                                           .date_joined = kBase - 1,
                                           .api_key_hash = Sha256("k")});
  ASSERT_TRUE(user.has_value()) << user.error();
  boost::asio::io_context io;
  if (GetParam()) store->AttachIoThread(io);
  auto ping = [&] {
    const std::vector<GateRequest> requests = {
        {.user = *user, .report = ReportStatus::kActive, .now = kBase}};
    std::optional<GateBatchResult> got;
    store->GateBatch(*realm, requests,
                     [&](GateBatchResult r) { got = std::move(r); });
    if (GetParam()) RunUntil(io, [&] { return got.has_value(); });
    if (!got) return StoreResult<GateResult>(Error(Errc::kUnavailable, "none"));
    if (!got->has_value()) return StoreResult<GateResult>(got->error());
    return std::move((*got)->front());
  };
  auto first = ping();
  ASSERT_TRUE(first.has_value()) << first.error();
  EXPECT_TRUE(first->write.wrote);
  // The replica goes; the same report again writes nothing.
  replica->Kill();
  ASSERT_TRUE(master->WaitForReplicas(0));
  auto again = ping();
  if (GetParam()) store->DetachIoThread();
  ASSERT_FALSE(again.has_value()) << "acknowledged with no replica in sync";
  EXPECT_EQ(again.error(), Errc::kStoreFailed);
  EXPECT_NE(again.error().detail().find("0 of 1"), std::string::npos)
      << again.error().detail();
}

TEST_P(GateTest, Issue14_ABatchAfterAFlushedScriptCacheIsRebuiltWithItsBody) {
  ASSERT_TRUE(server_->Command({"SCRIPT", "FLUSH"}).has_value());
  const UserId bob = MustAddUser("b@example.com");
  auto got = Batch({{.user = user_,
                     .report = ReportStatus::kActive,
                     .now = kBase + 1'000'000},
                    {.user = bob,
                     .report = ReportStatus::kActive,
                     .now = kBase + 1'000'000}});
  ASSERT_TRUE(got.has_value()) << got.error();
  ASSERT_EQ(got->size(), 2u);
  ASSERT_TRUE((*got)[0].has_value() && (*got)[1].has_value());
  EXPECT_TRUE((*got)[0]->write.wrote);
  EXPECT_TRUE((*got)[1]->write.wrote);
  EXPECT_EQ((*got)[1]->write.seq, (*got)[0]->write.seq + 1);
}

TEST_P(GateTest, AReportTakesTheLogNumberAndABarrierReadsIt) {
  auto before = store_->CurrentSeq(realm_);
  ASSERT_TRUE(before.has_value());
  auto wrote = Gate({.user = user_,
                     .report = ReportStatus::kActive,
                     .now = kBase + 1'000'000});
  ASSERT_TRUE(wrote.has_value()) << wrote.error();
  EXPECT_TRUE(wrote->write.wrote);
  EXPECT_EQ(wrote->write.seq, *before + 1);
  EXPECT_TRUE(wrote->rate.allowed);
  // The same report a second later writes nothing (spec 3.2) and still
  // answers the realm's log number.
  auto again = Gate({.user = user_,
                     .report = ReportStatus::kActive,
                     .now = kBase + 2'000'000});
  ASSERT_TRUE(again.has_value());
  EXPECT_FALSE(again->write.wrote);
  EXPECT_EQ(again->write.seq, *before + 1);
  auto barrier = Gate({.user = user_});
  ASSERT_TRUE(barrier.has_value());
  EXPECT_FALSE(barrier->write.wrote);
  EXPECT_EQ(barrier->write.seq, *before + 1);
}

TEST_P(GateTest,
       TheRateLimitIsDecidedInTheSameStepAndARefusedPingWritesNothing) {
  const Micros window = 60'000'000;
  GateRequest request{
      .user = user_, .rate_limit = 2, .rate_now = kBase, .rate_window = window};
  auto one = Gate(request);
  ASSERT_TRUE(one.has_value()) << one.error();
  EXPECT_TRUE(one->rate.allowed);
  EXPECT_EQ(one->rate.in_window, 1);
  request.rate_now += 1000;
  auto two = Gate(request);
  ASSERT_TRUE(two.has_value());
  EXPECT_TRUE(two->rate.allowed);
  EXPECT_EQ(two->rate.in_window, 2);
  EXPECT_EQ(two->rate.oldest, kBase);
  // The third, a ping, is refused, and its report is not made.
  request.rate_now += 1000;
  request.report = ReportStatus::kActive;
  request.now = kBase + 5'000'000;
  auto seq = store_->CurrentSeq(realm_);
  auto three = Gate(request);
  ASSERT_TRUE(three.has_value());
  EXPECT_FALSE(three->rate.allowed);
  EXPECT_EQ(three->rate.in_window, 2);
  EXPECT_FALSE(three->write.wrote);
  ASSERT_TRUE(seq.has_value());
  EXPECT_EQ(*store_->CurrentSeq(realm_), *seq);
  // Once the window has moved past the first two, it is let through.
  request.rate_now = kBase + window + 2000;
  auto later = Gate(request);
  ASSERT_TRUE(later.has_value());
  EXPECT_TRUE(later->rate.allowed);
  EXPECT_TRUE(later->write.wrote);
}

// A node's lease (core/rate_lease.h): one step counts rate_charge requests
// at once, fewer near the limit, none when refused.
TEST_P(GateTest, Issue14_AChargeCountsALeaseUpToTheLimit) {
  const Micros window = 60'000'000;
  GateRequest request{.user = user_,
                      .rate_limit = 10,
                      .rate_now = kBase,
                      .rate_window = window,
                      .rate_charge = 4};
  auto one = Gate(request);
  ASSERT_TRUE(one.has_value()) << one.error();
  EXPECT_TRUE(one->rate.allowed);
  EXPECT_EQ(one->rate.charged, 4);
  EXPECT_EQ(one->rate.in_window, 4);
  request.rate_now += 1000;
  auto two = Gate(request);
  ASSERT_TRUE(two.has_value());
  EXPECT_EQ(two->rate.charged, 4);
  EXPECT_EQ(two->rate.in_window, 8);
  EXPECT_EQ(two->rate.oldest, kBase);
  request.rate_now += 1000;
  auto three = Gate(request);  // two remain below the limit
  ASSERT_TRUE(three.has_value());
  EXPECT_TRUE(three->rate.allowed);
  EXPECT_EQ(three->rate.charged, 2);
  EXPECT_EQ(three->rate.in_window, 10);
  auto four = Gate(request);
  ASSERT_TRUE(four.has_value());
  EXPECT_FALSE(four->rate.allowed);
  EXPECT_EQ(four->rate.charged, 0);
  EXPECT_EQ(four->rate.in_window, 10);
  // The charge leaves the window at its own time, all of it at once.
  request.rate_now = kBase + window;
  auto later = Gate(request);
  ASSERT_TRUE(later.has_value());
  EXPECT_TRUE(later->rate.allowed);
  EXPECT_EQ(later->rate.in_window, 10);  // 6 left, plus a charge of 4
}

TEST_P(GateTest, AnUnknownRealmIsNotFound) {
  std::optional<StoreResult<GateResult>> got;
  store_->Gate(realm_ + 1000, {.user = user_},
               [&](StoreResult<GateResult> r) { got = std::move(r); });
  RunUntil(io_, [&] { return got.has_value(); });
  ASSERT_TRUE(got.has_value());
  ASSERT_FALSE(got->has_value());
  EXPECT_EQ(got->error().code(), Errc::kNotFound);
}

TEST_P(GateTest, AFlushedScriptCacheIsLoadedAgain) {
  ASSERT_TRUE(server_->Command({"SCRIPT", "FLUSH"}).has_value());
  auto r = Gate({.user = user_,
                 .report = ReportStatus::kActive,
                 .now = kBase + 1'000'000});
  ASSERT_TRUE(r.has_value()) << r.error();
  EXPECT_TRUE(r->write.wrote);
}

INSTANTIATE_TEST_SUITE_P(Paths, GateTest, ::testing::Values(true, false),
                         [](const auto& info) {
                           return info.param ? "IoThread" : "Blocking";
                         });

}  // namespace
}  // namespace presence::store
