// The user status API's parameter checks and JSON (issue #18), as Zulip's
// check_update_user_status and format_user_status behave.
#include "api/user_status.h"

#include <gtest/gtest.h>

namespace presence::api {
namespace {

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
  auto checked = CheckStatusUpdate(std::move(*read));
  if (!checked) return checked.error().msg;
  return "";
}

StatusUpdate Checked(std::string_view body) {
  RequestParams p = Params(body);
  auto read = ReadStatusParams(p, true);
  EXPECT_TRUE(read);
  auto checked = CheckStatusUpdate(std::move(*read));
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

}  // namespace
}  // namespace presence::api
