// DrainedSocket: reads from a TCP socket without the reactor's speculative
// recv after a read that drained it (issue #17, cold pings).
//
// Asio's epoll reactor, asked for a read on a socket that has none queued,
// first tries the recv at once; only when that says EAGAIN does it wait for
// epoll. On a keep-alive connection that try comes right after the answer
// is sent, before the client can have sent its next request: one recv per
// request that returns EAGAIN (presenced made 1.7-1.9 recv per request,
// nginx one). Boost 1.81's reactor skips the try only after a read saw the
// end of the stream (its per-descriptor `try_speculative_`), and its one
// read without a try (async_wait) re-arms the socket with an epoll_ctl.
//
// A recv on a stream socket that returns fewer bytes than it was given room
// for has emptied the socket's receive queue (nginx reads `ready = 0` from
// the same fact). When that read completed straight from the reactor's
// epoll event, nothing can have arrived unseen since: the reactor marks the
// socket for a try again on its next event, and none ran in between. So
// then this stream clears the socket's `try_speculative_` flag for reads,
// and the next read is queued at once and made when epoll says the bytes
// are there: one recv per request. A read that completed otherwise
// (another read was queued before it) changes nothing.
//
// The try itself is made here, in the call, rather than by the reactor
// (issue #17, long polls): a try that finds bytes and drains the socket
// is then exact as well, since nothing runs between that recv and the
// flag, and the reactor's next event for the socket sets the flag again.
// That is how a connection reads its next request after a peek saw it
// (a re-poll, a cold ping): the read drains the socket, and the wait that
// follows (the peek of a poll that parks, the wait for the next request)
// is queued without the recv that would say EAGAIN. A try that finds
// nothing marks the socket too (the read is then queued without the
// reactor's second try). The completion is posted, never run inside the
// call. Only on a socket in non-blocking mode (HttpSession sets it);
// otherwise the reactor makes the try, as before.
//
// Except for the end of the stream: a client that sends its last bytes and
// then shuts down its side can have both arrive before epoll reports the
// socket, and one event then stands for both. The read that drains the
// bytes leaves the end behind, and no later event reports it, so a read
// queued without a try would wait for ever (in HttpSession, until the
// read timeout, for a request cut short that gets 400 at once otherwise).
// A read the caller knows must find more (the rest of a request it has
// begun) is therefore tried at once whatever the flag says (TryNextRead):
// one recv more, that says EAGAIN, for a request that arrives in pieces.
// A connection waiting between requests keeps the flag: a client that
// half-closes after a whole request has its answer, and the connection
// then waits as an idle one does.
//
// Only where it is exact: Linux's epoll reactor (not io_uring), and an
// io_context whose concurrency hint is 1 (one thread runs it, as
// presenced's I/O threads do), so that no other thread's epoll_wait can
// mark the socket between the read and the flag. Elsewhere it is a plain
// pass-through to the socket. It reaches two private members of Asio's
// descriptor state; the build fails, rather than misbehaves, on a Boost
// whose reactor no longer has them.
//
// Thread safety: used on the socket's executor only (one handler at a
// time), like the socket.
#ifndef PRESENCE_HTTP_DRAINED_SOCKET_H_
#define PRESENCE_HTTP_DRAINED_SOCKET_H_

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/bind_handler.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <utility>

namespace presence::http {

// The reactor's state of one socket's reads, where it can be reached (see
// above); each call is a no-op where it cannot.
class ReadSpeculation {
 public:
  // Whether this build and `socket`'s io_context allow it at all.
  static bool Supported(boost::asio::ip::tcp::socket& socket);
  // True if no read is queued on the socket.
  static bool NoReadQueued(boost::asio::ip::tcp::socket& socket);
  // The next read is queued without a try, until epoll reports the socket.
  static void MarkDrained(boost::asio::ip::tcp::socket& socket);
  // Whether the next read would try a recv at once (for tests).
  static bool WouldTry(boost::asio::ip::tcp::socket& socket);
};

// An AsyncReadStream over a socket it does not own, for Beast's reads.
class DrainedSocket {
 public:
  using executor_type = boost::asio::ip::tcp::socket::executor_type;

  explicit DrainedSocket(boost::asio::ip::tcp::socket& socket)
      : socket_(socket), enabled_(ReadSpeculation::Supported(socket)) {}

  executor_type get_executor() { return socket_.get_executor(); }

  // The next read tries a recv at once even if the last one drained the
  // socket: the caller is inside a message, whose end may be all that is
  // left (see above).
  void TryNextRead() { try_next_ = true; }

  template <typename MutableBufferSequence, typename Handler>
  void async_read_some(const MutableBufferSequence& buffers,
                       Handler&& handler) {
    if (!enabled_) {
      socket_.async_read_some(buffers, std::forward<Handler>(handler));
      return;
    }
    const std::size_t room = boost::asio::buffer_size(buffers);
    const bool alone = ReadSpeculation::NoReadQueued(socket_);
    const bool try_now = std::exchange(try_next_, false);
    if (alone && room > 0 && socket_.non_blocking() &&
        (try_now || ReadSpeculation::WouldTry(socket_))) {
      boost::system::error_code ec;
      const std::size_t n = socket_.receive(buffers, 0, ec);
      if (ec != boost::asio::error::would_block &&
          ec != boost::asio::error::try_again) {
        if (!ec && n > 0 && n < room) ReadSpeculation::MarkDrained(socket_);
        direct_ = false;
        auto ex = boost::asio::get_associated_executor(handler, get_executor());
        boost::asio::post(ex, boost::beast::bind_front_handler(
                                  std::forward<Handler>(handler), ec, n));
        return;
      }
      // Empty now: queued without the reactor's own try.
      ReadSpeculation::MarkDrained(socket_);
    }
    socket_.async_read_some(
        buffers,
        [this, room, h = std::forward<Handler>(handler)](
            const boost::system::error_code& ec, std::size_t n) mutable {
          if (direct_ && !ec && n > 0 && n < room) {
            ReadSpeculation::MarkDrained(socket_);
          }
          std::move(h)(ec, n);
        });
    // Set before the completion can run (it is queued or posted, never
    // run inside the call).
    direct_ = alone && !ReadSpeculation::NoReadQueued(socket_);
  }

 private:
  boost::asio::ip::tcp::socket& socket_;
  const bool enabled_;
  // The read in flight completes straight from the reactor's event: it
  // was queued (its try, if any, found nothing), alone. One read at a time.
  bool direct_ = false;
  // TryNextRead was called since the last read.
  bool try_next_ = false;
};

}  // namespace presence::http

#endif  // PRESENCE_HTTP_DRAINED_SOCKET_H_
