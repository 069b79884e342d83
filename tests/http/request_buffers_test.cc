#include "http/request_buffers.h"

#include <gtest/gtest.h>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace presence::http {
namespace {

namespace bhttp = boost::beast::http;

// Parses `raw` into fresh buffers, as a session reads a request.
std::unique_ptr<RequestBuffers> Parse(std::string_view raw) {
  auto b = RequestBufferPool::Take();
  b->Begin(16 * 1024, 1024 * 1024);
  EXPECT_TRUE(ParseSaved(raw, *b)) << raw;
  return b;
}

TEST(RequestBufferPoolTest, GivenBuffersAreLentAgainWithoutAllocating) {
  while (RequestBufferPool::Kept() > 0) RequestBufferPool::Take();
  auto a = RequestBufferPool::Take();
  RequestBuffers* const first = a.get();
  a->Begin(1024, 1024);
  RequestBufferPool::Give(std::move(a));
  EXPECT_EQ(RequestBufferPool::Kept(), 1u);
  auto b = RequestBufferPool::Take();
  EXPECT_EQ(b.get(), first);
  EXPECT_EQ(RequestBufferPool::Kept(), 0u);
  // Given back empty: no parser, no request of the last one.
  EXPECT_FALSE(b->parser.has_value());
  EXPECT_EQ(b->buffer.size(), 0u);
  RequestBufferPool::Give(std::move(b));
}

TEST(RequestBufferPoolTest, KeepsAtMostKKeepPerThread) {
  std::vector<std::unique_ptr<RequestBuffers>> many;
  for (std::size_t i = 0; i < RequestBufferPool::kKeep + 10; ++i) {
    many.push_back(RequestBufferPool::Take());
  }
  for (auto& b : many) RequestBufferPool::Give(std::move(b));
  EXPECT_EQ(RequestBufferPool::Kept(), RequestBufferPool::kKeep);
  RequestBufferPool::Give(nullptr);  // ignored
  EXPECT_EQ(RequestBufferPool::Kept(), RequestBufferPool::kKeep);
}

TEST(RequestBufferPoolTest, ALargeReadBufferIsNotKept) {
  auto b = RequestBufferPool::Take();
  b->buffer.prepare(RequestBufferPool::kKeepBufferBytes * 4);
  ASSERT_GT(b->buffer.capacity(), RequestBufferPool::kKeepBufferBytes);
  while (RequestBufferPool::Kept() > 0) RequestBufferPool::Take();
  RequestBufferPool::Give(std::move(b));
  auto again = RequestBufferPool::Take();
  EXPECT_LE(again->buffer.capacity(), RequestBufferPool::kKeepBufferBytes);
}

TEST(SaveRequestTest, APollParsesBackToTheSameRequest) {
  const std::string raw =
      "GET /api/v1/events?queue_id=q1&last_event_id=4 HTTP/1.1\r\n"
      "Host: chat.example.com\r\n"
      "Authorization: Basic YWxpY2VAZXhhbXBsZS5jb206a2V5\r\n"
      "User-Agent: ZulipMobile/27.1\r\n"
      "X-Custom: a, b\r\n"
      "\r\n";
  auto first = Parse(raw);
  std::string saved;
  SaveRequest(first->parser->get(), saved);
  auto again = Parse(saved);
  const auto& a = first->parser->get();
  const auto& b = again->parser->get();
  EXPECT_EQ(b.method(), bhttp::verb::get);
  EXPECT_EQ(b.target(), a.target());
  EXPECT_EQ(b.version(), 11u);
  EXPECT_TRUE(b.keep_alive());
  std::vector<std::pair<std::string, std::string>> fa, fb;
  for (const auto& f : a) fa.emplace_back(f.name_string(), f.value());
  for (const auto& f : b) fb.emplace_back(f.name_string(), f.value());
  EXPECT_EQ(fa, fb);
  EXPECT_TRUE(b.body().empty());
}

TEST(SaveRequestTest, AChunkedBodyIsSavedDecodedWithItsLength) {
  const std::string raw =
      "POST /api/v1/register HTTP/1.0\r\n"
      "Host: h\r\n"
      "Connection: keep-alive\r\n"
      "Transfer-Encoding: chunked\r\n"
      "\r\n"
      "5\r\nhello\r\n3\r\n&x=\r\n0\r\n\r\n";
  auto first = Parse(raw);
  ASSERT_EQ(first->parser->get().body(), "hello&x=");
  std::string saved;
  SaveRequest(first->parser->get(), saved);
  EXPECT_EQ(saved.find("chunked"), std::string::npos);
  auto again = Parse(saved);
  const auto& b = again->parser->get();
  EXPECT_EQ(b.method(), bhttp::verb::post);
  EXPECT_EQ(b.version(), 10u);
  EXPECT_TRUE(b.keep_alive());
  EXPECT_EQ(b.body(), "hello&x=");
  EXPECT_EQ(b["Host"], "h");
}

TEST(SaveRequestTest, AnUnknownMethodIsKept) {
  auto first = Parse("PURGE /x HTTP/1.1\r\nHost: h\r\n\r\n");
  std::string saved;
  SaveRequest(first->parser->get(), saved);
  auto again = Parse(saved);
  EXPECT_EQ(again->parser->get().method_string(), "PURGE");
}

TEST(SaveRequestTest, ATruncatedRequestDoesNotParse) {
  auto b = RequestBufferPool::Take();
  b->Begin(16 * 1024, 1024);
  EXPECT_FALSE(ParseSaved("GET / HTTP/1.1\r\nHost: h\r\n", *b));
}

}  // namespace
}  // namespace presence::http
