// The API layer's view of an HTTP exchange, free of any socket library.
//
// The HTTP layer fills a Request from the wire and writes the Response back;
// everything in between (routing, auth, parameters, JSON) is a pure function
// of these values, which is what the API tests exercise.
#ifndef PRESENCE_API_HTTP_TYPES_H_
#define PRESENCE_API_HTTP_TYPES_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace presence::api {

struct Request {
  std::string_view method;  // "GET", "POST", ... as sent
  std::string_view target;  // origin-form: path with optional ?query
  std::string_view host;    // Host header, possibly with :port
  std::string_view authorization;
  bool has_authorization = false;
  std::string_view content_type;
  std::string_view user_agent;
  std::string_view body;
};

struct Response {
  unsigned status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
};

}  // namespace presence::api

#endif  // PRESENCE_API_HTTP_TYPES_H_
