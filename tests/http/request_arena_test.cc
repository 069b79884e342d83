// RequestArena and ArenaAllocator: aligned, non-overlapping allocations,
// requests larger than a block, and a reset that keeps exactly one block.
#include "http/request_arena.h"

#include <gtest/gtest.h>

#include <boost/beast/http.hpp>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace presence::http {
namespace {

TEST(RequestArenaTest, AllocationsAreAlignedAndDoNotOverlap) {
  RequestArena arena;
  std::vector<std::pair<char*, std::size_t>> got;
  for (std::size_t i = 1; i < 200; ++i) {
    const std::size_t align = std::size_t{1} << (i % 4);  // 1, 2, 4, 8
    auto* p = static_cast<char*>(arena.Allocate(i, align));
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % align, 0u) << i;
    std::memset(p, static_cast<int>(i), i);
    got.emplace_back(p, i);
  }
  // Every allocation still holds what was written into it.
  for (auto& [p, n] : got) {
    for (std::size_t k = 0; k < n; ++k) {
      ASSERT_EQ(static_cast<unsigned char>(p[k]), n % 256) << n;
    }
  }
}

TEST(RequestArenaTest, ResetKeepsOneBlockAndReusesIt) {
  RequestArena arena;
  void* first = arena.Allocate(16, 8);
  arena.Allocate(5000, 8);  // larger than a block
  arena.Allocate(RequestArena::kBlock, 8);
  EXPECT_GT(arena.held(), 5000u);
  arena.Reset();
  EXPECT_EQ(arena.held(), RequestArena::kBlock);
  EXPECT_EQ(arena.Allocate(16, 8), first);
}

TEST(RequestArenaTest, BeastParsesARequestIntoTheArena) {
  RequestArena arena;
  using Alloc = ArenaAllocator<char>;
  for (int round = 0; round < 3; ++round) {
    arena.Reset();
    boost::beast::http::request_parser<boost::beast::http::string_body, Alloc>
        parser(std::piecewise_construct, std::make_tuple(),
               std::make_tuple(Alloc(&arena)));
    const std::string long_value(3000, 'v');
    const std::string text =
        "POST /api/v1/users/me/presence HTTP/1.1\r\nHost: localhost\r\n"
        "Authorization: Basic abc\r\nX-Long: " +
        long_value +
        "\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        "Content-Length: 13\r\n\r\nstatus=active";
    boost::beast::error_code ec;
    parser.eager(true);
    parser.put(boost::asio::buffer(text), ec);
    ASSERT_FALSE(ec) << ec.message();
    ASSERT_TRUE(parser.is_done());
    const auto& req = parser.get();
    EXPECT_EQ(req[boost::beast::http::field::host], "localhost");
    EXPECT_EQ(req["X-Long"], long_value);
    EXPECT_EQ(req[boost::beast::http::field::authorization], "Basic abc");
    EXPECT_EQ(req.body(), "status=active");
  }
}

}  // namespace
}  // namespace presence::http
