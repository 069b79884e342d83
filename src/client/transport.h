// Transport: how the client sends one HTTP request, as an interface so that
// tests can answer by hand (tests/client/fake_transport.h) and programs use
// HttpTransport (Boost.Beast).
//
// A request is method + target (path and query, without the server's base
// path) + headers + body; the answer is status + headers + body, whatever
// the status. Only failures to get an answer (cannot connect, connection
// lost, timed out, cancelled) are errors.
//
// Thread safety: implementations run on one executor; callbacks run there.
#ifndef PRESENCE_CLIENT_TRANSPORT_H_
#define PRESENCE_CLIENT_TRANSPORT_H_

#include <algorithm>
#include <cctype>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "util/clock.h"
#include "util/result.h"

namespace presence::client {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// The value of header `name` (case-insensitive), or nullopt.
inline std::optional<std::string_view> FindHeader(const HeaderList& headers,
                                                  std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() &&
        std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        })) {
      return std::string_view(v);
    }
  }
  return std::nullopt;
}

struct HttpRequest {
  std::string method;  // "GET", "POST", "DELETE", ...
  std::string target;  // "/api/v1/events?queue_id=...", starts with '/'
  HeaderList headers;  // besides Host, Content-Length, User-Agent
  std::string body;
  // Bounds the whole exchange (connect, write, read).
  Micros timeout = SecondsToMicros(30);

  std::optional<std::string_view> Header(std::string_view name) const {
    return FindHeader(headers, name);
  }
};

struct HttpResponse {
  unsigned status = 0;
  HeaderList headers;
  std::string body;

  std::optional<std::string_view> Header(std::string_view name) const {
    return FindHeader(headers, name);
  }
};

class Transport {
 public:
  using Callback = std::function<void(Result<HttpResponse>)>;

  virtual ~Transport() = default;

  // Sends `request` and calls `done` exactly once with the answer or the
  // error, on the transport's executor and never from inside Send. (A
  // destroyed transport calls nothing.)
  virtual void Send(HttpRequest request, Callback done) = 0;

  // Aborts every request in flight or waiting; their callbacks run with an
  // error (boost::asio::error::operation_aborted).
  virtual void CancelAll() = 0;
};

}  // namespace presence::client

#endif  // PRESENCE_CLIENT_TRANSPORT_H_
