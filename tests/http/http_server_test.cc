// HTTP tests against a real listener on 127.0.0.1:0, in process: what only
// the socket layer can get wrong (framing, keep-alive, limits, concurrency).
// The endpoints' behaviour is covered over HTTP by tests/blackbox.
#include "http/http_server.h"

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>
#include <chrono>
#include <thread>

#include "api/event_encoder.h"
#include "api/router.h"
#include "core/presence_service.h"
#include "testing/memory_store.h"
#include "util/crypto.h"

namespace presence::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    service_ = std::move(*PresenceService::Create(&store_, &clock_));
    realm_ = *service_->CreateRealm("", "Test");
    hub_ = std::make_unique<EventHub>(service_.get(), &encoder_, HubOptions{});
    service_->SetListener(hub_.get());
    router_ =
        std::make_unique<api::Router>(service_.get(), hub_.get(), &options_);
    SessionLimits limits;
    limits.header_limit = 4096;
    limits.body_limit = 64 * 1024;
    limits.idle_timeout = idle_timeout_;
    server_ = std::make_unique<HttpServer>(ioc_, router_.get(), limits);
    auto ep =
        server_->Listen(tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    ASSERT_TRUE(ep);
    endpoint_ = *ep;
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { ioc_.run(); });
  }

  void TearDown() override {
    server_->Stop();
    ioc_.stop();
    for (auto& t : threads_) t.join();
  }

  struct User {
    UserId id;
    std::string email, key;
  };
  User AddUser(const std::string& email) {
    NewUser u;
    u.email = email;
    u.full_name = email;
    auto c = service_->CreateUser(realm_, u);
    return {c->user_id, email, c->api_key};
  }

  static std::string Basic(const User& u) {
    return "Basic " + Base64Encode(u.email + ":" + u.key);
  }

  tcp::socket Connect() {
    tcp::socket s(client_ioc_);
    s.connect(endpoint_);
    return s;
  }

  bhttp::response<bhttp::string_body> Send(
      tcp::socket& s, bhttp::request<bhttp::string_body> req) {
    req.set(bhttp::field::host, "127.0.0.1");
    req.prepare_payload();
    bhttp::write(s, req);
    beast::flat_buffer buf;
    bhttp::response<bhttp::string_body> res;
    bhttp::read(s, buf, res);
    return res;
  }

  // Writes raw bytes and reads whatever comes back until the server closes.
  // The server may answer (and stop reading) before every byte is sent: a
  // failed write is not an error here, the answer is what counts.
  std::string Raw(const std::string& bytes) {
    tcp::socket s = Connect();
    beast::error_code wec;
    asio::write(s, asio::buffer(bytes), wec);
    s.shutdown(tcp::socket::shutdown_send, wec);
    std::string out;
    beast::error_code ec;
    char buf[4096];
    for (;;) {
      std::size_t n = s.read_some(asio::buffer(buf), ec);
      out.append(buf, n);
      if (ec) break;
    }
    return out;
  }

  // Registers a presence queue for `u` on `s`; returns its id.
  std::string Register(tcp::socket& s, const User& u) {
    bhttp::request<bhttp::string_body> reg{bhttp::verb::post,
                                           "/api/v1/register", 11};
    reg.set(bhttp::field::authorization, Basic(u));
    auto registered = Send(s, reg);
    EXPECT_EQ(registered.result_int(), 200u) << registered.body();
    return std::string(
        boost::json::parse(registered.body()).at("queue_id").as_string());
  }

  // Sends a long poll of `queue` without reading its answer, and waits
  // until the server has parked it; false if it never did.
  bool SendPollAndWaitParked(tcp::socket& s, const User& u,
                             const std::string& queue) {
    bhttp::request<bhttp::string_body> poll{
        bhttp::verb::get,
        "/api/v1/events?queue_id=" + queue + "&last_event_id=-1", 11};
    poll.set(bhttp::field::host, "127.0.0.1");
    poll.set(bhttp::field::authorization, Basic(u));
    poll.prepare_payload();
    bhttp::write(s, poll);
    for (int i = 0; i < 100 && hub_->Stats().parked == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return hub_->Stats().parked == 1u;
  }

  std::chrono::seconds idle_timeout_{60};
  ManualClock clock_{SecondsToMicros(1'700'000'000)};
  store::MemoryStore store_;
  std::unique_ptr<PresenceService> service_;
  api::ApiOptions options_;
  api::JsonEventEncoder encoder_;
  std::unique_ptr<EventHub> hub_;
  RealmId realm_ = 0;
  std::unique_ptr<api::Router> router_;
  asio::io_context ioc_;
  std::unique_ptr<HttpServer> server_;
  tcp::endpoint endpoint_;
  std::vector<std::thread> threads_;
  asio::io_context client_ioc_;
};

// A one-second idle timeout, so that the tests can wait it out.
class HttpServerTimeoutTest : public HttpServerTest {
 protected:
  HttpServerTimeoutTest() { idle_timeout_ = std::chrono::seconds(1); }

  // Seconds until the server closes `s` (reading and dropping anything).
  static double SecondsUntilClosed(tcp::socket& s) {
    const auto start = std::chrono::steady_clock::now();
    char buf[4096];
    beast::error_code ec;
    while (!ec) s.read_some(asio::buffer(buf), ec);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         start)
        .count();
  }
};

TEST_F(HttpServerTimeoutTest, AConnectionThatSendsNothingIsClosed) {
  tcp::socket s = Connect();
  const double waited = SecondsUntilClosed(s);
  EXPECT_GE(waited, 0.9);
  EXPECT_LT(waited, 5.0);
}

TEST_F(HttpServerTimeoutTest, AnIdleKeepAliveConnectionIsClosedAfterAnswers) {
  tcp::socket s = Connect();
  bhttp::request<bhttp::string_body> req{bhttp::verb::get, "/healthz", 11};
  ASSERT_EQ(Send(s, req).result_int(), 200);
  const double waited = SecondsUntilClosed(s);
  EXPECT_GE(waited, 0.9);
  EXPECT_LT(waited, 5.0);
}

TEST_F(HttpServerTimeoutTest, RequestsSpacedWithinTheTimeoutKeepItOpen) {
  // Requests on one connection, each sent once the connection has been idle
  // for 0.6 of the timeout, for well over twice the timeout: the timeout
  // counts from the start of each wait, not from the first request. The
  // idle gaps are the stimulus of this test (measured on the steady clock),
  // not a synchronisation.
  tcp::socket s = Connect();
  const auto gap = std::chrono::milliseconds(600);
  const auto start = std::chrono::steady_clock::now();
  int i = 0;
  while (std::chrono::steady_clock::now() - start < 2 * idle_timeout_ + gap) {
    bhttp::request<bhttp::string_body> req{bhttp::verb::get, "/healthz", 11};
    ASSERT_EQ(Send(s, req).result_int(), 200) << "request " << i;
    ++i;
    const auto answered = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - answered < gap) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  EXPECT_GE(i, 4);
  // And the timer still runs: once the requests stop, the connection closes
  // one timeout after the last answer.
  bhttp::request<bhttp::string_body> req{bhttp::verb::get, "/healthz", 11};
  ASSERT_EQ(Send(s, req).result_int(), 200);
  const double waited = SecondsUntilClosed(s);
  EXPECT_GE(waited, 0.9);
  EXPECT_LT(waited, 5.0);
}

TEST_F(HttpServerTest, KeepAliveServesManyRequestsOnOneConnection) {
  User alice = AddUser("alice@example.com");
  tcp::socket s = Connect();
  for (int i = 0; i < 5; ++i) {
    bhttp::request<bhttp::string_body> req{bhttp::verb::post,
                                           "/api/v1/users/me/presence", 11};
    req.set(bhttp::field::authorization, Basic(alice));
    req.set(bhttp::field::content_type, "application/x-www-form-urlencoded");
    req.body() = "status=active&slim_presence=true";
    auto res = Send(s, req);
    ASSERT_EQ(res.result_int(), 200u) << res.body();
    EXPECT_TRUE(res.keep_alive());
    auto v = boost::json::parse(res.body()).as_object();
    EXPECT_EQ(v.at("result"), "success");
    EXPECT_TRUE(
        v.at("presences").as_object().contains(std::to_string(alice.id)));
  }
}

TEST_F(HttpServerTest, HeadAnswersHeadersWithoutBody) {
  tcp::socket s = Connect();
  bhttp::request<bhttp::string_body> get{bhttp::verb::get,
                                         "/api/v1/server_settings", 11};
  auto full = Send(s, get);
  ASSERT_EQ(full.result_int(), 200u);
  bhttp::request<bhttp::string_body> head{bhttp::verb::head,
                                          "/api/v1/server_settings", 11};
  head.set(bhttp::field::host, "127.0.0.1");
  bhttp::write(s, head);
  beast::flat_buffer buf;
  bhttp::response_parser<bhttp::empty_body> p;
  p.skip(true);  // a response to HEAD has no body
  bhttp::read(s, buf, p);
  EXPECT_EQ(p.get().result_int(), 200u);
  EXPECT_EQ(p.get()[bhttp::field::content_length],
            std::to_string(full.body().size()));
}

TEST_F(HttpServerTest, MalformedRequestGets400AndIsClosed) {
  std::string out = Raw("THIS IS NOT HTTP\r\n\r\n");
  EXPECT_NE(out.find("HTTP/1.1 400"), std::string::npos) << out;
  EXPECT_NE(out.find("\"result\":\"error\""), std::string::npos) << out;
}

TEST_F(HttpServerTest, OversizedHeaderGets431) {
  std::string req = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " +
                    std::string(8000, 'a') + "\r\n\r\n";
  std::string out = Raw(req);
  EXPECT_NE(out.find("HTTP/1.1 431"), std::string::npos) << out.substr(0, 200);
}

TEST_F(HttpServerTest, OversizedBodyGets413) {
  std::string body(100 * 1024, 'x');
  std::string req =
      "POST /api/v1/users/me/presence HTTP/1.1\r\nHost: 127.0.0.1\r\n"
      "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  std::string out = Raw(req);
  EXPECT_NE(out.find("HTTP/1.1 413"), std::string::npos) << out.substr(0, 200);
}

TEST_F(HttpServerTest, ConcurrentPingsFromManyConnectionsAreAllRecorded) {
  constexpr int kUsers = 16;
  std::vector<User> users;
  for (int i = 0; i < kUsers; ++i) {
    users.push_back(AddUser("u" + std::to_string(i) + "@example.com"));
  }
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < kUsers; ++i) {
    clients.emplace_back([&, i] {
      asio::io_context ioc;
      tcp::socket s(ioc);
      s.connect(endpoint_);
      for (int round = 0; round < 10; ++round) {
        bhttp::request<bhttp::string_body> req{bhttp::verb::post,
                                               "/api/v1/users/me/presence", 11};
        req.set(bhttp::field::host, "127.0.0.1");
        req.set(bhttp::field::authorization, Basic(users[i]));
        req.set(bhttp::field::content_type,
                "application/x-www-form-urlencoded");
        req.body() = "status=active&ping_only=true";
        req.prepare_payload();
        bhttp::write(s, req);
        beast::flat_buffer buf;
        bhttp::response<bhttp::string_body> res;
        bhttp::read(s, buf, res);
        if (res.result_int() == 200) ok++;
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), kUsers * 10);
  // Every user has exactly one row, each with its own update id 1..kUsers.
  Caller c{service_->FindRealmById(realm_), users[0].id};
  std::set<UpdateId> ids;
  service_->Fetch(c, {}, clock_.NowMicros(),
                  [&](const Member& m) { ids.insert(m.last_update_id); });
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(kUsers));
  EXPECT_EQ(*ids.begin(), 1);
  EXPECT_EQ(*ids.rbegin(), kUsers);
}

TEST_F(HttpServerTest, AParkedPollHandledAgainInFullKeepsItsRequest) {
  // When a wake-up cannot be answered from what the parked poll kept (the
  // realm's directory changed since it authenticated), the request is
  // handled again in full: its parameters (here in a body) and its
  // credentials must still be there, and the connection too.
  User alice = AddUser("alice@example.com");
  User bob = AddUser("bob@example.com");
  User carol = AddUser("carol@example.com");
  tcp::socket s = Connect();
  const std::string queue = Register(s, alice);
  bhttp::request<bhttp::string_body> poll{bhttp::verb::get, "/api/v1/events",
                                          11};
  poll.set(bhttp::field::host, "127.0.0.1");
  poll.set(bhttp::field::authorization, Basic(alice));
  poll.set(bhttp::field::content_type, "application/x-www-form-urlencoded");
  poll.body() = "queue_id=" + queue + "&last_event_id=-1";
  poll.prepare_payload();
  bhttp::write(s, poll);
  for (int i = 0; i < 100 && hub_->Stats().parked == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(hub_->Stats().parked, 1u) << "poll never parked";
  UserPatch rename;
  rename.full_name = "Carol Renamed";
  ASSERT_TRUE(service_->UpdateUser(realm_, carol.id, rename));
  Caller c{service_->FindRealmById(realm_), bob.id};
  ASSERT_TRUE(service_->Report(c, ReportStatus::kActive, clock_.NowMicros()));
  beast::flat_buffer buf;
  bhttp::response<bhttp::string_body> res;
  bhttp::read(s, buf, res);
  ASSERT_EQ(res.result_int(), 200u) << res.body();
  auto answer = boost::json::parse(res.body());
  EXPECT_EQ(answer.at("queue_id"), queue.c_str());
  auto events = answer.at("events").as_array();
  ASSERT_EQ(events.size(), 1u) << res.body();
  EXPECT_EQ(events[0].at("user_id"), bob.id);
  EXPECT_TRUE(res.keep_alive());
  bhttp::request<bhttp::string_body> health{bhttp::verb::get, "/healthz", 11};
  EXPECT_EQ(Send(s, health).result_int(), 200u);
}

TEST_F(HttpServerTest, WokenPollsAnswerInOrderAndParkAgain) {
  // Poll after poll on one connection: each is read, parked and woken,
  // and each event is answered once, in order.
  User alice = AddUser("alice@example.com");
  std::vector<User> others;
  for (int i = 0; i < 4; ++i) {
    others.push_back(AddUser("u" + std::to_string(i) + "@example.com"));
  }
  tcp::socket s = Connect();
  const std::string queue = Register(s, alice);
  std::int64_t last = -1;
  beast::flat_buffer buf;
  for (int round = 0; round < 4; ++round) {
    const User& someone = others[round];
    bhttp::request<bhttp::string_body> poll{
        bhttp::verb::get,
        "/api/v1/events?queue_id=" + queue +
            "&last_event_id=" + std::to_string(last),
        11};
    poll.set(bhttp::field::host, "127.0.0.1");
    poll.set(bhttp::field::authorization, Basic(alice));
    poll.prepare_payload();
    bhttp::write(s, poll);
    for (int i = 0; i < 100 && hub_->Stats().parked == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_EQ(hub_->Stats().parked, 1u) << "round " << round;
    Caller c{service_->FindRealmById(realm_), someone.id};
    ASSERT_TRUE(service_->Report(c, ReportStatus::kActive, clock_.NowMicros()));
    bhttp::response<bhttp::string_body> res;
    bhttp::read(s, buf, res);
    ASSERT_EQ(res.result_int(), 200u) << res.body();
    auto events = boost::json::parse(res.body()).at("events").as_array();
    ASSERT_EQ(events.size(), 1u) << "round " << round << ": " << res.body();
    EXPECT_EQ(events[0].at("id"), last + 1);
    EXPECT_EQ(events[0].at("user_id"), someone.id);
    last = events[0].at("id").as_int64();
  }
}

}  // namespace
}  // namespace presence::http

namespace presence::http {
namespace {

TEST_F(HttpServerTest, ClientLeavingAParkedPollIsNoticedAtOnce) {
  User alice = AddUser("alice@example.com");
  tcp::socket s = Connect();
  const std::string queue = Register(s, alice);
  auto parked_count = [&] { return hub_->Stats().parked; };
  if (!SendPollAndWaitParked(s, alice, queue)) {
    beast::flat_buffer buf;
    bhttp::response<bhttp::string_body> res;
    bhttp::read(s, buf, res);
    FAIL() << "not parked: " << res.result_int() << " " << res.body();
  }
  s.close();  // the client goes away while its poll is parked
  for (int i = 0; i < 200 && parked_count() != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(parked_count(), 0u)
      << "the session must drop a parked poll whose client left";
}

TEST_F(HttpServerTest, ARequestSentBehindAParkedPollIsAnsweredAfterIt) {
  // The parked session watches its socket with a peek: a request the
  // client sends behind the poll must stay in the socket, unconsumed, and
  // be answered after the poll's answer.
  User alice = AddUser("alice@example.com");
  User bob = AddUser("bob@example.com");
  tcp::socket s = Connect();
  const std::string queue = Register(s, alice);
  ASSERT_TRUE(SendPollAndWaitParked(s, alice, queue));
  bhttp::request<bhttp::string_body> health{bhttp::verb::get, "/healthz", 11};
  health.set(bhttp::field::host, "127.0.0.1");
  health.prepare_payload();
  bhttp::write(s, health);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(hub_->Stats().parked, 1u) << "the poll must stay parked";
  // Bob comes online: the poll is answered, then the health check.
  Caller bob_caller{service_->FindRealmById(realm_), bob.id};
  ASSERT_TRUE(
      service_->Report(bob_caller, ReportStatus::kActive, clock_.NowMicros()));
  beast::flat_buffer buf;
  bhttp::response<bhttp::string_body> first;
  bhttp::read(s, buf, first);
  ASSERT_EQ(first.result_int(), 200) << first.body();
  EXPECT_EQ(boost::json::parse(first.body()).at("events").as_array().size(),
            1u);
  bhttp::response<bhttp::string_body> second;
  bhttp::read(s, buf, second);
  EXPECT_EQ(second.result_int(), 200);
  EXPECT_EQ(boost::json::parse(second.body()).at("status"), "ok")
      << second.body();
}

TEST_F(HttpServerTest, ParkedPollIsAnsweredWhenAnEventArrives) {
  User alice = AddUser("alice@example.com");
  User bob = AddUser("bob@example.com");
  tcp::socket s = Connect();
  const std::string queue = Register(s, alice);
  // The poll is parked (the hub counts it) before Bob's ping: the answer
  // below comes from the wake-up, not from a poll that found the event.
  ASSERT_TRUE(SendPollAndWaitParked(s, alice, queue)) << "poll never parked";
  Caller c{service_->FindRealmById(realm_), bob.id};
  ASSERT_TRUE(service_->Report(c, ReportStatus::kActive, clock_.NowMicros()));
  beast::flat_buffer buf;
  bhttp::response<bhttp::string_body> res;
  bhttp::read(s, buf, res);
  EXPECT_EQ(hub_->Stats().parked, 0u);
  ASSERT_EQ(res.result_int(), 200u) << res.body();
  auto events = boost::json::parse(res.body()).at("events").as_array();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].at("type"), "presence");
  EXPECT_EQ(events[0].at("user_id"), bob.id);
  // The connection is still usable afterwards.
  bhttp::request<bhttp::string_body> health{bhttp::verb::get, "/healthz", 11};
  EXPECT_EQ(Send(s, health).result_int(), 200u);
}

}  // namespace
}  // namespace presence::http
