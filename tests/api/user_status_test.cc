// The user status API's parameter checks and JSON (issue #18), as Zulip's
// check_update_user_status and format_user_status behave.
#include "api/user_status.h"

#include <gtest/gtest.h>

namespace presence::api {
namespace {

// The server's clock in the checks, UNIX seconds.
constexpr std::int64_t kNow = 1'700'000'000;

RequestParams Params(std::string_view body) {
  auto p = RequestParams::Parse("", "application/x-www-form-urlencoded", body);
  EXPECT_TRUE(p);
  return p ? std::move(*p) : RequestParams();
}

// The error message of reading and checking `body`, or "" on success.
std::string ErrorOf(std::string_view body, bool accept_away = true) {
  RequestParams p = Params(body);
  auto read = ReadStatusParams(p, accept_away);
  if (!read) return read.error().msg;
  auto checked = CheckStatusUpdate(std::move(*read), kNow);
  if (!checked) return checked.error().msg;
  return "";
}

StatusUpdate Checked(std::string_view body) {
  RequestParams p = Params(body);
  auto read = ReadStatusParams(p, true);
  EXPECT_TRUE(read);
  auto checked = CheckStatusUpdate(std::move(*read), kNow);
  EXPECT_TRUE(checked) << checked.error().msg;
  return checked ? *checked : StatusUpdate{};
}

TEST(UserStatusParamsTest, NothingPassedIsAnError) {
  EXPECT_EQ(ErrorOf(""), "Client did not pass any new values.");
  // emoji_code/reaction_type alone are not "new values" either.
  EXPECT_EQ(ErrorOf("emoji_code=&reaction_type="),
            "Client did not pass any new values.");
}

TEST(UserStatusParamsTest, TextIsTrimmedThenLimitedToSixtyCharacters) {
  EXPECT_EQ(*Checked("status_text=%20%20busy%20").status_text, "busy");
  std::string sixty_e_acute;
  for (int i = 0; i < 60; ++i) sixty_e_acute += "%C3%A9";  // 2 bytes each
  EXPECT_EQ(Checked("status_text=" + sixty_e_acute).status_text->size(), 120u);
  EXPECT_EQ(ErrorOf("status_text=" + std::string(61, 'x')),
            "status_text is too long (limit: 60 characters)");
  EXPECT_EQ(ErrorOf("status_text=%20" + std::string(60, 'x') + "%20"), "");
}

TEST(UserStatusParamsTest, AwayMustBeJsonBoolean) {
  EXPECT_EQ(ErrorOf("away=yes"), "away is not valid JSON");
  EXPECT_EQ(ErrorOf("away=1"), "away is not a boolean");
  EXPECT_EQ(*Checked("away=true").away, true);
  // The administrators' endpoint has no `away`: not read at all.
  EXPECT_EQ(ErrorOf("away=yes", /*accept_away=*/false),
            "Client did not pass any new values.");
}

TEST(UserStatusParamsTest, EmptyEmojiNameClearsTheEmoji) {
  StatusUpdate u = Checked("emoji_name=&emoji_code=1f697&reaction_type=x");
  EXPECT_EQ(*u.emoji_name, "");
  EXPECT_EQ(*u.emoji_code, "");
  EXPECT_EQ(*u.reaction_type, "unicode_emoji");
}

TEST(UserStatusParamsTest, EmojiRules) {
  EXPECT_EQ(ErrorOf("emoji_code=1f697"), "Client did not pass any new values.");
  EXPECT_EQ(ErrorOf("status_text=x&emoji_code=1f697"),
            "Client must pass emoji_name if they pass either emoji_code or "
            "reaction_type.");
  EXPECT_EQ(ErrorOf("emoji_name=car&emoji_code=1f697&reaction_type=sticker"),
            "Invalid emoji type.");
  EXPECT_EQ(ErrorOf("emoji_name=car&emoji_code=1F697"), "Invalid emoji code.");
  EXPECT_EQ(ErrorOf("emoji_name=car&emoji_code=d800"), "Invalid emoji code.");
  EXPECT_EQ(ErrorOf("emoji_name=car&emoji_code=1f697-"), "Invalid emoji code.");
  EXPECT_EQ(ErrorOf("emoji_name=x&emoji_code=1&reaction_type=realm_emoji"),
            "Invalid custom emoji.");
  EXPECT_EQ(ErrorOf("emoji_name=zulip&emoji_code=z&reaction_type="
                    "zulip_extra_emoji"),
            "Invalid emoji code.");
  EXPECT_EQ(ErrorOf("emoji_name=car&emoji_code=zulip&reaction_type="
                    "zulip_extra_emoji"),
            "Invalid emoji name.");
  EXPECT_EQ(ErrorOf("emoji_name=car"), "Emoji 'car' does not exist");
  StatusUpdate zulip = Checked("emoji_name=zulip");
  EXPECT_EQ(*zulip.emoji_code, "zulip");
  EXPECT_EQ(*zulip.reaction_type, "zulip_extra_emoji");
  StatusUpdate family =
      Checked("emoji_name=family&emoji_code=1f468-200d-1f469");
  EXPECT_EQ(*family.reaction_type, "unicode_emoji");
}

TEST(UserStatusParamsTest, StatusObjectShowsWhatSaysSomething) {
  store::UserStatus s;
  std::string out;
  AppendStatusObject(out, s, true);
  EXPECT_EQ(out, "{}");
  EXPECT_TRUE(StatusSaysNothing(s, true));
  EXPECT_FALSE(StatusSaysNothing(s, false));
  out.clear();
  AppendStatusObject(out, s, false);
  EXPECT_EQ(out, R"({"away":true})");
  s.status_text = "on \"leave\"";
  s.emoji_name = "car";
  s.emoji_code = "1f697";
  out.clear();
  AppendStatusObject(out, s, true);
  EXPECT_EQ(out, R"({"status_text":"on \"leave\"","emoji_name":"car",)"
                 R"("emoji_code":"1f697","reaction_type":"unicode_emoji"})");
}

// Issue #18's extensions.
TEST(UserStatusParamsTest, Issue18_ExtensionParametersAloneAreNewValues) {
  EXPECT_EQ(ErrorOf("dnd=true"), "");
  EXPECT_EQ(ErrorOf("dnd=false"), "");
  EXPECT_EQ(ErrorOf("scheduled_end_time=0"), "");
  EXPECT_EQ(ErrorOf("dnd_end_time=0"), "");
  StatusUpdate u = Checked("scheduled_end_time=" + std::to_string(kNow + 60));
  EXPECT_EQ(u.scheduled_end_time, kNow + 60);
  EXPECT_FALSE(u.status_text);
  EXPECT_FALSE(u.emoji_name);
}

TEST(UserStatusParamsTest, Issue18_EndTimesAreIntegersInTheNext366Days) {
  EXPECT_EQ(ErrorOf("scheduled_end_time=soon"),
            "scheduled_end_time is not valid JSON");
  EXPECT_EQ(ErrorOf("scheduled_end_time=1.5"),
            "scheduled_end_time is not an integer");
  EXPECT_EQ(ErrorOf("scheduled_end_time=" + std::to_string(kNow)),
            "scheduled_end_time must be in the future (or 0 for no end)");
  EXPECT_EQ(ErrorOf("scheduled_end_time=-5"),
            "scheduled_end_time must be in the future (or 0 for no end)");
  EXPECT_EQ(ErrorOf("scheduled_end_time=" + std::to_string(kNow + 1)), "");
  EXPECT_EQ(ErrorOf("scheduled_end_time=" + std::to_string(kNow + 366 * 86400)),
            "");
  EXPECT_EQ(
      ErrorOf("scheduled_end_time=" + std::to_string(kNow + 366 * 86400 + 1)),
      "scheduled_end_time must be at most 366 days ahead");
  EXPECT_EQ(ErrorOf("dnd=true&dnd_end_time=" + std::to_string(kNow)),
            "dnd_end_time must be in the future (or 0 for no end)");
  EXPECT_EQ(
      ErrorOf("dnd=true&dnd_end_time=" + std::to_string(kNow + 400 * 86400)),
      "dnd_end_time must be at most 366 days ahead");
}

TEST(UserStatusParamsTest, Issue18_DndEndNeedsDnd) {
  EXPECT_EQ(ErrorOf("dnd=yes"), "dnd is not valid JSON");
  EXPECT_EQ(ErrorOf("dnd=1"), "dnd is not a boolean");
  const std::string end = std::to_string(kNow + 600);
  EXPECT_EQ(ErrorOf("dnd_end_time=" + end), "dnd_end_time needs dnd=true");
  EXPECT_EQ(ErrorOf("dnd=false&dnd_end_time=" + end),
            "dnd_end_time needs dnd=true");
  StatusUpdate u = Checked("dnd=true&dnd_end_time=" + end);
  EXPECT_EQ(u.dnd, true);
  EXPECT_EQ(u.dnd_end_time, kNow + 600);
}

TEST(UserStatusParamsTest, Issue18_ZulipRulesComeFirst) {
  EXPECT_EQ(ErrorOf("emoji_code=1f697&scheduled_end_time=5"),
            "Client must pass emoji_name if they pass either emoji_code or "
            "reaction_type.");
  EXPECT_EQ(ErrorOf("status_text=" + std::string(61, 'x') + "&dnd=true"),
            "status_text is too long (limit: 60 characters)");
}

TEST(UserStatusParamsTest, Issue18_ExtendedObjectShowsEndsAndDnd) {
  store::UserStatus s;
  s.status_text = "busy";
  s.scheduled_end_time = kNow + 60;
  s.dnd = true;
  s.dnd_end_time = kNow + 30;
  std::string out;
  AppendStatusObject(out, s, true);
  EXPECT_EQ(out, R"({"status_text":"busy"})");
  out.clear();
  AppendStatusObject(out, s, true, StatusShape::kExtended);
  EXPECT_EQ(out, R"({"status_text":"busy","scheduled_end_time":1700000060,)"
                 R"("dnd":true,"dnd_end_time":1700000030})");
  store::UserStatus dnd_only;
  dnd_only.dnd = true;
  EXPECT_TRUE(StatusSaysNothing(dnd_only, true));
  EXPECT_FALSE(StatusSaysNothing(dnd_only, true, StatusShape::kExtended));
  out.clear();
  AppendStatusObject(out, dnd_only, true, StatusShape::kExtended);
  EXPECT_EQ(out, R"({"dnd":true})");
}

}  // namespace
}  // namespace presence::api
