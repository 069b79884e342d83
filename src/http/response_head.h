// The status line and header fields of presenced's answers, formatted
// straight into a string: the bytes Beast's serializer writes for the same
// response built field by field (Server, Content-Type, Connection as
// keep-alive requires, Content-Length), without a fields container and a
// serializer per answer. HttpSession writes this head and the body with one
// gathered write.
//
// Thread safety: a pure function.
#ifndef PRESENCE_HTTP_RESPONSE_HEAD_H_
#define PRESENCE_HTTP_RESPONSE_HEAD_H_

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace presence::http {

// Header fields an answer adds (api::Response::headers), in order.
using ExtraFields = std::span<const std::pair<std::string, std::string>>;

// Whether AppendResponseHead writes `extra` exactly as Beast would after
// set()-ing each in turn: true unless a name is one of the fields the head
// writes itself (Server, Content-Type, Connection, Content-Length) or
// Transfer-Encoding, a name comes twice (set() keeps the last), or a name
// or value holds CR or LF. Otherwise the caller lets Beast write the head.
bool HeadWritesFields(ExtraFields extra);

// Appends to `out` the head of a response to a request of HTTP `version`
// (11 for HTTP/1.1), ending with the blank line: the status line with
// Beast's reason phrase, "Server: presenced", "Content-Type" unless
// `content_type` is empty, then `extra` (which HeadWritesFields accepts;
// e.g. the rate-limit fields every API answer carries), "Connection" where
// `keep_alive` differs from the version's default, and "Content-Length" if
// `content_length` is set.
void AppendResponseHead(std::string& out, unsigned version, unsigned status,
                        std::string_view content_type, bool keep_alive,
                        std::optional<std::size_t> content_length,
                        ExtraFields extra = {});

}  // namespace presence::http

#endif  // PRESENCE_HTTP_RESPONSE_HEAD_H_
