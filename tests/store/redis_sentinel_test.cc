// The Redis store's availability pieces that need no failover to test: the
// redis-sentinel:// url, how a sentinel client reports what it could not
// resolve, WAIT after writes (RedisWait) against a real master with and
// without a replica, and commands whose connection breaks after they ran (a
// fake sentinel and a proxy that resets the connection instead of passing
// the reply on): a gate batch and a read are sent again, a write is not. The
// failover itself is tested end to end with real sentinels in
// tests/blackbox/test_sentinel.py.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "store/redis_client.h"
#include "store/redis_server.h"
#include "store/redis_store.h"
#include "util/crypto.h"

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

// A loopback listener on a free port; -1 on failure.
int ListenLoopback(int* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd, 16) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

// Serves loopback connections on a thread: `on_accept` gets each new
// connection, `on_readable` each fd that poll() says is readable (or
// closed) and returns false to stop watching it. Stops at destruction.
class LoopbackServer {
 public:
  virtual ~LoopbackServer() { Stop(); }
  int port() const { return port_; }

 protected:
  bool Start() {
    listen_ = ListenLoopback(&port_);
    if (listen_ < 0) return false;
    thread_ = std::thread([this] { Loop(); });
    return true;
  }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    for (int fd : fds_) ::close(fd);
    fds_.clear();
    if (listen_ >= 0) ::close(listen_);
    listen_ = -1;
  }
  void Watch(int fd) { fds_.push_back(fd); }
  virtual void OnAccept(int fd) = 0;
  virtual bool OnReadable(int fd) = 0;

 private:
  void Loop() {
    while (!stop_) {
      std::vector<pollfd> p{{.fd = listen_, .events = POLLIN, .revents = 0}};
      for (int fd : fds_)
        p.push_back({.fd = fd, .events = POLLIN, .revents = 0});
      if (::poll(p.data(), p.size(), 20) <= 0) continue;
      if (p[0].revents != 0) {
        int fd = ::accept(listen_, nullptr, nullptr);
        if (fd >= 0) OnAccept(fd);
      }
      for (std::size_t i = 1; i < p.size(); ++i) {
        if (p[i].revents == 0) continue;
        if (!OnReadable(p[i].fd)) std::erase(fds_, p[i].fd);
      }
    }
  }
  int listen_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::vector<int> fds_;
  std::thread thread_;
};

// Answers SENTINEL get-master-addr-by-name with 127.0.0.1 and the port the
// test sets (any other command: an error), one command per read.
class FakeSentinel : public LoopbackServer {
 public:
  explicit FakeSentinel(int master_port) : master_port_(master_port) {}
  ~FakeSentinel() override { Stop(); }
  bool Begin() { return Start(); }
  void Name(int master_port) { master_port_ = master_port; }
  int asked() const { return asked_; }

 private:
  void OnAccept(int fd) override { Watch(fd); }
  bool OnReadable(int fd) override {
    char buf[4096];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) {
      ::close(fd);
      return false;
    }
    std::string got(buf, static_cast<std::size_t>(n));
    std::string reply = "-ERR unknown command\r\n";
    if (got.find("get-master-addr-by-name") != std::string::npos) {
      ++asked_;
      const std::string port = std::to_string(master_port_.load());
      reply = "*2\r\n$9\r\n127.0.0.1\r\n$" + std::to_string(port.size()) +
              "\r\n" + port + "\r\n";
    }
    return ::write(fd, reply.data(), reply.size()) ==
           static_cast<ssize_t>(reply.size());
  }
  std::atomic<int> master_port_;
  std::atomic<int> asked_{0};
};

// Passes bytes between its clients and a Redis server, until told to break
// the next reply: then it resets the client's connection (SO_LINGER 0)
// instead of passing the reply on, as a demoted master's CLIENT KILL does
// to a command it had run. Told to hold the next reply, it drops it and
// keeps the connection open, as a master that stopped answering would.
class BreakingProxy : public LoopbackServer {
 public:
  explicit BreakingProxy(int upstream) : upstream_(upstream) {}
  ~BreakingProxy() override { Stop(); }
  bool Begin() { return Start(); }
  void BreakNextReply() { break_next_ = true; }
  void HoldNextReply() { hold_next_ = true; }
  int broken() const { return broken_; }

 private:
  void OnAccept(int fd) override {
    int up = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(upstream_));
    if (up < 0 ||
        ::connect(up, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      if (up >= 0) ::close(up);
      ::close(fd);
      return;
    }
    peer_[fd] = up;
    peer_[up] = fd;
    from_server_[up] = true;
    Watch(fd);
    Watch(up);
  }
  bool OnReadable(int fd) override {
    auto it = peer_.find(fd);
    if (it == peer_.end()) return false;
    const int other = it->second;
    if (other < 0) {  // the pair was closed from the other side
      ::close(fd);
      peer_.erase(it);
      return false;
    }
    char buf[65536];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    const bool reply = from_server_.count(fd) != 0;
    if (n > 0 && reply && hold_next_.exchange(false)) return true;
    if (n > 0 && reply && break_next_.exchange(false)) {
      const linger reset{.l_onoff = 1, .l_linger = 0};
      ::setsockopt(other, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
      ++broken_;
      ::shutdown(other, SHUT_RDWR);
      peer_[other] = -1;
      ::close(fd);
      peer_.erase(fd);
      return false;
    }
    if (n <= 0 || ::write(other, buf, static_cast<std::size_t>(n)) != n) {
      ::shutdown(other, SHUT_RDWR);
      peer_[other] = -1;
      ::close(fd);
      peer_.erase(fd);
      return false;
    }
    return true;
  }
  int upstream_;
  std::atomic<bool> break_next_{false};
  std::atomic<bool> hold_next_{false};
  std::atomic<int> broken_{0};
  std::map<int, int> peer_;          // fd -> its pair's other fd (-1: closed)
  std::map<int, bool> from_server_;  // fds connected to the server
};

// calls= of a command in INFO commandstats (0 if not listed).
long long Calls(RedisServer& server, const std::string& command) {
  auto info = server.Command({"INFO", "commandstats"});
  if (!info) return -1;
  const std::string key = "cmdstat_" + command + ":calls=";
  auto at = info->str.find(key);
  if (at == std::string::npos) return 0;
  return std::stoll(info->str.substr(at + key.size()));
}

constexpr Micros kNow = 1'700'000'000'000'000;

// A Redis server behind a BreakingProxy, a FakeSentinel that names the
// proxy, and a store on one blocking connection opened through them, with
// the realm "acme".
class SentinelThroughProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    server_ = RedisServer::Start({}, false, &why);
    ASSERT_NE(server_, nullptr) << why;
    proxy_ = std::make_unique<BreakingProxy>(server_->port());
    ASSERT_TRUE(proxy_->Begin());
    // The sentinel names the proxy first: the store's connections go
    // through it.
    sentinel_ = std::make_unique<FakeSentinel>(proxy_->port());
    ASSERT_TRUE(sentinel_->Begin());
    RedisStore::Options options;
    options.connections = 1;
    options.timeouts.io = kIoTimeout;
    auto opened = RedisStore::Open("redis-sentinel://127.0.0.1:" +
                                       std::to_string(sentinel_->port()) + "/m",
                                   options);
    ASSERT_TRUE(opened.has_value()) << opened.error();
    store_ = std::move(*opened);
    auto realm = store_->InsertRealm(
        {.subdomain = "acme", .name = "A", .date_created = kNow});
    ASSERT_TRUE(realm.has_value()) << realm.error();
    realm_ = *realm;
  }
  // The master moves to the server itself (the sentinel names it from now
  // on), and the old one's connection breaks with its next reply, once
  // the command ran there. Command counts start again from zero.
  void FailOverWithTheNextReply() {
    sentinel_->Name(server_->port());
    proxy_->BreakNextReply();
    ASSERT_TRUE(server_->Command({"CONFIG", "RESETSTAT"}).has_value());
  }

  static constexpr milliseconds kIoTimeout{500};
  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<BreakingProxy> proxy_;
  std::unique_ptr<FakeSentinel> sentinel_;
  std::unique_ptr<RedisStore> store_;
  RealmId realm_ = 0;
};

// A read on the blocking client (a directory lookup, a realm's reload)
// whose connection breaks after it was sent, as a demoted master's CLIENT
// KILL breaks it, is asked again of the master the sentinels name, instead
// of failing its request.
TEST_F(SentinelThroughProxyTest, AReadWhoseConnectionBrokeIsAskedAgain) {
  ASSERT_NO_FATAL_FAILURE(FailOverWithTheNextReply());
  auto found = store_->FindRealmId("acme");
  ASSERT_TRUE(found.has_value()) << found.error();
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ(**found, realm_);
  EXPECT_EQ(proxy_->broken(), 1);
  EXPECT_EQ(Calls(*server_, "hget"), 2);
  EXPECT_GE(sentinel_->asked(), 2);
}

TEST_F(SentinelThroughProxyTest, AScriptThatReadsIsAskedAgain) {
  ASSERT_NO_FATAL_FAILURE(FailOverWithTheNextReply());
  auto state = store_->ReadRealm(realm_, 0);
  ASSERT_TRUE(state.has_value()) << state.error();
  EXPECT_EQ(state->realm.subdomain, "acme");
  EXPECT_EQ(proxy_->broken(), 1);
  EXPECT_EQ(Calls(*server_, "evalsha") + Calls(*server_, "eval"), 2);
}

// A read whose reply does not come within the I/O timeout is not asked
// again (the proxy would pass the second reply on): the master is slow or
// cut off, not known to be gone, and asking again would hold the caller
// for several timeouts.
TEST_F(SentinelThroughProxyTest, AReadThatTimedOutIsNotAskedAgain) {
  ASSERT_TRUE(server_->Command({"CONFIG", "RESETSTAT"}).has_value());
  proxy_->HoldNextReply();
  auto found = store_->FindRealmId("acme");
  ASSERT_FALSE(found.has_value());
  EXPECT_EQ(found.error(), Errc::kStoreFailed);
  EXPECT_THAT(found.error().message(), HasSubstr("read timed out"));
  EXPECT_EQ(Calls(*server_, "hget"), 1);
}

// A write cut off after it was sent may have run: it is not sent again
// (it might not give the same result twice); its caller sees the failure.
TEST_F(SentinelThroughProxyTest, AWriteWhoseConnectionBrokeIsNotSentAgain) {
  ASSERT_NO_FATAL_FAILURE(FailOverWithTheNextReply());
  auto renamed = store_->UpdateRealm(
      {.id = realm_, .subdomain = "acme2", .name = "A2", .date_created = kNow});
  ASSERT_FALSE(renamed.has_value());
  EXPECT_EQ(renamed.error(), Errc::kStoreFailed);
  EXPECT_EQ(proxy_->broken(), 1);
  EXPECT_EQ(Calls(*server_, "evalsha") + Calls(*server_, "eval"), 1);
  // It did run: the next call, on the new master, finds the new name.
  auto found = store_->FindRealmId("acme2");
  ASSERT_TRUE(found.has_value()) << found.error();
  EXPECT_EQ(*found, std::optional<RealmId>(realm_));
}

// A failover's demoted master kills its clients (Sentinel sends CLIENT
// KILL): a gate batch it had run is then answered by no one. With Sentinel
// the batch is sent again to the master the sentinels name, and its token
// gives it the first run's answer: nothing is stepped twice, and no
// request of the batch fails.
TEST_F(SentinelThroughProxyTest,
       ABatchWhoseConnectionBrokeAfterItRanIsAnsweredOnce) {
  auto user = store_->InsertUser({.realm_id = realm_,
                                  .email = "a@example.com",
                                  .full_name = "A",
                                  .date_joined = kNow - 1,
                                  .api_key_hash = Sha256("k")});
  ASSERT_TRUE(user.has_value()) << user.error();
  auto before = store_->CurrentSeq(realm_);
  ASSERT_TRUE(before.has_value()) << before.error();

  boost::asio::io_context io;
  store_->AttachIoThread(io);
  ASSERT_NO_FATAL_FAILURE(FailOverWithTheNextReply());
  const std::vector<GateRequest> requests = {
      {.user = *user,
       .rate_limit = 10,
       .rate_now = kNow,
       .rate_window = 60'000'000,
       .report = ReportStatus::kActive,
       .now = kNow + 1'000'000},
  };
  std::optional<GateBatchResult> got;
  store_->GateBatch(realm_, requests,
                    [&](GateBatchResult r) { got = std::move(r); });
  const auto deadline = steady_clock::now() + std::chrono::seconds(10);
  while (!got && steady_clock::now() < deadline) {
    io.run_one_for(milliseconds(50));
  }
  store_->DetachIoThread();
  ASSERT_TRUE(got.has_value()) << "no answer";
  ASSERT_TRUE(got->has_value()) << got->error();
  ASSERT_EQ((*got)->size(), 1u);
  const auto& one = (*got)->front();
  ASSERT_TRUE(one.has_value()) << one.error();

  // The batch ran on the server, its reply was lost, and it was sent again.
  EXPECT_EQ(proxy_->broken(), 1);
  EXPECT_EQ(Calls(*server_, "evalsha") + Calls(*server_, "eval"), 2);
  EXPECT_GE(sentinel_->asked(), 2);
  // The second run gave the first run's answer: the report wrote and took
  // the log's next number, counted once.
  EXPECT_TRUE(one->write.wrote);
  EXPECT_EQ(one->write.seq, *before + 1);
  EXPECT_TRUE(one->rate.allowed);
  EXPECT_EQ(one->rate.in_window, 1);
  EXPECT_EQ(*store_->CurrentSeq(realm_), *before + 1);
  auto counted = server_->Command(
      {"ZCARD", "presenced:{r" + std::to_string(realm_) +
                    "}:rate:" + std::to_string(*user) + ":requests"});
  ASSERT_TRUE(counted.has_value()) << counted.error();
  EXPECT_EQ(counted->integer, 1);
}

}  // namespace
}  // namespace presence::store
