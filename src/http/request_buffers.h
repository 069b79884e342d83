// RequestBuffers: what reading and handling one HTTP request takes (the read
// buffer, the header arena, the parser and the request it fills), lent to a
// connection by its thread's pool only while it reads and answers a
// request (issue #17, many parked polls).
//
// A connection that waits (a parked long poll, or an idle keep-alive
// connection whose client is not expected to send soon) needs none of it:
// its socket, its queue and its deadline are enough. Kept in every session,
// these buffers were about 1.8 KB of each parked poll's memory (the
// session's parser, a 1 KB arena block, a read buffer of half a KB); lent,
// they cost what the requests in flight on the thread cost. Returned
// buffers are kept, up to kKeep per thread, so lending them is a pointer
// move, not a malloc (freeing and allocating them per request kept the
// single malloc arena busy coalescing blocks).
//
// Thread safety: the pool is per thread (thread_local) and needs no lock;
// buffers may be taken on one thread and given back on another (they are
// plain memory). A RequestBuffers is used by one session at a time.
#ifndef PRESENCE_HTTP_REQUEST_BUFFERS_H_
#define PRESENCE_HTTP_REQUEST_BUFFERS_H_

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "http/request_arena.h"

namespace presence::http {

struct RequestBuffers {
  using Parser =
      boost::beast::http::request_parser<boost::beast::http::string_body,
                                         ArenaAllocator<char>>;
  using Request = Parser::value_type;

  // Bytes read from the socket and not parsed yet (a pipelined request).
  boost::beast::flat_buffer buffer;
  // The request's fields live here (declared first: it outlives the parser).
  RequestArena arena;
  std::optional<Parser> parser;

  // Starts a new request: the previous one's parser and fields go, the
  // arena's first block and the buffer (with any bytes it holds) stay.
  void Begin(std::uint32_t header_limit, std::uint64_t body_limit);
};

class RequestBufferPool {
 public:
  // Buffers kept per thread for the next request.
  static constexpr std::size_t kKeep = 64;
  // A read buffer that grew past this (a large body) is given back to
  // malloc rather than kept.
  static constexpr std::size_t kKeepBufferBytes = 16 * 1024;

  // Buffers for one request, from this thread's pool (or new). The parser
  // is empty: call Begin.
  static std::unique_ptr<RequestBuffers> Take();
  // Gives `b` back to this thread's pool (or frees it once kKeep are
  // kept). Its buffer must hold no unparsed bytes. Null is ignored.
  static void Give(std::unique_ptr<RequestBuffers> b);
  // How many this thread keeps now (tests).
  static std::size_t Kept();
};

// A parsed request as bytes that parse to the same request again: the
// request line, every field but Content-Length and Transfer-Encoding, a
// Content-Length for the body as it was decoded, and the body. A parked
// long poll keeps this instead of its buffers; the rare wake-up that must
// handle the request again in full parses it back (ParseSaved).
void SaveRequest(const RequestBuffers::Request& req, std::string& out);
// Parses `saved` (from SaveRequest) into `b` (after b.Begin). False if it
// does not parse to a whole request.
bool ParseSaved(std::string_view saved, RequestBuffers& b);

}  // namespace presence::http

#endif  // PRESENCE_HTTP_REQUEST_BUFFERS_H_
