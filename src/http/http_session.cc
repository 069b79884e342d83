#include "http/http_session.h"

#include <sys/socket.h>

#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/serialize.hpp>
#include <cerrno>

#include "http/forwarder.h"
#include "http/response_head.h"

namespace presence::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

HttpSession::HttpSession(boost::asio::ip::tcp::socket socket,
                         const api::Router* router, const SessionLimits* limits,
                         std::shared_ptr<std::atomic<std::size_t>> open)
    : stream_(std::move(socket)),
      heartbeat_(stream_.get_executor()),
      router_(router),
      limits_(limits),
      open_(std::move(open)),
      metrics_(limits->metrics) {
  open_->fetch_add(1, std::memory_order_relaxed);
}

HttpSession::~HttpSession() {
  open_->fetch_sub(1, std::memory_order_relaxed);
  if (metrics_ != nullptr) metrics_->ConnectionClosed();
}

void HttpSession::Start() {
  if (metrics_ != nullptr) metrics_->ConnectionOpened();
  // Run on the stream's strand from the very first operation.
  boost::asio::dispatch(
      stream_.get_executor(),
      beast::bind_front_handler(&HttpSession::DoRead, shared_from_this()));
}

void HttpSession::DoRead() {
  parser_.emplace();
  parser_->header_limit(limits_->header_limit);
  parser_->body_limit(limits_->body_limit);
  stream_.expires_after(limits_->idle_timeout);
  bhttp::async_read(
      stream_, buffer_, *parser_,
      beast::bind_front_handler(&HttpSession::OnRead, shared_from_this()));
}

void HttpSession::OnRead(beast::error_code ec, std::size_t) {
  if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout ||
      ec == boost::asio::error::connection_reset ||
      ec == boost::asio::error::operation_aborted) {
    return DoClose();
  }
  if (ec == bhttp::error::header_limit) {
    return WriteError(431, "Request header fields too large");
  }
  if (ec == bhttp::error::body_limit) {
    return WriteError(413, "Request body too large");
  }
  if (ec) return WriteError(400, "Malformed HTTP request");
  HandleRequest(false);
}

void HttpSession::Unpark() {
  parked_ = false;
  heartbeat_.cancel();
  beast::error_code ec;
  stream_.socket().cancel(ec);  // the readability wait; nothing else pending
}

void HttpSession::Wake() {
  boost::asio::post(stream_.get_executor(), [self = shared_from_this()] {
    if (!self->parked_) return;
    self->Unpark();
    self->Resume(/*superseded=*/false);
  });
}

void HttpSession::Supersede() {
  boost::asio::post(stream_.get_executor(), [self = shared_from_this()] {
    if (!self->parked_) return;
    self->Unpark();
    self->Resume(/*superseded=*/true);
  });
}

void HttpSession::Resume(bool superseded) {
  std::optional<api::Response> out =
      router_->Resume(parked_poll_, shared_from_this(), superseded);
  if (!out) return HandleRequest(superseded, /*resumed=*/true);
  if (out->parked) return Park();  // woken for nothing new: wait again
  Respond(std::move(*out));
}

void HttpSession::OnParkedReadable(beast::error_code ec) {
  if (ec || !parked_) return;  // cancelled: woken first
  // Peek without consuming: 0 bytes means the client closed; EAGAIN means
  // the wake-up was spurious (watch again); data means a pipelined request,
  // which stays in the socket and is read after the answer.
  char byte;
  const ssize_t n = ::recv(stream_.socket().native_handle(), &byte, 1,
                           MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return;
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    stream_.socket().async_wait(
        boost::asio::ip::tcp::socket::wait_read,
        beast::bind_front_handler(&HttpSession::OnParkedReadable,
                                  shared_from_this()));
    return;
  }
  // Closed or reset: drop it; the queue's weak reference then expires.
  parked_ = false;
  heartbeat_.cancel();
  DoClose();
}

void HttpSession::OnHeartbeat(beast::error_code ec) {
  if (ec || !parked_) return;  // cancelled: woken first
  // Appends a heartbeat event to the queue, which wakes this session.
  router_->hub()->Heartbeat(parked_poll_.queue_id);
}

void HttpSession::HandleRequest(bool force_nonblocking, bool resumed) {
  Request& req = parser_->get();
  api::Request in;
  in.method = req.method_string();
  in.target = req.target();
  in.host = req[bhttp::field::host];
  if (auto it = req.find(bhttp::field::authorization); it != req.end()) {
    in.authorization = it->value();
    in.has_authorization = true;
  }
  in.content_type = req[bhttp::field::content_type];
  in.user_agent = req[bhttp::field::user_agent];
  in.body = req.body();
  in.waiter = shared_from_this();
  in.force_nonblocking = force_nonblocking;
  in.resumed = resumed;
  in.forwarded = req.find(kForwardedHeader) != req.end();

  api::Response out = router_->Handle(in);
  if (!out.forward_to.empty()) return Relay(std::move(out));
  if (out.parked) {
    parked_poll_ = std::move(out.parked_poll);
    return Park();
  }

  Respond(std::move(out));
}

void HttpSession::Park() {
  // No read and no write while parked: the client waits for the answer.
  stream_.expires_never();
  parked_ = true;
  heartbeat_.expires_after(limits_->heartbeat);
  heartbeat_.async_wait(
      beast::bind_front_handler(&HttpSession::OnHeartbeat, shared_from_this()));
  // Notice a client that goes away while parked, so that it does not hold
  // its connection slot and its queue's waiter until the heartbeat.
  stream_.socket().async_wait(
      boost::asio::ip::tcp::socket::wait_read,
      beast::bind_front_handler(&HttpSession::OnParkedReadable,
                                shared_from_this()));
}

void HttpSession::Respond(api::Response out) {
  Request& req = parser_->get();
  const std::optional<std::size_t> length =
      out.status != 204 && out.status != 304
          ? std::optional<std::size_t>(out.body.size())
          : std::nullopt;
  if (out.headers.empty()) {
    // The common answer (every woken long poll): its head formatted
    // directly and written with the body in one gathered write, no fields
    // container and no serializer.
    const bool keep_alive = req.keep_alive();
    head_.clear();
    AppendResponseHead(head_, req.version(), out.status, out.content_type,
                       keep_alive, length);
    body_ =
        req.method() == bhttp::verb::head ? std::string() : std::move(out.body);
    stream_.expires_after(limits_->idle_timeout);
    const std::array<boost::asio::const_buffer, 2> buffers{
        boost::asio::buffer(head_), boost::asio::buffer(body_)};
    boost::asio::async_write(
        stream_, buffers,
        beast::bind_front_handler(&HttpSession::OnWrite, shared_from_this(),
                                  keep_alive));
    return;
  }
  response_ = Response{};
  response_.version(req.version());
  response_.result(out.status);
  response_.set(bhttp::field::server, "presenced");
  if (!out.content_type.empty()) {
    response_.set(bhttp::field::content_type, out.content_type);
  }
  for (auto& [name, value] : out.headers) response_.set(name, value);
  const bool head = req.method() == bhttp::verb::head;
  const std::size_t size = out.body.size();
  if (!head) response_.body() = std::move(out.body);
  const bool keep_alive = req.keep_alive();
  response_.keep_alive(keep_alive);
  if (length) response_.content_length(size);
  DoWrite(keep_alive);
}

void HttpSession::Relay(api::Response fallback) {
  // The owner may hold the poll up to its heartbeat: no idle timeout here,
  // the relay has its own.
  stream_.expires_never();
  std::string to = std::move(fallback.forward_to);
  const auto timeout = 2 * limits_->heartbeat + std::chrono::seconds(10);
  Forward(stream_.get_executor(), to, parser_->get(), timeout,
          [self = shared_from_this(), fallback = std::move(fallback)](
              std::optional<ForwardResponse> answer) mutable {
            if (!answer) return self->Respond(std::move(fallback));
            const Request& req = self->parser_->get();
            const bool keep_alive = req.keep_alive();
            self->response_ = std::move(*answer);
            self->response_.version(req.version());
            self->response_.keep_alive(keep_alive);
            self->DoWrite(keep_alive);
          });
}

void HttpSession::WriteError(unsigned status, std::string_view msg) {
  response_ = Response{};
  response_.version(11);
  response_.result(status);
  response_.set(bhttp::field::server, "presenced");
  response_.set(bhttp::field::content_type, "application/json");
  response_.body() = boost::json::serialize(boost::json::object{
      {"result", "error"}, {"msg", msg}, {"code", "BAD_REQUEST"}});
  response_.keep_alive(false);
  response_.prepare_payload();
  DoWrite(false);
}

void HttpSession::DoWrite(bool keep_alive) {
  stream_.expires_after(limits_->idle_timeout);
  bhttp::async_write(stream_, response_,
                     beast::bind_front_handler(&HttpSession::OnWrite,
                                               shared_from_this(), keep_alive));
}

void HttpSession::OnWrite(bool keep_alive, beast::error_code ec, std::size_t) {
  body_ = std::string();  // a parked poll holds no old answer
  if (ec == beast::error::timeout && metrics_ != nullptr) {
    // The client did not read its answer within the timeout: cut it off
    // rather than hold the buffer.
    metrics_->RecordSlowConsumer();
  }
  if (ec) return DoClose();
  if (!keep_alive) return DoClose();
  DoRead();
}

void HttpSession::DoClose() {
  beast::error_code ec;
  stream_.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_send, ec);
  stream_.socket().close(ec);
}

}  // namespace presence::http
