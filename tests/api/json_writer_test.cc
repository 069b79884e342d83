#include "api/json_writer.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

namespace presence::api {
namespace {

TEST(JsonWriterTest, StringsAreEscapedAndParseBack) {
  for (std::string s :
       {std::string("plain@example.com"), std::string("q\"uo\\te"),
        std::string("tab\tnl\ncr\r"), std::string("\x01\x1f", 2),
        std::string("caf\xc3\xa9"), std::string()}) {
    std::string out;
    AppendJsonString(out, s);
    auto v = boost::json::parse(out);
    ASSERT_TRUE(v.is_string()) << out;
    EXPECT_EQ(std::string(v.as_string()), s);
  }
}

TEST(JsonWriterTest, IntegersAndSeconds) {
  std::string out;
  AppendInt(out, -42);
  out += ' ';
  AppendSeconds(out, 1'656'958'539'628'715);
  out += ' ';
  AppendSeconds(out, 5);
  EXPECT_EQ(out, "-42 1656958539.628715 0.000005");
}

}  // namespace
}  // namespace presence::api

namespace presence::api {
namespace {

TEST(JsonWriterTest, IsoDateIsUtcWithMicroseconds) {
  EXPECT_EQ(IsoDate(1'700'000'000'123'456), "2023-11-14T22:13:20.123456+00:00");
}

}  // namespace
}  // namespace presence::api
