// SendNow: the load generators' write of a request (bench/loadgen.cc,
// bench/million.cc) straight from the caller's stack, one send() on a
// non-blocking socket, so that a request costs no Asio write operation and
// no posted completion (issue #17: the generators' CPU per request).
//
// Thread safety: as the socket (its executor's thread only).
#ifndef PRESENCE_BENCH_SEND_NOW_H_
#define PRESENCE_BENCH_SEND_NOW_H_

#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstddef>
#include <string_view>

namespace presence::bench {

enum class SendNowResult {
  kSent,        // all of it
  kWouldBlock,  // the socket's buffer is full: `sent` bytes went, wait
  kFailed,      // `ec` says why
};

// Writes `data` with as many send() calls as the socket takes at once
// (`socket` must be non_blocking(true)); `sent` counts the bytes written.
inline SendNowResult SendNow(boost::asio::ip::tcp::socket& socket,
                             std::string_view data, std::size_t& sent,
                             boost::system::error_code& ec) {
  sent = 0;
  while (sent < data.size()) {
    sent += socket.write_some(
        boost::asio::buffer(data.data() + sent, data.size() - sent), ec);
    if (ec == boost::asio::error::would_block ||
        ec == boost::asio::error::try_again) {
      return SendNowResult::kWouldBlock;
    }
    if (ec) return SendNowResult::kFailed;
  }
  return SendNowResult::kSent;
}

}  // namespace presence::bench

#endif  // PRESENCE_BENCH_SEND_NOW_H_
