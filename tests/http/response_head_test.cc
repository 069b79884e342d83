// AppendResponseHead writes what Beast's serializer writes for the same
// response built field by field, as HttpSession built every answer before.
#include "http/response_head.h"

#include <gtest/gtest.h>

#include <boost/beast/http.hpp>
#include <sstream>

namespace presence::http {
namespace {

namespace bhttp = boost::beast::http;

std::string BeastHead(unsigned version, unsigned status,
                      std::string_view content_type, bool keep_alive,
                      std::optional<std::size_t> length) {
  bhttp::response<bhttp::string_body> res;
  res.version(version);
  res.result(status);
  res.set(bhttp::field::server, "presenced");
  if (!content_type.empty()) res.set(bhttp::field::content_type, content_type);
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

}  // namespace
}  // namespace presence::http
