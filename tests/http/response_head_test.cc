// AppendResponseHead writes what Beast's serializer writes for the same
// response built field by field, as HttpSession built every answer before.
#include "http/response_head.h"

#include <gtest/gtest.h>

#include <boost/beast/http.hpp>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace presence::http {
namespace {

namespace bhttp = boost::beast::http;

using Fields = std::vector<std::pair<std::string, std::string>>;

// As HttpSession::Respond builds an answer Beast writes.
std::string BeastHead(unsigned version, unsigned status,
                      std::string_view content_type, bool keep_alive,
                      std::optional<std::size_t> length,
                      const Fields& extra = {}) {
  bhttp::response<bhttp::string_body> res;
  res.version(version);
  res.result(status);
  res.set(bhttp::field::server, "presenced");
  if (!content_type.empty()) res.set(bhttp::field::content_type, content_type);
  for (const auto& [name, value] : extra) res.set(name, value);
  res.keep_alive(keep_alive);
  if (length) res.content_length(*length);
  std::ostringstream os;
  os << res.base();
  return os.str();
}

TEST(ResponseHeadTest, SameBytesAsBeast) {
  for (unsigned version : {10u, 11u}) {
    for (unsigned status : {200u, 204u, 400u, 401u, 404u, 429u, 503u, 599u}) {
      for (std::string_view type :
           {"application/json", "", "text/html; charset=utf-8"}) {
        for (bool keep_alive : {true, false}) {
          for (std::optional<std::size_t> length :
               {std::optional<std::size_t>(0), std::optional<std::size_t>(123),
                std::optional<std::size_t>()}) {
            std::string mine;
            AppendResponseHead(mine, version, status, type, keep_alive, length);
            EXPECT_EQ(mine,
                      BeastHead(version, status, type, keep_alive, length))
                << version << " " << status << " " << type << " " << keep_alive;
          }
        }
      }
    }
  }
}

TEST(ResponseHeadTest, AppendsToWhatIsThere) {
  std::string out = "x";
  AppendResponseHead(out, 11, 200, "application/json", true, 2);
  EXPECT_EQ(out,
            "xHTTP/1.1 200 OK\r\nServer: presenced\r\nContent-Type: "
            "application/json\r\nContent-Length: 2\r\n\r\n");
}

// Issue #17: with the rate limit on, every API answer carries the
// X-RateLimit fields; they take the formatted path too, with the very bytes
// Beast wrote for them.
TEST(ResponseHeadTest, Issue17_ExtraFieldsSameBytesAsBeast) {
  const std::vector<Fields> sets = {
      {{"X-RateLimit-Limit", "200"},
       {"X-RateLimit-Remaining", "199"},
       {"X-RateLimit-Reset", "1700000060"}},
      {{"WWW-Authenticate", "Basic realm=\"zulip\""}},
      {{"X-RateLimit-Limit", "200"},
       {"X-RateLimit-Remaining", "0"},
       {"X-RateLimit-Reset", "1700000060"},
       {"Retry-After", "59.500"}},
      {{"Allow", "GET, HEAD"}},
  };
  for (const Fields& extra : sets) {
    ASSERT_TRUE(HeadWritesFields(extra)) << extra[0].first;
    for (unsigned version : {10u, 11u}) {
      for (bool keep_alive : {true, false}) {
        for (std::optional<std::size_t> length :
             {std::optional<std::size_t>(57), std::optional<std::size_t>()}) {
          std::string mine;
          AppendResponseHead(mine, version, 200, "application/json", keep_alive,
                             length, extra);
          EXPECT_EQ(mine, BeastHead(version, 200, "application/json",
                                    keep_alive, length, extra))
              << extra[0].first << " " << version << " " << keep_alive;
        }
      }
    }
  }
}

// Issue #17: the rate-limit fields come as numbers (api::RateFields, no
// strings per answer) and are written before the answer's other fields,
// with the bytes Beast writes for the same fields set in that order.
TEST(ResponseHeadTest, Issue17_RateFieldsAsNumbersSameBytesAsBeast) {
  const api::RateFields rate{200, 0, 1700000060};
  const Fields as_text = {{"X-RateLimit-Limit", "200"},
                          {"X-RateLimit-Remaining", "0"},
                          {"X-RateLimit-Reset", "1700000060"}};
  for (const Fields& extra : {Fields{}, Fields{{"Retry-After", "59.500"}}}) {
    Fields all = as_text;
    all.insert(all.end(), extra.begin(), extra.end());
    for (unsigned version : {10u, 11u}) {
      for (bool keep_alive : {true, false}) {
        std::string mine;
        AppendResponseHead(mine, version, 429, "application/json", keep_alive,
                           88, extra, &rate);
        EXPECT_EQ(mine, BeastHead(version, 429, "application/json", keep_alive,
                                  88, all))
            << extra.size() << " " << version << " " << keep_alive;
      }
    }
  }
  Fields seen;
  ForEachRateField(api::RateFields{7, 6, 5},
                   [&seen](std::string_view name, std::string_view value) {
                     seen.emplace_back(name, value);
                   });
  EXPECT_EQ(seen, (Fields{{"X-RateLimit-Limit", "7"},
                          {"X-RateLimit-Remaining", "6"},
                          {"X-RateLimit-Reset", "5"}}));
}

// Issue #17: the head is written into room made once for the longest it
// can be; the longest numbers, a long type and long fields, the
// keep-alive field of HTTP/1.0, appended to a string holding something
// already, still give Beast's bytes (and ASan sees any write past the
// room made).
TEST(ResponseHeadTest, Issue17_LongestHeadSameBytesAsBeast) {
  constexpr std::int64_t kMin = std::numeric_limits<std::int64_t>::min();
  const api::RateFields rate{kMin, kMin, kMin};
  const std::string type(300, 't');
  const Fields extra = {{std::string(200, 'N'), std::string(500, 'v')},
                        {"Retry-After", "59.500"}};
  Fields all = {{"X-RateLimit-Limit", std::to_string(kMin)},
                {"X-RateLimit-Remaining", std::to_string(kMin)},
                {"X-RateLimit-Reset", std::to_string(kMin)}};
  all.insert(all.end(), extra.begin(), extra.end());
  const std::size_t length = std::numeric_limits<std::size_t>::max();
  for (unsigned version : {10u, 11u}) {
    for (bool keep_alive : {true, false}) {
      std::string mine(3, 'x');
      mine.shrink_to_fit();
      AppendResponseHead(mine, version, 599, type, keep_alive, length, extra,
                         &rate);
      EXPECT_EQ(mine,
                "xxx" + BeastHead(version, 599, type, keep_alive, length, all))
          << version << " " << keep_alive;
    }
  }
}

TEST(ResponseHeadTest, FieldsItCannotWriteAsBeastAreLeftToBeast) {
  EXPECT_TRUE(HeadWritesFields({}));
  EXPECT_FALSE(HeadWritesFields(Fields{{"Content-Type", "text/plain"}}));
  EXPECT_FALSE(HeadWritesFields(Fields{{"content-length", "3"}}));
  EXPECT_FALSE(HeadWritesFields(Fields{{"Connection", "close"}}));
  EXPECT_FALSE(HeadWritesFields(Fields{{"Server", "other"}}));
  EXPECT_FALSE(HeadWritesFields(Fields{{"Transfer-Encoding", "chunked"}}));
  EXPECT_FALSE(HeadWritesFields(Fields{{"X-A", "1"}, {"x-a", "2"}}));
  EXPECT_FALSE(HeadWritesFields(Fields{{"X-A", "1\r\nX-B: 2"}}));
  EXPECT_FALSE(HeadWritesFields(Fields{{"", "1"}}));
}

}  // namespace
}  // namespace presence::http
