#include "api/request_params.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace presence::api {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr std::string_view kForm = "application/x-www-form-urlencoded";

// What the npm `form-data` package (used by zulip-js) sends: 26 dashes and 24
// digits as the boundary, CRLF line endings, a closing delimiter and CRLF.
constexpr std::string_view kNpmBoundary =
    "--------------------------123456789012345678901234";

std::string NpmContentType() {
  return "multipart/form-data; boundary=" + std::string(kNpmBoundary);
}

std::string NpmBody(
    const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string body;
  for (const auto& [name, value] : fields) {
    body += "--" + std::string(kNpmBoundary) + "\r\n";
    body += "Content-Disposition: form-data; name=\"" + name + "\"\r\n";
    body += "\r\n";
    body += value + "\r\n";
  }
  body += "--" + std::string(kNpmBoundary) + "--\r\n";
  return body;
}

RequestParams MustParse(std::string_view query, std::string_view content_type,
                        std::string_view body,
                        const RequestParamsOptions& options = {}) {
  auto r = RequestParams::Parse(query, content_type, body, options);
  EXPECT_TRUE(r) << (r ? "" : r.error().msg);
  return r ? std::move(*r) : RequestParams();
}

std::string ParseError(std::string_view query, std::string_view content_type,
                       std::string_view body,
                       const RequestParamsOptions& options = {}) {
  auto r = RequestParams::Parse(query, content_type, body, options);
  if (r) return "(parsed)";
  EXPECT_EQ(r.error().http_status, 400u);
  EXPECT_EQ(r.error().code, "BAD_REQUEST");
  return r.error().msg;
}

std::string Body(const ApiError& e) {
  return boost::json::serialize(e.ToJson());
}

// --- Sources and encodings --------------------------------------------------

TEST(RequestParamsTest, EmptyRequestHasNoParameters) {
  RequestParams p = MustParse("", "", "");
  EXPECT_TRUE(p.empty());
  EXPECT_THAT(p.Names(), IsEmpty());
  EXPECT_THAT(p.UnusedNames(), IsEmpty());
  EXPECT_EQ(p.GetString("status"), std::nullopt);
}

TEST(RequestParamsTest, QueryStringWithOrWithoutQuestionMark) {
  for (std::string_view q :
       {"status=active&ping_only=true", "?status=active&ping_only=true"}) {
    RequestParams p = MustParse(q, "", "");
    EXPECT_EQ(p.GetString("status"), "active");
    EXPECT_EQ(p.GetString("ping_only"), "true");
    EXPECT_EQ(p.size(), 2u);
  }
}

TEST(RequestParamsTest, PercentDecodingAndPlus) {
  RequestParams p = MustParse(
      "a=hello+world&b=hello%20world&c=1%2B1&d=%5B%22presence%22%5D&"
      "e%20f=x&g+h=y",
      "", "");
  EXPECT_EQ(p.GetString("a"), "hello world");
  EXPECT_EQ(p.GetString("b"), "hello world");
  EXPECT_EQ(p.GetString("c"), "1+1");
  EXPECT_EQ(p.GetString("d"), "[\"presence\"]");
  EXPECT_EQ(p.GetString("e f"), "x");
  EXPECT_EQ(p.GetString("g h"), "y");
}

TEST(RequestParamsTest, FormBodyDecodesLikeQuery) {
  RequestParams p = MustParse(
      "", kForm, "status=active&note=caf%C3%A9+au+lait&raw=[\"a\",1]&x=%7B%7D");
  EXPECT_EQ(p.GetString("status"), "active");
  EXPECT_EQ(p.GetString("note"), "caf\xC3\xA9 au lait");
  EXPECT_EQ(p.GetString("raw"), "[\"a\",1]");  // unencoded JSON tolerated
  EXPECT_EQ(p.GetString("x"), "{}");
}

TEST(RequestParamsTest, SegmentShapes) {
  RequestParams p = MustParse("", kForm, "&&a&b=&c==d&=orphan&&e=1&");
  EXPECT_EQ(p.GetString("a"), "");  // no '=': empty value
  EXPECT_EQ(p.GetString("b"), "");
  EXPECT_EQ(p.GetString("c"), "=d");  // split at the first '='
  EXPECT_EQ(p.GetString("e"), "1");
  EXPECT_THAT(p.Names(), ElementsAre("a", "b", "c", "e"));  // no "" name
}

TEST(RequestParamsTest, MalformedPercentEncodingIsAnError) {
  EXPECT_EQ(ParseError("a=%zz", "", ""),
            "Malformed percent-encoding in query string");
  EXPECT_EQ(ParseError("a=100%", "", ""),
            "Malformed percent-encoding in query string");
  EXPECT_EQ(ParseError("a%4=1", "", ""),
            "Malformed percent-encoding in query string");
  EXPECT_EQ(ParseError("", kForm, "status=%E"),
            "Malformed percent-encoding in request body");
}

TEST(RequestParamsTest, BodyWinsOverQuery) {
  RequestParams p =
      MustParse("status=idle&only_query=1", kForm, "status=active&only_body=2");
  EXPECT_EQ(p.GetString("status"), "active");
  EXPECT_EQ(p.GetString("only_query"), "1");
  EXPECT_EQ(p.GetString("only_body"), "2");
  EXPECT_THAT(p.Names(), ElementsAre("only_body", "only_query", "status"));

  RequestParams m = MustParse("status=idle", NpmContentType(),
                              NpmBody({{"status", "active"}}));
  EXPECT_EQ(m.GetString("status"), "active");
}

TEST(RequestParamsTest, DuplicateNamesLastWins) {
  RequestParams q = MustParse("a=1&a=2&a=3", "", "");
  EXPECT_EQ(q.GetString("a"), "3");
  EXPECT_EQ(q.size(), 1u);

  RequestParams b = MustParse("", kForm, "a=1&b=x&a=2");
  EXPECT_EQ(b.GetString("a"), "2");

  RequestParams m =
      MustParse("", NpmContentType(), NpmBody({{"a", "1"}, {"a", "2"}}));
  EXPECT_EQ(m.GetString("a"), "2");
}

// Issue #17: Parse puts each pair straight into the sorted list. Names
// arriving out of order, a name repeated between the query and the body,
// once escaped and once plain, end as one sorted entry each with the last
// value, and a repeat does not count as a use.
TEST(RequestParamsTest, Issue17_PairsOutOfOrderAndRepeatedSortedLastValue) {
  RequestParams p = MustParse("z=1&m=q&%61=escaped&b", kForm,
                              "a=plain&zz=2&m=body&z=3&A=upper");
  EXPECT_EQ(p.Names(),
            (std::vector<std::string>{"A", "a", "b", "m", "z", "zz"}));
  EXPECT_EQ(p.GetString("a"), "plain");
  EXPECT_EQ(p.GetString("m"), "body");
  EXPECT_EQ(p.GetString("z"), "3");
  EXPECT_EQ(p.GetString("b"), "");
  EXPECT_EQ(p.UnusedNames(), (std::vector<std::string>{"A", "zz"}));
}

TEST(RequestParamsTest, ContentTypeIsCaseInsensitiveWithParameters) {
  for (std::string_view ct :
       {"Application/X-WWW-Form-URLEncoded",
        "application/x-www-form-urlencoded; charset=UTF-8",
        "  application/x-www-form-urlencoded ;charset=utf-8"}) {
    RequestParams p = MustParse("", ct, "status=active");
    EXPECT_EQ(p.GetString("status"), "active") << ct;
  }
}

TEST(RequestParamsTest, OtherOrMissingContentTypeIgnoresBody) {
  for (std::string_view ct : {"", "application/json", "text/plain"}) {
    RequestParams p = MustParse("q=1", ct, "status=active");
    EXPECT_FALSE(p.Has("status")) << ct;
    EXPECT_EQ(p.GetString("q"), "1");
  }
}

// --- Multipart ---------------------------------------------------------------

TEST(RequestParamsTest, MultipartAsSentByNpmFormData) {
  // Byte for byte what zulip-js's presence ping looks like on the wire.
  std::string body =
      "----------------------------123456789012345678901234\r\n"
      "Content-Disposition: form-data; name=\"status\"\r\n"
      "\r\n"
      "active\r\n"
      "----------------------------123456789012345678901234\r\n"
      "Content-Disposition: form-data; name=\"ping_only\"\r\n"
      "\r\n"
      "false\r\n"
      "----------------------------123456789012345678901234\r\n"
      "Content-Disposition: form-data; name=\"new_user_input\"\r\n"
      "\r\n"
      "true\r\n"
      "----------------------------123456789012345678901234\r\n"
      "Content-Disposition: form-data; name=\"slim_presence\"\r\n"
      "\r\n"
      "true\r\n"
      "----------------------------123456789012345678901234--\r\n";
  EXPECT_EQ(body, NpmBody({{"status", "active"},
                           {"ping_only", "false"},
                           {"new_user_input", "true"},
                           {"slim_presence", "true"}}));
  RequestParams p =
      MustParse("",
                "multipart/form-data; "
                "boundary=--------------------------123456789012345678901234",
                body);
  EXPECT_EQ(p.RequireString("status").value(), "active");
  EXPECT_EQ(p.GetJsonBool("ping_only").value(), false);
  EXPECT_EQ(p.GetJsonBool("new_user_input").value(), true);
  EXPECT_EQ(p.GetJsonBool("slim_presence").value(), true);
  EXPECT_THAT(p.UnusedNames(), IsEmpty());
}

TEST(RequestParamsTest, MultipartValuesAreVerbatim) {
  std::string multi_line = "line 1\r\nline 2\nline 3\r\n";
  RequestParams p =
      MustParse("", NpmContentType(),
                NpmBody({{"empty", ""},
                         {"lines", multi_line},
                         {"json", "[\"presence\",\"realm\"]"},
                         {"pct", "a%20b+c"},
                         {"dashes", "--" + std::string(kNpmBoundary) + "x"},
                         {"unicode", "\xF0\x9F\x98\x80 \xE2\x9C\x93"}}));
  EXPECT_EQ(p.GetString("empty"), "");
  EXPECT_EQ(p.GetString("lines"), multi_line);
  EXPECT_EQ(p.GetString("json"), "[\"presence\",\"realm\"]");
  EXPECT_EQ(p.GetString("pct"), "a%20b+c");  // no percent-decoding
  // A line that starts with the delimiter but goes on is not a delimiter.
  EXPECT_EQ(p.GetString("dashes"), "--" + std::string(kNpmBoundary) + "x");
  EXPECT_EQ(p.GetString("unicode"), "\xF0\x9F\x98\x80 \xE2\x9C\x93");
}

TEST(RequestParamsTest, MultipartWithBareLineFeeds) {
  std::string body =
      "--XyZ\n"
      "Content-Disposition: form-data; name=\"status\"\n"
      "\n"
      "idle\n"
      "--XyZ\n"
      "content-disposition: form-data; name=\"ping_only\"\n"
      "\n"
      "true\n"
      "--XyZ--\n";
  RequestParams p = MustParse("", "multipart/form-data; boundary=XyZ", body);
  EXPECT_EQ(p.GetString("status"), "idle");
  EXPECT_EQ(p.GetString("ping_only"), "true");
}

TEST(RequestParamsTest, MultipartHeaderVariants) {
  std::string body =
      "preamble to be ignored\r\n"
      "--b 1\r\n"
      "Content-Disposition: form-data; name=status\r\n"  // unquoted token
      "\r\n"
      "active\r\n"
      "--b 1  \r\n"  // transport padding after the delimiter
      "CONTENT-DISPOSITION: Form-Data; filename=\"a;b.txt\"; "
      "name=\"with \\\"quote\\\" and \\\\ slash\"\r\n"
      "Content-Type: text/plain\r\n"
      "\r\n"
      "file body\r\n"
      "--b 1\r\n"
      "Content-Disposition: form-data; name=\"back\\slash\"\r\n"
      "\r\n"
      "v\r\n"
      "--b 1--\r\n"
      "epilogue to be ignored";
  RequestParams p =
      MustParse("", "multipart/form-data; boundary=\"b 1\"", body);
  EXPECT_EQ(p.GetString("status"), "active");
  // The filename is ignored; the part still counts as the named field.
  EXPECT_EQ(p.GetString("with \"quote\" and \\ slash"), "file body");
  EXPECT_EQ(p.GetString("back\\slash"), "v");
  EXPECT_EQ(p.size(), 3u);
}

TEST(RequestParamsTest, MultipartEmptyBodyOrNoParts) {
  EXPECT_TRUE(MustParse("", NpmContentType(), "").empty());
  EXPECT_TRUE(
      MustParse("", NpmContentType(), "--" + std::string(kNpmBoundary) + "--")
          .empty());
}

TEST(RequestParamsTest, MultipartBoundaryProblems) {
  EXPECT_EQ(ParseError("", "multipart/form-data", "x"),
            "Malformed multipart body: no boundary in Content-Type");
  EXPECT_EQ(ParseError("", "multipart/form-data; charset=utf-8", ""),
            "Malformed multipart body: no boundary in Content-Type");
  EXPECT_EQ(ParseError("", "multipart/form-data; boundary=", "x"),
            "Malformed multipart body: bad boundary");
  EXPECT_EQ(
      ParseError("", "multipart/form-data; boundary=\"ends in space \"", "x"),
      "Malformed multipart body: bad boundary");
  EXPECT_EQ(
      ParseError("", "multipart/form-data; boundary=" + std::string(201, 'a'),
                 "x"),
      "Malformed multipart body: bad boundary");
  EXPECT_EQ(ParseError("", "multipart/form-data; boundary=other",
                       NpmBody({{"status", "active"}})),
            "Malformed multipart body: no opening boundary");
}

TEST(RequestParamsTest, MultipartTruncations) {
  const std::string full = NpmBody({{"status", "active"}, {"b", "2"}});
  // Missing closing delimiter.
  std::string no_close =
      full.substr(0, full.rfind("--" + std::string(kNpmBoundary)));
  EXPECT_EQ(ParseError("", NpmContentType(), no_close),
            "Malformed multipart body: missing closing boundary");
  // Every strict prefix of the body fails cleanly, never parses.
  std::size_t close = full.rfind("--" + std::string(kNpmBoundary) + "--");
  for (std::size_t n = 1; n < close; ++n) {
    auto r = RequestParams::Parse("", NpmContentType(), full.substr(0, n));
    EXPECT_FALSE(r) << "prefix " << n;
  }
  // A close delimiter without its trailing CRLF is fine.
  EXPECT_TRUE(MustParse("", NpmContentType(), full.substr(0, full.size() - 2))
                  .Has("status"));
  // Truncated inside the part headers.
  EXPECT_EQ(ParseError("", NpmContentType(),
                       "--" + std::string(kNpmBoundary) +
                           "\r\nContent-Disposition: form-data; name=\"a\""),
            "Malformed multipart body: truncated part headers");
  EXPECT_EQ(ParseError("", NpmContentType(), "--" + std::string(kNpmBoundary)),
            "Malformed multipart body: missing closing boundary");
  EXPECT_EQ(ParseError("", NpmContentType(),
                       "--" + std::string(kNpmBoundary) + "junk\r\n"),
            "Malformed multipart body: no opening boundary");
  EXPECT_EQ(ParseError("", NpmContentType(),
                       "--" + std::string(kNpmBoundary) + "\rX"),
            "Malformed multipart body: bad boundary line");
}

TEST(RequestParamsTest, MultipartPartsNeedANameAndWellFormedHeaders) {
  auto part = [](std::string_view headers) {
    return "--" + std::string(kNpmBoundary) + "\r\n" + std::string(headers) +
           "\r\nvalue\r\n--" + std::string(kNpmBoundary) + "--\r\n";
  };
  EXPECT_EQ(ParseError("", NpmContentType(), part("\r\n")),
            "Malformed multipart body: part without a form-data name");
  EXPECT_EQ(
      ParseError("", NpmContentType(), part("Content-Type: text/plain\r\n")),
      "Malformed multipart body: part without a form-data name");
  EXPECT_EQ(ParseError("", NpmContentType(),
                       part("Content-Disposition: form-data\r\n")),
            "Malformed multipart body: part without a form-data name");
  EXPECT_EQ(ParseError("", NpmContentType(),
                       part("Content-Disposition: attachment; name=\"a\"\r\n")),
            "Malformed multipart body: part without a form-data name");
  EXPECT_EQ(ParseError("", NpmContentType(), part("no colon here\r\n")),
            "Malformed multipart body: bad part header");
  // An empty name is dropped, like an empty name in a form body.
  EXPECT_TRUE(MustParse("", NpmContentType(),
                        part("Content-Disposition: form-data; name=\"\"\r\n"))
                  .empty());
}

// --- Unicode -----------------------------------------------------------------

TEST(RequestParamsTest, UnicodeNamesAndValues) {
  RequestParams p = MustParse("%C3%BCber=%E2%9C%93", "", "");
  EXPECT_EQ(p.GetString("\xC3\xBC"
                        "ber"),
            "\xE2\x9C\x93");
}

TEST(RequestParamsTest, InvalidUtf8IsReplaced) {
  RequestParams p =
      MustParse("a=%FF&b=%E2%9C&c=%F0%80&d=x%ED%A0%80y&e=%C3%A9%C3", "", "");
  const std::string r = "\xEF\xBF\xBD";  // U+FFFD
  EXPECT_EQ(p.GetString("a"), r);
  EXPECT_EQ(p.GetString("b"), r);      // truncated sequence: one U+FFFD
  EXPECT_EQ(p.GetString("c"), r + r);  // F0 80 is no prefix of a valid one
  EXPECT_EQ(p.GetString("d"), "x" + r + r + r + "y");  // surrogate
  EXPECT_EQ(p.GetString("e"), "\xC3\xA9" + r);

  RequestParams m =
      MustParse("", NpmContentType(), NpmBody({{"n\xFF", "v\xC0\xAF"}}));
  EXPECT_EQ(m.GetString("n" + r), "v" + r + r);
}

// --- Limits ------------------------------------------------------------------

TEST(RequestParamsTest, DefaultLimits) {
  RequestParamsOptions o;
  EXPECT_EQ(o.max_parameters, 100u);
  EXPECT_EQ(o.max_name_length, 256u);
  EXPECT_EQ(o.max_value_length, 64u * 1024u);
  EXPECT_GT(o.max_parts, 0u);
}

TEST(RequestParamsTest, TooManyParameters) {
  auto make = [](int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s += "p" + std::to_string(i) + "=1&";
    return s;
  };
  EXPECT_EQ(MustParse(make(100), "", "").size(), 100u);
  EXPECT_EQ(ParseError(make(101), "", ""), "Too many parameters");
  // Query and body share the limit, and repeats count.
  EXPECT_EQ(ParseError(make(60), kForm, make(41)), "Too many parameters");
  std::string repeats;
  for (int i = 0; i < 101; ++i) repeats += "a=1&";
  EXPECT_EQ(ParseError("", kForm, repeats), "Too many parameters");

  RequestParamsOptions small;
  small.max_parameters = 2;
  EXPECT_EQ(ParseError("", NpmContentType(),
                       NpmBody({{"a", "1"}, {"b", "2"}, {"c", "3"}}), small),
            "Too many parameters");
}

TEST(RequestParamsTest, NameAndValueLengthLimits) {
  std::string name256(256, 'n');
  std::string value64k(64 * 1024, 'v');
  RequestParams p = MustParse(name256 + "=" + value64k, "", "");
  EXPECT_EQ(p.GetString(name256)->size(), 64u * 1024u);

  EXPECT_EQ(ParseError(name256 + "n=1", "", ""), "Parameter name too long");
  EXPECT_EQ(ParseError("", kForm, "status=" + value64k + "v"),
            "Parameter 'status' is too long");
  // Limits apply to decoded sizes: 256 escapes decode to 256 bytes.
  std::string escaped_name;
  for (int i = 0; i < 256; ++i) escaped_name += "%41";
  EXPECT_EQ(MustParse(escaped_name + "=1", "", "").size(), 1u);

  EXPECT_EQ(ParseError("", NpmContentType(), NpmBody({{name256 + "n", "1"}})),
            "Parameter name too long");
  EXPECT_EQ(ParseError("", NpmContentType(), NpmBody({{"v", value64k + "v"}})),
            "Parameter 'v' is too long");
  EXPECT_TRUE(
      MustParse("", NpmContentType(), NpmBody({{"v", value64k}})).Has("v"));

  // Replacement characters count: 3 bytes each.
  RequestParamsOptions o;
  o.max_value_length = 4;
  EXPECT_EQ(ParseError("a=%FF%FF", "", "", o), "Parameter 'a' is too long");
}

TEST(RequestParamsTest, MultipartPartLimits) {
  RequestParamsOptions o;
  o.max_parts = 2;
  EXPECT_EQ(ParseError("", NpmContentType(),
                       NpmBody({{"a", "1"}, {"b", "2"}, {"c", "3"}}), o),
            "Too many parts");
  EXPECT_EQ(
      MustParse("", NpmContentType(), NpmBody({{"a", "1"}, {"b", "2"}}), o)
          .size(),
      2u);

  std::string huge_header = "--" + std::string(kNpmBoundary) +
                            "\r\nX-Padding: " + std::string(9000, 'p') +
                            "\r\nContent-Disposition: form-data; name=\"a\""
                            "\r\n\r\n1\r\n--" +
                            std::string(kNpmBoundary) + "--\r\n";
  EXPECT_EQ(ParseError("", NpmContentType(), huge_header),
            "Malformed multipart body: part headers too long");
}

// --- Typed getters
// -------------------------------------------------------------

TEST(RequestParamsTest, JsonBoolIsStrict) {
  RequestParams p = MustParse(
      "t=true&f=false&ws=+true+&one=1&zero=0&str=%22true%22&cap=True&empty=&"
      "null=null&list=[true]",
      "", "");
  EXPECT_EQ(p.GetJsonBool("t").value(), true);
  EXPECT_EQ(p.GetJsonBool("f").value(), false);
  EXPECT_EQ(p.GetJsonBool("ws").value(), true);  // JSON allows blanks
  EXPECT_EQ(p.GetJsonBool("absent").value(), std::nullopt);

  EXPECT_EQ(p.GetJsonBool("one").error().msg, "one is not a boolean");
  EXPECT_EQ(p.GetJsonBool("zero").error().msg, "zero is not a boolean");
  EXPECT_EQ(p.GetJsonBool("str").error().msg, "str is not a boolean");
  EXPECT_EQ(p.GetJsonBool("null").error().msg, "null is not a boolean");
  EXPECT_EQ(p.GetJsonBool("list").error().msg, "list is not a boolean");
  EXPECT_EQ(p.GetJsonBool("cap").error().msg, "cap is not valid JSON");
  EXPECT_EQ(p.GetJsonBool("empty").error().msg, "empty is not valid JSON");
}

TEST(RequestParamsTest, JsonBoolErrorBody) {
  RequestParams p = MustParse("", kForm, "status=active&slim_presence=1");
  auto r = p.GetJsonBool("slim_presence");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().http_status, 400u);
  EXPECT_EQ(
      Body(r.error()),
      R"({"result":"error","msg":"slim_presence is not a boolean","code":"BAD_REQUEST"})");
}

TEST(RequestParamsTest, JsonIntIsStrict) {
  RequestParams p = MustParse(
      "neg=-1&days=365&zero=0&max=9223372036854775807&"
      "min=-9223372036854775808&over=9223372036854775808&"
      "under=-9223372036854775809&big=99999999999999999999&"
      "t=true&f=1.5&f0=1.0&e=1e3&s=%225%22&lead=01&junk=1x&hex=0x10&"
      "plus=%2B1&null=null",
      "", "");
  EXPECT_EQ(p.GetJsonInt("neg").value(), -1);
  EXPECT_EQ(p.GetJsonInt("days").value(), 365);
  EXPECT_EQ(p.GetJsonInt("zero").value(), 0);
  EXPECT_EQ(p.GetJsonInt("max").value(), INT64_MAX);
  EXPECT_EQ(p.GetJsonInt("min").value(), INT64_MIN);
  EXPECT_EQ(p.GetJsonInt("absent").value(), std::nullopt);

  for (const char* n :
       {"over", "under", "big", "t", "f", "f0", "e", "s", "null"}) {
    auto r = p.GetJsonInt(n);
    ASSERT_FALSE(r) << n;
    EXPECT_EQ(r.error().msg, std::string(n) + " is not an integer");
    EXPECT_EQ(r.error().code, "BAD_REQUEST");
  }
  for (const char* n : {"lead", "junk", "hex", "plus"}) {
    auto r = p.GetJsonInt(n);
    ASSERT_FALSE(r) << n;
    EXPECT_EQ(r.error().msg, std::string(n) + " is not valid JSON");
  }
}

// Issue #17: GetJsonBool and GetJsonInt read `true`, `false` and plain
// integers without a JSON value; they still mark the name as used, and an
// absent name as well (as Lookup always did).
TEST(RequestParamsTest, Issue17_ReadWithoutJsonStillMarksUsed) {
  RequestParams p = MustParse("t=true&f=false&n=-42&z=0&x=1", "", "");
  EXPECT_EQ(p.GetJsonBool("t").value(), true);
  EXPECT_EQ(p.GetJsonBool("f").value(), false);
  EXPECT_EQ(p.GetJsonInt("n").value(), -42);
  EXPECT_EQ(p.GetJsonInt("z").value(), 0);
  EXPECT_EQ(p.GetJsonInt("absent").value(), std::nullopt);
  EXPECT_EQ(p.UnusedNames(), (std::vector<std::string>{"x"}));
  EXPECT_EQ(p.GetJsonBool("n").error().msg, "n is not a boolean");
  EXPECT_EQ(p.GetJsonInt("t").error().msg, "t is not an integer");
}

TEST(RequestParamsTest, StatusIsAPlainString) {
  RequestParams p = MustParse("", kForm, "status=%22active%22");
  EXPECT_EQ(p.GetString("status"), "\"active\"");  // not JSON-decoded
}

TEST(RequestParamsTest, RequiredVariants) {
  RequestParams p = MustParse("", kForm, "b=true&i=7&l=[]&o={}&s=x");
  EXPECT_EQ(p.RequireString("s").value(), "x");
  EXPECT_EQ(p.RequireJsonBool("b").value(), true);
  EXPECT_EQ(p.RequireJsonInt("i").value(), 7);
  EXPECT_TRUE(p.RequireJsonList("l").value().empty());
  EXPECT_TRUE(p.RequireJsonObject("o").value().empty());

  auto missing = p.RequireString("status");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().http_status, 400u);
  EXPECT_EQ(Body(missing.error()),
            R"({"result":"error","msg":"Missing 'status' argument",)"
            R"("code":"REQUEST_VARIABLE_MISSING","var_name":"status"})");
  EXPECT_EQ(p.RequireJsonBool("nb").error().code, "REQUEST_VARIABLE_MISSING");
  EXPECT_EQ(p.RequireJsonInt("ni").error().msg, "Missing 'ni' argument");
  EXPECT_EQ(p.RequireJsonList("nl").error().code, "REQUEST_VARIABLE_MISSING");
  EXPECT_EQ(p.RequireJsonObject("no").error().code, "REQUEST_VARIABLE_MISSING");
  // Present but wrong beats missing.
  EXPECT_EQ(p.RequireJsonInt("b").error().msg, "b is not an integer");
}

TEST(RequestParamsTest, JsonListsAndObjects) {
  RequestParams p = MustParse(
      "", kForm,
      "event_types=%5B%22presence%22%2C%22realm%22%5D&bad_types=%5B%22a%22%2C1%"
      "5D"
      "&client_capabilities=%7B%22simplified_presence_events%22%3Atrue%7D"
      "&not_list=%7B%7D&not_obj=%5B%5D&broken=%5B");
  auto list = p.GetJsonList("event_types");
  ASSERT_TRUE(list && *list);
  EXPECT_EQ((*list)->size(), 2u);
  auto strings = p.GetJsonStringList("event_types");
  ASSERT_TRUE(strings && *strings);
  EXPECT_THAT(**strings, ElementsAre("presence", "realm"));
  EXPECT_EQ(p.GetJsonStringList("bad_types").error().msg,
            "bad_types[1] is not a string");

  auto caps = p.GetJsonObject("client_capabilities");
  ASSERT_TRUE(caps && *caps);
  EXPECT_TRUE((*caps)->at("simplified_presence_events").as_bool());

  EXPECT_EQ(p.GetJsonList("not_list").error().msg, "not_list is not a list");
  EXPECT_EQ(p.GetJsonStringList("not_list").error().msg,
            "not_list is not a list");
  EXPECT_EQ(p.GetJsonObject("not_obj").error().msg, "not_obj is not a dict");
  EXPECT_EQ(p.GetJsonObject("broken").error().msg, "broken is not valid JSON");
  EXPECT_EQ(p.GetJsonList("absent").value(), std::nullopt);
  EXPECT_EQ(p.GetJsonObject("absent").value(), std::nullopt);
  EXPECT_EQ(p.GetJsonStringList("absent").value(), std::nullopt);

  auto any = p.GetJsonValue("event_types");
  ASSERT_TRUE(any && *any);
  EXPECT_TRUE((*any)->is_array());
}

TEST(RequestParamsTest, DeepJsonIsRejectedNotCrashed) {
  std::string deep(10000, '[');
  RequestParams p = MustParse("", NpmContentType(), NpmBody({{"d", deep}}));
  EXPECT_EQ(p.GetJsonList("d").error().msg, "d is not valid JSON");
}

// --- Used / unused names
// ---------------------------------------------------------

TEST(RequestParamsTest, UnusedNamesAreSortedAndExcludeAskedNames) {
  RequestParams p = MustParse(
      "zeta=1&alpha=2", kForm,
      "status=active&ping_only=false&slim_presence=1&Beta=3&last_update_id=-1");
  EXPECT_THAT(p.UnusedNames(),
              ElementsAre("Beta", "alpha", "last_update_id", "ping_only",
                          "slim_presence", "status", "zeta"));
  EXPECT_TRUE(p.Has("zeta"));  // Has() does not count as use
  EXPECT_EQ(p.RequireString("status").value(), "active");
  EXPECT_EQ(p.GetJsonBool("ping_only").value(), false);
  EXPECT_FALSE(p.GetJsonBool("slim_presence"));  // a failed read still counts
  EXPECT_EQ(p.GetJsonInt("last_update_id").value(), -1);
  EXPECT_EQ(p.GetJsonInt("history_limit_days").value(), std::nullopt);
  p.MarkUsed("alpha");
  p.MarkUsed("never_sent");
  EXPECT_THAT(p.UnusedNames(), ElementsAre("Beta", "zeta"));
  EXPECT_THAT(p.Names(),
              ElementsAre("Beta", "alpha", "last_update_id", "ping_only",
                          "slim_presence", "status", "zeta"));
}

// --- Robustness
// -------------------------------------------------------------------

TEST(RequestParamsTest, RandomInputNeverCrashes) {
  std::mt19937 rng(12345);
  const std::string alphabet =
      "ab=&%+2F\r\n-\"; :\xFF\xC3"
      "Content-Disposition";
  const std::string boundary = "bnd";
  for (int iter = 0; iter < 3000; ++iter) {
    std::string body;
    if (iter % 2 == 0)
      body = "--bnd\r\nContent-Disposition: form-data; name=\"";
    std::size_t len = rng() % 120;
    for (std::size_t i = 0; i < len; ++i) {
      if (rng() % 10 == 0) {
        body += "\r\n--bnd";
      } else {
        body += alphabet[rng() % alphabet.size()];
      }
    }
    std::string_view ct = iter % 3 == 0   ? "multipart/form-data; boundary=bnd"
                          : iter % 3 == 1 ? kForm
                                          : "";
    auto r = RequestParams::Parse(body, ct, body);
    if (r) {
      for (const std::string& n : r->Names()) {
        (void)r->GetJsonBool(n);
        (void)r->GetJsonInt(n);
        (void)r->GetJsonStringList(n);
        (void)r->GetJsonObject(n);
      }
      EXPECT_THAT(r->UnusedNames(), IsEmpty());
    } else {
      EXPECT_EQ(r.error().http_status, 400u);
    }
  }
}

// GetJsonInt and GetJsonBool read the usual texts without Boost.JSON: they
// must answer exactly what Boost.JSON's reading gives, for texts on both
// sides of the short cut's edges.
TEST(RequestParamsTest, JsonIntAndBoolAgreeWithBoostJson) {
  const std::vector<std::string> texts = {"true",
                                          "false",
                                          "0",
                                          "-0",
                                          "1",
                                          "-1",
                                          "7",
                                          "007",
                                          "-007",
                                          "10",
                                          "123456789012345678",
                                          "-123456789012345678",
                                          "1234567890123456789",
                                          "9223372036854775807",
                                          "-9223372036854775808",
                                          "9223372036854775808",
                                          "99999999999999999999",
                                          " 5",
                                          "5 ",
                                          "1e3",
                                          "1.0",
                                          "1.",
                                          "tRue",
                                          "True",
                                          "truex",
                                          "-",
                                          "--1",
                                          "0x10",
                                          "",
                                          "null",
                                          "\"5\""};
  for (const std::string& text : texts) {
    SCOPED_TRACE("text: [" + text + "]");
    boost::system::error_code ec;
    boost::json::value expected = boost::json::parse(text, ec);
    auto params = RequestParams::Parse("", kForm, "v=" + text);
    ASSERT_TRUE(params);
    auto i = params->GetJsonInt("v");
    EXPECT_EQ(bool(i), !ec && expected.is_int64());
    if (i) {
      EXPECT_EQ(**i, expected.get_int64());
    }
    auto b = params->GetJsonBool("v");
    EXPECT_EQ(bool(b), !ec && expected.is_bool());
    if (b) {
      EXPECT_EQ(**b, expected.get_bool());
    }
  }
}

// Lookups scan a short list and binary-search a long one (IndexOf): both
// find every name sent, with its value, and no other, whatever the names'
// lengths and order.
TEST(RequestParamsTest, LookupsAgreeOnEitherSideOfTheScanBound) {
  for (int count = 1; count <= 12; ++count) {
    std::string query;
    for (int i = 0; i < count; ++i) {
      if (i > 0) query += '&';
      // Names of one length ("p00", "p01", ...) and of growing lengths
      // ("q", "qq", ...), sent in reverse order.
      const int n = count - 1 - i;
      query += (n % 2 == 0 ? "p0" + std::to_string(n)
                           : std::string(static_cast<std::size_t>(n), 'q')) +
               "=v" + std::to_string(n);
    }
    RequestParams p = MustParse(query, "", "");
    ASSERT_EQ(p.size(), static_cast<std::size_t>(count)) << query;
    for (int n = 0; n < count; ++n) {
      const std::string name =
          n % 2 == 0 ? "p0" + std::to_string(n)
                     : std::string(static_cast<std::size_t>(n), 'q');
      EXPECT_TRUE(p.Has(name)) << query << " " << name;
      EXPECT_EQ(p.GetString(name), "v" + std::to_string(n)) << query;
    }
    for (std::string_view absent : {"", "p", "p0", "p0x", "p099", "P00", "x",
                                    "qqqqqqqqqqqqqqqq", "status"}) {
      EXPECT_FALSE(p.Has(absent)) << query << " " << absent;
      EXPECT_EQ(p.GetString(absent), std::nullopt) << query << " " << absent;
    }
    EXPECT_THAT(p.UnusedNames(), IsEmpty()) << query;
  }
}

}  // namespace
}  // namespace presence::api
