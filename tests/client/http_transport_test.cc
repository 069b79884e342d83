// HttpTransport against a scripted HTTP server on 127.0.0.1:0: framing,
// keep-alive, the one retry of a stale connection, deadlines, the connection
// limit, cancellation.
#include "client/http_transport.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

namespace presence::client {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

struct Reply {
  unsigned status = 200;
  std::string body = "{}";
  bool close_after = false;  // close the connection after answering
  bool silent = false;       // never answer
};

// A tiny HTTP/1.1 server on its own thread.
class ScriptedServer {
 public:
  using Handler = std::function<Reply(const http::request<http::string_body>&)>;

  explicit ScriptedServer(Handler handler)
      : handler_(std::move(handler)),
        acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    asio::co_spawn(ioc_, Accept(), asio::detached);
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~ScriptedServer() {
    ioc_.stop();
    thread_.join();
  }

  std::string url() const {
    return "http://127.0.0.1:" +
           std::to_string(acceptor_.local_endpoint().port());
  }
  int accepted() const { return accepted_; }
  int requests() const { return requests_; }
  http::request<http::string_body> last() {
    std::lock_guard lock(mu_);
    return last_;
  }

 private:
  asio::awaitable<void> Accept() {
    for (;;) {
      auto [ec, socket] =
          co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      ++accepted_;
      asio::co_spawn(ioc_, Session(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> Session(tcp::socket socket) {
    beast::flat_buffer buffer;
    for (;;) {
      http::request<http::string_body> req;
      auto [ec, n] = co_await http::async_read(
          socket, buffer, req, asio::as_tuple(asio::use_awaitable));
      if (ec) co_return;
      ++requests_;
      {
        std::lock_guard lock(mu_);
        last_ = req;
      }
      Reply reply = handler_(req);
      if (reply.silent) {
        asio::steady_timer forever(ioc_, 1h);
        co_await forever.async_wait(asio::as_tuple(asio::use_awaitable));
        co_return;
      }
      http::response<http::string_body> res{
          static_cast<http::status>(reply.status), 11};
      res.set("X-Test", "yes");
      res.body() = reply.body;
      res.keep_alive(true);  // even when about to close: a stale connection
      res.prepare_payload();
      auto [wec, wn] = co_await http::async_write(
          socket, res, asio::as_tuple(asio::use_awaitable));
      if (wec) co_return;
      if (reply.close_after) {
        beast::error_code ignored;
        socket.shutdown(tcp::socket::shutdown_both, ignored);
        socket.close(ignored);
        co_return;
      }
    }
  }

  Handler handler_;
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  std::thread thread_;
  std::atomic<int> accepted_{0};
  std::atomic<int> requests_{0};
  std::mutex mu_;
  http::request<http::string_body> last_;
};

class HttpTransportTest : public ::testing::Test {
 protected:
  std::unique_ptr<HttpTransport> Make(const std::string& url,
                                      HttpTransport::Options o = {}) {
    auto t = HttpTransport::Create(ioc_.get_executor(), url, o);
    EXPECT_TRUE(t);
    return std::move(*t);
  }

  // Sends and runs the loop until the answer (or `limit`).
  std::optional<Result<HttpResponse>> Roundtrip(
      HttpTransport& t, HttpRequest req, std::chrono::milliseconds limit = 5s) {
    std::optional<Result<HttpResponse>> out;
    t.Send(std::move(req), [&](Result<HttpResponse> r) { out = std::move(r); });
    RunUntil([&] { return out.has_value(); }, limit);
    return out;
  }

  template <class P>
  void RunUntil(P done, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      ioc_.restart();
      ioc_.run_for(10ms);
    }
  }

  static HttpRequest Get(std::string target) {
    HttpRequest r;
    r.method = "GET";
    r.target = std::move(target);
    return r;
  }

  asio::io_context ioc_;
};

TEST(HttpTransportUrlTest, ParsesHttpUrls) {
  auto u = HttpTransport::ParseUrl("http://127.0.0.1:9991");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, "9991");
  EXPECT_EQ(u->host_header, "127.0.0.1:9991");
  EXPECT_EQ(u->base_path, "");
  auto v = HttpTransport::ParseUrl("http://chat.example.com/presence/");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->port, "80");
  EXPECT_EQ(v->host_header, "chat.example.com");
  EXPECT_EQ(v->base_path, "/presence");
  auto w = HttpTransport::ParseUrl("http://[::1]:8080");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->host, "::1");
  EXPECT_EQ(w->host_header, "[::1]:8080");
}

TEST(HttpTransportUrlTest, RejectsWhatItCannotSpeak) {
  for (const char* bad :
       {"https://example.com", "ftp://x", "127.0.0.1:9991", "http://",
        "http://u:p@host", "http://host:0", "http://host:70000",
        "http://host/?q=1", "http://host:abc"}) {
    EXPECT_FALSE(HttpTransport::ParseUrl(bad)) << bad;
  }
}

TEST_F(HttpTransportTest, SendsTheRequestAndReturnsAnyStatus) {
  ScriptedServer server([](const auto& req) {
    return Reply{404, R"({"result":"error"})"};
  });
  auto t = Make(server.url() + "/prefix");
  HttpRequest req;
  req.method = "POST";
  req.target = "/api/v1/users/me/presence";
  req.headers.emplace_back("Authorization", "Basic abc");
  req.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
  req.body = "status=active";
  auto r = Roundtrip(*t, req);
  ASSERT_TRUE(r && *r);
  EXPECT_EQ((*r)->status, 404u);
  EXPECT_EQ((*r)->body, R"({"result":"error"})");
  EXPECT_EQ((*r)->Header("x-test"), "yes");
  auto seen = server.last();
  EXPECT_EQ(seen.method_string(), "POST");
  EXPECT_EQ(seen.target(), "/prefix/api/v1/users/me/presence");
  EXPECT_EQ(seen[http::field::authorization], "Basic abc");
  EXPECT_EQ(seen[http::field::host], server.url().substr(7));
  EXPECT_EQ(seen.body(), "status=active");
}

TEST_F(HttpTransportTest, KeepAliveReusesOneConnection) {
  ScriptedServer server([](const auto&) { return Reply{}; });
  auto t = Make(server.url());
  for (int i = 0; i < 5; ++i) {
    auto r = Roundtrip(*t, Get("/x"));
    ASSERT_TRUE(r && *r);
  }
  EXPECT_EQ(t->connects(), 1u);
  EXPECT_EQ(server.accepted(), 1);
}

TEST_F(HttpTransportTest, StaleKeptAliveConnectionIsRetriedOnceOnAFreshOne) {
  // The server closes every connection after answering, as one does when
  // its idle timeout strikes between two requests.
  ScriptedServer server([](const auto&) {
    Reply r;
    r.close_after = true;
    return r;
  });
  auto t = Make(server.url());
  ASSERT_TRUE(Roundtrip(*t, Get("/1")).value());
  std::this_thread::sleep_for(50ms);  // the close has arrived
  auto r = Roundtrip(*t, Get("/2"));
  ASSERT_TRUE(r && *r) << r->error().message();
  EXPECT_EQ(t->connects(), 2u);
  EXPECT_EQ(server.requests(), 2);  // each request reached it once
}

TEST_F(HttpTransportTest, DeadlineCoversAServerThatNeverAnswers) {
  ScriptedServer server([](const auto&) {
    Reply r;
    r.silent = true;
    return r;
  });
  auto t = Make(server.url());
  HttpRequest req = Get("/slow");
  req.timeout = 200 * 1000;
  const auto start = std::chrono::steady_clock::now();
  auto r = Roundtrip(*t, req);
  ASSERT_TRUE(r);
  ASSERT_FALSE(*r);
  EXPECT_EQ(r->error(), beast::error::timeout);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

TEST_F(HttpTransportTest, RefusedConnectionIsAnError) {
  int port;
  {
    tcp::acceptor a(ioc_,
                    tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = a.local_endpoint().port();
  }
  auto t = Make("http://127.0.0.1:" + std::to_string(port));
  auto r = Roundtrip(*t, Get("/"));
  ASSERT_TRUE(r);
  ASSERT_FALSE(*r);
  EXPECT_EQ(r->error(), asio::error::connection_refused);
}

TEST_F(HttpTransportTest, RequestsBeyondTheConnectionLimitWaitTheirTurn) {
  ScriptedServer server([](const auto& req) {
    return Reply{200, std::string(req.target())};
  });
  HttpTransport::Options o;
  o.max_connections = 1;
  auto t = Make(server.url(), o);
  std::vector<std::string> answers;
  for (int i = 0; i < 3; ++i) {
    t->Send(Get("/" + std::to_string(i)), [&](Result<HttpResponse> r) {
      answers.push_back(r ? r->body : r.error().message());
    });
  }
  RunUntil([&] { return answers.size() == 3; }, 5s);
  EXPECT_EQ(answers, (std::vector<std::string>{"/0", "/1", "/2"}));
  EXPECT_EQ(server.accepted(), 1);
}

TEST_F(HttpTransportTest, CancelAllAbortsWhatIsInFlightAndWaiting) {
  ScriptedServer server([](const auto&) {
    Reply r;
    r.silent = true;
    return r;
  });
  HttpTransport::Options o;
  o.max_connections = 1;
  auto t = Make(server.url(), o);
  std::vector<boost::system::error_code> errors;
  for (int i = 0; i < 2; ++i) {
    t->Send(Get("/"), [&](Result<HttpResponse> r) {
      errors.push_back(r ? boost::system::error_code() : r.error());
    });
  }
  RunUntil([&] { return server.requests() == 1; }, 5s);
  t->CancelAll();
  EXPECT_TRUE(errors.empty());  // never from inside the call
  RunUntil([&] { return errors.size() == 2; }, 5s);
  ASSERT_EQ(errors.size(), 2u);
  for (const auto& ec : errors) EXPECT_EQ(ec, asio::error::operation_aborted);
}

TEST_F(HttpTransportTest, ADestroyedTransportCallsNothing) {
  ScriptedServer server([](const auto&) {
    Reply r;
    r.silent = true;
    return r;
  });
  auto t = Make(server.url());
  bool called = false;
  t->Send(Get("/"), [&](Result<HttpResponse>) { called = true; });
  RunUntil([&] { return server.requests() == 1; }, 5s);
  t.reset();
  RunUntil([] { return false; }, 100ms);
  EXPECT_FALSE(called);
}

}  // namespace
}  // namespace presence::client
