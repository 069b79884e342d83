// HttpTransport: the Transport over HTTP/1.1 with Boost.Beast.
//
// Keeps up to `max_connections` keep-alive connections to one server and
// runs one request per connection at a time: the client's long poll
// (GET /events) holds one while its pings use another. Requests beyond the
// limit wait in order. Each request has its own deadline covering connect,
// write and read (Beast's tcp_stream expiry). A kept-alive connection that
// the server closed while it sat idle fails on first use; such a request is
// sent again, once, on a fresh connection.
//
// Only plain http:// URLs (presenced behind a TLS-terminating proxy is
// reached over http); the URL's path is a prefix for every target.
//
// Thread safety: create, use and destroy it on its executor's thread (a
// single-threaded io_context or a strand). Destroying it closes every
// connection; the callbacks of requests still in flight are not called.
#ifndef PRESENCE_CLIENT_HTTP_TRANSPORT_H_
#define PRESENCE_CLIENT_HTTP_TRANSPORT_H_

#include <boost/asio/any_io_executor.hpp>
#include <cstdint>
#include <deque>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "client/transport.h"
#include "util/result.h"

namespace presence::client {

// A server's address taken apart from "http://host[:port][/prefix]".
struct ServerUrl {
  std::string host;         // name or address; IPv6 without brackets
  std::string port;         // "80" when the URL names none
  std::string host_header;  // host[:port] as written
  std::string base_path;    // prefix of every target, no trailing '/'
};

class HttpTransport final : public Transport {
 public:
  struct Options {
    std::size_t max_connections = 4;
    std::uint64_t body_limit = 64ull << 20;
    std::string user_agent = "presence-client/0.1";
  };

  // Errc::kInvalidArgument for a URL that is not http://host[:port][/path].
  static Result<ServerUrl> ParseUrl(std::string_view url);

  // Errc::kInvalidArgument for a bad URL.
  static Result<std::unique_ptr<HttpTransport>> Create(
      boost::asio::any_io_executor executor, std::string_view server_url,
      Options options);
  static Result<std::unique_ptr<HttpTransport>> Create(
      boost::asio::any_io_executor executor, std::string_view server_url) {
    return Create(std::move(executor), server_url, Options{});
  }

  ~HttpTransport() override;

  void Send(HttpRequest request, Callback done) override;
  void CancelAll() override;

  const ServerUrl& server() const { return server_; }
  // TCP connections opened so far (tests check that keep-alive works).
  std::uint64_t connects() const { return connects_; }

 private:
  class Connection;
  struct Waiting {
    HttpRequest request;
    Callback done;
  };

  HttpTransport(boost::asio::any_io_executor executor, ServerUrl server,
                Options options);

  // A connection finished its request; `reusable` when it may be kept.
  void Release(const std::shared_ptr<Connection>& conn, bool reusable);
  void StartOn(const std::shared_ptr<Connection>& conn, Waiting w);

  boost::asio::any_io_executor executor_;
  const ServerUrl server_;
  const Options options_;
  std::vector<std::shared_ptr<Connection>> idle_;
  std::set<std::shared_ptr<Connection>> busy_;
  std::deque<Waiting> waiting_;
  std::uint64_t connects_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace presence::client

#endif  // PRESENCE_CLIENT_HTTP_TRANSPORT_H_
