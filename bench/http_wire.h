// http_wire: what the load generators (bench/loadgen.cc, bench/million.cc)
// read off the wire, without allocating: the framing of an HTTP/1.1 answer
// and one pass over a GET /events body that finds every event's fields.
//
// Issue #17: the generators share the machine's two cores with the server,
// so their CPU per answer bounds every fan-out figure. They used to find
// the fields of an events answer with several substring searches over the
// whole body (each match a memchr for the quote and a compare) and to copy
// each number into a std::string before converting it. ScanEvents walks
// the body once as JSON (strings with their escapes, numbers, nested
// objects and arrays), so it also rejects a body that is not one JSON
// object, and reports the fields of each element of the top-level "events"
// array: its type, id, the first key of "presences" (the user id of a
// modern presence event), "transition" and "server_timestamp".
//
// Thread safety: pure functions.
#ifndef PRESENCE_BENCH_HTTP_WIRE_H_
#define PRESENCE_BENCH_HTTP_WIRE_H_

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace presence::bench::wire {

// Whether `s` is the literal `lit`: the length first, then a compare of a
// size known when compiling, which the compiler inlines (string_view's ==
// calls compare() and memcmp once the lengths agree).
template <std::size_t N>
inline bool Is(std::string_view s, const char (&lit)[N]) {
  return s.size() == N - 1 && std::memcmp(s.data(), lit, N - 1) == 0;
}

// The value of `text`, a JSON number Scanner::Number accepted, if it is an
// integer of at most 18 digits (no fraction, no exponent); `fallback`
// otherwise. A plain loop: from_chars cost more than the rest of an event.
inline std::int64_t IntegerValue(std::string_view text, std::int64_t fallback) {
  std::size_t i = 0;
  const bool negative = !text.empty() && text[0] == '-';
  if (negative) i = 1;
  if (i == text.size() || text.size() - i > 18) return fallback;
  std::int64_t v = 0;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (c < '0' || c > '9') return fallback;
    v = v * 10 + (c - '0');
  }
  return negative ? -v : v;
}

// One framed answer; `body` views the buffer it was parsed from.
struct Answer {
  int status = 0;
  std::string_view body;
};

// The decimal integer at the start of `s` (an optional '-' and digits,
// leading spaces skipped); `fallback` if there is none.
inline std::int64_t LeadingInt(std::string_view s, std::int64_t fallback) {
  std::size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data() + i, s.data() + s.size(), v);
  return ec == std::errc() ? v : fallback;
}

inline bool HeaderNameIs(std::string_view line, std::string_view lower_name) {
  if (line.size() <= lower_name.size() || line[lower_name.size()] != ':') {
    return false;
  }
  for (std::size_t i = 0; i < lower_name.size(); ++i) {
    char c = line[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower_name[i]) return false;
  }
  return true;
}

// Finds a complete answer at the start of `buf`: returns its total length
// (0 if incomplete, -1 if malformed: no status line, no Content-Length on a
// status that has a body, or a head over 64 KiB) and fills `out`.
inline long ParseResponse(std::string_view buf, Answer& out) {
  const auto end = buf.find("\r\n\r\n");
  if (end == std::string_view::npos) return buf.size() > 64 * 1024 ? -1 : 0;
  const std::string_view head = buf.substr(0, end);
  if (head.size() < 12 || head.substr(0, 5) != "HTTP/" || head[8] != ' ') {
    return -1;
  }
  out.status = static_cast<int>(LeadingInt(head.substr(9, 3), 0));
  long length = -1;
  for (std::size_t pos = head.find("\r\n"); pos != std::string_view::npos;) {
    const std::size_t next = head.find("\r\n", pos + 2);
    const std::string_view line = head.substr(
        pos + 2,
        (next == std::string_view::npos ? head.size() : next) - (pos + 2));
    if (HeaderNameIs(line, "content-length")) {
      length = static_cast<long>(LeadingInt(line.substr(15), -1));
      if (length < 0) return -1;
    }
    pos = next;
  }
  if (length < 0) {
    // No length: only bodiless statuses are expected.
    if (out.status != 204 && out.status != 304) return -1;
    length = 0;
  }
  const std::size_t total = end + 4 + static_cast<std::size_t>(length);
  if (buf.size() < total) return 0;
  out.body = buf.substr(end + 4, static_cast<std::size_t>(length));
  return static_cast<long>(total);
}

// The fields of one event, as found in it (views into the body; strings
// raw, escapes not undone). A field the event lacks keeps its default.
struct Event {
  std::string_view type;
  std::int64_t id = -1;
  std::int64_t user = -1;  // the first key of "presences", if numeric
  std::string_view transition;
  double server_timestamp = -1;
};

// What ScanEvents found in a whole body.
struct EventsSummary {
  std::string_view result;  // the top-level "result" string
  bool has_events = false;  // a top-level "events" array was there
  std::int64_t events = 0;
  std::int64_t max_id = -1;
};

namespace internal {

// The hot steps are forced inline: GCC keeps String and Take out of line
// otherwise, and at six events an answer the calls were a good part of the
// scan (bench/results/gen21/README.md).
#define PRESENCE_WIRE_INLINE inline __attribute__((always_inline))

// Bytes that may stand in a JSON string as they are (not '"', '\\' or a
// control character): one table look-up per byte in String's loop.
struct PlainTable {
  bool plain[256];
  constexpr PlainTable() : plain() {
    for (int c = 0; c < 256; ++c) {
      plain[c] = c >= 0x20 && c != '"' && c != '\\';
    }
  }
};
inline constexpr PlainTable kPlain{};

class Scanner {
 public:
  explicit Scanner(std::string_view s)
      : p_(s.data()), end_(s.data() + s.size()) {}

  bool AtEnd() {
    SkipSpace();
    return p_ == end_;
  }

  PRESENCE_WIRE_INLINE void SkipSpace() {
    while (p_ != end_ &&
           (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) {
      ++p_;
    }
  }

  PRESENCE_WIRE_INLINE bool Take(char c) {
    if (p_ != end_ && *p_ == c) {  // presenced writes no whitespace
      ++p_;
      return true;
    }
    SkipSpace();
    if (p_ == end_ || *p_ != c) return false;
    ++p_;
    return true;
  }

  PRESENCE_WIRE_INLINE char Peek() {
    SkipSpace();
    return p_ == end_ ? '\0' : *p_;
  }

  // A string; `out` views its raw contents. The plain run inline, the rest
  // (escapes, faults) out of line.
  PRESENCE_WIRE_INLINE bool String(std::string_view& out) {
    if (!Take('"')) return false;
    const char* start = p_;
    while (p_ != end_ && kPlain.plain[static_cast<unsigned char>(*p_)]) ++p_;
    if (p_ != end_ && *p_ == '"') {
      out = std::string_view(start, static_cast<std::size_t>(p_ - start));
      ++p_;
      return true;
    }
    return StringRest(start, out);
  }

  // String from the first byte of its run that is not plain.
  bool StringRest(const char* start, std::string_view& out) {
    while (p_ != end_) {
      while (p_ != end_ && kPlain.plain[static_cast<unsigned char>(*p_)]) {
        ++p_;
      }
      if (p_ == end_) break;
      const char c = *p_;
      if (c == '"') {
        out = std::string_view(start, static_cast<std::size_t>(p_ - start));
        ++p_;
        return true;
      }
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c == '\\') {
        if (++p_ == end_) return false;
        const char e = *p_;
        if (e == 'u') {
          for (int i = 0; i < 4; ++i) {
            if (++p_ == end_ || !IsHex(*p_)) return false;
          }
        } else if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' &&
                   e != 'n' && e != 'r' && e != 't') {
          return false;
        }
      }
      ++p_;
    }
    return false;
  }

  // A number's text (JSON's grammar).
  PRESENCE_WIRE_INLINE bool Number(std::string_view& out) {
    SkipSpace();
    const char* start = p_;
    if (p_ != end_ && *p_ == '-') ++p_;
    if (p_ == end_ || !IsDigit(*p_)) return false;
    if (*p_ == '0') {
      ++p_;
    } else {
      while (p_ != end_ && IsDigit(*p_)) ++p_;
    }
    if (p_ != end_ && *p_ == '.') {
      ++p_;
      if (p_ == end_ || !IsDigit(*p_)) return false;
      while (p_ != end_ && IsDigit(*p_)) ++p_;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || !IsDigit(*p_)) return false;
      while (p_ != end_ && IsDigit(*p_)) ++p_;
    }
    out = std::string_view(start, static_cast<std::size_t>(p_ - start));
    return true;
  }

  bool Literal(std::string_view word) {
    SkipSpace();
    if (static_cast<std::size_t>(end_ - p_) < word.size() ||
        std::string_view(p_, word.size()) != word) {
      return false;
    }
    p_ += word.size();
    return true;
  }

  // Skip, with a number (most values presenced writes inside an event)
  // checked here rather than through a call.
  PRESENCE_WIRE_INLINE bool SkipValue(int depth) {
    const char c = Peek();
    if ((c >= '0' && c <= '9') || c == '-') {
      std::string_view ignored;
      return Number(ignored);
    }
    return Skip(depth);
  }

  // Any value, checked and skipped.
  bool Skip(int depth) {
    if (depth > 64) return false;
    std::string_view ignored;
    switch (Peek()) {
      case '"':
        return String(ignored);
      case '{':
        ++p_;
        if (Take('}')) return true;
        do {
          if (!String(ignored) || !Take(':') || !SkipValue(depth + 1)) {
            return false;
          }
        } while (Take(','));
        return Take('}');
      case '[':
        ++p_;
        if (Take(']')) return true;
        do {
          if (!SkipValue(depth + 1)) return false;
        } while (Take(','));
        return Take(']');
      case 't':
        return Literal("true");
      case 'f':
        return Literal("false");
      case 'n':
        return Literal("null");
      default:
        return Number(ignored);
    }
  }

  // One event object, its fields into `ev`.
  bool EventObject(Event& ev) {
    if (!Take('{')) return false;
    if (Take('}')) return true;
    do {
      std::string_view key;
      if (!String(key) || !Take(':')) return false;
      if (Is(key, "type")) {
        if (!String(ev.type)) return false;
      } else if (Is(key, "id")) {
        std::string_view n;
        if (!Number(n)) return false;
        ev.id = IntegerValue(n, -1);
      } else if (Is(key, "transition") && Peek() == '"') {
        if (!String(ev.transition)) return false;
      } else if (Is(key, "server_timestamp")) {
        std::string_view n;
        if (!Number(n)) return false;
        double v = -1;
        std::from_chars(n.data(), n.data() + n.size(), v);
        ev.server_timestamp = v;
      } else if (Is(key, "presences") && Peek() == '{') {
        ++p_;
        if (!Take('}')) {
          bool first = true;
          do {
            std::string_view user;
            if (!String(user) || !Take(':') || !Skip(2)) return false;
            if (first) ev.user = IntegerValue(user, -1);
            first = false;
          } while (Take(','));
          if (!Take('}')) return false;
        }
      } else if (!Skip(1)) {
        return false;
      }
    } while (Take(','));
    return Take('}');
  }

 private:
  static bool IsDigit(char c) { return c >= '0' && c <= '9'; }
  static bool IsHex(char c) {
    return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  }

  const char* p_;
  const char* end_;
};

#undef PRESENCE_WIRE_INLINE

}  // namespace internal

// Walks `body`, which must be one JSON object, and calls
// `on_event(const Event&)` for each element of its top-level "events"
// array, in order. Returns false, and `summary` holds what was found up to
// there, if the body is not well-formed JSON or an element of "events" is
// not an object.
template <typename OnEvent>
bool ScanEvents(std::string_view body, EventsSummary& summary,
                OnEvent&& on_event) {
  summary = EventsSummary{};
  internal::Scanner s(body);
  if (!s.Take('{')) return false;
  if (!s.Take('}')) {
    do {
      std::string_view key;
      if (!s.String(key) || !s.Take(':')) return false;
      if (Is(key, "result") && s.Peek() == '"') {
        if (!s.String(summary.result)) return false;
      } else if (Is(key, "events") && s.Peek() == '[') {
        summary.has_events = true;
        s.Take('[');
        if (!s.Take(']')) {
          do {
            Event ev;
            if (!s.EventObject(ev)) return false;
            ++summary.events;
            if (ev.id > summary.max_id) summary.max_id = ev.id;
            on_event(static_cast<const Event&>(ev));
          } while (s.Take(','));
          if (!s.Take(']')) return false;
        }
      } else if (!s.Skip(1)) {
        return false;
      }
    } while (s.Take(','));
    if (!s.Take('}')) return false;
  }
  return s.AtEnd();
}

}  // namespace presence::bench::wire

#endif  // PRESENCE_BENCH_HTTP_WIRE_H_
