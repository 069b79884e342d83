#include "tools/admin_client.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/scheme.hpp>
#include <boost/url/url_view.hpp>
#include <charconv>
#include <cstdint>
#include <stdexcept>

namespace presence::tools {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace urls = boost::urls;
using tcp = asio::ip::tcp;

// Large enough for a realm list of any plausible size, small enough that a
// confused peer cannot make the CLI allocate without bound.
constexpr std::uint64_t kMaxReplyBytes = 64ull << 20;

constexpr char kUserAgent[] = "presencectl/0.1";

std::string Seconds(std::chrono::milliseconds d) {
  const auto ms = d.count();
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + " s";
  return std::to_string(ms) + " ms";
}

}  // namespace

void throw_exception_from_error(const CtlError& e,
                                const boost::source_location& /*loc*/) {
  throw std::runtime_error(e.message);
}

CtlResult<ServerUrl> ParseServerUrl(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return CtlError(kExitUsage, "bad server URL '" + std::string(text) +
                                    "': " + std::string(why) +
                                    " (want http://HOST[:PORT])");
  };
  auto parsed = urls::parse_uri(text);
  if (!parsed) return bad("not an absolute URL");
  const urls::url_view& url = *parsed;
  if (url.scheme_id() == urls::scheme::https) {
    return CtlError(kExitUsage,
                    "https is not supported (" + std::string(text) +
                        "): presencectl speaks plain HTTP to the admin API, "
                        "which belongs on loopback or a private network; use "
                        "an http:// URL");
  }
  if (url.scheme_id() != urls::scheme::http) return bad("scheme must be http");
  if (!url.has_authority() || url.encoded_host().empty()) return bad("no host");
  if (url.has_userinfo()) {
    return bad(
        "user:password@ is not supported; pass the admin token with "
        "--token-file or PRESENCED_ADMIN_TOKEN");
  }
  if (url.has_query() || url.has_fragment()) {
    return bad("a query or fragment is not allowed");
  }

  ServerUrl out;
  out.text = std::string(text);
  out.host = url.host_address();
  out.host_header = std::string(url.encoded_host());
  if (url.has_port() && !url.port().empty()) {
    // Checked here: port_number() silently wraps values above 65535.
    const std::string_view port = url.port();
    unsigned value = 0;
    auto [end, err] =
        std::from_chars(port.data(), port.data() + port.size(), value);
    if (err != std::errc() || end != port.data() + port.size() || value == 0 ||
        value > 65535) {
      return bad("port must be 1-65535");
    }
    out.port = std::to_string(value);
    out.host_header += ":" + out.port;
  } else {
    out.port = "80";
  }
  out.base_path = std::string(url.encoded_path());
  // Boost.URL 1.81 reads "http://h:abc" as an empty port and a path "abc".
  if (!out.base_path.empty() && out.base_path.front() != '/') {
    return bad("port must be 1-65535");
  }
  while (!out.base_path.empty() && out.base_path.back() == '/') {
    out.base_path.pop_back();
  }
  return out;
}

AdminClient::AdminClient(ServerUrl server, std::string token,
                         std::chrono::milliseconds timeout)
    : server_(std::move(server)), token_(std::move(token)), timeout_(timeout) {}

CtlResult<HttpReply> AdminClient::Call(http::verb method, std::string_view path,
                                       std::string_view body) const {
  // Each step below starts one asynchronous operation and runs the private
  // io_context until it completes, so the flow reads like synchronous code
  // while the stream's expiry bounds connect, write and read together.
  asio::io_context ioc;
  beast::error_code ec;

  // Name resolution uses the system resolver and is not bounded by the
  // timeout; the default server is a numeric loopback address.
  tcp::resolver resolver(ioc);
  auto endpoints = resolver.resolve(server_.host, server_.port, ec);
  if (ec) {
    return CtlError(kExitUnreachable, "cannot connect to " + server_.text +
                                          ": cannot resolve '" + server_.host +
                                          "': " + ec.message());
  }

  beast::tcp_stream stream(ioc);
  stream.expires_after(timeout_);
  stream.async_connect(
      endpoints, [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
  ioc.run();
  if (ec == beast::error::timeout) {
    return CtlError(kExitUnreachable, "cannot connect to " + server_.text +
                                          ": timed out after " +
                                          Seconds(timeout_));
  }
  if (ec) {
    return CtlError(kExitUnreachable, "cannot connect to " + server_.text +
                                          ": " + ec.message() +
                                          " (is presenced running there?)");
  }

  http::request<http::string_body> req{
      method, server_.base_path + std::string(path), 11};
  req.set(http::field::host, server_.host_header);
  req.set(http::field::user_agent, kUserAgent);
  req.set(http::field::accept, "application/json");
  req.set(http::field::authorization, "Bearer " + token_);
  if (!body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = std::string(body);
  }
  req.keep_alive(false);
  req.prepare_payload();

  http::async_write(stream, req,
                    [&](beast::error_code e, std::size_t) { ec = e; });
  ioc.restart();
  ioc.run();
  if (ec) {
    return CtlError(kExitUnreachable,
                    "lost the connection to " + server_.text +
                        " while sending the request: " +
                        (ec == beast::error::timeout
                             ? "timed out after " + Seconds(timeout_)
                             : ec.message()));
  }

  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxReplyBytes);
  http::async_read(stream, buffer, parser,
                   [&](beast::error_code e, std::size_t) { ec = e; });
  ioc.restart();
  ioc.run();
  if (ec) {
    // The request went out: say that it may have taken effect.
    return CtlError(kExitUnreachable,
                    "no complete answer from " + server_.text + ": " +
                        (ec == beast::error::timeout
                             ? "timed out after " + Seconds(timeout_)
                             : ec.message()) +
                        " (the request may or may not have been applied)");
  }

  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);

  HttpReply reply;
  reply.status = parser.get().result_int();
  reply.body = std::move(parser.get().body());
  return reply;
}

}  // namespace presence::tools
