// UserStatus (src/client/user_status.h): merging snapshots and user_status
// events as Zulip's clients do, the extension fields, and the local
// honouring of their end times.
#include "client/user_status.h"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

namespace presence::client {
namespace {

boost::json::object Obj(std::string_view json) {
  return boost::json::parse(json).as_object();
}

TEST(UserStatusTest, SnapshotEntryGivesTheWholeStatus) {
  auto s = UserStatus::FromJson(
      Obj(R"({"status_text":"In a meeting","emoji_name":"calendar",)"
          R"("emoji_code":"1f4c5","reaction_type":"unicode_emoji",)"
          R"("scheduled_end_time":1700003600,"dnd":true,)"
          R"("dnd_end_time":1700007200})"));
  EXPECT_EQ(s.status_text, "In a meeting");
  EXPECT_EQ(s.emoji_name, "calendar");
  EXPECT_EQ(s.emoji_code, "1f4c5");
  EXPECT_EQ(s.reaction_type, "unicode_emoji");
  EXPECT_FALSE(s.away);
  EXPECT_EQ(s.scheduled_end_time, 1700003600);
  EXPECT_TRUE(s.dnd);
  EXPECT_EQ(s.dnd_end_time, 1700007200);
}

TEST(UserStatusTest, EventFieldsThatAreAbsentStayUnchanged) {
  auto s = UserStatus::FromJson(
      Obj(R"({"status_text":"Lunch","emoji_name":"pizza",)"
          R"("emoji_code":"1f355","reaction_type":"unicode_emoji",)"
          R"("scheduled_end_time":1700003600,"dnd":true})"));
  s.Apply(Obj(R"({"type":"user_status","user_id":5,"away":true})"));
  EXPECT_TRUE(s.away);
  EXPECT_EQ(s.status_text, "Lunch");
  EXPECT_EQ(s.emoji_name, "pizza");
  EXPECT_EQ(s.scheduled_end_time, 1700003600);
  EXPECT_TRUE(s.dnd);
  s.Apply(Obj(R"({"type":"user_status","user_id":5,"status_text":"Back"})"));
  EXPECT_EQ(s.status_text, "Back");
  EXPECT_EQ(s.emoji_code, "1f355");
}

TEST(UserStatusTest, EmptyEmojiNameClearsTheEmoji) {
  auto s =
      UserStatus::FromJson(Obj(R"({"emoji_name":"zulip","emoji_code":"zulip",)"
                               R"("reaction_type":"zulip_extra_emoji"})"));
  EXPECT_TRUE(s.HasEmoji());
  // Zulip's clear: every field, emoji type unicode_emoji.
  s.Apply(Obj(R"({"status_text":"","emoji_name":"","emoji_code":"",)"
              R"("reaction_type":"unicode_emoji"})"));
  EXPECT_FALSE(s.HasEmoji());
  EXPECT_EQ(s.emoji_code, "");
  EXPECT_EQ(s.reaction_type, "");
  EXPECT_TRUE(s.Empty());
}

TEST(UserStatusTest, ZeroEndTimesMeanNoEnd) {
  auto s = UserStatus::FromJson(
      Obj(R"({"status_text":"Away","scheduled_end_time":1700003600,)"
          R"("dnd":true,"dnd_end_time":1700007200})"));
  s.Apply(Obj(R"({"scheduled_end_time":0})"));
  EXPECT_EQ(s.scheduled_end_time, std::nullopt);
  s.Apply(Obj(R"({"dnd_end_time":0})"));
  EXPECT_TRUE(s.dnd);
  EXPECT_EQ(s.dnd_end_time, std::nullopt);
}

TEST(UserStatusTest, DndOffDropsItsEnd) {
  auto s = UserStatus::FromJson(Obj(R"({"dnd":true,"dnd_end_time":100})"));
  // The server's event at dnd_end_time.
  s.Apply(Obj(R"({"type":"user_status","user_id":1,"dnd":false,)"
              R"("dnd_end_time":0})"));
  EXPECT_FALSE(s.dnd);
  EXPECT_EQ(s.dnd_end_time, std::nullopt);
  EXPECT_TRUE(s.Empty());
}

TEST(UserStatusTest, EndTimesAreHonouredLocally) {
  auto s = UserStatus::FromJson(
      Obj(R"({"status_text":"Meeting","scheduled_end_time":1000,)"
          R"("dnd":true,"dnd_end_time":2000})"));
  EXPECT_TRUE(s.TextShownAt(999.5));
  EXPECT_FALSE(s.TextShownAt(1000));
  EXPECT_TRUE(s.DoNotDisturbAt(1999));
  EXPECT_FALSE(s.DoNotDisturbAt(2000));
  s.Apply(Obj(R"({"dnd_end_time":0})"));
  EXPECT_TRUE(s.DoNotDisturbAt(1e12));  // no end
}

TEST(UserStatusTest, WrongTypesAreIgnored) {
  auto s = UserStatus::FromJson(Obj(R"({"status_text":"Hi","dnd":true})"));
  s.Apply(Obj(R"({"status_text":5,"dnd":"no","scheduled_end_time":"x",)"
              R"("away":1})"));
  EXPECT_EQ(s.status_text, "Hi");
  EXPECT_TRUE(s.dnd);
  EXPECT_FALSE(s.away);
  EXPECT_EQ(s.scheduled_end_time, std::nullopt);
}

}  // namespace
}  // namespace presence::client
