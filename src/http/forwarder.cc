#include "http/forwarder.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <memory>

namespace presence::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

class Relay : public std::enable_shared_from_this<Relay> {
 public:
  Relay(asio::any_io_executor ex, ForwardRequest request, const RelayAuth* auth,
        std::chrono::milliseconds timeout,
        std::function<void(std::optional<ForwardResponse>)> done)
      : resolver_(ex),
        stream_(ex),
        request_(std::move(request)),
        auth_(auth),
        timeout_(timeout),
        done_(std::move(done)) {}

  void Start(const std::string& address) {
    auto colon = address.rfind(':');
    if (colon == std::string::npos) return Finish(false);
    std::string host = address.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
    resolver_.async_resolve(
        host, address.substr(colon + 1),
        beast::bind_front_handler(&Relay::OnResolve, shared_from_this()));
  }

 private:
  void OnResolve(beast::error_code ec, tcp::resolver::results_type results) {
    if (ec) return Finish(false);
    stream_.expires_after(timeout_);
    stream_.async_connect(results, beast::bind_front_handler(
                                       &Relay::OnConnect, shared_from_this()));
  }

  void OnConnect(beast::error_code ec, const tcp::endpoint&) {
    if (ec) return Finish(false);
    request_.keep_alive(false);
    request_.set(kForwardedHeader,
                 auth_->Sign(request_.method_string(), request_.target(),
                             request_.body(), RelayAuth::NowUnix()));
    request_.prepare_payload();
    bhttp::async_write(
        stream_, request_,
        beast::bind_front_handler(&Relay::OnWrite, shared_from_this()));
  }

  void OnWrite(beast::error_code ec, std::size_t) {
    if (ec) return Finish(false);
    bhttp::async_read(
        stream_, buffer_, response_,
        beast::bind_front_handler(&Relay::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, std::size_t) { Finish(!ec); }

  void Finish(bool ok) {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
    auto done = std::move(done_);
    if (ok) {
      done(std::move(response_));
    } else {
      done(std::nullopt);
    }
  }

  tcp::resolver resolver_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  ForwardRequest request_;
  ForwardResponse response_;
  const RelayAuth* auth_;
  std::chrono::milliseconds timeout_;
  std::function<void(std::optional<ForwardResponse>)> done_;
};

}  // namespace

void Forward(asio::any_io_executor executor, const std::string& address,
             ForwardRequest request, const RelayAuth& auth,
             std::chrono::milliseconds timeout,
             std::function<void(std::optional<ForwardResponse>)> done) {
  std::make_shared<Relay>(std::move(executor), std::move(request), &auth,
                          timeout, std::move(done))
      ->Start(address);
}

}  // namespace presence::http
