#include "http/http_server.h"

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <utility>
#include <vector>

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
      open_(std::make_shared<std::atomic<std::size_t>>(0)),
      per_address_(AddressSlots::Create(limits_.max_connections_per_address)),
      retry_timer_(strand_) {}

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
    retry_timer_.cancel();
  });
}

void HttpServer::DoAccept() {
  acceptor_.async_accept(
      picker_ ? picker_() : asio::any_io_executor(asio::make_strand(ioc_)),
      peer_, boost::beast::bind_front_handler(&HttpServer::OnAccept, this));
}

namespace {

std::string BusyAnswer(std::string_view msg) {
  const std::string body = "{\"result\":\"error\",\"msg\":\"" +
                           std::string(msg) +
                           "\",\"code\":\"TOO_MANY_CONNECTIONS\"}";
  return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
         "application/json\r\nConnection: close\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace

void HttpServer::Refuse(tcp::socket socket, const std::string& answer) {
  auto s = std::make_shared<tcp::socket>(std::move(socket));
  asio::async_write(*s, asio::buffer(answer),
                    [s](boost::system::error_code, std::size_t) {
                      boost::system::error_code ignored;
                      s->close(ignored);
                    });
}

void HttpServer::AcceptFailed(const boost::beast::error_code& ec) {
  if (limits_.metrics != nullptr) limits_.metrics->RecordAcceptError();
  ++burst_errors_;
  if (backoff_.count() == 0) {
    backoff_ = kAcceptBackoffMin;
    if (limits_.log) {
      limits_.log("warn", "accept_failed",
                  {{"reason", ec.message()},
                   {"retry_ms", std::to_string(backoff_.count())}});
    }
  } else {
    backoff_ = std::min(backoff_ * 2, kAcceptBackoffMax);
  }
  retry_timer_.expires_after(backoff_);
  retry_timer_.async_wait([this](boost::system::error_code e) {
    if (e || !acceptor_.is_open()) return;
    DoAccept();
  });
}

void HttpServer::OnAccept(boost::beast::error_code ec, tcp::socket socket) {
  if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
  if (ec && ec != asio::error::connection_aborted) {
    // Out of file descriptors (EMFILE, ENFILE), kernel memory (ENOBUFS,
    // ENOMEM), ...: retrying at once would fail the same way, in a loop
    // that holds this thread.
    return AcceptFailed(ec);
  }
  if (!ec && backoff_.count() != 0) {
    if (limits_.log) {
      limits_.log("info", "accept_recovered",
                  {{"errors", std::to_string(burst_errors_)}});
    }
    backoff_ = std::chrono::milliseconds(0);
    burst_errors_ = 0;
  }
  if (ec) return DoAccept();  // that one connection went away: next
  const asio::ip::address peer = CanonicalAddress(peer_.address());
  const bool trusted = limits_.trusted_proxies != nullptr &&
                       limits_.trusted_proxies->Contains(peer);
  std::optional<AddressSlots::Slot> slot;
  if (open_connections() >= limits_.max_connections) {
    // Over the limit: a short 503 and close, without a session.
    if (limits_.metrics != nullptr) limits_.metrics->RecordConnectionRefused();
    static const std::string kBusy = BusyAnswer("Too many connections");
    Refuse(std::move(socket), kBusy);
  } else if (!trusted && !(slot = per_address_->Acquire(peer))) {
    if (limits_.metrics != nullptr) {
      limits_.metrics->RecordConnectionRefusedPerAddress();
    }
    static const std::string kBusyHere =
        BusyAnswer("Too many connections from this address");
    Refuse(std::move(socket), kBusyHere);
  } else {
    boost::system::error_code opt;
    socket.set_option(tcp::no_delay(true), opt);
    std::make_shared<HttpSession>(
        std::move(socket), router_, &limits_, open_, peer,
        slot ? std::move(*slot) : AddressSlots::Slot())
        ->Start();
  }
  DoAccept();
}

}  // namespace presence::http
