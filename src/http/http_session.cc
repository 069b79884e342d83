#include "http/http_session.h"

#include <algorithm>
#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/serialize.hpp>
#include <ctime>
#include <memory>
#include <tuple>
#include <utility>

#include "api/api_error.h"
#include "api/auth_cache.h"
#include "api/zulip_api.h"
#include "http/forwarder.h"
#include "http/response_head.h"

namespace presence::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

HttpSession::HttpSession(boost::asio::ip::tcp::socket socket,
                         const api::Router* router, const SessionLimits* limits,
                         std::shared_ptr<std::atomic<std::size_t>> open,
                         boost::asio::ip::address peer, AddressSlots::Slot slot)
    : socket_(std::move(socket)),
      peer_(CanonicalAddress(peer)),
      peer_text_(peer_.is_unspecified() ? std::string() : peer_.to_string()),
      slot_(std::move(slot)),
      idle_timer_(socket_.get_executor()),
      linger_timer_(socket_.get_executor()),
      router_(router),
      limits_(limits),
      open_(std::move(open)),
      metrics_(limits->metrics),
      answers_(AnswerQueue::Of(socket_.get_executor())) {
  answers_.Configure(limits->answer_coalesce_wait);
  open_->fetch_add(1, std::memory_order_relaxed);
}

HttpSession::~HttpSession() {
  open_->fetch_sub(1, std::memory_order_relaxed);
  if (metrics_ != nullptr) metrics_->ConnectionClosed();
}

void HttpSession::Start() {
  if (metrics_ != nullptr) metrics_->ConnectionOpened();
  // Run on the socket's executor from the very first operation.
  boost::asio::dispatch(
      socket_.get_executor(),
      beast::bind_front_handler(&HttpSession::DoRead, shared_from_this()));
}

void HttpSession::DoRead() {
  // The previous request is answered: its fields go, the arena is reused.
  parser_.reset();
  arena_.Reset();
  parser_.emplace(std::piecewise_construct, std::make_tuple(),
                  std::make_tuple(ArenaAllocator<char>(&arena_)));
  parser_->header_limit(limits_->header_limit);
  parser_->body_limit(limits_->body_limit);
  StartTimed(Timed::kRead);
  // The head first: a large body is read only once the head says the
  // answer may depend on it (issue #15).
  bhttp::async_read_header(socket_, buffer_, *parser_,
                           beast::bind_front_handler(&HttpSession::OnReadHeader,
                                                     shared_from_this()));
}

void HttpSession::OnReadHeader(beast::error_code ec, std::size_t) {
  if (ec || parser_->is_done()) return OnRead(ec, 0);
  const boost::optional<std::uint64_t> length = parser_->content_length();
  if (!length || *length > limits_->precheck_body_bytes) {
    std::optional<std::string_view> relay_mark;
    api::Request head = ApiRequestHead(relay_mark);
    head.forwarded = relay_mark.has_value();  // a claim, not yet verified
    std::optional<api::Response> refused;
    try {
      refused = router_->Precheck(head);
    } catch (...) {
      return HandlerFailed(std::current_exception());
    }
    if (refused) return RefuseBeforeBody(std::move(*refused));
  }
  // A small body usually came with the head: parse what is buffered here
  // rather than through one more asynchronous operation.
  parser_->eager(true);
  if (buffer_.size() > 0) {
    const std::size_t used = parser_->put(buffer_.data(), ec);
    buffer_.consume(used);
    if (ec == bhttp::error::need_more) ec = {};
    if (ec || parser_->is_done()) return OnRead(ec, 0);
  }
  bhttp::async_read(
      socket_, buffer_, *parser_,
      beast::bind_front_handler(&HttpSession::OnRead, shared_from_this()));
}

void HttpSession::RefuseBeforeBody(api::Response out) {
  StopTimed();
  const Request& req = parser_->get();
  response_ = Response{};
  response_.version(req.version());
  response_.result(out.status);
  response_.set(bhttp::field::server, "presenced");
  if (!out.content_type.empty()) {
    response_.set(bhttp::field::content_type, out.content_type);
  }
  for (auto& [name, value] : out.headers) response_.set(name, value);
  response_.body() = std::move(out.body);
  // The body is still on its way (or not sent at all, if the client waits
  // for 100 Continue): this connection cannot carry another request.
  response_.keep_alive(false);
  response_.prepare_payload();
  linger_ = true;
  DoWrite(false);
}

void HttpSession::OnRead(beast::error_code ec, std::size_t) {
  StopTimed();
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
  if (metrics_ != nullptr && !parser_->get().body().empty()) {
    metrics_->RecordBodyRead(parser_->get().body().size());
  }
  HandleRequest(false);
}

void HttpSession::Unpark() {
  parked_ = false;
  StopTimed();  // the heartbeat is due no more
  beast::error_code ec;
  socket_.cancel(ec);  // the readability wait; nothing else pending
}

void HttpSession::Wake() { AnswerInTurn(); }

void HttpSession::AnswerInTurn() {
  // Woken again before its turn: one answer carries both.
  if (answer_queued_.exchange(true, std::memory_order_acq_rel)) return;
  answers_.Add(shared_from_this());
}

void HttpSession::AnswerNow() {
  answer_queued_.store(false, std::memory_order_release);
  if (!parked_) return;
  Unpark();
  Resume(/*superseded=*/false);
}

void HttpSession::Supersede() {
  boost::asio::post(socket_.get_executor(), [self = shared_from_this()] {
    if (!self->parked_) return;
    self->Unpark();
    self->Resume(/*superseded=*/true);
  });
}

void HttpSession::Resume(bool superseded) {
  std::optional<api::Response> out;
  try {
    out = router_->Resume(parked_poll_, shared_from_this(), superseded);
  } catch (...) {
    return HandlerFailed(std::current_exception());
  }
  if (!out) return HandleRequest(superseded, /*resumed=*/true);
  if (out->parked) return Park();  // woken for nothing new: wait again
  Respond(std::move(*out));
}

void HttpSession::OnParkedReadable(beast::error_code ec, std::size_t bytes) {
  if (ec == boost::asio::error::operation_aborted || !parked_) return;
  // A peek, nothing consumed: data means a pipelined request, which stays
  // in the socket and is read after the answer (no more watching).
  if (!ec && bytes > 0) return;
  // Closed (end of stream) or reset: drop it; the queue's weak reference
  // then expires.
  parked_ = false;
  DoClose();
}

void HttpSession::WatchParked() {
  // A one-byte peek rather than a readability wait: a wait re-arms the
  // socket in epoll (one epoll_ctl per parked poll), a read that would
  // block is only queued.
  socket_.async_receive(
      boost::asio::buffer(&peek_byte_, 1),
      boost::asio::socket_base::message_peek,
      beast::bind_front_handler(&HttpSession::OnParkedReadable,
                                shared_from_this()));
}

api::Request HttpSession::ApiRequestHead(
    std::optional<std::string_view>& relay_mark) {
  Request& req = parser_->get();
  api::Request in;
  in.method = req.method_string();
  in.target = req.target();
  // One pass over the fields (a lookup by name each would walk them again);
  // the first of repeated fields counts, as req[name] would give.
  bool host = false, type = false, agent = false;
  // X-Forwarded-For is read only from a trusted proxy.
  const bool proxied = limits_->trusted_proxies != nullptr &&
                       !limits_->trusted_proxies->empty() &&
                       limits_->trusted_proxies->Contains(peer_);
  constexpr std::size_t kMaxForwardedFields = 8;
  std::array<std::string_view, kMaxForwardedFields> forwarded_for;
  std::size_t forwarded_fields = 0;
  for (const auto& f : req) {
    switch (f.name()) {
      case bhttp::field::host:
        if (!std::exchange(host, true)) in.host = f.value();
        break;
      case bhttp::field::authorization:
        if (!std::exchange(in.has_authorization, true)) {
          in.authorization = f.value();
        }
        break;
      case bhttp::field::content_type:
        if (!std::exchange(type, true)) in.content_type = f.value();
        break;
      case bhttp::field::user_agent:
        if (!std::exchange(agent, true)) in.user_agent = f.value();
        break;
      case bhttp::field::unknown:
        if (!relay_mark && beast::iequals(f.name_string(), kForwardedHeader)) {
          relay_mark = f.value();
        } else if (proxied && forwarded_fields < kMaxForwardedFields &&
                   beast::iequals(f.name_string(), "X-Forwarded-For")) {
          forwarded_for[forwarded_fields++] = f.value();
        }
        break;
      default:
        break;
    }
  }
  in.client_address = proxied ? ClientAddress(std::span<const std::string_view>(
                                    forwarded_for.data(), forwarded_fields))
                              : std::string_view(peer_text_);
  // Every handler of this session runs on this thread while it runs, so
  // the thread's cache needs no lock.
  thread_local api::AuthCache auth_cache;
  in.auth_cache = &auth_cache;
  in.connection_auth = &connection_auth_;
  return in;
}

void HttpSession::HandleRequest(bool force_nonblocking, bool resumed) {
  Request& req = parser_->get();
  std::optional<std::string_view> relay_mark;
  api::Request in = ApiRequestHead(relay_mark);
  in.body = req.body();
  // Only a relay signed by a node of this group counts as one; a client's
  // own header, or a node with another secret, is a plain request.
  in.forwarded = relay_mark && limits_->relay_auth &&
                 limits_->relay_auth->Verify(in.method, in.target, in.body,
                                             *relay_mark, RelayAuth::NowUnix());
  in.waiter = shared_from_this();
  in.force_nonblocking = force_nonblocking;
  in.resumed = resumed;
  // A poll with its events waiting is answered in its turn, behind the
  // requests read meanwhile (AnswerQueue); one handled again after it was
  // woken has had its turn.
  in.answer_in_turn = !resumed;

  // Constructed from the answer (one move), not assigned over a default
  // one: an answer has many members, and this is every request's path.
  std::optional<api::Response> answer;
  try {
    answer.emplace(router_->Handle(in));
  } catch (...) {
    return HandlerFailed(std::current_exception());
  }
  relay_marked_ = relay_mark.has_value();
  // Work read from a client and answered now competes with the answers
  // queued on this thread (AnswerQueue's pacing).
  if (!resumed && !answer->parked && !answer->deferred) answers_.NoteRequest();
  Dispatch(std::move(*answer));
}

std::string_view HttpSession::ClientAddress(
    std::span<const std::string_view> forwarded_for) {
  const boost::asio::ip::address client =
      limits_->trusted_proxies->ClientAddress(peer_, forwarded_for);
  if (client == peer_) return peer_text_;
  forwarded_client_ = client.to_string();
  return forwarded_client_;
}

void HttpSession::Dispatch(api::Response out) {
  if (out.deferred) return Defer(std::move(out.deferred));
  // Fanned out only by the node the operator called: never a request that
  // carries a relay mark at all (a node with another secret could
  // otherwise bounce it back and forth). Also an answer that was deferred
  // (the group's live nodes read off the I/O thread).
  if (!out.also_to.empty() && !relay_marked_ && limits_->forwarder != nullptr) {
    return FanOut(std::move(out));
  }
  if (!out.forward_to.empty()) return Relay(std::move(out));
  if (out.parked) {
    parked_poll_ = std::move(out.parked_poll);
    Park();
    if (out.ready) AnswerInTurn();
    return;
  }
  Respond(std::move(out));
}

void HttpSession::Defer(std::function<void(api::Continue)> deferred) {
  // Nothing to read or write meanwhile; the store has its own timeout, so
  // the session's does not run.
  StopTimed();
  auto self = shared_from_this();
  deferred([self](std::function<api::Response()> next) {
    // From any thread (the store's, the feed's): the rest runs here.
    boost::asio::post(self->socket_.get_executor(),
                      [self, next = std::move(next)] {
                        std::optional<api::Response> out;
                        try {
                          out.emplace(next());
                        } catch (...) {
                          return self->HandlerFailed(std::current_exception());
                        }
                        self->Dispatch(std::move(*out));
                      });
  });
}

void HttpSession::Park() {
  // No read and no write while parked: the client waits for the answer.
  parked_ = true;
  StartTimed(Timed::kParked);  // the heartbeat
  // Notice a client that goes away while parked, so that it does not hold
  // its connection slot and its queue's waiter until the heartbeat.
  WatchParked();
}

void HttpSession::Respond(api::Response out) {
  Request& req = parser_->get();
  const std::optional<std::size_t> length =
      out.status != 204 && out.status != 304
          ? std::optional<std::size_t>(out.body.size())
          : std::nullopt;
  if (out.headers.empty() || HeadWritesFields(out.headers)) {
    // The common answer (every woken long poll, every API answer with its
    // rate-limit fields): its head formatted directly and written with the
    // body in one gathered write, no fields container and no serializer.
    const bool keep_alive = req.keep_alive();
    head_.clear();
    AppendResponseHead(head_, req.version(), out.status, out.content_type,
                       keep_alive, length, out.headers);
    body_ =
        req.method() == bhttp::verb::head ? std::string() : std::move(out.body);
    StartTimed(Timed::kWrite);
    const std::array<boost::asio::const_buffer, 2> buffers{
        boost::asio::buffer(head_), boost::asio::buffer(body_)};
    boost::asio::async_write(
        socket_, buffers,
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
  // No secret, no relay (a single node has no queue owner to relay to).
  if (limits_->forwarder == nullptr) return Respond(std::move(fallback));
  StopTimed();
  std::string to = std::move(fallback.forward_to);
  const auto timeout = 2 * limits_->heartbeat + std::chrono::seconds(10);
  limits_->forwarder->Forward(
      socket_.get_executor(), to, CopyRequest(), timeout,
      [self = shared_from_this(),
       fallback = std::move(fallback)](Result<ForwardResponse> answer) mutable {
        if (!answer && answer.error() == Errc::kUnavailable) {
          // Too many relays to that node in flight: a clear 503 (the
          // client retries), not the fallback's "queue gone".
          return self->Respond(api::ErrorResponse(api::FromErrc(
              Errc::kUnavailable,
              "Too many requests relayed to the node owning this queue; "
              "retry later")));
        }
        if (!answer) return self->Respond(std::move(fallback));
        const Request& req = self->parser_->get();
        const bool keep_alive = req.keep_alive();
        self->response_ = std::move(*answer);
        self->response_.version(req.version());
        self->response_.keep_alive(keep_alive);
        self->DoWrite(keep_alive);
      });
}

ForwardRequest HttpSession::CopyRequest() const {
  // The relay's own copy of the request (its fields outlive the arena).
  const Request& req = parser_->get();
  ForwardRequest copy(req.method(), req.target(), req.version());
  if (req.method() == bhttp::verb::unknown) {
    copy.method_string(req.method_string());
  }
  for (const auto& f : req) copy.insert(f.name_string(), f.value());
  copy.body() = req.body();
  return copy;
}

void HttpSession::FanOut(api::Response out) {
  StopTimed();
  std::vector<std::string> to = std::move(out.also_to);
  out.also_to.clear();
  // Every callback runs on this session's thread: a plain count.
  auto left = std::make_shared<std::size_t>(to.size());
  auto answer = std::make_shared<api::Response>(std::move(out));
  for (const std::string& address : to) {
    limits_->forwarder->Forward(
        socket_.get_executor(), address, CopyRequest(), std::chrono::seconds(5),
        [self = shared_from_this(), left, answer](Result<ForwardResponse>) {
          // What a peer answered does not change this node's answer.
          if (--*left == 0) self->Respond(std::move(*answer));
        });
  }
}

void HttpSession::HandlerFailed(std::exception_ptr e) {
  std::string what = "unknown exception";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    what = ex.what();
  } catch (...) {
  }
  if (limits_->on_handler_exception) {
    const Request& req = parser_->get();
    std::string_view target = req.target();
    // The path only: a query string could carry a client's parameters.
    const std::string_view path = target.substr(0, target.find('?'));
    limits_->on_handler_exception(what, req.method_string(), path);
  }
  WriteError(500, "Internal server error", "INTERNAL_SERVER_ERROR");
}

void HttpSession::WriteError(unsigned status, std::string_view msg,
                             std::string_view code) {
  response_ = Response{};
  response_.version(11);
  response_.result(status);
  response_.set(bhttp::field::server, "presenced");
  response_.set(bhttp::field::content_type, "application/json");
  response_.body() = boost::json::serialize(
      boost::json::object{{"result", "error"}, {"msg", msg}, {"code", code}});
  response_.keep_alive(false);
  response_.prepare_payload();
  // The rest of the request (e.g. the body past the limit) may still be on
  // its way: closing at once would reset the connection, and the client
  // could lose this answer.
  linger_ = true;
  DoWrite(false);
}

void HttpSession::LingeringClose() {
  // Stop sending, then read and drop what the client still sends, up to
  // kLingerBytes or kLingerTime, so that our answer reaches it before the
  // connection goes (a close with unread data would reset it).
  constexpr std::size_t kLingerBytes = 1 << 20;
  constexpr auto kLingerTime = std::chrono::seconds(2);
  beast::error_code ec;
  socket_.shutdown(boost::asio::ip::tcp::socket::shutdown_send, ec);
  linger_timer_.expires_after(kLingerTime);
  linger_timer_.async_wait([self = shared_from_this()](beast::error_code e) {
    if (!e) self->DoClose();
  });
  drain_ = std::make_unique<std::array<char, 4096>>();
  Drain(kLingerBytes);
}

void HttpSession::Drain(std::size_t left) {
  socket_.async_read_some(
      boost::asio::buffer(*drain_),
      [self = shared_from_this(), left](beast::error_code e, std::size_t n) {
        if (e || n >= left || self->closed_) {
          self->linger_timer_.cancel();
          return self->DoClose();
        }
        self->Drain(left - n);
      });
}

void HttpSession::DoWrite(bool keep_alive) {
  StartTimed(Timed::kWrite);
  bhttp::async_write(socket_, response_,
                     beast::bind_front_handler(&HttpSession::OnWrite,
                                               shared_from_this(), keep_alive));
}

void HttpSession::OnWrite(bool keep_alive, beast::error_code ec, std::size_t) {
  StopTimed();
  body_ = std::string();  // a parked poll holds no old answer
  if (ec) return DoClose();
  if (!keep_alive) return linger_ ? LingeringClose() : DoClose();
  DoRead();
}

void HttpSession::DoClose() {
  StopTimed();
  closed_ = true;
  beast::error_code ec;
  idle_timer_.cancel();  // its handler holds the session: let it go now
  socket_.shutdown(boost::asio::ip::tcp::socket::shutdown_send, ec);
  socket_.close(ec);
}

std::chrono::steady_clock::time_point HttpSession::CoarseNow() {
  // Every read and every write starts a timed state: the coarse clock (the
  // kernel's last tick, a few ms old, no clock read) is enough for
  // deadlines of seconds, and both ends of a duration use it.
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return std::chrono::steady_clock::time_point(
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          std::chrono::seconds(ts.tv_sec) +
          std::chrono::nanoseconds(ts.tv_nsec)));
}

std::chrono::steady_clock::duration HttpSession::Tick() const {
  return std::min<std::chrono::steady_clock::duration>(limits_->idle_timeout,
                                                       limits_->heartbeat);
}

void HttpSession::StartTimed(Timed what) {
  timed_ = what;
  timed_since_ = CoarseNow();
  // Armed already: for at most Tick() from a moment before now, so never
  // later than this state's deadline (now + a limit >= Tick()).
  if (!idle_timer_armed_ && !closed_) ArmIdleTimer(Tick());
}

void HttpSession::ArmIdleTimer(std::chrono::steady_clock::duration after) {
  idle_timer_armed_ = true;
  idle_timer_.expires_after(after);
  idle_timer_.async_wait(
      beast::bind_front_handler(&HttpSession::OnIdleTimer, shared_from_this()));
}

void HttpSession::OnIdleTimer(beast::error_code ec) {
  idle_timer_armed_ = false;
  if (ec || closed_ || timed_ == Timed::kNone) return;  // armed again later
  const auto limit =
      timed_ == Timed::kParked
          ? std::chrono::steady_clock::duration(limits_->heartbeat)
          : std::chrono::steady_clock::duration(limits_->idle_timeout);
  const auto ran = CoarseNow() - timed_since_;
  if (ran < limit) return ArmIdleTimer(std::min(limit - ran, Tick()));
  if (timed_ == Timed::kParked) {
    // Appends a heartbeat event to the queue, which wakes this session
    // (and its answer starts the next timed operation).
    timed_ = Timed::kNone;
    router_->hub()->Heartbeat(parked_poll_.queue_id);
    return;
  }
  if (timed_ == Timed::kWrite && metrics_ != nullptr) {
    // The client did not read its answer within the timeout: cut it off
    // rather than hold the buffer.
    metrics_->RecordSlowConsumer();
  }
  // Closing completes the operation in flight with an error, which ends
  // the session.
  DoClose();
}

}  // namespace presence::http
