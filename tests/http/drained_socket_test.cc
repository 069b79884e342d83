#include "http/drained_socket.h"

#include <gtest/gtest.h>

#include <array>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

namespace presence::http {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// A loopback connection whose server end an io_context (hint `hint`)
// serves; the test's thread runs it, one handler at a time.
class DrainedSocketTest : public ::testing::Test {
 protected:
  void Connect(int hint) {
    ioc_.emplace(hint);
    server_.emplace(*ioc_);
    tcp::acceptor acceptor(
        *ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    client_.connect(acceptor.local_endpoint());
    acceptor.accept(*server_);
    server_->non_blocking(true);
  }

  // Starts a read of up to `room` bytes through `reader`.
  void StartRead(DrainedSocket& reader, std::size_t room) {
    got_.reset();
    reader.async_read_some(asio::buffer(buf_.data(), room),
                           [this](boost::system::error_code ec, std::size_t n) {
                             ASSERT_FALSE(ec) << ec.message();
                             got_ = std::string(buf_.data(), n);
                           });
  }

  // Runs the io_context until the read completes (or 10 s pass).
  std::string AwaitRead() {
    // The last run stopped when it ran out of work.
    ioc_->restart();
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!got_ && std::chrono::steady_clock::now() < deadline) {
      ioc_->run_one_for(100ms);
    }
    EXPECT_TRUE(got_.has_value()) << "the read never completed";
    return got_.value_or("");
  }

  void Send(std::string_view bytes) {
    asio::write(client_, asio::buffer(bytes));
  }

  std::optional<asio::io_context> ioc_;
  std::optional<tcp::socket> server_;
  asio::io_context client_ioc_;
  tcp::socket client_{client_ioc_};
  std::array<char, 64> buf_{};
  std::optional<std::string> got_;
};

TEST_F(DrainedSocketTest, ShortReadFromTheReactorSkipsTheNextTry) {
  Connect(1);
  ASSERT_TRUE(ReadSpeculation::Supported(*server_));
  DrainedSocket reader(*server_);
  StartRead(reader, 64);  // nothing there yet: queued
  Send("GET / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(AwaitRead(), "GET / HTTP/1.1\r\n\r\n");
  // The socket is empty: the next read waits for epoll without a recv.
  EXPECT_FALSE(ReadSpeculation::WouldTry(*server_));
  // And still reads what the client sends next.
  StartRead(reader, 64);
  Send("second");
  EXPECT_EQ(AwaitRead(), "second");
  EXPECT_FALSE(ReadSpeculation::WouldTry(*server_));
}

TEST_F(DrainedSocketTest, BytesThatArriveBeforeTheNextReadAreRead) {
  Connect(1);
  DrainedSocket reader(*server_);
  StartRead(reader, 64);
  Send("first");
  EXPECT_EQ(AwaitRead(), "first");
  ASSERT_FALSE(ReadSpeculation::WouldTry(*server_));
  // The next request comes while no read is queued (a pipelining client,
  // an answer still being written): the reactor sees the event, nobody
  // reads it then, and the next read must still find the bytes.
  Send("early");
  auto guard = asio::make_work_guard(*ioc_);
  ioc_->restart();
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!ReadSpeculation::WouldTry(*server_) &&
         std::chrono::steady_clock::now() < deadline) {
    ioc_->poll();
  }
  ASSERT_TRUE(ReadSpeculation::WouldTry(*server_));
  StartRead(reader, 64);
  EXPECT_EQ(AwaitRead(), "early");
}

TEST_F(DrainedSocketTest, AFullReadLeavesTheTryOn) {
  Connect(1);
  DrainedSocket reader(*server_);
  StartRead(reader, 4);
  Send("12345678");
  EXPECT_EQ(AwaitRead(), "1234");
  // The buffer was filled: more may be waiting, and is.
  EXPECT_TRUE(ReadSpeculation::WouldTry(*server_));
  StartRead(reader, 64);
  EXPECT_EQ(AwaitRead(), "5678");
}

// Issue #17: a read whose bytes are there already (a re-poll a peek saw)
// drains the socket in its own try, and the wait after it (a parked poll's
// peek) is queued without a recv that would find nothing.
TEST_F(DrainedSocketTest, ATryThatDrainsTheSocketSkipsTheNextTry) {
  Connect(1);
  DrainedSocket reader(*server_);
  Send("GET /events HTTP/1.1\r\n\r\n");
  // Synchronised on the bytes being there, not on time.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (server_->available() == 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  ASSERT_GT(server_->available(), 0u);
  ASSERT_TRUE(ReadSpeculation::WouldTry(*server_));
  StartRead(reader, 64);
  EXPECT_FALSE(got_.has_value()) << "completed inside the call";
  EXPECT_EQ(AwaitRead(), "GET /events HTTP/1.1\r\n\r\n");
  EXPECT_FALSE(ReadSpeculation::WouldTry(*server_));
  // And what the client sends next is still read.
  StartRead(reader, 64);
  Send("next");
  EXPECT_EQ(AwaitRead(), "next");
}

// A socket in blocking mode is left to the reactor's own try (a recv in
// the call could block the thread).
TEST_F(DrainedSocketTest, ABlockingSocketKeepsTheReactorsTry) {
  Connect(1);
  server_->non_blocking(false);
  DrainedSocket reader(*server_);
  StartRead(reader, 64);
  Send("later");
  EXPECT_EQ(AwaitRead(), "later");
}

TEST_F(DrainedSocketTest, PassesThroughOnAContextManyThreadsMayRun) {
  Connect(-1);  // BOOST_ASIO_CONCURRENCY_HINT_DEFAULT
  EXPECT_FALSE(ReadSpeculation::Supported(*server_));
  DrainedSocket reader(*server_);
  StartRead(reader, 64);
  Send("plain");
  EXPECT_EQ(AwaitRead(), "plain");
  EXPECT_TRUE(ReadSpeculation::WouldTry(*server_));
}

}  // namespace
}  // namespace presence::http
