#include "api/api_error.h"

#include <boost/json/array.hpp>
#include <stdexcept>
#include <utility>

#include "util/errc.h"

namespace presence::api {

boost::json::object ApiError::ToJson() const {
  boost::json::object out;
  out.reserve(3 + extra.size());
  out.emplace("result", "error");
  out.emplace("msg", msg);
  if (!code.empty()) out.emplace("code", code);
  for (const auto& kv : extra) {
    // emplace() keeps an existing key, so extra cannot override the envelope.
    out.emplace(kv.key(), kv.value());
  }
  return out;
}

ApiError ApiError::BadRequest(std::string msg) {
  return ApiError{400, "BAD_REQUEST", std::move(msg), {}};
}

ApiError ApiError::MissingArgument(std::string_view name) {
  ApiError e{400, "REQUEST_VARIABLE_MISSING", {}, {}};
  e.msg.append("Missing '").append(name).append("' argument");
  e.extra.emplace("var_name", name);
  return e;
}

ApiError ApiError::Unauthorized(std::string msg) {
  return ApiError{401, "UNAUTHORIZED", std::move(msg), {}};
}

ApiError ApiError::NotLoggedIn() {
  return Unauthorized(
      "Not logged in: API authentication or user session required");
}

ApiError ApiError::MethodNotAllowed(std::span<const std::string_view> allowed) {
  ApiError e{405, "", "Method Not Allowed", {}};
  boost::json::array methods;
  methods.reserve(allowed.size());
  for (std::string_view m : allowed) methods.emplace_back(m);
  e.extra.emplace("allowed_methods", std::move(methods));
  return e;
}

ApiError ApiError::NotFound(std::string msg, std::string code) {
  return ApiError{404, std::move(code), std::move(msg), {}};
}

ApiError FromErrc(boost::system::error_code ec, std::string msg) {
  unsigned status = 500;
  std::string code = "INTERNAL_SERVER_ERROR";
  std::string fallback = "Internal server error";
  if (ec.category() == ErrcCategory()) {
    switch (static_cast<Errc>(ec.value())) {
      case Errc::kInvalidArgument:
        status = 400;
        code = "BAD_REQUEST";
        fallback = "Invalid argument";
        break;
      case Errc::kNotFound:
        status = 404;
        code = "NOT_FOUND";
        fallback = "Not found";
        break;
      case Errc::kAlreadyExists:
        status = 409;
        code = "ALREADY_EXISTS";
        fallback = "Already exists";
        break;
      case Errc::kPermissionDenied:
        status = 403;
        code = "PERMISSION_DENIED";
        fallback = "Insufficient permission";
        break;
      case Errc::kUnauthenticated:
        status = 401;
        code = "UNAUTHORIZED";
        fallback = "Not logged in: API authentication or user session required";
        break;
      case Errc::kStoreFailed:
        status = 503;
        code = "STORE_FAILED";
        fallback = "Presence storage failed";
        break;
      case Errc::kUnavailable:
        status = 503;
        code = "SERVICE_UNAVAILABLE";
        fallback = "Service temporarily unavailable";
        break;
      case Errc::kOk:
      case Errc::kCorrupt:
      case Errc::kIoError:
        break;
    }
  }
  return ApiError{status,
                  std::move(code),
                  msg.empty() ? std::move(fallback) : std::move(msg),
                  {}};
}

void throw_exception_from_error(const ApiError& e,
                                const boost::source_location& /*loc*/) {
  throw std::runtime_error(e.msg);
}

}  // namespace presence::api
