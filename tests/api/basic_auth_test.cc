#include "api/basic_auth.h"

#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>
#include <string>

#include "util/crypto.h"

namespace presence::api {
namespace {

constexpr std::string_view kKey = "abcdefghijABCDEFGHIJ0123456789xY";  // 32

std::string Header(std::string_view credentials,
                   std::string_view scheme = "Basic") {
  return std::string(scheme) + " " + Base64Encode(credentials);
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
  auto r =
      ParseBasicAuthorization(Header("iago@zulip.com:" + std::string(kKey)));
  ASSERT_TRUE(r) << r.error().msg;
  EXPECT_EQ(r->email, "iago@zulip.com");
  EXPECT_EQ(r->api_key, kKey);
}

TEST(BasicAuthTest, SchemeIsCaseInsensitive) {
  for (std::string_view scheme : {"basic", "BASIC", "bAsIc"}) {
    auto r =
        ParseBasicAuthorization(Header("a@b.c:" + std::string(kKey), scheme));
    ASSERT_TRUE(r) << scheme;
    EXPECT_EQ(r->email, "a@b.c");
  }
}

TEST(BasicAuthTest, ToleratesWhitespaceAroundWords) {
  std::string h =
      "  Basic \t  " + Base64Encode("a@b.c:" + std::string(kKey)) + "  ";
  auto r = ParseBasicAuthorization(h);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->api_key, kKey);
}

TEST(BasicAuthTest, StripsWhitespaceAroundBothParts) {
  auto r = ParseBasicAuthorization(
      Header(" \tiago@zulip.com  :  " + std::string(kKey) + "\n"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->email, "iago@zulip.com");
  EXPECT_EQ(r->api_key, kKey);
}

TEST(BasicAuthTest, KeepsNonAsciiEmail) {
  auto r = ParseBasicAuthorization(
      Header("j\xC3\xBCrgen@example.com:" + std::string(kKey)));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->email, "j\xC3\xBCrgen@example.com");
}

TEST(BasicAuthTest, EmptyEmailIsLeftToTheCaller) {
  auto r = ParseBasicAuthorization(Header(":" + std::string(kKey)));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->email, "");
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
  ExpectInvalidHeader(ParseBasicAuthorization(
      "Basic " + Base64Encode("a@b.c:" + std::string(kKey)) + " extra"));
}

TEST(BasicAuthTest, UndecodableBase64IsInvalidHeader) {
  ExpectInvalidHeader(ParseBasicAuthorization("Basic !!!!"));
  ExpectInvalidHeader(ParseBasicAuthorization("Basic abc"));  // bad length
  ExpectInvalidHeader(ParseBasicAuthorization("Basic a*c="));
}

TEST(BasicAuthTest, NonUtf8CredentialsAreInvalidHeader) {
  ExpectInvalidHeader(
      ParseBasicAuthorization(Header("a\xFF@b.c:" + std::string(kKey))));
}

TEST(BasicAuthTest, ColonCountMustGiveTwoParts) {
  ExpectInvalidHeader(ParseBasicAuthorization(Header("no-colon-here")));
  ExpectInvalidHeader(ParseBasicAuthorization(Header("")));
  ExpectInvalidHeader(
      ParseBasicAuthorization(Header("a@b.c:" + std::string(kKey) + ":x")));
  ExpectInvalidHeader(ParseBasicAuthorization(Header("a:b:c")));
}

TEST(BasicAuthTest, MalformedApiKey) {
  std::string k31(kKey.substr(0, 31));
  std::string k33 = std::string(kKey) + "z";
  std::string dash = std::string(kKey.substr(0, 31)) + "-";
  std::string inner_space =
      std::string(kKey.substr(0, 16)) + " " + std::string(kKey.substr(17));
  for (const std::string& key : {k31, k33, dash, inner_space, std::string()}) {
    ExpectError(ParseBasicAuthorization(Header("a@b.c:" + key)), 401,
                "UNAUTHORIZED", "Malformed API key");
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
