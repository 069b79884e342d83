// ApiError: one Zulip-shaped error response (HTTP status + JSON body).
//
// Every error the API layer sends is an ApiError. Its body is Zulip's
//   {"result":"error","msg":<msg>,"code":<code>, ...extra}
// (spec §2.0 "Response envelope"). The single mapping from presence::Errc to an
// HTTP status and Zulip code lives in FromErrc() below, and nowhere else.
//
// The HTTP layer adds the headers an error needs: every 401 carries
// `WWW-Authenticate: Basic realm="zulip"` (kWwwAuthenticateValue), a 405
// carries `Allow`. ApiError itself only describes status and body.
//
// Thread safety: a plain value type; distinct objects may be used from
// distinct threads freely.
#ifndef PRESENCE_API_API_ERROR_H_
#define PRESENCE_API_API_ERROR_H_

#include <boost/assert/source_location.hpp>
#include <boost/json/object.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace presence::api {

// Value of the `WWW-Authenticate` header sent with every 401 response.
inline constexpr std::string_view kWwwAuthenticateValue =
    "Basic realm=\"zulip\"";

struct ApiError {
  // Not an aggregate on purpose: with C++20 parenthesized aggregate
  // initialization an aggregate ApiError would be constructible from a lone
  // bool or integer, and ApiResult<bool> / ApiResult<std::int64_t> could then
  // not be built from a plain value.
  ApiError() = default;
  ApiError(unsigned http_status, std::string code, std::string msg,
           boost::json::object extra = {})
      : http_status(http_status),
        code(std::move(code)),
        msg(std::move(msg)),
        extra(std::move(extra)) {}

  unsigned http_status = 400;
  // Zulip's error code, e.g. "BAD_REQUEST". Empty means "no `code` key": only
  // the 405 body (spec §2.0) has none.
  std::string code = "BAD_REQUEST";
  std::string msg;
  // Extra top-level keys, e.g. {"var_name":"status"}. Keys that collide with
  // result/msg/code are ignored by ToJson().
  boost::json::object extra;

  // {"result":"error","msg":msg,"code":code,<extra...>}, in that key order;
  // "code" is left out when `code` is empty.
  boost::json::object ToJson() const;

  // 400 BAD_REQUEST with `msg`.
  static ApiError BadRequest(std::string msg);
  // 400 {"code":"REQUEST_VARIABLE_MISSING","msg":"Missing 'NAME' argument",
  //      "var_name":"NAME"}.
  static ApiError MissingArgument(std::string_view name);
  // 401 UNAUTHORIZED with `msg`.
  static ApiError Unauthorized(std::string msg);
  // 401 "Not logged in: API authentication or user session required": an
  // /api/ request with no Authorization header at all.
  static ApiError NotLoggedIn();
  // 405 {"result":"error","msg":"Method Not Allowed","allowed_methods":[...]},
  // without a "code" key, exactly as Zulip sends it.
  static ApiError MethodNotAllowed(std::span<const std::string_view> allowed);
  // 404 with `msg` and `code`, e.g. NotFound("Invalid subdomain",
  // "NONEXISTENT_SUBDOMAIN") for an unknown realm.
  static ApiError NotFound(std::string msg, std::string code = "NOT_FOUND");
};

// Value-or-ApiError, the return type of every fallible API-layer function.
template <class T>
using ApiResult = boost::system::result<T, ApiError>;

// Maps an error from a lower layer to the response it produces. `msg` is the
// message shown to the client; when empty, a generic one is used.
//   kInvalidArgument  -> 400 BAD_REQUEST
//   kNotFound         -> 404 NOT_FOUND
//   kAlreadyExists    -> 409 ALREADY_EXISTS  (Zulip has no such case on the
//                        presence endpoints; used by the admin API only)
//   kPermissionDenied -> 403 PERMISSION_DENIED
//   kUnauthenticated  -> 401 UNAUTHORIZED
//   kStoreFailed      -> 503 STORE_FAILED
//   kUnavailable      -> 503 SERVICE_UNAVAILABLE
//   anything else (kCorrupt, kIoError, kOk, foreign categories)
//                     -> 500 INTERNAL_SERVER_ERROR
// Handlers that must reproduce a Zulip message with a Zulip status (e.g.
// "No such user", 400) build the ApiError directly instead.
ApiError FromErrc(boost::system::error_code ec, std::string msg = {});

// Lets ApiResult<T>::value() compile: throws std::runtime_error(e.msg). Use
// `if (!r) return r.error();` instead; this exists for tests and tools.
[[noreturn]] void throw_exception_from_error(const ApiError& e,
                                             const boost::source_location& loc);

}  // namespace presence::api

#endif  // PRESENCE_API_API_ERROR_H_
