// PresenceTopScreen: presence-top's frame, rendered to a string of plain
// ANSI (no curses): home the cursor, write each line and clear the rest of
// it, clear below. Drawing over the previous frame instead of clearing the
// screen first keeps it from flickering.
//
//   presence-top  http://127.0.0.1:9991  as alice@example.com   connected
//   12:00:03 2 active  1 idle  3 offline
//
//   (the EMAIL column, between NAME and LAST ACTIVE, left out here)
//      STATUS   NAME         LAST ACTIVE  SAYS
//   ●  active   Alice (you)  Active now   📅 Meeting until 15:00
//   ◐⊘ idle     Carol        Idle         ⊘ do not disturb
//   ○  offline  Dave         5 min ago
//   q quit
//
// Beside the dot, ⊘ marks a user in do-not-disturb; the SAYS column holds
// their user status: the emoji, the text, "until ..." for a scheduled end,
// and "⊘ do not disturb" (with its end). It goes on terminals narrower than
// 62 columns.
//
// Widths are counted in terminal columns (wide characters and emoji two,
// joiners and variation selectors none), so UTF-8 names line up; every line
// fits the terminal's width.
//
// Thread safety: pure function.
#ifndef PRESENCE_TOOLS_PRESENCE_TOP_SCREEN_H_
#define PRESENCE_TOOLS_PRESENCE_TOP_SCREEN_H_

#include <string>
#include <string_view>
#include <vector>

#include "client/buddy_list.h"

namespace presence::tools {

struct ScreenModel {
  std::string server;
  std::string email;
  std::string state;  // "connected", "reconnecting: ...", ...
  std::string clock;  // local time, "12:00:03"
  bool presence_disabled = false;
  std::vector<client::BuddyRow> rows;  // already sorted
};

class PresenceTopScreen {
 public:
  // The frame for a `width` x `height` terminal; `color` adds SGR colours.
  static std::string Render(const ScreenModel& model, int width, int height,
                            bool color);

  // `s` cut or padded with spaces to exactly `width` columns (code points);
  // a cut string ends in "…".
  static std::string Fit(std::string_view s, int width);

  // What the SAYS column shows for `row` ("" when the user says nothing).
  static std::string Says(const client::BuddyRow& row);

  // Columns of `s` in a terminal (an approximation of wcwidth()).
  static int Columns(std::string_view s);
};

}  // namespace presence::tools

#endif  // PRESENCE_TOOLS_PRESENCE_TOP_SCREEN_H_
