#include "client/status_text.h"

#include <cmath>
#include <ctime>

namespace presence::client {
namespace {

constexpr std::int64_t kDay = 86400;

std::int64_t FloorDiv(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// Days since 1970-01-01 -> (year, month 1-12, day 1-31); Howard Hinnant's
// civil_from_days.
void CivilFromDays(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const std::int64_t era = FloorDiv(z, 146097);
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2) ++y;
}

constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void AppendUtf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// "1f1fa-1f1f8" -> UTF-8; nullopt unless every part is 1-6 hex digits
// naming a printable code point (no controls, no surrogates).
std::optional<std::string> CodePoints(std::string_view code) {
  if (code.empty()) return std::nullopt;
  std::string out;
  while (true) {
    const auto dash = code.find('-');
    const std::string_view part = code.substr(0, dash);
    if (part.empty() || part.size() > 6) return std::nullopt;
    std::uint32_t cp = 0;
    for (char c : part) {
      int digit;
      if (c >= '0' && c <= '9') {
        digit = c - '0';
      } else if (c >= 'a' && c <= 'f') {
        digit = c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        digit = c - 'A' + 10;
      } else {
        return std::nullopt;
      }
      cp = cp * 16 + static_cast<std::uint32_t>(digit);
    }
    if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      return std::nullopt;
    }
    AppendUtf8(out, cp);
    if (dash == std::string_view::npos) break;
    code.remove_prefix(dash + 1);
  }
  return out;
}

std::string TwoDigits(std::int64_t n) {
  // Appended, not "literal" + string: gcc 12 -O3 warns (-Wrestrict) on
  // the inlined operator+ there.
  std::string out(n < 10 ? "0" : "");
  out += std::to_string(n);
  return out;
}

std::string Plural(std::int64_t n, const char* unit) {
  return std::to_string(n) + " " + unit + (n == 1 ? "" : "s") + " ago";
}

}  // namespace

std::string StatusText::LastActive(PresenceStatus status,
                                   std::optional<std::int64_t> last_active,
                                   double now_seconds, int utc_offset_seconds) {
  switch (status) {
    case PresenceStatus::kActive:
      return "Active now";
    case PresenceStatus::kIdle:
      return "Idle";
    case PresenceStatus::kOffline:
      break;
  }
  if (!last_active) return "Not active recently";
  return RelativeTime(*last_active, now_seconds, utc_offset_seconds);
}

std::string_view StatusText::DeviceSuffix(Device device) {
  switch (device) {
    case Device::kMobile:
      return " on mobile";
    case Device::kDesktop:
      return " on desktop";
    case Device::kUnknown:
      break;
  }
  return "";
}

std::string StatusText::LastActive(PresenceStatus status,
                                   std::optional<std::int64_t> last_active,
                                   Device device, double now_seconds,
                                   int utc_offset_seconds) {
  std::string text =
      LastActive(status, last_active, now_seconds, utc_offset_seconds);
  if (status != PresenceStatus::kOffline) text.append(DeviceSuffix(device));
  return text;
}

std::string StatusText::RelativeTime(std::int64_t then, double now_seconds,
                                     int utc_offset_seconds) {
  const auto now = static_cast<std::int64_t>(std::floor(now_seconds));
  const std::int64_t seconds = now - then;
  if (seconds < 60) return "just now";
  const std::int64_t minutes = seconds / 60;
  if (minutes < 60) return Plural(minutes, "minute");
  const std::int64_t hours = minutes / 60;
  if (hours < 24) return hours == 1 ? "an hour ago" : Plural(hours, "hour");
  const std::int64_t then_day = FloorDiv(then + utc_offset_seconds, kDay);
  const std::int64_t now_day = FloorDiv(now + utc_offset_seconds, kDay);
  const std::int64_t days = now_day - then_day;
  if (days <= 1) return "yesterday";
  if (days < 90) return Plural(days, "day");
  std::int64_t then_year, now_year;
  unsigned then_month, then_mday, now_month, now_mday;
  CivilFromDays(then_day, then_year, then_month, then_mday);
  CivilFromDays(now_day, now_year, now_month, now_mday);
  std::string out =
      std::string(kMonths[then_month - 1]) + " " + std::to_string(then_mday);
  if (then_year != now_year) out += ", " + std::to_string(then_year);
  return out;
}

std::string StatusText::Emoji(std::string_view emoji_name,
                              std::string_view emoji_code,
                              std::string_view reaction_type) {
  if (emoji_name.empty()) return "";
  if (reaction_type.empty() || reaction_type == "unicode_emoji") {
    if (auto chars = CodePoints(emoji_code)) return *chars;
  }
  std::string out(":");
  out.append(emoji_name);
  out.push_back(':');
  return out;
}

std::string StatusText::Until(std::int64_t end, double now_seconds,
                              int utc_offset_seconds) {
  const auto now = static_cast<std::int64_t>(std::floor(now_seconds));
  const std::int64_t local_end = end + utc_offset_seconds;
  const std::int64_t end_day = FloorDiv(local_end, kDay);
  const std::int64_t now_day = FloorDiv(now + utc_offset_seconds, kDay);
  const std::int64_t in_day = local_end - end_day * kDay;
  const std::string clock =
      TwoDigits(in_day / 3600) + ":" + TwoDigits(in_day / 60 % 60);
  if (end_day <= now_day) return "until " + clock;
  if (end_day == now_day + 1) return "until tomorrow " + clock;
  std::int64_t end_year, now_year;
  unsigned end_month, end_mday, now_month, now_mday;
  CivilFromDays(end_day, end_year, end_month, end_mday);
  CivilFromDays(now_day, now_year, now_month, now_mday);
  std::string out = "until " + std::string(kMonths[end_month - 1]) + " " +
                    std::to_string(end_mday);
  if (end_year != now_year && end_day - now_day > 365) {
    out += ", " + std::to_string(end_year);
  }
  return out;
}

int StatusText::LocalUtcOffsetSeconds() {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  return static_cast<int>(local.tm_gmtoff);
}

}  // namespace presence::client
