#include "http/response_head.h"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>  // status.hpp alone lacks <ostream>
#include <charconv>
#include <cstring>

namespace presence::http {

namespace bhttp = boost::beast::http;

namespace {

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
  // Every answer passes here: the head is written through a pointer into
  // room made once (the longest it can be), where an append per piece
  // checked the capacity and called memcpy some thirty times per answer.
  const std::string_view reason =
      bhttp::obsolete_reason(bhttp::int_to_status(status));
  constexpr std::size_t kNumber = 20;  // digits of any 64-bit number
  constexpr std::string_view kServer = "\r\nServer: presenced\r\n";
  constexpr std::string_view kType = "Content-Type: ";
  constexpr std::string_view kKeepAlive = "Connection: keep-alive\r\n";
  constexpr std::string_view kClose = "Connection: close\r\n";
  constexpr std::string_view kLength = "Content-Length: ";
  std::size_t bound = 5 + 2 * kNumber + 1 + 1 + kNumber + 1 + reason.size() +
                      kServer.size() + kType.size() + content_type.size() + 2 +
                      kKeepAlive.size() + kLength.size() + kNumber + 2 + 2;
  if (rate != nullptr) {
    for (const std::string_view name : kRateFieldNames) {
      bound += name.size() + 2 + kNumber + 1 + 2;  // a sign and the digits
    }
  }
  for (const auto& [name, value] : extra) {
    bound += name.size() + 2 + value.size() + 2;
  }
  const std::size_t at = out.size();
  out.resize(at + bound);
  char* const begin = out.data();
  char* p = begin + at;
  const auto put = [&p](std::string_view s) {
    std::memcpy(p, s.data(), s.size());
    p += s.size();
  };
  const auto put_number = [&p](auto n) {
    p = std::to_chars(p, p + kNumber + 1, n).ptr;
  };
  put("HTTP/");
  put_number(version / 10);
  *p++ = '.';
  put_number(version % 10);
  *p++ = ' ';
  put_number(status);
  *p++ = ' ';
  put(reason);
  put(kServer);
  if (!content_type.empty()) {
    put(kType);
    put(content_type);
    put("\r\n");
  }
  if (rate != nullptr) {
    ForEachRateField(*rate, [&](std::string_view name, std::string_view value) {
      put(name);
      put(": ");
      put(value);
      put("\r\n");
    });
  }
  for (const auto& [name, value] : extra) {
    put(name);
    put(": ");
    put(value);
    put("\r\n");
  }
  // As beast::http::message::keep_alive on a response without Connection.
  if (version < 11 && keep_alive) put(kKeepAlive);
  if (version >= 11 && !keep_alive) put(kClose);
  if (content_length) {
    put(kLength);
    put_number(*content_length);
    put("\r\n");
  }
  put("\r\n");
  out.resize(static_cast<std::size_t>(p - begin));
}

}  // namespace presence::http
