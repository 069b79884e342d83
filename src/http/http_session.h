// HttpSession: one keep-alive HTTP/1.1 connection.
//
// Reads a request, hands it to the api::Router, writes the answer, repeats.
// Exactly one write is in flight at a time (requests are answered in order,
// one at a time). A read or a write that stalls past the idle timeout closes
// the connection, so slow clients cannot hold it forever. The timeout costs
// no timer operation per request and no timer per session: the session's
// one deadline (a read's or a write's idle timeout, a parked poll's
// heartbeat) is an entry in its thread's SessionDeadlines (FIFO lanes per
// duration behind one Asio timer); when it passes, the session closes the
// connection or sends the heartbeat. Malformed requests
// get a JSON 400 (431 for oversized headers, 413 for oversized bodies), what
// the client still sends is drained for a moment, and the connection is
// closed. An exception thrown while the API handles a request is caught
// here, per request: logged, answered 500, the connection closed.
//
// Request buffers (issue #17): the read buffer, the header arena and the
// parser are lent by the thread's RequestBufferPool while a request is
// read and answered. A connection that waits holds none: a new one, one
// whose last answer said the next request comes later
// (api::Response::next_request_later, /register), and a parked poll wait
// with a one-byte peek, and take buffers when the peek sees bytes. A busy
// keep-alive connection keeps its buffers and reads its next request at
// once, as a connection that pings does.
//
// Long polls: when GET /events has nothing to return, the API parks this
// session on the queue as its QueueWaiter and the session waits without a
// thread: no read, no write, its deadline for the heartbeat, and the
// peek, which notices a client leaving. It keeps what the API said
// answering needs (api::ParkedPoll: the authenticated caller, the queue,
// last_event_id, the answer's tail), and the request as bytes
// (SaveRequest), for the rare wake-up that must handle it again in full;
// its buffers go back to the pool. Woken, it answers and leaves the peek
// pending: it is the wait for the client's next poll. Wake() (from any
// thread) queues the session on its thread's AnswerQueue, which in its
// turn (behind the requests read meanwhile: pings first) answers through
// Router::Resume: one
// poll of the queue, no routing, parsing or authentication; where Resume
// declines (the caller's directory changed, the queue is gone) the same
// request is handled again. A poll whose events are already waiting when
// it comes waits its turn in the same way (api::Response::ready).
//
// Thread safety: all handlers run on the socket's executor, which runs one
// handler at a time (a strand, or an io_context run by one thread);
// Wake/Supersede only post to it (or queue the session on the AnswerQueue,
// which runs it there). The session lives while an
// operation is pending (shared_ptr); a parked session is kept alive by its
// peek, or by held_ once the peek has seen its next request (its deadline
// entry does not own it).
#ifndef PRESENCE_HTTP_HTTP_SESSION_H_
#define PRESENCE_HTTP_HTTP_SESSION_H_

#include <array>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "api/auth_cache.h"
#include "api/router.h"
#include "core/event_queue.h"
#include "http/address_slots.h"
#include "http/answer_queue.h"
#include "http/deadline_list.h"
#include "http/drained_socket.h"
#include "http/forwarder.h"
#include "http/relay_auth.h"
#include "http/request_arena.h"
#include "http/request_buffers.h"
#include "http/trusted_proxies.h"

namespace presence::http {

struct SessionLimits {
  std::uint32_t header_limit = 16 * 1024;
  std::uint64_t body_limit = 1024 * 1024;
  std::chrono::seconds idle_timeout{60};
  // A request whose body is longer than this (or of unknown length, i.e.
  // chunked) is first judged from its head (api::Router::Precheck): a
  // caller whose credentials fail gets its 401 without the body being
  // read or parsed, and the connection is closed.
  std::uint64_t precheck_body_bytes = 8 * 1024;
  std::chrono::milliseconds heartbeat{45'000};
  std::size_t max_connections = 10'000;
  // Connections one TCP peer address may hold at once (a peer inside
  // trusted_proxies is not limited per address).
  std::size_t max_connections_per_address = 2000;
  // --answer-coalesce-ms: the longest the answers to woken long polls may
  // be held back, under a backlog, to leave the thread to requests and
  // carry more events each (AnswerQueue::Configure). 0: never.
  std::chrono::microseconds answer_coalesce_wait{
      AnswerQueue::kDefaultCoalesceWait};
  // --answer-interval-ms: under a backlog, a connection's long-poll answers
  // follow each other at most this often (AnswerQueue::ConfigureInterval).
  // 0: never held.
  std::chrono::microseconds answer_interval{AnswerQueue::kDefaultInterval};
  api::Metrics* metrics = nullptr;  // may be null
  // --trusted-proxy: peers whose X-Forwarded-For names the client. Null or
  // empty: the client is always the TCP peer.
  const TrustedProxies* trusted_proxies = nullptr;
  // Where the listener logs notable events (accept failures); may be empty.
  std::function<void(
      std::string_view level, std::string_view event,
      const std::vector<std::pair<std::string, std::string>>& fields)>
      log;
  // Scale-out: signs the requests this node relays and verifies the relays
  // it receives. Null on a single node, which neither relays nor trusts a
  // relay.
  const RelayAuth* relay_auth = nullptr;
  // Scale-out: relays requests to the node owning their queue over kept-alive
  // connections, bounded. Null on a single node.
  Forwarder* forwarder = nullptr;
  // Told about an exception that escaped the API layer while handling a
  // request (its what(), the method and the path); the session answers
  // 500 and closes that connection. May be empty.
  std::function<void(std::string_view what, std::string_view method,
                     std::string_view path)>
      on_handler_exception;
};

class HttpSession : public QueueWaiter,
                    public AnswerQueue::Item,
                    public SessionDeadlines::Owner,
                    public std::enable_shared_from_this<HttpSession> {
 public:
  // `open` counts live sessions (for the server's connection limit).
  // `peer` is the TCP peer's address (unspecified if unknown); `slot` its
  // place in the per-address count, held while the session lives.
  HttpSession(boost::asio::ip::tcp::socket socket, const api::Router* router,
              const SessionLimits* limits,
              std::shared_ptr<std::atomic<std::size_t>> open,
              boost::asio::ip::address peer = {}, AddressSlots::Slot slot = {});

  ~HttpSession() override;

  void Start();

  // QueueWaiter.
  void Wake() override;
  void Supersede() override;

  // AnswerQueue::Item: the parked poll's turn to be answered.
  void AnswerNow() override;
  // AnswerQueue::Item and SessionDeadlines::Owner.
  boost::asio::any_io_executor executor() override {
    return socket_.get_executor();
  }
  // SessionDeadlines::Owner: the idle timeout or the heartbeat.
  void DeadlinePassed() override;
  std::shared_ptr<SessionDeadlines::Owner> LockOwner() override {
    return weak_from_this().lock();
  }

 private:
  using Request = RequestBuffers::Request;
  using Response =
      boost::beast::http::response<boost::beast::http::string_body>;

  // Waits for the client's next request holding no request buffers (the
  // peek), under the idle timeout.
  void WaitForRequest();
  // Reads a request, with buffers from the pool unless this session holds
  // some (and the bytes they hold).
  void DoRead();
  // The peek: bytes (or the end of the stream) to read.
  void ArmPeek();
  void OnPeek(boost::beast::error_code ec, std::size_t bytes);
  // The request being handled (parsed back from saved_request_ if its
  // buffers were given back while parked).
  const Request& CurrentRequest();
  // Gives the buffers back to the pool, the request kept as bytes, where
  // they hold no unread bytes.
  void ReleaseBuffers(bool save_request);
  // The head is read: answers from it alone if Router::Precheck can (a
  // large body, credentials that fail), else reads the body.
  void OnReadHeader(boost::beast::error_code ec, std::size_t bytes);
  void OnRead(boost::beast::error_code ec, std::size_t bytes);
  // Beast's async_read_header (whole: false) and async_read (whole: true)
  // over req_'s buffer and parser, without their composed operations
  // (issue #17, cold pings): the parser is fed what is buffered, and
  // reader_ reads more until the head (or the whole request) is parsed or
  // an error says why not; then OnReadHeader (or OnRead) runs with the
  // error Beast's reads give (end_of_stream for a clean end before a
  // request). Runs the parse here; `posted`: bytes were buffered before
  // the call (a pipelined request), so the completion is posted, not run
  // inside the caller, as Beast's are.
  void ReadRequest(bool whole, bool posted);
  void OnReadSome(bool whole, boost::beast::error_code ec, std::size_t bytes);
  // Parses what is buffered; true if reading stopped (done or failed; the
  // completion `ec` is set), false if more bytes are needed.
  bool ParseBuffered(bool whole, boost::beast::error_code& ec);
  void ReadDone(bool whole, boost::beast::error_code ec);
  // The request's head as the API sees it; `relay_mark`: the value of the
  // relay header, if it carries one.
  api::Request ApiRequestHead(std::optional<std::string_view>& relay_mark);
  // Writes `out` for a request whose body was not read, then closes the
  // connection (draining, without parsing, what the client still sends).
  void RefuseBeforeBody(api::Response out);
  // Hands the parsed request to the router; writes the answer or parks.
  void HandleRequest(bool force_nonblocking, bool resumed = false);
  // Acts on the router's answer: writes it, parks, relays or defers. Takes
  // `out` by reference (no move of the whole answer per request); it may
  // move from it.
  void Dispatch(api::Response&& out);
  // Waits, without a thread, for a deferred answer (api::Response::deferred)
  // and dispatches it on this session's executor.
  void Defer(std::function<void(api::Continue)> deferred);
  // A parked poll woken by its queue (or superseded): answers it through
  // Router::Resume, or handles the request again where that declines.
  void Resume(bool superseded);
  // Waits for the queue with parked_poll_ set: the heartbeat deadline, and a
  // readability wait that notices a client that leaves.
  void Park();
  // Queues this session's answer on its thread's AnswerQueue, once.
  void AnswerInTurn();
  // Writes the router's answer (moves its body out; by reference, as
  // Dispatch).
  void Respond(api::Response&& out);
  // Relays the request to the node in out.forward_to; answers `out` itself
  // (the router's fallback) if that node cannot be reached.
  void Relay(api::Response out);
  // Sends the request, signed as a relay, to every address in out.also_to
  // as well, then answers `out` once they have all answered or failed.
  void FanOut(api::Response out);
  // The request being handled, as the forwarder sends it on.
  ForwardRequest CopyRequest() const;
  // Leaves the parked state: stops the heartbeat (the peek stays: it
  // waits for the next request).
  void Unpark();
  // Answers a request that cannot be read (400, 413, 431) and closes.
  void WriteError(unsigned status, std::string_view msg,
                  std::string_view code = "BAD_REQUEST");
  // An exception escaped the router (a bug, or a library throwing where it
  // should not): reported through SessionLimits::on_handler_exception,
  // answered 500, and this connection closed, since what the request had
  // done is unknown. The thread and every other connection carry on.
  void HandlerFailed(std::exception_ptr e);
  // Half-closes and drains what the client still sends, then closes.
  void LingeringClose();
  void Drain(std::size_t left);
  void DoWrite(bool keep_alive);
  void OnWrite(bool keep_alive, boost::beast::error_code ec, std::size_t bytes);
  void DoClose();
  // What the session's deadline watches: the kind of state and when it
  // began. Reads and writes have the idle timeout, a parked poll the
  // heartbeat.
  enum class Timed : std::uint8_t { kNone, kRead, kWrite, kParked };
  // The deadline of the state that starts now.
  void StartTimed(Timed what);
  std::chrono::steady_clock::duration Limit(Timed what) const;
  // No operation is timed (relayed, deferred, closing).
  void StopTimed();
  // The client's address for this request: the peer's, or where the peer
  // is a trusted proxy the one its X-Forwarded-For fields name.
  std::string_view ClientAddress(
      std::span<const std::string_view> forwarded_for);

  boost::asio::ip::tcp::socket socket_;
  // Reads requests from socket_ without the reactor's speculative recv
  // after a read that emptied it (one recv per request).
  DrainedSocket reader_;
  const boost::asio::ip::address peer_;
  const std::string peer_text_;   // peer_ as text ("" if unknown)
  std::string forwarded_client_;  // ClientAddress's answer from a proxy
  AddressSlots::Slot slot_;
  // The state the deadline watches and since when; the deadline is set
  // only while one is timed.
  Timed timed_ = Timed::kNone;
  std::chrono::steady_clock::time_point timed_since_;
  SessionDeadlines& deadlines_;  // this thread's
  SessionDeadlines::Slot deadline_;
  bool closed_ = false;
  // Lent by the pool while a request is read and answered (see above).
  std::unique_ptr<RequestBuffers> req_;
  // A parked poll's request as bytes (SaveRequest); its capacity is kept
  // for the next park.
  std::string saved_request_;
  // What answering needs of the request being handled, read once.
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool head_method_ = false;
  // Answers with extra headers, relays, errors (made when needed).
  std::unique_ptr<Response> response_;
  // The rest of an answer the socket did not take at once (Respond).
  std::string body_;
  // LingeringClose's bound and drain buffer (made when needed).
  struct Linger;
  std::unique_ptr<Linger> lingering_;
  bool parked_ = false;
  bool peek_armed_ = false;  // the peek is pending
  // No request is read or handled: a peek that sees bytes starts reading.
  bool waiting_ = false;
  // The peek saw bytes or the end while a request was handled: read after
  // its answer.
  bool input_pending_ = false;
  // The last answer said the next request comes later.
  bool release_after_write_ = false;
  // Set while parked with the next request in the socket already (the peek
  // is not pending then, and nothing else would keep the session).
  std::shared_ptr<HttpSession> held_;
  // The request being handled carried X-Presenced-Forwarded (verified or
  // not): its answer is never fanned out (Response::also_to).
  bool relay_marked_ = false;
  bool linger_ = false;          // close with LingeringClose (after WriteError)
  char peek_byte_ = 0;           // the peek's buffer (the byte stays unread)
  api::ParkedPoll parked_poll_;  // the last poll that parked
  api::ConnectionAuth connection_auth_;  // its last successful authentication
  const api::Router* const router_;
  const SessionLimits* const limits_;
  const std::shared_ptr<std::atomic<std::size_t>> open_;
  // Copied from limits_: the destructor may run after the server (and its
  // limits) are gone, when the io_context drops pending operations.
  api::Metrics* const metrics_;
  // This thread's long-poll answers (AnswerQueue::Of our executor).
  AnswerQueue& answers_;
  // Queued there and not run yet (set from any thread by Wake).
  std::atomic<bool> answer_queued_{false};
};

}  // namespace presence::http

#endif  // PRESENCE_HTTP_HTTP_SESSION_H_
