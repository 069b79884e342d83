// Forwarder against loopback peers on 127.0.0.1:0: what reaches the peer,
// what comes back, the one failure answer (kIoError, exactly once) for a
// peer that cannot be reached, closes, or stays silent; connections kept
// alive and reused, and the bound on relays in flight.
#include "http/forwarder.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

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

// Runs one relay until its answer; counts how often `done` was called.
struct Outcome {
  int calls = 0;
  std::optional<ForwardResponse> answer;
  std::optional<Errc> error;
  std::chrono::steady_clock::duration took{};
};

const RelayAuth& GroupAuth() {
  static const RelayAuth auth("a-secret-of-the-test-group");
  return auth;
}

// Starts one relay on `ioc`, recording its outcome in `out`.
void Start(Forwarder& forwarder, asio::io_context& ioc,
           const std::string& address, ForwardRequest request, Outcome& out,
           std::chrono::milliseconds timeout = 5s) {
  forwarder.Forward(ioc.get_executor(), address, std::move(request), timeout,
                    [&out](Result<ForwardResponse> answer) {
                      ++out.calls;
                      if (answer) {
                        out.answer = std::move(*answer);
                      } else {
                        out.error = answer.error() == Errc::kUnavailable
                                        ? Errc::kUnavailable
                                        : Errc::kIoError;
                      }
                    });
}

// Runs `ioc` until `pred` holds (an idle connection keeps a read pending, so
// the context never runs out of work by itself), then whatever is ready.
template <typename Pred>
void RunUntil(asio::io_context& ioc, Pred pred) {
  // A context that ran out of work once is stopped until restarted.
  ioc.restart();
  while (!pred() && ioc.run_one()) {
  }
  ioc.poll();
}

Outcome RunForward(const std::string& address, ForwardRequest request,
                   std::chrono::milliseconds timeout = 5s) {
  asio::io_context ioc;
  Forwarder forwarder(GroupAuth(), {});
  Outcome out;
  const auto start = std::chrono::steady_clock::now();
  Start(forwarder, ioc, address, std::move(request), out, timeout);
  RunUntil(ioc, [&] { return out.calls > 0; });
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
  // request (the owner then answers it itself), on a connection kept alive.
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
  EXPECT_TRUE(got.keep_alive());
  EXPECT_EQ(got.version(), 11u);
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

TEST(ForwarderTest, ADeadPeerGivesAnErrorOnce) {
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
  EXPECT_EQ(out.error, Errc::kIoError);
  EXPECT_LT(out.took, 5s) << "a refused connection must not wait out the "
                             "timeout";
}

TEST(ForwarderTest, AnAddressWithoutPortGivesAnErrorOnce) {
  for (std::string address : {"127.0.0.1", "", "localhost"}) {
    Outcome out = RunForward(address, Poll());
    EXPECT_EQ(out.calls, 1) << address;
    EXPECT_FALSE(out.answer.has_value()) << address;
    EXPECT_EQ(out.error, Errc::kIoError) << address;
  }
}

TEST(ForwarderTest, APeerThatClosesWithoutAnsweringGivesAnError) {
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
  EXPECT_EQ(out.error, Errc::kIoError);
}

TEST(ForwarderTest, ASilentPeerGivesAnErrorAfterTheTimeout) {
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
  EXPECT_EQ(out.error, Errc::kIoError);
  EXPECT_GE(out.took, 300ms);
  EXPECT_LT(out.took, 5s);
}

// A peer on 127.0.0.1:0 that accepts any number of connections and answers
// every request on each (HTTP/1.1 keep-alive), counting the connections it
// accepted. With `close_after_answer` it closes each connection after its
// first answer (without saying so); with `hold` set it answers nothing until
// Release().
class KeepAlivePeer {
 public:
  explicit KeepAlivePeer(bool close_after_answer = false, bool hold = false)
      : acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        port_(acceptor_.local_endpoint().port()),
        close_after_answer_(close_after_answer),
        held_(hold) {
    accept_thread_ = std::thread([this] {
      for (;;) {
        beast::error_code ec;
        tcp::socket s(ioc_);
        acceptor_.accept(s, ec);
        if (ec) return;
        std::lock_guard lock(mu_);
        ++accepted_;
        threads_.emplace_back(
            [this, s = std::move(s)]() mutable { Serve(std::move(s)); });
      }
    });
  }
  ~KeepAlivePeer() {
    Release();
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    accept_thread_.join();
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mu_);
      for (auto& s : open_) {
        beast::error_code ec;
        s->shutdown(tcp::socket::shutdown_both, ec);
      }
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int accepted() {
    std::lock_guard lock(mu_);
    return accepted_;
  }
  int requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  void Release() {
    std::lock_guard lock(mu_);
    held_ = false;
    cv_.notify_all();
  }

 private:
  void Serve(tcp::socket s) {
    {
      std::lock_guard lock(mu_);
      open_.push_back(&s);
    }
    beast::flat_buffer buf;
    for (;;) {
      bhttp::request<bhttp::string_body> req;
      beast::error_code ec;
      bhttp::read(s, buf, req, ec);
      if (ec) break;
      {
        std::unique_lock lock(mu_);
        ++requests_;
        cv_.notify_all();
        cv_.wait(lock, [&] { return !held_; });
      }
      bhttp::response<bhttp::string_body> res{bhttp::status::ok, 11};
      res.body() = req.target();
      res.keep_alive(true);
      res.prepare_payload();
      bhttp::write(s, res, ec);
      if (ec || close_after_answer_) break;
    }
    std::lock_guard lock(mu_);
    std::erase(open_, &s);
    beast::error_code ec;
    s.close(ec);
  }

 public:
  // Blocks until `n` requests have arrived.
  void WaitRequests(int n) {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return requests_ >= n; });
  }

 private:
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  unsigned short port_;
  const bool close_after_answer_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool held_;
  int accepted_ = 0;
  int requests_ = 0;
  std::vector<tcp::socket*> open_;
  std::vector<std::thread> threads_;
  std::thread accept_thread_;
};

ForwardRequest PollOf(int i) {
  ForwardRequest req = Poll();
  req.target("/api/v1/events?queue_id=2:abc&n=" + std::to_string(i));
  return req;
}

TEST(ForwarderTest, SequentialRelaysShareOneKeptAliveConnection) {
  KeepAlivePeer peer;
  asio::io_context ioc;
  Forwarder forwarder(GroupAuth(), {});
  for (int i = 0; i < 20; ++i) {
    Outcome out;
    Start(forwarder, ioc, peer.address(), PollOf(i), out);
    RunUntil(ioc, [&] { return out.calls > 0; });
    ASSERT_EQ(out.calls, 1);
    ASSERT_TRUE(out.answer.has_value()) << i;
    // Each answer is the one to its own request.
    EXPECT_EQ(out.answer->body(), PollOf(i).target());
  }
  EXPECT_EQ(peer.accepted(), 1);
  const Forwarder::Counters c = forwarder.counters();
  EXPECT_EQ(c.connections_opened, 1u);
  EXPECT_EQ(c.connections_reused, 19u);
  EXPECT_EQ(c.idle, 1u);
  EXPECT_EQ(c.in_flight, 0u);
}

TEST(ForwarderTest, AConnectionThePeerClosedIsNotReusedAndNoRelayIsLost) {
  KeepAlivePeer peer(/*close_after_answer=*/true);
  asio::io_context ioc;
  Forwarder forwarder(GroupAuth(), {});
  for (int i = 0; i < 10; ++i) {
    Outcome out;
    Start(forwarder, ioc, peer.address(), PollOf(i), out);
    RunUntil(ioc, [&] { return out.calls > 0; });
    ASSERT_TRUE(out.answer.has_value()) << i;
    EXPECT_EQ(out.answer->body(), PollOf(i).target());
  }
  EXPECT_EQ(peer.accepted(), 10);
  EXPECT_EQ(peer.requests(), 10);
}

TEST(ForwarderTest, RelaysBeyondTheBoundAreRefusedAtOnceNeverQueued) {
  KeepAlivePeer peer(/*close_after_answer=*/false, /*hold=*/true);
  asio::io_context ioc;
  Forwarder forwarder(
      GroupAuth(), {.max_in_flight_per_target = 3, .max_idle_per_target = 2});
  std::vector<Outcome> outs(5);
  for (int i = 0; i < 3; ++i) {
    Start(forwarder, ioc, peer.address(), PollOf(i), outs[i]);
  }
  // The three are at the peer, held there.
  ioc.restart();
  while (peer.requests() < 3) ioc.run_one_for(std::chrono::milliseconds(50));
  // A fourth and fifth are refused, answered at once.
  Start(forwarder, ioc, peer.address(), PollOf(3), outs[3]);
  Start(forwarder, ioc, peer.address(), PollOf(4), outs[4]);
  RunUntil(ioc, [&] { return outs[3].calls > 0 && outs[4].calls > 0; });
  for (int i = 3; i < 5; ++i) {
    EXPECT_EQ(outs[i].calls, 1);
    EXPECT_EQ(outs[i].error, Errc::kUnavailable);
  }
  for (int i = 0; i < 3; ++i) EXPECT_EQ(outs[i].calls, 0);
  EXPECT_EQ(forwarder.counters().refused, 2u);
  EXPECT_EQ(forwarder.counters().in_flight, 3u);
  EXPECT_EQ(peer.accepted(), 3);

  peer.Release();
  RunUntil(ioc,
           [&] { return outs[0].calls + outs[1].calls + outs[2].calls == 3; });
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(outs[i].answer.has_value()) << i;
    EXPECT_EQ(outs[i].answer->body(), PollOf(i).target());
  }
  // At most max_idle_per_target connections are kept; the third is closed.
  EXPECT_EQ(forwarder.counters().idle, 2u);
  EXPECT_EQ(forwarder.counters().in_flight, 0u);
  // Room again: the next relay goes, on a kept connection.
  Outcome again;
  Start(forwarder, ioc, peer.address(), PollOf(9), again);
  RunUntil(ioc, [&] { return again.calls > 0; });
  ASSERT_TRUE(again.answer.has_value());
  EXPECT_EQ(peer.accepted(), 3);
}

}  // namespace
}  // namespace presence::http
