// presence-top's frame (tools/presence_top_screen.h): layout, order kept,
// widths, truncation. The program itself is driven in tmux by
// tests/tools/test_presence_top.py.
#include "tools/presence_top_screen.h"

#include <gtest/gtest.h>

#include <sstream>

namespace presence::tools {
namespace {

using client::BuddyRow;
using client::PresenceStatus;

// The frame's lines without escape sequences.
std::vector<std::string> Lines(const std::string& frame) {
  std::string plain;
  for (std::size_t i = 0; i < frame.size(); ++i) {
    if (frame[i] == '\x1b') {
      ++i;  // '['
      while (i + 1 < frame.size() &&
             !std::isalpha(static_cast<unsigned char>(frame[i + 1]))) {
        ++i;
      }
      ++i;  // the final letter
      continue;
    }
    if (frame[i] != '\r') plain.push_back(frame[i]);
  }
  std::vector<std::string> out;
  std::istringstream in(plain);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

ScreenModel Model() {
  ScreenModel m;
  m.server = "http://127.0.0.1:9991";
  m.email = "alice@example.com";
  m.state = "connected";
  m.clock = "12:00:03";
  m.rows = {
      BuddyRow{1, "Alice", "alice@example.com", PresenceStatus::kActive,
               "Active now", true},
      BuddyRow{3, "Carol", "carol@example.com", PresenceStatus::kIdle, "Idle"},
      BuddyRow{4, "Dave", "dave@example.com", PresenceStatus::kOffline,
               "5 minutes ago"},
  };
  return m;
}

TEST(PresenceTopScreenTest, ShowsHeaderSummaryAndRowsInOrder) {
  auto lines = Lines(PresenceTopScreen::Render(Model(), 100, 20, false));
  ASSERT_GE(lines.size(), 8u);
  EXPECT_NE(lines[0].find("presence-top"), std::string::npos);
  EXPECT_NE(lines[0].find("alice@example.com"), std::string::npos);
  EXPECT_NE(lines[0].find("connected"), std::string::npos);
  EXPECT_NE(lines[0].find("12:00:03"), std::string::npos);
  EXPECT_EQ(lines[1], "1 active  1 idle  1 offline");
  EXPECT_NE(lines[3].find("STATUS"), std::string::npos);
  EXPECT_NE(lines[3].find("LAST ACTIVE"), std::string::npos);
  EXPECT_NE(lines[4].find("active"), std::string::npos);
  EXPECT_NE(lines[4].find("Alice (you)"), std::string::npos);
  EXPECT_NE(lines[4].find("Active now"), std::string::npos);
  EXPECT_NE(lines[5].find("idle"), std::string::npos);
  EXPECT_NE(lines[5].find("Carol"), std::string::npos);
  EXPECT_NE(lines[6].find("offline"), std::string::npos);
  EXPECT_NE(lines[6].find("dave@example.com"), std::string::npos);
  EXPECT_NE(lines[6].find("5 minutes ago"), std::string::npos);
  EXPECT_EQ(lines[7], "q quit");
}

TEST(PresenceTopScreenTest, EveryLineFitsTheWidth) {
  ScreenModel m = Model();
  m.rows[0].name = std::string(200, 'x');
  m.rows[1].email = "\xc3\xa9" + std::string(100, 'e');  // UTF-8
  for (int width : {20, 40, 60, 80, 132}) {
    for (const auto& line :
         Lines(PresenceTopScreen::Render(m, width, 30, true))) {
      EXPECT_LE(PresenceTopScreen::Columns(line), width) << line;
    }
  }
}

TEST(PresenceTopScreenTest, NarrowTerminalsDropTheEmailColumn) {
  auto lines = Lines(PresenceTopScreen::Render(Model(), 40, 20, false));
  EXPECT_EQ(lines[3].find("EMAIL"), std::string::npos);
  EXPECT_NE(lines[4].find("Alice"), std::string::npos);
}

TEST(PresenceTopScreenTest, ShortTerminalsSayHowManyMore) {
  auto lines = Lines(PresenceTopScreen::Render(Model(), 100, 6, false));
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_NE(lines[5].find("2 more"), std::string::npos);
}

TEST(PresenceTopScreenTest, FitCutsWithAnEllipsisAndPads) {
  EXPECT_EQ(PresenceTopScreen::Fit("abc", 5), "abc  ");
  EXPECT_EQ(PresenceTopScreen::Fit("abcdef", 4), "abc\xe2\x80\xa6");
  EXPECT_EQ(PresenceTopScreen::Columns(
                PresenceTopScreen::Fit("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 3)),
            3);
  // Control characters cannot move the cursor.
  EXPECT_EQ(PresenceTopScreen::Fit("a\x1b[2Jb", 6), "a?[2Jb");
}

TEST(PresenceTopScreenTest, PresenceDisabledIsSaid) {
  ScreenModel m = Model();
  m.presence_disabled = true;
  auto lines = Lines(PresenceTopScreen::Render(m, 120, 20, false));
  EXPECT_NE(lines[1].find("disabled"), std::string::npos);
}

}  // namespace
}  // namespace presence::tools

namespace presence::tools {
namespace {

// --- User status (issue #18) ------------------------------------------------

ScreenModel ModelWithStatuses() {
  ScreenModel m = Model();
  m.rows[0].status_emoji = "\xf0\x9f\x93\x85";  // 📅
  m.rows[0].status_text = "In a meeting";
  m.rows[0].status_until = "until 15:00";
  m.rows[1].dnd = true;
  m.rows[1].dnd_until = "until tomorrow 09:00";
  m.rows[2].status_emoji = ":zulip:";
  return m;
}

TEST(PresenceTopScreenTest, ShowsStatusUntilAndDoNotDisturb) {
  auto lines =
      Lines(PresenceTopScreen::Render(ModelWithStatuses(), 120, 20, false));
  ASSERT_GE(lines.size(), 8u);
  EXPECT_NE(lines[3].find("SAYS"), std::string::npos);
  EXPECT_NE(lines[4].find("\xf0\x9f\x93\x85 In a meeting until 15:00"),
            std::string::npos)
      << lines[4];
  // Carol: the mark beside her dot, and said in words.
  EXPECT_EQ(lines[5].rfind("\xe2\x97\x90\xe2\x8a\x98 idle", 0), 0u) << lines[5];
  EXPECT_NE(lines[5].find("\xe2\x8a\x98 do not disturb until tomorrow 09:00"),
            std::string::npos)
      << lines[5];
  EXPECT_NE(lines[6].find(":zulip:"), std::string::npos);
  // No mark beside the dots of the others.
  EXPECT_EQ(lines[4].find("\xe2\x8a\x98"), std::string::npos);
}

TEST(PresenceTopScreenTest, SaysJoinsTheParts) {
  client::BuddyRow r;
  EXPECT_EQ(PresenceTopScreen::Says(r), "");
  r.status_text = "Lunch";
  EXPECT_EQ(PresenceTopScreen::Says(r), "Lunch");
  r.dnd = true;
  EXPECT_EQ(PresenceTopScreen::Says(r),
            "Lunch \xc2\xb7 \xe2\x8a\x98 do not disturb");
}

TEST(PresenceTopScreenTest, StatusLinesFitEvenWithEmojiAndControls) {
  ScreenModel m = ModelWithStatuses();
  // A status meant to move the cursor, and many wide characters.
  m.rows[1].status_text = "\x1b[2J\xc2\x9b" + std::string("evil");
  for (int i = 0; i < 30; ++i) m.rows[2].status_text += "\xf0\x9f\x98\x80";
  for (int width : {20, 40, 61, 62, 80, 100, 132}) {
    const std::string frame = PresenceTopScreen::Render(m, width, 30, true);
    EXPECT_EQ(frame.find("\x1b[2J"), std::string::npos);
    EXPECT_EQ(frame.find("\xc2\x9b"), std::string::npos);
    for (const auto& line : Lines(frame)) {
      EXPECT_LE(PresenceTopScreen::Columns(line), width) << line;
    }
  }
}

TEST(PresenceTopScreenTest, WideCharactersCountTwoColumns) {
  EXPECT_EQ(PresenceTopScreen::Columns("\xf0\x9f\x98\x80"), 2);  // 😀
  EXPECT_EQ(PresenceTopScreen::Columns("\xe6\x97\xa5\xe6\x9c\xac"), 4);
  // ❤️: a narrow heart and a variation selector.
  EXPECT_EQ(PresenceTopScreen::Columns("\xe2\x9d\xa4\xef\xb8\x8f"), 1);
  // Cutting never splits a wide character past the width.
  const std::string cut = PresenceTopScreen::Fit(
      "\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80", 4);
  EXPECT_EQ(PresenceTopScreen::Columns(cut), 4);
  EXPECT_EQ(cut, "\xf0\x9f\x98\x80\xe2\x80\xa6 ");
}

}  // namespace
}  // namespace presence::tools
