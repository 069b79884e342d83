#include "api/json_writer.h"

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

namespace {

// "00" "01" ... "99": two digits per step, as std::to_chars does.
constexpr char kDigitPairs[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536"
    "37383940414243444546474849505152535455565758596061626364656667686970717273"
    "74757677787980818283848586878889909192939495969798"
    "99";

// Writes `u` in decimal ending just before `end`; returns where it starts.
char* WriteDecimal(char* end, std::uint64_t u) {
  while (u >= 100) {
    const std::size_t pair = static_cast<std::size_t>(u % 100) * 2;
    u /= 100;
    end -= 2;
    end[0] = kDigitPairs[pair];
    end[1] = kDigitPairs[pair + 1];
  }
  if (u >= 10) {
    const std::size_t pair = static_cast<std::size_t>(u) * 2;
    end -= 2;
    end[0] = kDigitPairs[pair];
    end[1] = kDigitPairs[pair + 1];
  } else {
    *--end = static_cast<char>('0' + u);
  }
  return end;
}

// |v| without overflow for the most negative value.
std::uint64_t Magnitude(std::int64_t v) {
  return v < 0 ? 0 - static_cast<std::uint64_t>(v)
               : static_cast<std::uint64_t>(v);
}

}  // namespace

// Every answer has several numbers (issue #17, cold pings): the digits are
// written backwards into a small buffer and appended once, where
// std::to_chars first counted them and append then checked the capacity
// apart.
void AppendInt(std::string& out, std::int64_t v) {
  char buf[24];
  char* const end = buf + sizeof buf;
  char* p = WriteDecimal(end, Magnitude(v));
  if (v < 0) *--p = '-';
  out.append(p, static_cast<std::size_t>(end - p));
}

void AppendSeconds(std::string& out, Micros t) {
  // The fraction's six digits, the point, the seconds and the sign, written
  // backwards and appended once.
  char buf[32];
  char* const end = buf + sizeof buf;
  const std::uint64_t u = Magnitude(t);
  std::uint64_t f = u % kMicrosPerSecond;
  char* p = end;
  for (int i = 0; i < 3; ++i) {
    const std::size_t pair = static_cast<std::size_t>(f % 100) * 2;
    f /= 100;
    p -= 2;
    p[0] = kDigitPairs[pair];
    p[1] = kDigitPairs[pair + 1];
  }
  *--p = '.';
  p = WriteDecimal(p, u / kMicrosPerSecond);
  if (t < 0) *--p = '-';
  out.append(p, static_cast<std::size_t>(end - p));
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
