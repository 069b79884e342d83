#include "api/json_writer.h"

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace presence::api {

namespace {

bool NeedsEscape(unsigned char c) { return c < 0x20 || c == '"' || c == '\\'; }

// The index of the first byte at or after `from` that JSON must escape (a
// control byte, '"' or '\\'), or s.size(). Eight bytes at a time: most
// strings written (queue ids, client names, emails) have none, and a byte
// at a time cost about 17 instructions a byte in every long-poll answer's
// queue id (issue #17).
std::size_t FirstToEscape(std::string_view s, std::size_t from) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
  constexpr std::uint64_t kHigh = 0x8080808080808080ULL;
  std::size_t i = from;
  for (; i + 8 <= s.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    // Whether any byte is below 0x20, or is zero after the XOR (equals the
    // character): exact for "any", which is all that is asked here; a word
    // that has one is searched a byte at a time below.
    const std::uint64_t quote = w ^ (kOnes * '"');
    const std::uint64_t backslash = w ^ (kOnes * '\\');
    const std::uint64_t any = ((w - kOnes * 0x20) & ~w) |
                              ((quote - kOnes) & ~quote) |
                              ((backslash - kOnes) & ~backslash);
    if ((any & kHigh) != 0) break;
  }
  for (; i < s.size(); ++i) {
    if (NeedsEscape(static_cast<unsigned char>(s[i]))) return i;
  }
  return s.size();
}

}  // namespace

void AppendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  std::size_t run = 0;  // start of the pending run of plain bytes
  for (std::size_t i = FirstToEscape(s, 0); i < s.size();
       i = FirstToEscape(s, run)) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default:
        out.append("\\u00");
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 15]);
    }
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

void AppendInt(std::string& out, std::int64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

void AppendSeconds(std::string& out, Micros t) {
  if (t < 0) {
    out.push_back('-');
    t = -t;
  }
  AppendInt(out, t / kMicrosPerSecond);
  char frac[8] = {'.', '0', '0', '0', '0', '0', '0', '\0'};
  Micros f = t % kMicrosPerSecond;
  for (int i = 6; i >= 1; --i) {
    frac[i] = static_cast<char>('0' + f % 10);
    f /= 10;
  }
  out.append(frac, 7);
}

std::string IsoDate(Micros t) {
  std::time_t secs = static_cast<std::time_t>(t / kMicrosPerSecond);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  // Room for the longest text any field values give (86 bytes: gmtime_r's
  // fields are ints the compiler cannot bound), so snprintf never truncates.
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lld+00:00",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                tm.tm_min, tm.tm_sec,
                static_cast<long long>(t % kMicrosPerSecond));
  return buf;
}

}  // namespace presence::api
