// Forward() against loopback peers on 127.0.0.1:0: what reaches the peer,
// what comes back, and the one failure answer (nullopt, exactly once) for a
// peer that cannot be reached, closes, or stays silent.
#include "http/forwarder.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <functional>
#include <future>
#include <optional>
#include <string>
#include <thread>

namespace presence::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// A peer that accepts one connection on 127.0.0.1:0 and runs `serve` on it
// in its own thread.
class LoopbackPeer {
 public:
  explicit LoopbackPeer(std::function<void(tcp::socket&)> serve)
      : acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        port_(acceptor_.local_endpoint().port()) {
    thread_ = std::thread([this, serve = std::move(serve)] {
      beast::error_code ec;
      tcp::socket s(ioc_);
      acceptor_.accept(s, ec);
      if (!ec) serve(s);
    });
  }
  ~LoopbackPeer() {
    beast::error_code ec;
    acceptor_.close(ec);
    thread_.join();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  unsigned short port_;
  std::thread thread_;
};

// Runs one Forward to completion; counts how often `done` was called.
struct Outcome {
  int calls = 0;
  std::optional<ForwardResponse> answer;
  std::chrono::steady_clock::duration took{};
};

const RelayAuth& GroupAuth() {
  static const RelayAuth auth("a-secret-of-the-test-group");
  return auth;
}

Outcome RunForward(const std::string& address, ForwardRequest request,
                   std::chrono::milliseconds timeout = 5s) {
  asio::io_context ioc;
  Outcome out;
  const auto start = std::chrono::steady_clock::now();
  Forward(ioc.get_executor(), address, std::move(request), GroupAuth(), timeout,
          [&](std::optional<ForwardResponse> answer) {
            ++out.calls;
            out.answer = std::move(answer);
          });
  ioc.run();  // returns once the relay has nothing left to do
  out.took = std::chrono::steady_clock::now() - start;
  return out;
}

ForwardRequest Poll() {
  ForwardRequest req{bhttp::verb::get,
                     "/api/v1/events?queue_id=2:abc&last_event_id=-1", 11};
  req.set(bhttp::field::host, "acme.localhost:9991");
  req.set(bhttp::field::authorization, "Basic dTpr");
  return req;
}

TEST(ForwarderTest, RelaysMethodTargetBodyAndHeadersAndReturnsTheAnswer) {
  std::promise<bhttp::request<bhttp::string_body>> seen;
  LoopbackPeer peer([&](tcp::socket& s) {
    beast::flat_buffer buf;
    bhttp::request<bhttp::string_body> req;
    bhttp::read(s, buf, req);
    seen.set_value(req);
    bhttp::response<bhttp::string_body> res{bhttp::status::accepted, 11};
    res.set("X-Peer", "owner");
    res.set(bhttp::field::content_type, "application/json");
    res.body() = R"({"result":"success"})";
    res.prepare_payload();
    bhttp::write(s, res);
  });
  ForwardRequest req{bhttp::verb::patch, "/api/v1/events?queue_id=2:abc", 11};
  req.set(bhttp::field::host, "acme.localhost:9991");
  req.set(bhttp::field::authorization, "Basic dTpr");
  req.set(bhttp::field::content_type, "application/x-www-form-urlencoded");
  req.body() = "queue_id=2%3Aabc&x=1";

  Outcome out = RunForward(peer.address(), req);
  ASSERT_EQ(out.calls, 1);
  ASSERT_TRUE(out.answer.has_value());
  EXPECT_EQ(out.answer->result_int(), 202u);
  EXPECT_EQ((*out.answer)["X-Peer"], "owner");
  EXPECT_EQ(out.answer->body(), R"({"result":"success"})");

  auto got = seen.get_future().get();
  EXPECT_EQ(got.method(), bhttp::verb::patch);
  EXPECT_EQ(got.target(), "/api/v1/events?queue_id=2:abc");
  EXPECT_EQ(got.body(), "queue_id=2%3Aabc&x=1");
  EXPECT_EQ(got[bhttp::field::host], "acme.localhost:9991");
  EXPECT_EQ(got[bhttp::field::authorization], "Basic dTpr");
  EXPECT_EQ(got[bhttp::field::content_type],
            "application/x-www-form-urlencoded");
  EXPECT_EQ(got[bhttp::field::content_length], "20");
  // Marked as relayed, signed with the group's secret over this very
  // request (the owner then answers it itself), on a connection of its own.
  const std::string mark(got[kForwardedHeader]);
  const std::int64_t now = RelayAuth::NowUnix();
  EXPECT_TRUE(GroupAuth().Verify("PATCH", "/api/v1/events?queue_id=2:abc",
                                 "queue_id=2%3Aabc&x=1", mark, now))
      << mark;
  // Not by another secret, nor for another request or a minute later.
  EXPECT_FALSE(RelayAuth("another-group-secret!")
                   .Verify("PATCH", "/api/v1/events?queue_id=2:abc",
                           "queue_id=2%3Aabc&x=1", mark, now));
  EXPECT_FALSE(GroupAuth().Verify("PATCH", "/api/v1/events?queue_id=3:abc",
                                  "queue_id=2%3Aabc&x=1", mark, now));
  EXPECT_FALSE(GroupAuth().Verify("GET", "/api/v1/events?queue_id=2:abc",
                                  "queue_id=2%3Aabc&x=1", mark, now));
  EXPECT_FALSE(GroupAuth().Verify("PATCH", "/api/v1/events?queue_id=2:abc",
                                  "queue_id=2%3Aabc&x=2", mark, now));
  EXPECT_FALSE(GroupAuth().Verify("PATCH", "/api/v1/events?queue_id=2:abc",
                                  "queue_id=2%3Aabc&x=1", mark,
                                  now + RelayAuth::kMaxSkew.count() + 5));
  EXPECT_FALSE(got.keep_alive());
}

TEST(ForwarderTest, AClientsOwnMarkIsReplacedByTheSignedOne) {
  std::promise<bhttp::request<bhttp::string_body>> seen;
  LoopbackPeer peer([&](tcp::socket& s) {
    beast::flat_buffer buf;
    bhttp::request<bhttp::string_body> req;
    bhttp::read(s, buf, req);
    seen.set_value(req);
    bhttp::response<bhttp::string_body> res{bhttp::status::ok, 11};
    res.prepare_payload();
    bhttp::write(s, res);
  });
  ForwardRequest req = Poll();
  req.set(kForwardedHeader, "1");
  Outcome out = RunForward(peer.address(), req);
  ASSERT_EQ(out.calls, 1);
  ASSERT_TRUE(out.answer.has_value());
  auto got = seen.get_future().get();
  EXPECT_EQ(got.count(kForwardedHeader), 1u);
  EXPECT_NE(got[kForwardedHeader], "1");
  EXPECT_TRUE(GroupAuth().Verify(
      "GET", "/api/v1/events?queue_id=2:abc&last_event_id=-1", "",
      std::string(got[kForwardedHeader]), RelayAuth::NowUnix()));
}

TEST(ForwarderTest, ADeadPeerGivesNulloptOnce) {
  std::string address;
  {
    // A port that was free a moment ago and has nobody listening now.
    asio::io_context ioc;
    tcp::acceptor a(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    address = "127.0.0.1:" + std::to_string(a.local_endpoint().port());
  }
  Outcome out = RunForward(address, Poll());
  EXPECT_EQ(out.calls, 1);
  EXPECT_FALSE(out.answer.has_value());
  EXPECT_LT(out.took, 5s) << "a refused connection must not wait out the "
                             "timeout";
}

TEST(ForwarderTest, AnAddressWithoutPortGivesNulloptOnce) {
  for (std::string address : {"127.0.0.1", "", "localhost"}) {
    Outcome out = RunForward(address, Poll());
    EXPECT_EQ(out.calls, 1) << address;
    EXPECT_FALSE(out.answer.has_value()) << address;
  }
}

TEST(ForwarderTest, APeerThatClosesWithoutAnsweringGivesNullopt) {
  LoopbackPeer peer([](tcp::socket& s) {
    beast::flat_buffer buf;
    bhttp::request<bhttp::string_body> req;
    beast::error_code ec;
    bhttp::read(s, buf, req, ec);
    s.close(ec);
  });
  Outcome out = RunForward(peer.address(), Poll());
  EXPECT_EQ(out.calls, 1);
  EXPECT_FALSE(out.answer.has_value());
}

TEST(ForwarderTest, ASilentPeerGivesNulloptAfterTheTimeout) {
  std::promise<void> release;
  auto released = release.get_future();
  LoopbackPeer peer([&](tcp::socket& s) {
    beast::flat_buffer buf;
    bhttp::request<bhttp::string_body> req;
    beast::error_code ec;
    bhttp::read(s, buf, req, ec);
    released.wait();  // reads the request, never answers
  });
  Outcome out = RunForward(peer.address(), Poll(), 300ms);
  release.set_value();
  EXPECT_EQ(out.calls, 1);
  EXPECT_FALSE(out.answer.has_value());
  EXPECT_GE(out.took, 300ms);
  EXPECT_LT(out.took, 5s);
}

}  // namespace
}  // namespace presence::http
