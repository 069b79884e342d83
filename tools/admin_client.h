// AdminClient: a blocking HTTP/1.1 client for presenced's admin API, the
// transport under presencectl.
//
// One call is one TCP connection: resolve, connect, write the request, read
// the answer, close. The admin API is low-volume operator traffic, so there is
// nothing to gain from keep-alive and a fresh connection keeps every failure
// local to one command.
//
// The calls block, but they are built on Beast's timed tcp_stream driven by a
// private io_context: Beast's synchronous operations cannot time out, and a
// CLI that hangs forever on a wedged server is worse than one that says so.
// Only plain http:// is spoken; the admin API is meant for loopback or a
// private network (or a TLS-terminating proxy in front, reached over http).
//
// Thread safety: an AdminClient is used from one thread at a time; distinct
// objects are independent.
#ifndef PRESENCE_TOOLS_ADMIN_CLIENT_H_
#define PRESENCE_TOOLS_ADMIN_CLIENT_H_

#include <boost/assert/source_location.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/system/result.hpp>
#include <chrono>
#include <string>
#include <string_view>
#include <utility>

namespace presence::tools {

// presencectl's exit codes: the contract with the scripts that call it.
inline constexpr int kExitOk = 0;
inline constexpr int kExitServerError = 1;  // the server answered with an error
inline constexpr int kExitUsage = 2;        // bad flags, arguments or URL
inline constexpr int kExitUnreachable = 3;  // no answer: connect/IO/timeout

// A failure presencectl reports: the message for stderr (without the
// "presencectl: " prefix) and the exit code it ends with.
struct CtlError {
  CtlError() = default;
  CtlError(int exit_code, std::string message)
      : exit_code(exit_code), message(std::move(message)) {}

  int exit_code = kExitUsage;
  std::string message;
};

template <class T>
using CtlResult = boost::system::result<T, CtlError>;

// Lets CtlResult<T>::value() compile: throws std::runtime_error(e.message).
// Code here checks results with `if (!r)` instead.
[[noreturn]] void throw_exception_from_error(const CtlError& e,
                                             const boost::source_location& loc);

// Where the server is, taken apart from a URL such as
// "http://127.0.0.1:9991" or "http://[::1]:9991/presence".
struct ServerUrl {
  std::string text;         // the URL as the user wrote it, for messages
  std::string host;         // name or address, IPv6 without brackets
  std::string port;         // decimal; "80" when the URL names none
  std::string host_header;  // value of the Host header (host[:port])
  std::string base_path;    // prefix for every target; no trailing '/'
};

// Parses `text` with Boost.URL. Accepts only absolute http:// URLs with a host
// and no userinfo, query or fragment; a path is kept as a prefix (for a
// reverse proxy). https:// is refused with a message saying so. Errors carry
// kExitUsage.
CtlResult<ServerUrl> ParseServerUrl(std::string_view text);

// What the server answered: status and body, whatever the status.
struct HttpReply {
  unsigned status = 0;
  std::string body;
};

class AdminClient {
 public:
  // `token` is sent as `Authorization: Bearer <token>`; it must not contain
  // CR or LF (the caller checks). `timeout` bounds each call as a whole
  // (connect + write + read).
  AdminClient(ServerUrl server, std::string token,
              std::chrono::milliseconds timeout);

  // Sends `method` to base_path + `path` (which starts with '/'), with `body`
  // as application/json when it is not empty, and returns the answer,
  // whatever its status. Fails with kExitUnreachable when there is no
  // complete answer: cannot resolve or connect, connection lost, or timeout.
  CtlResult<HttpReply> Call(boost::beast::http::verb method,
                            std::string_view path,
                            std::string_view body = {}) const;

  const ServerUrl& server() const { return server_; }

 private:
  const ServerUrl server_;
  const std::string token_;
  const std::chrono::milliseconds timeout_;
};

}  // namespace presence::tools

#endif  // PRESENCE_TOOLS_ADMIN_CLIENT_H_
