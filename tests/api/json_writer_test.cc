#include "api/json_writer.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <cstdint>
#include <limits>
#include <string>

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

// The escapes a byte at a time, the reference the writer must equal.
std::string Reference(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"') {
      out += "\\\"";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

TEST(JsonWriterTest, EveryByteAtEveryPlaceOfTheWordsIsWrittenAsOneAtATime) {
  // The writer scans eight bytes at a time: each byte value, alone or with
  // a second one, at every offset of strings up to three words long, among
  // plain bytes and among bytes >= 0x80 (UTF-8, which a borrow in the word
  // test could mistake for a byte to escape).
  for (char filler : {'a', '\xa0', '\xff'}) {
    for (std::size_t len = 1; len <= 24; ++len) {
      for (std::size_t at = 0; at < len; ++at) {
        for (int b = 0; b < 256; ++b) {
          std::string s(len, filler);
          s[at] = static_cast<char>(b);
          if (at + 3 < len) s[at + 3] = '"';
          std::string out = "x";
          AppendJsonString(out, s);
          ASSERT_EQ(out, "x" + Reference(s))
              << "len " << len << " at " << at << " byte " << b;
        }
      }
    }
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

TEST(JsonWriterTest, NumbersAtTheirEdges) {
  std::string out;
  for (const std::int64_t v :
       {std::int64_t{0}, std::int64_t{7}, std::int64_t{10}, std::int64_t{99},
        std::int64_t{100}, std::int64_t{-1}, std::int64_t{-100},
        std::int64_t{1'234'567'890}, std::numeric_limits<std::int64_t>::max(),
        std::numeric_limits<std::int64_t>::min()}) {
    out.clear();
    AppendInt(out, v);
    EXPECT_EQ(out, std::to_string(v));
  }
  out = "x";
  AppendSeconds(out, 0);
  AppendSeconds(out, -1'500'000);
  AppendSeconds(out, 10'000'010);
  AppendSeconds(out, 999'999);
  EXPECT_EQ(out, "x0.000000-1.50000010.0000100.999999");
  out.clear();
  AppendSeconds(out, std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(out, "-9223372036854.775808");
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
