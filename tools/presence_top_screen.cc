#include "tools/presence_top_screen.h"

#include <algorithm>

namespace presence::tools {
namespace {

using client::PresenceStatus;

constexpr std::string_view kClearLine = "\x1b[K";
constexpr std::string_view kReset = "\x1b[0m";

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

bool IsContinuation(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

}  // namespace

int PresenceTopScreen::Columns(std::string_view s) {
  return static_cast<int>(std::count_if(
      s.begin(), s.end(), [](char c) { return !IsContinuation(c); }));
}

std::string PresenceTopScreen::Fit(std::string_view s, int width) {
  if (width <= 0) return "";
  // Control characters would move the cursor: show them as '?'.
  std::string clean(s);
  for (char& c : clean) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  const int cols = Columns(clean);
  if (cols <= width) return clean + std::string(width - cols, ' ');
  // Keep width-1 code points, then the ellipsis.
  std::string out;
  int kept = 0;
  for (std::size_t i = 0; i < clean.size(); ++i) {
    if (!IsContinuation(clean[i])) {
      if (kept == width - 1) break;
      ++kept;
    }
    out.push_back(clean[i]);
  }
  return out + "\xe2\x80\xa6";  // …
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

  // Columns: marker (3) + status (9) + name + email + last active. "Last
  // active" goes before the email: on a narrow terminal the email column
  // is what goes.
  const int fixed = 3 + 9;
  int avail = std::max(width - fixed, 0);
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
                      std::string_view last) {
    std::string s = Fit(marker, 3) + Fit(status, 9) + Fit(name, name_w) + " ";
    if (email_w > 0) s += Fit(email, email_w) + "  ";
    s += last;
    return Fit(s, width);
  };
  std::string header = row_text("", "STATUS", "NAME", "EMAIL", "LAST ACTIVE");
  if (color) header = "\x1b[1m" + header + std::string(kReset);
  lines.push_back(header);

  const int footer = 1;
  const int room =
      std::max(height - static_cast<int>(lines.size()) - footer, 0);
  const int shown = std::min(room, static_cast<int>(m.rows.size()));
  for (int i = 0; i < shown; ++i) {
    const auto& r = m.rows[i];
    const std::string name = r.is_current_user ? r.name + " (you)" : r.name;
    std::string line = row_text(Dot(r.status), client::StatusName(r.status),
                                name, r.email, r.last_active);
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
