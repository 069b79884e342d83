#include "http/http_server.h"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <charconv>

namespace presence::http {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

std::optional<tcp::endpoint> ParseListenAddress(std::string_view spec) {
  std::string_view host, port;
  if (!spec.empty() && spec.front() == '[') {
    auto close = spec.find(']');
    if (close == std::string_view::npos || close + 1 >= spec.size() ||
        spec[close + 1] != ':') {
      return std::nullopt;
    }
    host = spec.substr(1, close - 1);
    port = spec.substr(close + 2);
  } else {
    auto colon = spec.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = spec.substr(0, colon);
    port = spec.substr(colon + 1);
  }
  unsigned p = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() ||
      p > 65535) {
    return std::nullopt;
  }
  if (host == "localhost") host = "127.0.0.1";
  boost::system::error_code aec;
  auto addr = asio::ip::make_address(std::string(host), aec);
  if (aec) return std::nullopt;
  return tcp::endpoint(addr, static_cast<unsigned short>(p));
}

std::string EndpointUrl(const tcp::endpoint& ep) {
  std::string host = ep.address().to_string();
  if (ep.address().is_v6()) host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(ep.port());
}

HttpServer::HttpServer(asio::io_context& ioc, const api::Router* router,
                       SessionLimits limits, ExecutorPicker picker)
    : ioc_(ioc),
      strand_(asio::make_strand(ioc)),
      acceptor_(strand_),
      router_(router),
      limits_(limits),
      picker_(std::move(picker)),
      open_(std::make_shared<std::atomic<std::size_t>>(0)) {}

std::size_t HttpServer::open_connections() const {
  return open_->load(std::memory_order_relaxed);
}

Result<tcp::endpoint> HttpServer::Listen(const tcp::endpoint& endpoint) {
  boost::system::error_code ec;
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return ec;
  auto local = acceptor_.local_endpoint(ec);
  if (ec) return ec;
  DoAccept();
  return local;
}

void HttpServer::Stop() {
  asio::post(strand_, [this] {
    boost::system::error_code ec;
    acceptor_.close(ec);
  });
}

void HttpServer::DoAccept() {
  acceptor_.async_accept(
      picker_ ? picker_() : asio::any_io_executor(asio::make_strand(ioc_)),
      boost::beast::bind_front_handler(&HttpServer::OnAccept, this));
}

void HttpServer::OnAccept(boost::beast::error_code ec, tcp::socket socket) {
  if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
  if (!ec && open_connections() >= limits_.max_connections) {
    // Over the limit: a short 503 and close, without a session.
    if (limits_.metrics != nullptr) limits_.metrics->RecordConnectionRefused();
    static constexpr std::string_view kBusy =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        "Connection: close\r\nContent-Length: 77\r\n\r\n"
        "{\"result\":\"error\",\"msg\":\"Too many "
        "connections\",\"code\":\"TOO_MANY_CONNECTIONS\"}";
    auto s = std::make_shared<tcp::socket>(std::move(socket));
    asio::async_write(*s, asio::buffer(kBusy),
                      [s](boost::system::error_code, std::size_t) {
                        boost::system::error_code ignored;
                        s->close(ignored);
                      });
  } else if (!ec) {
    boost::system::error_code opt;
    socket.set_option(tcp::no_delay(true), opt);
    std::make_shared<HttpSession>(std::move(socket), router_, &limits_, open_)
        ->Start();
  }
  // On an accept error (e.g. out of file descriptors) keep accepting.
  DoAccept();
}

}  // namespace presence::http
