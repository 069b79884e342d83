#include "api/basic_auth.h"

#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>
#include <string>
#include <utility>

#include "util/crypto.h"

namespace presence::api {
namespace {

constexpr std::string_view kKey = "abcdefghijABCDEFGHIJ0123456789xY";  // 32

// The base64 of each credential string is written out as bytes computed
// outside the product (`printf '%s' 'a@b.c:KEY' | base64`), so that a fault
// in the product's own encoder cannot hide a fault in the parser.
//
// "iago@zulip.com:" + kKey
constexpr std::string_view kIagoB64 =
    "aWFnb0B6dWxpcC5jb206YWJjZGVmZ2hpakFCQ0RFRkdISUowMTIzNDU2Nzg5eFk=";
// "a@b.c:" + kKey
constexpr std::string_view kAbcB64 =
    "YUBiLmM6YWJjZGVmZ2hpakFCQ0RFRkdISUowMTIzNDU2Nzg5eFk=";

std::string Header(std::string_view base64_credentials,
                   std::string_view scheme = "Basic") {
  return std::string(scheme) + " " + std::string(base64_credentials);
}

void ExpectError(const ApiResult<BasicCredentials>& r, unsigned status,
                 std::string_view code, std::string_view msg) {
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().http_status, status);
  EXPECT_EQ(r.error().code, code);
  EXPECT_EQ(r.error().msg, msg);
}

void ExpectInvalidHeader(const ApiResult<BasicCredentials>& r) {
  ExpectError(r, 401, "UNAUTHORIZED",
              "Invalid authorization header for basic auth");
}

TEST(BasicAuthTest, ParsesEmailAndKey) {
  auto r = ParseBasicAuthorization(Header(kIagoB64));
  ASSERT_TRUE(r) << r.error().msg;
  EXPECT_EQ(r->email(), "iago@zulip.com");
  EXPECT_EQ(r->api_key(), kKey);
}

TEST(BasicAuthTest, CopiesAndMovesKeepTheParts) {
  auto r = ParseBasicAuthorization(Header(kIagoB64));
  ASSERT_TRUE(r);
  const BasicCredentials copy = *r;
  const BasicCredentials moved = std::move(*r);
  for (const BasicCredentials* c : {&copy, &moved}) {
    EXPECT_EQ(c->email(), "iago@zulip.com");
    EXPECT_EQ(c->api_key(), kKey);
  }
}

TEST(BasicAuthTest, SeparatorsAreExactlyPythonsAsciiWhitespace) {
  for (char sep : {' ', '\t', '\n', '\v', '\f', '\r'}) {
    auto r = ParseBasicAuthorization("Basic" + std::string(1, sep) +
                                     std::string(kAbcB64) + sep);
    ASSERT_TRUE(r) << static_cast<int>(sep);
    EXPECT_EQ(r->email(), "a@b.c");
  }
  // Their neighbours are not whitespace: one word, not the Basic scheme.
  for (char other : {'\x08', '\x0e', '\x1f', '!'}) {
    ExpectError(ParseBasicAuthorization("Basic" + std::string(1, other) +
                                        std::string(kAbcB64)),
                400, "BAD_REQUEST", std::string(kRequiresBasicAuth));
  }
}

TEST(BasicAuthTest, SchemeIsCaseInsensitive) {
  for (std::string_view scheme : {"basic", "BASIC", "bAsIc"}) {
    auto r = ParseBasicAuthorization(Header(kAbcB64, scheme));
    ASSERT_TRUE(r) << scheme;
    EXPECT_EQ(r->email(), "a@b.c");
  }
}

TEST(BasicAuthTest, ToleratesWhitespaceAroundWords) {
  std::string h = "  Basic \t  " + std::string(kAbcB64) + "  ";
  auto r = ParseBasicAuthorization(h);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->api_key(), kKey);
}

TEST(BasicAuthTest, StripsWhitespaceAroundBothParts) {
  auto r = ParseBasicAuthorization(Header(
      // " \tiago@zulip.com  :  " + kKey + "\n"
      "IAlpYWdvQHp1bGlwLmNvbSAgOiAgYWJjZGVmZ2hpakFCQ0RFRkdISUowMTIzNDU2Nzg5eFk"
      "K"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->email(), "iago@zulip.com");
  EXPECT_EQ(r->api_key(), kKey);
}

TEST(BasicAuthTest, KeepsNonAsciiEmail) {
  auto r = ParseBasicAuthorization(Header(
      // "j\xC3\xBCrgen@example.com:" + kKey
      "asO8cmdlbkBleGFtcGxlLmNvbTphYmNkZWZnaGlqQUJDREVGR0hJSjAxMjM0NTY3ODl4WQ="
      "="));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->email(), "j\xC3\xBCrgen@example.com");
}

TEST(BasicAuthTest, EmptyEmailIsLeftToTheCaller) {
  auto r = ParseBasicAuthorization(Header(
      // ":" + kKey
      "OmFiY2RlZmdoaWpBQkNERUZHSElKMDEyMzQ1Njc4OXhZ"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->email(), "");
}

TEST(BasicAuthTest, OtherSchemeIs400) {
  for (std::string_view h :
       {"Bearer abc", "Digest a b c", "Token", "Basically abc"}) {
    ExpectError(ParseBasicAuthorization(h), 400, "BAD_REQUEST",
                "This endpoint requires HTTP basic authentication.");
  }
}

TEST(BasicAuthTest, WrongNumberOfWordsIsInvalidHeader) {
  ExpectInvalidHeader(ParseBasicAuthorization(""));
  ExpectInvalidHeader(ParseBasicAuthorization("   "));
  ExpectInvalidHeader(ParseBasicAuthorization("Basic"));
  ExpectInvalidHeader(ParseBasicAuthorization("Basic  "));
  ExpectInvalidHeader(
      ParseBasicAuthorization("Basic " + std::string(kAbcB64) + " extra"));
}

TEST(BasicAuthTest, UndecodableBase64IsInvalidHeader) {
  ExpectInvalidHeader(ParseBasicAuthorization("Basic !!!!"));
  ExpectInvalidHeader(ParseBasicAuthorization("Basic abc"));  // bad length
  ExpectInvalidHeader(ParseBasicAuthorization("Basic a*c="));
}

TEST(BasicAuthTest, NonUtf8CredentialsAreInvalidHeader) {
  ExpectInvalidHeader(ParseBasicAuthorization(Header(
      // "a\xFF@b.c:" + kKey
      "Yf9AYi5jOmFiY2RlZmdoaWpBQkNERUZHSElKMDEyMzQ1Njc4OXhZ")));
}

TEST(BasicAuthTest, ColonCountMustGiveTwoParts) {
  // "no-colon-here"
  ExpectInvalidHeader(ParseBasicAuthorization(Header("bm8tY29sb24taGVyZQ==")));
  ExpectInvalidHeader(ParseBasicAuthorization(Header("")));
  ExpectInvalidHeader(ParseBasicAuthorization(Header(
      // "a@b.c:" + kKey + ":x"
      "YUBiLmM6YWJjZGVmZ2hpakFCQ0RFRkdISUowMTIzNDU2Nzg5eFk6eA==")));
  // "a:b:c"
  ExpectInvalidHeader(ParseBasicAuthorization(Header("YTpiOmM=")));
}

TEST(BasicAuthTest, MalformedApiKey) {
  // "a@b.c:" followed by a key that is 31 characters, 33 characters, ends in
  // '-', has an inner space, or is empty.
  for (std::string_view b64 : {
           "YUBiLmM6YWJjZGVmZ2hpakFCQ0RFRkdISUowMTIzNDU2Nzg5eA==",
           "YUBiLmM6YWJjZGVmZ2hpakFCQ0RFRkdISUowMTIzNDU2Nzg5eFl6",
           "YUBiLmM6YWJjZGVmZ2hpakFCQ0RFRkdISUowMTIzNDU2Nzg5eC0=",
           "YUBiLmM6YWJjZGVmZ2hpakFCQ0RFRiBISUowMTIzNDU2Nzg5eFk=",
           "YUBiLmM6",
       }) {
    ExpectError(ParseBasicAuthorization(Header(b64)), 401, "UNAUTHORIZED",
                "Malformed API key");
  }
}

TEST(BasicAuthTest, CredentialsLongerThanTheInlineRoomStillParse) {
  // Decoded text past BasicCredentials::kInline goes to the heap; copies
  // and moves keep both parts.
  const std::string email =
      std::string(BasicCredentials::kInline, 'e') + "@example.com";
  const std::string b64 = Base64Encode(email + ":" + std::string(kKey));
  auto r = ParseBasicAuthorization(Header(b64));
  ASSERT_TRUE(r) << r.error().msg;
  const BasicCredentials copy = *r;
  const BasicCredentials moved = std::move(*r);
  for (const BasicCredentials* c : {&copy, &moved}) {
    EXPECT_EQ(c->email(), email);
    EXPECT_EQ(c->api_key(), kKey);
  }
  // Around the boundary, whitespace included in the decoded text.
  for (std::size_t pad = BasicCredentials::kInline - 40;
       pad <= BasicCredentials::kInline + 4; ++pad) {
    const std::string text =
        "a@b.c:" + std::string(kKey) + std::string(pad - 38, ' ');
    auto p = ParseBasicAuthorization(Header(Base64Encode(text)));
    ASSERT_TRUE(p) << pad;
    EXPECT_EQ(p->email(), "a@b.c");
    EXPECT_EQ(p->api_key(), kKey);
  }
}

TEST(BasicAuthTest, ControlCharacterInsideTheCredentialsIsInvalidHeader) {
  // Not whitespace, so part of the word, which is then not base64.
  for (char c : {'\x01', '\x08', '\x0e', '\x1f', '\x7f'}) {
    std::string word(kAbcB64);
    ExpectInvalidHeader(
        ParseBasicAuthorization("Basic " + std::string(1, c) + word));
    ExpectInvalidHeader(ParseBasicAuthorization(
        "Basic " + word.substr(0, 8) + std::string(1, c) + word.substr(8)));
    ExpectInvalidHeader(
        ParseBasicAuthorization("Basic " + word + std::string(1, c)));
  }
}

TEST(BasicAuthTest, PaddingOnlyAtTheEnd) {
  // "a@b.c:" + kKey with a padding character inside, or its last group
  // padded wrongly: strict base64 refuses them all.
  std::string inside(kAbcB64);
  inside[4] = '=';
  std::string swapped(kAbcB64);
  std::swap(swapped[swapped.size() - 2], swapped[swapped.size() - 1]);
  std::string three(kAbcB64);
  three[three.size() - 3] = '=';
  three[three.size() - 2] = '=';
  for (const std::string& b64 : {inside, swapped, three}) {
    ASSERT_EQ(b64.size() % 4, 0u);
    ExpectInvalidHeader(ParseBasicAuthorization(Header(b64)));
  }
}

TEST(BasicAuthTest, ErrorBodyIsZulipShaped) {
  auto r = ParseBasicAuthorization("Basic !!!!");
  ASSERT_FALSE(r);
  EXPECT_EQ(
      boost::json::serialize(r.error().ToJson()),
      R"({"result":"error","msg":"Invalid authorization header for basic auth",)"
      R"("code":"UNAUTHORIZED"})");
}

}  // namespace
}  // namespace presence::api
