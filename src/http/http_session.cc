#include "http/http_session.h"

#include <algorithm>
#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/serialize.hpp>
#include <cassert>
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

namespace {

// The rate-limit fields, then the answer's other fields, on a response
// Beast serializes (the order AppendResponseHead writes them in).
template <typename Message>
void SetFields(Message& r, const api::Response& out) {
  if (out.rate) {
    ForEachRateField(*out.rate,
                     [&r](std::string_view name, std::string_view value) {
                       r.set(name, value);
                     });
  }
  for (const auto& [name, value] : out.headers) r.set(name, value);
}

}  // namespace

struct HttpSession::Linger {
  explicit Linger(const boost::asio::any_io_executor& ex) : timer(ex) {}
  boost::asio::steady_timer timer;
  std::array<char, 4096> drain;
};

HttpSession::HttpSession(boost::asio::ip::tcp::socket socket,
                         const api::Router* router, const SessionLimits* limits,
                         std::shared_ptr<std::atomic<std::size_t>> open,
                         boost::asio::ip::address peer, AddressSlots::Slot slot)
    : socket_(std::move(socket)),
      reader_(socket_),
      peer_(CanonicalAddress(peer)),
      peer_text_(peer_.is_unspecified() ? std::string() : peer_.to_string()),
      slot_(std::move(slot)),
      deadlines_(SessionDeadlines::Of(socket_.get_executor())),
      router_(router),
      limits_(limits),
      open_(std::move(open)),
      metrics_(limits->metrics),
      answers_(AnswerQueue::Of(socket_.get_executor())) {
  answers_.Configure(limits->answer_coalesce_wait);
  answers_.ConfigureInterval(limits->answer_interval);
  deadline_.owner = this;
  open_->fetch_add(1, std::memory_order_relaxed);
}

HttpSession::~HttpSession() {
  deadlines_.Clear(deadline_);
  open_->fetch_sub(1, std::memory_order_relaxed);
  if (metrics_ != nullptr) metrics_->ConnectionClosed();
}

void HttpSession::Start() {
  if (metrics_ != nullptr) metrics_->ConnectionOpened();
  // A send that cannot complete now returns would_block (Respond) rather
  // than wait: this thread serves every connection of its own.
  beast::error_code ec;
  socket_.non_blocking(true, ec);
  // Run on the socket's executor from the very first operation; no
  // buffers until the client sends.
  boost::asio::dispatch(socket_.get_executor(),
                        beast::bind_front_handler(&HttpSession::WaitForRequest,
                                                  shared_from_this()));
}

void HttpSession::WaitForRequest() {
  if (closed_) return;
  waiting_ = true;
  StartTimed(Timed::kRead);
  if (input_pending_) return DoRead();
  ArmPeek();
}

void HttpSession::ArmPeek() {
  if (peek_armed_) return;
  peek_armed_ = true;
  // A one-byte peek rather than a readability wait: a wait re-arms the
  // socket in epoll (one epoll_ctl each time), a read that would block is
  // only queued.
  socket_.async_receive(
      boost::asio::buffer(&peek_byte_, 1),
      boost::asio::socket_base::message_peek,
      beast::bind_front_handler(&HttpSession::OnPeek, shared_from_this()));
}

void HttpSession::OnPeek(beast::error_code ec, std::size_t bytes) {
  peek_armed_ = false;
  if (ec == boost::asio::error::operation_aborted || closed_) return;
  const bool data = !ec && bytes > 0;
  if (parked_) {
    // Data means a pipelined request, which stays in the socket and is
    // read after the answer. Closed (end of stream) or reset: drop it; the
    // queue's weak reference then expires.
    if (data) {
      input_pending_ = true;
      // No operation is pending now (the deadline entry does not own the
      // session): held until it is answered.
      held_ = shared_from_this();
      return;
    }
    parked_ = false;
    return DoClose();
  }
  if (waiting_) {
    if (!data) return DoClose();  // the client left between requests
    return DoRead();
  }
  // A request is being answered: the bytes (or the end) are read after it,
  // as they would have been without the peek.
  input_pending_ = true;
}

void HttpSession::DoRead() {
  waiting_ = false;
  input_pending_ = false;
  if (req_ == nullptr) req_ = RequestBufferPool::Take();
  // The previous request is answered: its fields go, the arena is reused.
  req_->Begin(limits_->header_limit, limits_->body_limit);
  StartTimed(Timed::kRead);
  // The head first: a large body is read only once the head says the
  // answer may depend on it (issue #15).
  ReadRequest(/*whole=*/false, /*posted=*/req_->buffer.size() > 0);
}

void HttpSession::ReadRequest(bool whole, bool posted) {
  if (posted) {
    // Bytes of a pipelined request are buffered already: parsed in a
    // handler of its own, so that a client pipelining many requests does
    // not nest one answer inside the last.
    boost::asio::post(socket_.get_executor(),
                      [self = shared_from_this(), whole] {
                        beast::error_code ec;
                        if (self->ParseBuffered(whole, ec)) {
                          return self->ReadDone(whole, ec);
                        }
                        self->ReadRequest(whole, /*posted=*/false);
                      });
    return;
  }
  beast::flat_buffer& buffer = req_->buffer;
  // As Beast's reads size them (read_size_or_throw(buffer, 65536)).
  const std::size_t room = std::min<std::size_t>(
      std::max<std::size_t>(512, buffer.capacity() - buffer.size()),
      std::min<std::size_t>(65536, buffer.max_size() - buffer.size()));
  if (room == 0) {
    beast::error_code ec = bhttp::error::buffer_overflow;
    boost::asio::post(socket_.get_executor(),
                      beast::bind_front_handler(&HttpSession::ReadDone,
                                                shared_from_this(), whole, ec));
    return;
  }
  // Inside a request, the end of the stream may be all that is left, with
  // no readiness event to come for it (DrainedSocket::TryNextRead).
  if (req_->parser->got_some() || buffer.size() > 0) reader_.TryNextRead();
  reader_.async_read_some(buffer.prepare(room),
                          beast::bind_front_handler(&HttpSession::OnReadSome,
                                                    shared_from_this(), whole));
}

void HttpSession::OnReadSome(bool whole, beast::error_code ec,
                             std::size_t bytes) {
  if (ec == boost::asio::error::eof) {
    // A clean end before any byte of a request is end_of_stream (the
    // client left between requests); inside one, the parser says whether
    // the end completes it.
    if (!req_->parser->got_some()) {
      return ReadDone(whole, bhttp::error::end_of_stream);
    }
    ec = {};
    req_->parser->put_eof(ec);
    return ReadDone(whole, ec);
  }
  if (ec) return ReadDone(whole, ec);
  req_->buffer.commit(bytes);
  if (ParseBuffered(whole, ec)) return ReadDone(whole, ec);
  ReadRequest(whole, /*posted=*/false);
}

bool HttpSession::ParseBuffered(bool whole, beast::error_code& ec) {
  auto& parser = *req_->parser;
  beast::flat_buffer& buffer = req_->buffer;
  ec = {};
  for (;;) {
    if (whole ? parser.is_done() : parser.is_header_done()) return true;
    if (buffer.size() == 0) return false;
    const std::size_t used = parser.put(buffer.data(), ec);
    buffer.consume(used);
    if (ec == bhttp::error::need_more) {
      ec = {};
      return false;
    }
    if (ec) return true;
    if (used == 0) return false;
  }
}

void HttpSession::ReadDone(bool whole, beast::error_code ec) {
  if (whole) return OnRead(ec, 0);
  OnReadHeader(ec, 0);
}

const HttpSession::Request& HttpSession::CurrentRequest() {
  if (req_ == nullptr) {
    // Given back while parked: parse the saved bytes back.
    req_ = RequestBufferPool::Take();
    req_->Begin(limits_->header_limit, limits_->body_limit);
    [[maybe_unused]] const bool whole = ParseSaved(saved_request_, *req_);
    assert(whole);  // it parsed once, with the same limits
  }
  return req_->parser->get();
}

void HttpSession::ReleaseBuffers(bool save_request) {
  if (req_ == nullptr || req_->buffer.size() > 0) return;
  if (save_request) SaveRequest(req_->parser->get(), saved_request_);
  RequestBufferPool::Give(std::move(req_));
}

void HttpSession::OnReadHeader(beast::error_code ec, std::size_t) {
  auto& parser = *req_->parser;
  if (ec || parser.is_done()) return OnRead(ec, 0);
  const boost::optional<std::uint64_t> length = parser.content_length();
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
  parser.eager(true);
  if (ParseBuffered(/*whole=*/true, ec)) return OnRead(ec, 0);
  ReadRequest(/*whole=*/true, /*posted=*/false);
}

void HttpSession::RefuseBeforeBody(api::Response out) {
  StopTimed();
  const Request& req = req_->parser->get();
  response_ = std::make_unique<Response>();
  Response& r = *response_;
  r.version(req.version());
  r.result(out.status);
  r.set(bhttp::field::server, "presenced");
  if (!out.content_type.empty()) {
    r.set(bhttp::field::content_type, out.content_type);
  }
  SetFields(r, out);
  r.body() = std::move(out.body);
  // The body is still on its way (or not sent at all, if the client waits
  // for 100 Continue): this connection cannot carry another request.
  r.keep_alive(false);
  r.prepare_payload();
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
  if (metrics_ != nullptr && !req_->parser->get().body().empty()) {
    metrics_->RecordBodyRead(req_->parser->get().body().size());
  }
  HandleRequest(false);
}

void HttpSession::Unpark() {
  parked_ = false;
  StopTimed();  // the heartbeat is due no more
  // The caller (a handler) holds the session meanwhile.
  held_.reset();
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
  if (!out) {
    CurrentRequest();  // its buffers back, the request parsed again
    return HandleRequest(superseded, /*resumed=*/true);
  }
  if (out->parked) return Park();  // woken for nothing new: wait again
  Respond(std::move(*out));
}

api::Request HttpSession::ApiRequestHead(
    std::optional<std::string_view>& relay_mark) {
  const Request& req = CurrentRequest();
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
  const Request& req = CurrentRequest();
  version_ = req.version();
  keep_alive_ = req.keep_alive();
  head_method_ = req.method() == bhttp::verb::head;
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

  // The router's answer is the lambda's result object, which initializes
  // `answer` itself: no move (an answer has many members, and this is
  // every request's path), and Dispatch and Respond take it by reference.
  std::exception_ptr failure;
  api::Response answer = [&]() -> api::Response {
    try {
      return router_->Handle(in);
    } catch (...) {
      failure = std::current_exception();
      return api::Response();
    }
  }();
  if (failure) return HandlerFailed(std::move(failure));
  relay_marked_ = relay_mark.has_value();
  // Work read from a client and answered now competes with the answers
  // queued on this thread (AnswerQueue's pacing).
  if (!resumed && !answer.parked && !answer.deferred) answers_.NoteRequest();
  Dispatch(std::move(answer));
}

std::string_view HttpSession::ClientAddress(
    std::span<const std::string_view> forwarded_for) {
  const boost::asio::ip::address client =
      limits_->trusted_proxies->ClientAddress(peer_, forwarded_for);
  if (client == peer_) return peer_text_;
  forwarded_client_ = client.to_string();
  return forwarded_client_;
}

void HttpSession::Dispatch(api::Response&& out) {
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
  release_after_write_ = out.next_request_later;
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
  // A parked poll holds its socket, its queue and its deadline: the
  // buffers go back to the pool, the request is kept as bytes.
  ReleaseBuffers(/*save_request=*/true);
  // Notice a client that goes away while parked, so that it does not hold
  // its connection slot and its queue's waiter until the heartbeat (unless
  // it sent its next request already).
  if (!input_pending_) ArmPeek();
}

void HttpSession::Respond(api::Response&& out) {
  const std::optional<std::size_t> length =
      out.status != 204 && out.status != 304
          ? std::optional<std::size_t>(out.body.size())
          : std::nullopt;
  // The thread's wire buffer is kept up to this size; a larger answer goes
  // through Beast's serializer below, its body moved rather than copied.
  constexpr std::size_t kWireKept = 64 * 1024;
  if ((out.headers.empty() || HeadWritesFields(out.headers)) &&
      out.body.size() <= kWireKept) {
    // The common answer (every woken long poll, every API answer with its
    // rate-limit fields): its head formatted directly, no fields container
    // and no serializer, in front of a copy of the body in this thread's
    // wire buffer, so that the answer is one contiguous send (send(2): no
    // msghdr and iovec array for the kernel to copy in and walk, issue #17)
    // and neither this session nor a malloc holds its head.
    const bool keep_alive = keep_alive_;
    thread_local std::string wire;
    wire.clear();
    AppendResponseHead(wire, version_, out.status, out.content_type, keep_alive,
                       length, out.headers, out.rate ? &*out.rate : nullptr);
    if (!head_method_) wire.append(out.body);
    // An answer usually fits the socket's send buffer: sent now, it needs
    // no asynchronous operation (none to allocate, no completion to post
    // and run; issue #17, many answers at once).
    beast::error_code ec;
    const std::size_t total = wire.size();
    const std::size_t sent = socket_.send(boost::asio::buffer(wire), 0, ec);
    // The buffer stays this thread's for the next answer unless a large
    // head grew it.
    if (!ec && sent == total) {
      if (wire.capacity() > kWireKept) wire = std::string();
      return OnWrite(keep_alive, ec, sent);
    }
    if (ec && ec != boost::asio::error::would_block &&
        ec != boost::asio::error::try_again) {
      return OnWrite(keep_alive, ec, 0);
    }
    // What did not fit goes asynchronously, from this session's own copy.
    const std::size_t done = ec ? 0 : sent;
    body_.assign(wire, done);
    if (wire.capacity() > kWireKept) wire = std::string();
    StartTimed(Timed::kWrite);
    boost::asio::async_write(
        socket_, boost::asio::buffer(body_),
        beast::bind_front_handler(&HttpSession::OnWrite, shared_from_this(),
                                  keep_alive));
    return;
  }
  response_ = std::make_unique<Response>();
  Response& r = *response_;
  r.version(version_);
  r.result(out.status);
  r.set(bhttp::field::server, "presenced");
  if (!out.content_type.empty()) {
    r.set(bhttp::field::content_type, out.content_type);
  }
  SetFields(r, out);
  const std::size_t size = out.body.size();
  if (!head_method_) r.body() = std::move(out.body);
  const bool keep_alive = keep_alive_;
  r.keep_alive(keep_alive);
  if (length) r.content_length(size);
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
        const bool keep_alive = self->keep_alive_;
        self->response_ = std::make_unique<Response>(std::move(*answer));
        self->response_->version(self->version_);
        self->response_->keep_alive(keep_alive);
        self->DoWrite(keep_alive);
      });
}

ForwardRequest HttpSession::CopyRequest() const {
  // The relay's own copy of the request (its fields outlive the arena).
  const Request& req = req_->parser->get();
  ForwardRequest copy(req.method(), req.target(), req.version());
  if (req.method() == bhttp::verb::unknown) {
    copy.method_string(req.method_string());
  }
  constexpr std::size_t kMaxForwardedFields = 8;  // as ApiRequestHead reads
  std::array<std::string_view, kMaxForwardedFields> forwarded_for;
  std::size_t forwarded_fields = 0;
  for (const auto& f : req) {
    if (f.name() == bhttp::field::unknown &&
        beast::iequals(f.name_string(), "X-Forwarded-For")) {
      if (forwarded_fields < kMaxForwardedFields) {
        forwarded_for[forwarded_fields++] = f.value();
      }
      continue;
    }
    copy.insert(f.name_string(), f.value());
  }
  // The client as this node found it, instead of the client's own fields:
  // the node relayed to may trust this one as a proxy (--trusted-proxy) and
  // would otherwise take an address the client wrote for the truth.
  boost::asio::ip::address client = peer_;
  if (limits_->trusted_proxies != nullptr) {
    client = limits_->trusted_proxies->ClientAddress(
        peer_, std::span<const std::string_view>(forwarded_for.data(),
                                                 forwarded_fields));
  }
  if (!client.is_unspecified()) {
    copy.set("X-Forwarded-For", client.to_string());
  }
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
    const Request& req = CurrentRequest();
    std::string_view target = req.target();
    // The path only: a query string could carry a client's parameters.
    const std::string_view path = target.substr(0, target.find('?'));
    limits_->on_handler_exception(what, req.method_string(), path);
  }
  WriteError(500, "Internal server error", "INTERNAL_SERVER_ERROR");
}

void HttpSession::WriteError(unsigned status, std::string_view msg,
                             std::string_view code) {
  response_ = std::make_unique<Response>();
  Response& r = *response_;
  r.version(11);
  r.result(status);
  r.set(bhttp::field::server, "presenced");
  r.set(bhttp::field::content_type, "application/json");
  r.body() = boost::json::serialize(
      boost::json::object{{"result", "error"}, {"msg", msg}, {"code", code}});
  r.keep_alive(false);
  r.prepare_payload();
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
  lingering_ = std::make_unique<Linger>(socket_.get_executor());
  lingering_->timer.expires_after(kLingerTime);
  lingering_->timer.async_wait(
      [self = shared_from_this()](beast::error_code e) {
        if (!e) self->DoClose();
      });
  Drain(kLingerBytes);
}

void HttpSession::Drain(std::size_t left) {
  socket_.async_read_some(
      boost::asio::buffer(lingering_->drain),
      [self = shared_from_this(), left](beast::error_code e, std::size_t n) {
        if (e || n >= left || self->closed_) {
          self->lingering_->timer.cancel();
          return self->DoClose();
        }
        self->Drain(left - n);
      });
}

void HttpSession::DoWrite(bool keep_alive) {
  StartTimed(Timed::kWrite);
  bhttp::async_write(socket_, *response_,
                     beast::bind_front_handler(&HttpSession::OnWrite,
                                               shared_from_this(), keep_alive));
}

void HttpSession::OnWrite(bool keep_alive, beast::error_code ec, std::size_t) {
  StopTimed();
  body_ = std::string();  // a parked poll holds no old answer
  response_.reset();
  if (ec) return DoClose();
  if (!keep_alive) return linger_ ? LingeringClose() : DoClose();
  // The client's next request: read at once on a busy connection (its
  // buffers kept); waited for with the peek, holding no buffers, after an
  // answer that said it comes later or while the peek is pending already
  // (the answer to a parked poll).
  if (peek_armed_ || std::exchange(release_after_write_, false)) {
    ReleaseBuffers(/*save_request=*/false);
  }
  if (req_ != nullptr) return DoRead();
  WaitForRequest();
}

void HttpSession::DoClose() {
  StopTimed();
  closed_ = true;
  held_.reset();  // the caller (a handler) holds the session meanwhile
  beast::error_code ec;
  socket_.shutdown(boost::asio::ip::tcp::socket::shutdown_send, ec);
  socket_.close(ec);
}

std::chrono::steady_clock::duration HttpSession::Limit(Timed what) const {
  return what == Timed::kParked
             ? std::chrono::steady_clock::duration(limits_->heartbeat)
             : std::chrono::steady_clock::duration(limits_->idle_timeout);
}

void HttpSession::StartTimed(Timed what) {
  timed_ = what;
  if (closed_) return;
  timed_since_ = deadlines_.Set(deadline_, Limit(what), socket_.get_executor());
}

void HttpSession::StopTimed() {
  if (timed_ == Timed::kNone) return;
  timed_ = Timed::kNone;
  deadlines_.Clear(deadline_);
}

void HttpSession::DeadlinePassed() {
  if (closed_ || timed_ == Timed::kNone) return;
  // Set again since it was found due (another thread's timer, a strand):
  // the new deadline stands.
  if (std::chrono::steady_clock::now() - timed_since_ < Limit(timed_)) return;
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
