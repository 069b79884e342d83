#include "http/response_head.h"

#include <boost/beast/http.hpp>  // status.hpp alone lacks <ostream>
#include <charconv>

namespace presence::http {

namespace bhttp = boost::beast::http;

namespace {

void AppendNumber(std::string& out, std::size_t n) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, end);
}

}  // namespace

void AppendResponseHead(std::string& out, unsigned version, unsigned status,
                        std::string_view content_type, bool keep_alive,
                        std::optional<std::size_t> content_length) {
  out.append("HTTP/");
  AppendNumber(out, version / 10);
  out.push_back('.');
  AppendNumber(out, version % 10);
  out.push_back(' ');
  AppendNumber(out, status);
  out.push_back(' ');
  const std::string_view reason =
      bhttp::obsolete_reason(bhttp::int_to_status(status));
  out.append(reason.data(), reason.size());
  out.append("\r\nServer: presenced\r\n");
  if (!content_type.empty()) {
    out.append("Content-Type: ");
    out.append(content_type);
    out.append("\r\n");
  }
  // As beast::http::message::keep_alive on a response without Connection.
  if (version < 11 && keep_alive) out.append("Connection: keep-alive\r\n");
  if (version >= 11 && !keep_alive) out.append("Connection: close\r\n");
  if (content_length) {
    out.append("Content-Length: ");
    AppendNumber(out, *content_length);
    out.append("\r\n");
  }
  out.append("\r\n");
}

}  // namespace presence::http
