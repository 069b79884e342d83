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

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "api/http_types.h"

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
// `content_type` is empty, then the X-RateLimit-* fields of `rate` if set
// (every API answer to a signed-in caller), then `extra` (which
// HeadWritesFields accepts), "Connection" where `keep_alive` differs from
// the version's default, and "Content-Length" if `content_length` is set.
void AppendResponseHead(std::string& out, unsigned version, unsigned status,
                        std::string_view content_type, bool keep_alive,
                        std::optional<std::size_t> content_length,
                        ExtraFields extra = {},
                        const api::RateFields* rate = nullptr);

// Calls `set(name, value)` for each X-RateLimit-* field of `rate`, in the
// order AppendResponseHead writes them (for answers Beast serializes).
template <typename Set>
void ForEachRateField(const api::RateFields& rate, Set&& set);

// The names of the rate fields, in order.
inline constexpr std::string_view kRateFieldNames[3] = {
    "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"};

template <typename Set>
void ForEachRateField(const api::RateFields& rate, Set&& set) {
  const std::int64_t values[3] = {rate.limit, rate.remaining, rate.reset_unix};
  for (int i = 0; i < 3; ++i) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, values[i]);
    set(kRateFieldNames[i], std::string_view(buf, end - buf));
  }
}

}  // namespace presence::http

#endif  // PRESENCE_HTTP_RESPONSE_HEAD_H_
