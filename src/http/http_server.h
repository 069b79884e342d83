// HttpServer: accepts connections and starts an HttpSession for each.
//
// Limits at the door: past SessionLimits::max_connections open sessions, or
// max_connections_per_address from one TCP peer address (peers inside
// SessionLimits::trusted_proxies excepted), a connection gets a short 503
// TOO_MANY_CONNECTIONS and is closed without a session. An accept that
// fails (out of file descriptors, of kernel buffers, ...) is retried after a
// pause that doubles from kAcceptBackoffMin to kAcceptBackoffMax while the
// failures go on, instead of at once: the connection waits in the kernel's
// backlog, and the thread (which also runs timers and signals) does not
// spin. Each failure is counted (presenced_accept_errors_total); a burst of
// them is logged once when it starts and once when an accept succeeds again.
//
// Thread safety: Listen() before the io_context runs; Stop() from any thread
// (it posts to the acceptor's strand). Sessions run on their own strands, so
// any number of io_context threads may serve them.
#ifndef PRESENCE_HTTP_HTTP_SERVER_H_
#define PRESENCE_HTTP_HTTP_SERVER_H_

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "api/router.h"
#include "http/http_session.h"
#include "util/result.h"

namespace presence::http {

// "HOST:PORT" or "[V6]:PORT" -> endpoint. nullopt if malformed.
std::optional<boost::asio::ip::tcp::endpoint> ParseListenAddress(
    std::string_view spec);

// "http://HOST:PORT" for an endpoint, brackets around IPv6 hosts.
std::string EndpointUrl(const boost::asio::ip::tcp::endpoint& ep);

// Where the next connection's handlers run. An executor that runs one
// handler at a time: a strand, or the executor of an io_context that one
// thread runs (IoPool).
using ExecutorPicker = std::function<boost::asio::any_io_executor()>;

class HttpServer {
 public:
  static constexpr std::chrono::milliseconds kAcceptBackoffMin{10};
  static constexpr std::chrono::milliseconds kAcceptBackoffMax{1000};

  // Without a picker, every connection gets its own strand of `ioc`.
  HttpServer(boost::asio::io_context& ioc, const api::Router* router,
             SessionLimits limits = {}, ExecutorPicker picker = {});

  // Binds and listens; returns the bound endpoint (port 0 picks a free one).
  Result<boost::asio::ip::tcp::endpoint> Listen(
      const boost::asio::ip::tcp::endpoint& endpoint);

  // Stops accepting new connections. Open sessions finish on their own.
  void Stop();

  // Open connections (sessions alive), for the connection limit.
  std::size_t open_connections() const;

 private:
  void DoAccept();
  void OnAccept(boost::beast::error_code ec, boost::asio::ip::tcp::socket s);
  // Answers 503 TOO_MANY_CONNECTIONS with `body` and closes.
  static void Refuse(boost::asio::ip::tcp::socket socket,
                     const std::string& answer);
  // An accept failed: count it, log the burst's start, retry later.
  void AcceptFailed(const boost::beast::error_code& ec);

  boost::asio::io_context& ioc_;
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::ip::tcp::acceptor acceptor_;
  const api::Router* const router_;
  const SessionLimits limits_;
  const ExecutorPicker picker_;
  std::shared_ptr<std::atomic<std::size_t>> open_;
  const std::shared_ptr<AddressSlots> per_address_;
  // Accept's peer endpoint and back-off state: touched only on strand_
  // (one accept in flight at a time).
  boost::asio::ip::tcp::endpoint peer_;
  boost::asio::steady_timer retry_timer_;
  std::chrono::milliseconds backoff_{0};  // 0: not in a burst of failures
  std::uint64_t burst_errors_ = 0;
};

}  // namespace presence::http

#endif  // PRESENCE_HTTP_HTTP_SERVER_H_
