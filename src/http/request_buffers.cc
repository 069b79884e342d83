#include "http/request_buffers.h"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>
#include <tuple>
#include <utility>
#include <vector>

namespace presence::http {

namespace bhttp = boost::beast::http;

void RequestBuffers::Begin(std::uint32_t header_limit,
                           std::uint64_t body_limit) {
  // The parser's fields live in the arena: the parser goes first.
  parser.reset();
  arena.Reset();
  parser.emplace(std::piecewise_construct, std::make_tuple(),
                 std::make_tuple(ArenaAllocator<char>(&arena)));
  parser->header_limit(header_limit);
  parser->body_limit(body_limit);
}

namespace {

struct Pool {
  std::vector<std::unique_ptr<RequestBuffers>> kept;
};

Pool& ThisThreadsPool() {
  thread_local Pool pool;
  return pool;
}

}  // namespace

std::unique_ptr<RequestBuffers> RequestBufferPool::Take() {
  Pool& pool = ThisThreadsPool();
  if (pool.kept.empty()) return std::make_unique<RequestBuffers>();
  std::unique_ptr<RequestBuffers> b = std::move(pool.kept.back());
  pool.kept.pop_back();
  return b;
}

void RequestBufferPool::Give(std::unique_ptr<RequestBuffers> b) {
  if (b == nullptr) return;
  Pool& pool = ThisThreadsPool();
  if (pool.kept.size() >= kKeep) return;  // freed
  // Nothing of the last request is kept: its fields (in the arena) go with
  // the parser, and the arena keeps one block.
  b->parser.reset();
  b->arena.Reset();
  b->buffer.clear();
  if (b->buffer.capacity() > kKeepBufferBytes) b->buffer.shrink_to_fit();
  if (pool.kept.capacity() == 0) pool.kept.reserve(kKeep);
  pool.kept.push_back(std::move(b));
}

std::size_t RequestBufferPool::Kept() { return ThisThreadsPool().kept.size(); }

void SaveRequest(const RequestBuffers::Request& req, std::string& out) {
  out.clear();
  out.append(req.method_string());
  out.push_back(' ');
  out.append(req.target());
  out.append(req.version() == 10 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
  for (const auto& f : req) {
    // The body is saved decoded: its length is written below, once.
    if (f.name() == bhttp::field::content_length ||
        f.name() == bhttp::field::transfer_encoding) {
      continue;
    }
    out.append(f.name_string());
    out.append(": ");
    out.append(f.value());
    out.append("\r\n");
  }
  if (!req.body().empty()) {
    out.append("Content-Length: ");
    out.append(std::to_string(req.body().size()));
    out.append("\r\n");
  }
  out.append("\r\n");
  out.append(req.body());
}

bool ParseSaved(std::string_view saved, RequestBuffers& b) {
  b.parser->eager(true);
  boost::beast::error_code ec;
  while (!saved.empty() && !b.parser->is_done()) {
    const std::size_t used =
        b.parser->put(boost::asio::buffer(saved.data(), saved.size()), ec);
    if (ec) return false;
    if (used == 0) break;
    saved.remove_prefix(used);
  }
  return b.parser->is_done() && saved.empty();
}

}  // namespace presence::http
