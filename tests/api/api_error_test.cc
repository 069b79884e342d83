#include "api/api_error.h"

#include <gtest/gtest.h>

#include <array>
#include <boost/json/serialize.hpp>
#include <boost/system/errc.hpp>
#include <stdexcept>

#include "util/errc.h"

namespace presence::api {
namespace {

std::string Body(const ApiError& e) {
  return boost::json::serialize(e.ToJson());
}

TEST(ApiErrorTest, BadRequestHasZulipEnvelope) {
  ApiError e = ApiError::BadRequest("Invalid status: foo");
  EXPECT_EQ(e.http_status, 400u);
  EXPECT_EQ(
      Body(e),
      R"({"result":"error","msg":"Invalid status: foo","code":"BAD_REQUEST"})");
}

TEST(ApiErrorTest, MissingArgumentCarriesVarName) {
  ApiError e = ApiError::MissingArgument("status");
  EXPECT_EQ(e.http_status, 400u);
  EXPECT_EQ(Body(e),
            R"({"result":"error","msg":"Missing 'status' argument",)"
            R"("code":"REQUEST_VARIABLE_MISSING","var_name":"status"})");
}

TEST(ApiErrorTest, UnauthorizedIs401) {
  ApiError e = ApiError::Unauthorized("Invalid API key");
  EXPECT_EQ(e.http_status, 401u);
  EXPECT_EQ(
      Body(e),
      R"({"result":"error","msg":"Invalid API key","code":"UNAUTHORIZED"})");
}

TEST(ApiErrorTest, NotLoggedInMessage) {
  ApiError e = ApiError::NotLoggedIn();
  EXPECT_EQ(e.http_status, 401u);
  EXPECT_EQ(e.code, "UNAUTHORIZED");
  EXPECT_EQ(e.msg,
            "Not logged in: API authentication or user session required");
}

TEST(ApiErrorTest, MethodNotAllowedHasNoCode) {
  std::array<std::string_view, 2> allowed = {"GET", "HEAD"};
  ApiError e = ApiError::MethodNotAllowed(allowed);
  EXPECT_EQ(e.http_status, 405u);
  EXPECT_EQ(
      Body(e),
      R"({"result":"error","msg":"Method Not Allowed","allowed_methods":["GET","HEAD"]})");
}

TEST(ApiErrorTest, NotFoundTakesACode) {
  ApiError e = ApiError::NotFound("Invalid subdomain", "NONEXISTENT_SUBDOMAIN");
  EXPECT_EQ(e.http_status, 404u);
  EXPECT_EQ(
      Body(e),
      R"({"result":"error","msg":"Invalid subdomain","code":"NONEXISTENT_SUBDOMAIN"})");
  EXPECT_EQ(ApiError::NotFound("Not found").code, "NOT_FOUND");
}

TEST(ApiErrorTest, ExtraCannotOverrideEnvelope) {
  ApiError e = ApiError::BadRequest("m");
  e.extra["result"] = "success";
  e.extra["msg"] = "other";
  e.extra["code"] = "OTHER";
  e.extra["retry-after"] = 1.5;
  EXPECT_EQ(
      Body(e),
      R"({"result":"error","msg":"m","code":"BAD_REQUEST","retry-after":1.5E0})");
}

struct ErrcCase {
  Errc errc;
  unsigned status;
  const char* code;
};

TEST(ApiErrorTest, FromErrcMapsEveryCode) {
  const ErrcCase cases[] = {
      {Errc::kInvalidArgument, 400, "BAD_REQUEST"},
      {Errc::kNotFound, 404, "NOT_FOUND"},
      {Errc::kAlreadyExists, 409, "ALREADY_EXISTS"},
      {Errc::kPermissionDenied, 403, "PERMISSION_DENIED"},
      {Errc::kUnauthenticated, 401, "UNAUTHORIZED"},
      {Errc::kStoreFailed, 503, "STORE_FAILED"},
      {Errc::kUnavailable, 503, "SERVICE_UNAVAILABLE"},
      {Errc::kCorrupt, 500, "INTERNAL_SERVER_ERROR"},
      {Errc::kIoError, 500, "INTERNAL_SERVER_ERROR"},
      {Errc::kOk, 500, "INTERNAL_SERVER_ERROR"},
  };
  for (const ErrcCase& c : cases) {
    ApiError e = FromErrc(make_error_code(c.errc), "text");
    EXPECT_EQ(e.http_status, c.status) << static_cast<int>(c.errc);
    EXPECT_EQ(e.code, c.code) << static_cast<int>(c.errc);
    EXPECT_EQ(e.msg, "text");
  }
}

TEST(ApiErrorTest, FromErrcFillsInAMessage) {
  for (int i = 0; i <= static_cast<int>(Errc::kUnavailable); ++i) {
    EXPECT_FALSE(FromErrc(make_error_code(static_cast<Errc>(i))).msg.empty());
  }
}

TEST(ApiErrorTest, FromErrcOfForeignCategoryIsInternal) {
  ApiError e = FromErrc(
      boost::system::errc::make_error_code(boost::system::errc::io_error));
  EXPECT_EQ(e.http_status, 500u);
  EXPECT_EQ(e.code, "INTERNAL_SERVER_ERROR");
  EXPECT_EQ(e.msg, "Internal server error");
}

TEST(ApiErrorTest, ApiResultValueThrowsOnError) {
  ApiResult<int> r = ApiError::BadRequest("boom");
  EXPECT_THROW(r.value(), std::runtime_error);
  ApiResult<int> ok = 3;
  EXPECT_EQ(ok.value(), 3);
}

}  // namespace
}  // namespace presence::api
