#include "tools/presence_top_screen.h"

#include <algorithm>
#include <cstdint>

namespace presence::tools {
namespace {

using client::PresenceStatus;

constexpr std::string_view kClearLine = "\x1b[K";
constexpr std::string_view kReset = "\x1b[0m";
constexpr std::string_view kDndMark = "\xe2\x8a\x98";  // ⊘

std::string_view Dot(PresenceStatus s) {
  switch (s) {
    case PresenceStatus::kActive:
      return "\xe2\x97\x8f";  // ●
    case PresenceStatus::kIdle:
      return "\xe2\x97\x90";  // ◐
    case PresenceStatus::kOffline:
      break;
  }
  return "\xe2\x97\x8b";  // ○
}

std::string_view Color(PresenceStatus s) {
  switch (s) {
    case PresenceStatus::kActive:
      return "\x1b[32m";
    case PresenceStatus::kIdle:
      return "\x1b[33m";
    case PresenceStatus::kOffline:
      break;
  }
  return "\x1b[90m";
}

// One UTF-8 sequence at `s[i]`: its code point and length (a bad byte is
// U+FFFD, one byte long).
std::uint32_t Decode(std::string_view s, std::size_t i, std::size_t& len) {
  const auto b = static_cast<unsigned char>(s[i]);
  int n = 0;
  if (b < 0x80) {
    n = 1;
  } else if ((b >> 5) == 6) {
    n = 2;
  } else if ((b >> 4) == 14) {
    n = 3;
  } else if ((b >> 3) == 30) {
    n = 4;
  }
  if (n == 0 || i + n > s.size()) {
    len = 1;
    return 0xFFFD;
  }
  std::uint32_t cp = n == 1 ? b : b & (0xFF >> (n + 1));
  for (int k = 1; k < n; ++k) {
    const auto c = static_cast<unsigned char>(s[i + k]);
    if ((c & 0xC0) != 0x80) {
      len = 1;
      return 0xFFFD;
    }
    cp = (cp << 6) | (c & 0x3F);
  }
  len = static_cast<std::size_t>(n);
  return cp;
}

// Columns a terminal gives a code point: 0 for joiners, variation
// selectors and combining marks, 2 for East Asian wide characters and
// pictographic emoji, 1 otherwise. An approximation of wcwidth() that does
// not depend on the locale.
int Width(std::uint32_t cp) {
  if (cp == 0x200D || (cp >= 0xFE00 && cp <= 0xFE0F) ||
      (cp >= 0x0300 && cp <= 0x036F) || (cp >= 0x1F3FB && cp <= 0x1F3FF)) {
    return 0;
  }
  if ((cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0xA4CF) ||
      (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xF900 && cp <= 0xFAFF) ||
      (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF60) ||
      (cp >= 0xFFE0 && cp <= 0xFFE6) || (cp >= 0x1F300 && cp <= 0x1F64F) ||
      (cp >= 0x1F680 && cp <= 0x1F6FF) || (cp >= 0x1F900 && cp <= 0x1FAFF) ||
      (cp >= 0x20000 && cp <= 0x3FFFD)) {
    return 2;
  }
  return 1;
}

}  // namespace

int PresenceTopScreen::Columns(std::string_view s) {
  int cols = 0;
  for (std::size_t i = 0, len = 0; i < s.size(); i += len) {
    cols += Width(Decode(s, i, len));
  }
  return cols;
}

std::string PresenceTopScreen::Fit(std::string_view s, int width) {
  if (width <= 0) return "";
  // Control characters (C0, DEL, C1) would move the cursor: show them as
  // '?'.
  std::string clean;
  clean.reserve(s.size());
  for (std::size_t i = 0, len = 0; i < s.size(); i += len) {
    const std::uint32_t cp = Decode(s, i, len);
    if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0)) {
      clean.push_back('?');
    } else if (cp == 0xFFFD && len == 1) {
      clean += "\xef\xbf\xbd";
    } else {
      clean.append(s.substr(i, len));
    }
  }
  const int cols = Columns(clean);
  if (cols <= width) return clean + std::string(width - cols, ' ');
  // Keep what fits in width-1 columns, then the ellipsis.
  std::string out;
  int used = 0;
  for (std::size_t i = 0, len = 0; i < clean.size(); i += len) {
    const int w = Width(Decode(clean, i, len));
    if (used + w > width - 1) break;
    used += w;
    out.append(clean, i, len);
  }
  return out + "\xe2\x80\xa6" + std::string(width - 1 - used, ' ');  // …
}

std::string PresenceTopScreen::Says(const client::BuddyRow& r) {
  std::string out = r.status_emoji;
  auto add = [&out](std::string_view part) {
    if (part.empty()) return;
    if (!out.empty()) out.push_back(' ');
    out.append(part);
  };
  add(r.status_text);
  add(r.status_until);
  if (r.dnd) {
    if (!out.empty()) out += " \xc2\xb7";  // ·
    add(std::string(kDndMark) + " do not disturb");
    add(r.dnd_until);
  }
  return out;
}

std::string PresenceTopScreen::Render(const ScreenModel& m, int width,
                                      int height, bool color) {
  width = std::max(width, 20);
  height = std::max(height, 6);
  std::vector<std::string> lines;  // each exactly fits `width`

  // Title: left part, right part (state and clock) when there is room.
  {
    std::string left = "presence-top  " + m.server + "  as " + m.email;
    std::string right = m.state + "  " + m.clock;
    const int room = width - Columns(right) - 2;
    if (room >= 20) {
      lines.push_back(Fit(left, room) + "  " + right);
    } else {
      lines.push_back(Fit(left + "  " + right, width));
    }
  }
  int counts[3] = {0, 0, 0};
  for (const auto& r : m.rows) ++counts[static_cast<int>(r.status)];
  std::string summary = std::to_string(counts[0]) + " active  " +
                        std::to_string(counts[1]) + " idle  " +
                        std::to_string(counts[2]) + " offline";
  if (m.presence_disabled) {
    summary += "  (presence is disabled in this organization)";
  }
  lines.push_back(Fit(summary, width));
  lines.push_back(Fit("", width));

  // Columns: marker (3: the dot, then the do-not-disturb mark) + status (9)
  // + name + email + last active + what the user says (their status). "Last
  // active" goes before the email: on a narrow terminal the email column is
  // what goes, and below 62 columns the user status too (the mark stays).
  const int fixed = 3 + 9;
  int avail = std::max(width - fixed, 0);
  const int says_w = avail >= 50 ? std::min(avail * 2 / 5, 48) : 0;
  if (says_w > 0) avail -= says_w + 2;
  const int last_w = std::clamp(avail - 11, 0, 19);  // "Not active recently"
  avail -= last_w;
  int name_w, email_w;
  if (avail >= 10 + 1 + 14 + 2) {
    name_w = std::clamp((avail - 3) * 2 / 5, 10, 28);
    email_w = avail - name_w - 3;
  } else {
    name_w = std::max(avail - 1, 0);
    email_w = 0;
  }
  auto row_text = [&](std::string_view marker, std::string_view status,
                      std::string_view name, std::string_view email,
                      std::string_view last, std::string_view says) {
    std::string s = Fit(marker, 3) + Fit(status, 9) + Fit(name, name_w) + " ";
    if (email_w > 0) s += Fit(email, email_w) + "  ";
    if (says_w > 0) {
      s += Fit(last, last_w) + "  " + std::string(says);
    } else {
      s += last;
    }
    return Fit(s, width);
  };
  std::string header =
      row_text("", "STATUS", "NAME", "EMAIL", "LAST ACTIVE", "SAYS");
  if (color) header = "\x1b[1m" + header + std::string(kReset);
  lines.push_back(header);

  const int footer = 1;
  const int room =
      std::max(height - static_cast<int>(lines.size()) - footer, 0);
  const int shown = std::min(room, static_cast<int>(m.rows.size()));
  for (int i = 0; i < shown; ++i) {
    const auto& r = m.rows[i];
    const std::string name = r.is_current_user ? r.name + " (you)" : r.name;
    std::string marker(Dot(r.status));
    if (r.dnd) marker += kDndMark;
    std::string line =
        row_text(marker, client::StatusName(r.status), name, r.email,
                 r.last_active, PresenceTopScreen::Says(r));
    if (color) line = std::string(Color(r.status)) + line + std::string(kReset);
    lines.push_back(line);
  }
  std::string foot = "q quit";
  if (shown < static_cast<int>(m.rows.size())) {
    foot += "   \xe2\x80\xa6 " + std::to_string(m.rows.size() - shown) +
            " more (enlarge the window)";
  }
  lines.push_back(Fit(foot, width));

  std::string out = "\x1b[H";
  for (std::size_t i = 0; i < lines.size(); ++i) {
    // The padding is not written: clearing to the end of the line does it,
    // and a line short of the last column never leaves the cursor waiting
    // to wrap.
    std::string_view line = lines[i];
    const auto end = line.find_last_not_of(' ');
    line = end == std::string_view::npos ? "" : line.substr(0, end + 1);
    out += line;
    out += kClearLine;
    if (i + 1 < lines.size()) out += "\r\n";
  }
  out += "\x1b[J";
  return out;
}

}  // namespace presence::tools
