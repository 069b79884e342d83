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
#include <string>
#include <string_view>

namespace presence::http {

// Appends to `out` the head of a response to a request of HTTP `version`
// (11 for HTTP/1.1), ending with the blank line: the status line with
// Beast's reason phrase, "Server: presenced", "Content-Type" unless
// `content_type` is empty, "Connection" where `keep_alive` differs from the
// version's default, and "Content-Length" if `content_length` is set.
void AppendResponseHead(std::string& out, unsigned version, unsigned status,
                        std::string_view content_type, bool keep_alive,
                        std::optional<std::size_t> content_length);

}  // namespace presence::http

#endif  // PRESENCE_HTTP_RESPONSE_HEAD_H_
