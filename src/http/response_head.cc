#include "http/response_head.h"

#include <boost/beast/core/string.hpp>
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

bool HasCrOrLf(std::string_view s) {
  // A plain loop: find_first_of("\r\n") searches the set once per
  // character (a library call each), and every API answer's fields pass
  // here.
  for (const char c : s) {
    if (c == '\r' || c == '\n') return true;
  }
  return false;
}

}  // namespace

bool HeadWritesFields(ExtraFields extra) {
  for (std::size_t i = 0; i < extra.size(); ++i) {
    const std::string_view name = extra[i].first;
    if (name.empty() || HasCrOrLf(name) || HasCrOrLf(extra[i].second)) {
      return false;
    }
    switch (bhttp::string_to_field(name)) {
      case bhttp::field::server:
      case bhttp::field::content_type:
      case bhttp::field::connection:
      case bhttp::field::content_length:
      case bhttp::field::transfer_encoding:
        return false;
      default:
        break;
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (boost::beast::iequals(extra[j].first, name)) return false;
    }
  }
  return true;
}

void AppendResponseHead(std::string& out, unsigned version, unsigned status,
                        std::string_view content_type, bool keep_alive,
                        std::optional<std::size_t> content_length,
                        ExtraFields extra, const api::RateFields* rate) {
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
  if (rate != nullptr) {
    ForEachRateField(*rate,
                     [&out](std::string_view name, std::string_view value) {
                       out.append(name);
                       out.append(": ");
                       out.append(value);
                       out.append("\r\n");
                     });
  }
  for (const auto& [name, value] : extra) {
    out.append(name);
    out.append(": ");
    out.append(value);
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
