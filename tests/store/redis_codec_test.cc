// The Redis store's codec (redis_codec.h) and feed message decoding
// (redis_feed.h), without a server: fixed encoded strings written out by
// hand from the documented formats (so an encoder that drifts from what the
// Lua scripts read fails), round trips, and malformed input rejected.
#include "store/redis_codec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "store/redis_feed.h"

namespace presence::store {
namespace {

using namespace redis_codec;  // NOLINT(build/namespaces): the unit under test

RedisReply Str(std::string s) {
  return RedisReply{.type = RedisReply::Type::kString, .str = std::move(s)};
}

RedisReply Array(std::vector<RedisReply> elements) {
  return RedisReply{.type = RedisReply::Type::kArray,
                    .elements = std::move(elements)};
}

RedisReply Flat(std::vector<std::string> strings) {
  std::vector<RedisReply> out;
  for (std::string& s : strings) out.push_back(Str(std::move(s)));
  return Array(std::move(out));
}

// A user whose encoding is written out below.
UserRecord Ann() {
  UserRecord u{.id = 12,
               .realm_id = 3,
               .email = "Ann@Example.org",
               .full_name = "Ann \xC3\x96",  // "Ann Ö", 6 bytes
               .role = Role::kModerator,
               .is_bot = false,
               .is_active = true,
               .presence_enabled = true,
               .can_access_all_users = false,
               .date_joined = 1'700'000'000'000'001};
  for (std::size_t i = 0; i < u.api_key_hash.size(); ++i) {
    u.api_key_hash[i] = static_cast<std::uint8_t>(i == 0 ? 0xab : i);
  }
  return u;
}

const std::string kAnnHashHex =
    "ab0102030405060708090a0b0c0d0e0f"
    "101112131415161718191a1b1c1d1e1f";

// flags, then lower(email), id, realm, role, date_joined, hash, email, name.
const std::string kAnnEncoded =
    "0110"
    "15:ann@example.org"
    "2:12"
    "1:3" +
    std::string("9:moderator") + "16:1700000000000001" + "64:" + kAnnHashHex +
    "15:Ann@Example.org" + "6:Ann \xC3\x96";

TEST(RedisCodecTest, NetstringsHaveAKnownFormAndReadBack) {
  std::string out;
  PutNs(&out, "hello");
  PutNs(&out, "");
  PutNs(&out, std::string("a:\0b", 4));
  EXPECT_EQ(out, std::string("5:hello0:4:a:\0b", 15));
  NsReader r(out);
  EXPECT_EQ(r.Next(), "hello");
  EXPECT_EQ(r.Next(), "");
  EXPECT_EQ(r.Next(), std::string_view("a:\0b", 4));
  EXPECT_TRUE(r.done());
  EXPECT_EQ(r.Next(), std::nullopt);
}

TEST(RedisCodecTest, MalformedNetstringsAreRejected) {
  for (const char* bad : {"5:abc", ":abc", "x:a", "-1:a", "1a:b", "+1:a", "abc",
                          "99999999999999999999999:a"}) {
    NsReader r(bad);
    EXPECT_EQ(r.Next(), std::nullopt) << bad;
  }
}

TEST(RedisCodecTest, NumbersTimesAndFlags) {
  EXPECT_EQ(ParseInt("42"), 42);
  EXPECT_EQ(ParseInt("-7"), -7);
  EXPECT_EQ(ParseInt(""), std::nullopt);
  EXPECT_EQ(ParseInt("4 2"), std::nullopt);
  EXPECT_EQ(ParseInt("1e3"), std::nullopt);
  EXPECT_EQ(ParseInt("0x10"), std::nullopt);
  EXPECT_EQ(TimeText(kNoTime), "");
  EXPECT_EQ(TimeText(1'700'000'000'000'000), "1700000000000000");
  EXPECT_EQ(ParseTime(""), kNoTime);
  EXPECT_EQ(ParseTime("5"), 5);
  EXPECT_EQ(ParseTime("five"), std::nullopt);
  EXPECT_EQ(ParseFlag("1"), true);
  EXPECT_EQ(ParseFlag("0"), false);
  EXPECT_EQ(ParseFlag("2"), std::nullopt);
  EXPECT_EQ(ParseFlag("10"), std::nullopt);
}

TEST(RedisCodecTest, UserHasAKnownEncodingAndRoundTrips) {
  EXPECT_EQ(EncodeUser(Ann()), kAnnEncoded);
  EXPECT_EQ(DecodeUser(kAnnEncoded), Ann());

  UserRecord other{.id = 9'007'199'254'740'993,  // above 2^53
                   .realm_id = 1,
                   .email = "",
                   .full_name = "x,y|z:1",
                   .role = Role::kGuest,
                   .is_bot = true,
                   .is_active = false,
                   .presence_enabled = false,
                   .can_access_all_users = true,
                   .date_joined = -5};
  other.api_key_hash.fill(0xff);
  EXPECT_EQ(DecodeUser(EncodeUser(other)), other);
}

// Issue #18: a user status follows the eight fields as six netstrings;
// the extensions' three follow only when one is set; netstrings after
// those (later versions) are skipped, anything else is still rejected.
TEST(RedisCodecTest, Issue18_UserStatusFollowsTheUserFields) {
  UserRecord ann = Ann();
  ann.status = UserStatus{.status_text = "on: leave,",
                          .emoji_name = "car",
                          .emoji_code = "1f697",
                          .reaction_type = "unicode_emoji",
                          .timestamp = 17,
                          .passed = 3};
  const std::string encoded = EncodeUser(ann);
  EXPECT_EQ(encoded,
            kAnnEncoded + "10:on: leave,3:car5:1f69713:unicode_emoji2:171:3");
  EXPECT_EQ(DecodeUser(encoded), ann);
  EXPECT_EQ(DecodeUser(encoded + "x"), std::nullopt);
  EXPECT_EQ(DecodeUser(encoded + "10:1700000000"), std::nullopt);  // 1 of 3
  UserRecord ext = ann;
  ext.status->scheduled_end_time = 1'700'000'060;
  ext.status->dnd = true;
  const std::string ext_encoded = EncodeUser(ext);
  EXPECT_EQ(ext_encoded, encoded + "10:17000000601:11:0");
  EXPECT_EQ(DecodeUser(ext_encoded), ext);
  EXPECT_EQ(DecodeUser(ext_encoded + "1:z"), ext);             // a later field
  EXPECT_EQ(DecodeUser(encoded + "1:01:x1:0"), std::nullopt);  // dnd not 0/1
  EXPECT_EQ(DecodeUser(kAnnEncoded + "2:hi3:car"), std::nullopt);  // short
  EXPECT_EQ(DecodeUser(kAnnEncoded + "0:0:0:13:unicode_emoji1:x1:0"),
            std::nullopt);  // a timestamp that is not a number
}

TEST(RedisCodecTest, MalformedUsersAreRejected) {
  const std::string rest = kAnnEncoded.substr(4);
  const std::string bad[] = {
      "",
      "011",
      "2110" + rest,                                  // a flag that is not 0/1
      kAnnEncoded + "x",                              // trailing bytes
      kAnnEncoded + "0:",                             // a ninth field
      kAnnEncoded.substr(0, kAnnEncoded.size() - 1),  // a short name
      "0110"
      "15:ann@example.org"
      "2:1x"
      "1:3"
      "9:moderator"
      "1:0"
      "64:" +
          kAnnHashHex + "0:0:",  // a non-decimal id
      "0110"
      "0:"
      "1:1"
      "1:3"
      "4:king"
      "1:0"
      "64:" +
          kAnnHashHex + "0:0:",  // an unknown role
      "0110"
      "0:"
      "1:1"
      "1:3"
      "6:member"
      "1:0"
      "2:ab"
      "0:0:",  // short hash
  };
  for (const std::string& s : bad) {
    EXPECT_EQ(DecodeUser(s), std::nullopt) << s;
  }
}

TEST(RedisCodecTest, RowsHaveAKnownEncodingAndRoundTrip) {
  const PresenceRecord full{.user_id = 4,
                            .realm_id = 2,
                            .last_connected = 1'700'000'000'000'000,
                            .last_active = 1'700'000'000'000'001,
                            .last_update_id = 42};
  EXPECT_EQ(EncodeRowValue(full), "1700000000000000,1700000000000001,42");
  EXPECT_EQ(DecodeRowValue(4, 2, "1700000000000000,1700000000000001,42"), full);
  const PresenceRecord empty{.user_id = 5,
                             .realm_id = 2,
                             .last_connected = kNoTime,
                             .last_active = kNoTime,
                             .last_update_id = 7};
  EXPECT_EQ(EncodeRowValue(empty), ",,7");
  EXPECT_EQ(DecodeRowValue(5, 2, ",,7"), empty);
  for (const char* bad :
       {"", "1,2", "1,2,", "a,2,3", "1,b,3", "1,2,3,4", "1;2;3", ",,"}) {
    EXPECT_EQ(DecodeRowValue(1, 1, bad), std::nullopt) << bad;
  }
}

TEST(RedisCodecTest, ClientRowsHaveAKnownEncodingAndRoundTrip) {
  const ClientPresenceRecord web{.realm_id = 2,
                                 .user_id = 4,
                                 .client = "website",
                                 .last_connected = 10,
                                 .last_active = kNoTime,
                                 .last_update_id = 3};
  const ClientPresenceRecord mobile{.realm_id = 2,
                                    .user_id = 4,
                                    .client = "ZulipMobile",
                                    .last_connected = 11,
                                    .last_active = 12,
                                    .last_update_id = 4};
  const ClientPresenceRecord* rows[] = {&web, &mobile};
  const std::string encoded = "7:website2:100:1:311:ZulipMobile2:112:121:4";
  EXPECT_EQ(EncodeClientRows(rows), encoded);
  auto decoded = DecodeClientRows(2, 4, encoded);
  ASSERT_TRUE(decoded.has_value());
  EXPECT_THAT(*decoded, ::testing::ElementsAre(web, mobile));
  EXPECT_THAT(DecodeClientRows(2, 4, "").value_or(
                  std::vector<ClientPresenceRecord>{web}),
              ::testing::IsEmpty());
  for (const char* bad : {"7:website", "7:website2:100:1:x", "7:website2:10",
                          "7:website2:1a0:1:3"}) {
    EXPECT_EQ(DecodeClientRows(2, 4, bad), std::nullopt) << bad;
  }
}

TEST(RedisCodecTest, IdListsAreSortedUniqueAndStrict) {
  EXPECT_EQ(EncodeIdList({3, 1, 2, 3}), "1,2,3");
  EXPECT_EQ(EncodeIdList({}), "");
  EXPECT_EQ(DecodeIdList("1,2,3"), (std::vector<UserId>{1, 2, 3}));
  EXPECT_EQ(DecodeIdList(""), std::vector<UserId>{});
  for (const char* bad : {"1,", ",1", "1,,2", "a", "1;2", " 1"}) {
    EXPECT_EQ(DecodeIdList(bad), std::nullopt) << bad;
  }
}

TEST(RedisCodecTest, RealmFieldAndMetaHashDecode) {
  const RealmRecord acme{.id = 7,
                         .subdomain = "acme",
                         .name = "Acme, Inc.",
                         .presence_disabled = false,
                         .deactivated = true,
                         .date_created = 1'600'000'000'000'000,
                         .last_update_id = 41,
                         .reserved_update_id = 50};
  const std::string field =
      "1:7"
      "4:acme"
      "10:Acme, Inc."
      "1:0"
      "1:1"
      "16:1600000000000000"
      "2:41"
      "2:50";
  EXPECT_EQ(DecodeRealmField(field), acme);
  EXPECT_EQ(DecodeRealmField(field + "1:0"), std::nullopt);
  EXPECT_EQ(DecodeRealmField(field.substr(0, field.size() - 4)), std::nullopt);
  EXPECT_EQ(DecodeRealmField("1:7"
                             "4:acme"
                             "10:Acme, Inc."
                             "1:2"
                             "1:1"
                             "16:1600000000000000"
                             "2:41"
                             "2:50"),
            std::nullopt);

  std::vector<std::string> meta = {"subdomain",
                                   "acme",
                                   "name",
                                   "Acme, Inc.",
                                   "presence_disabled",
                                   "0",
                                   "deactivated",
                                   "1",
                                   "date_created",
                                   "1600000000000000",
                                   "seq",
                                   "41",
                                   "reserved",
                                   "50",
                                   "log",
                                   "99"};
  EXPECT_EQ(DecodeMeta(7, Flat(meta)), acme);
  std::vector<std::string> no_seq(meta.begin(), meta.end());
  no_seq[10] = "sequence";
  EXPECT_EQ(DecodeMeta(7, Flat(no_seq)), std::nullopt);
  meta.pop_back();  // odd length
  EXPECT_EQ(DecodeMeta(7, Flat(meta)), std::nullopt);
}

TEST(RedisCodecTest, RealmStateOfAReadRealmReply) {
  UserRecord ann = Ann();
  ann.realm_id = 5;
  UserRecord bob = Ann();
  bob.id = 3;
  bob.realm_id = 5;
  bob.email = "bob@example.org";
  const RedisReply reply = Array({
      Flat({"subdomain", "z", "name", "Z", "presence_disabled", "0",
            "deactivated", "0", "date_created", "1", "seq", "8", "reserved",
            "0", "log", "11"}),
      Flat({EncodeUser(ann), EncodeUser(bob)}),
      Flat({"12", "1,2,8", "3", ",,6"}),
      Flat({"12", "3", "3", ""}),
      // Client rows: user 12 has two (stored by name), user 3 one.
      Flat({"12", "11:ZulipMobile1:12:101:97:website1:30:1:8", "3",
            "4:curl0:0:1:5"}),
  });
  auto state = DecodeRealmState(5, reply);
  ASSERT_TRUE(state.has_value()) << state.error().detail();
  EXPECT_EQ(state->realm.id, 5);
  EXPECT_EQ(state->realm.last_update_id, 8);
  EXPECT_EQ(state->seq, 11);
  EXPECT_THAT(state->users, ::testing::ElementsAre(bob, ann));  // by id
  EXPECT_THAT(state->rows,
              ::testing::ElementsAre(PresenceRecord{.user_id = 3,
                                                    .realm_id = 5,
                                                    .last_connected = kNoTime,
                                                    .last_active = kNoTime,
                                                    .last_update_id = 6},
                                     PresenceRecord{.user_id = 12,
                                                    .realm_id = 5,
                                                    .last_connected = 1,
                                                    .last_active = 2,
                                                    .last_update_id = 8}));
  EXPECT_THAT(state->access,
              ::testing::ElementsAre(
                  AccessRecord{.realm_id = 5, .viewer = 3, .visible = {}},
                  AccessRecord{.realm_id = 5, .viewer = 12, .visible = {3}}));
  // By (user, client name in byte order).
  EXPECT_THAT(
      state->clients,
      ::testing::ElementsAre(ClientPresenceRecord{.realm_id = 5,
                                                  .user_id = 3,
                                                  .client = "curl",
                                                  .last_connected = kNoTime,
                                                  .last_active = kNoTime,
                                                  .last_update_id = 5},
                             ClientPresenceRecord{.realm_id = 5,
                                                  .user_id = 12,
                                                  .client = "ZulipMobile",
                                                  .last_connected = 1,
                                                  .last_active = 10,
                                                  .last_update_id = 9},
                             ClientPresenceRecord{.realm_id = 5,
                                                  .user_id = 12,
                                                  .client = "website",
                                                  .last_connected = 3,
                                                  .last_active = kNoTime,
                                                  .last_update_id = 8}));

  RedisReply bad_clients = reply;
  bad_clients.elements[4].elements[1].str = "7:website1:3";
  auto no_clients = DecodeRealmState(5, bad_clients);
  ASSERT_FALSE(no_clients.has_value());
  EXPECT_EQ(no_clients.error().detail(), "realm 5: malformed client rows");

  RedisReply bad_user = reply;
  bad_user.elements[1].elements[0].str = "0110";
  auto failed = DecodeRealmState(5, bad_user);
  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error().code(), Errc::kCorrupt);
  EXPECT_EQ(failed.error().detail(), "realm 5: malformed user");

  RedisReply short_reply = reply;
  short_reply.elements.pop_back();
  failed = DecodeRealmState(5, short_reply);
  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error().detail(), "realm 5: bad read_realm reply");
}

// Feed messages as the scripts write them (lua/report.lua, put_user.lua,
// set_access.lua, create_realm.lua).
TEST(RedisFeedCodecTest, DecodesMessagesAsTheScriptsWriteThem) {
  auto report = DecodeFeedEntry(
      "r1:7s2:10P22:12,1700000000000000,,5d1:1f1:0t16:1700000000000000");
  ASSERT_TRUE(report.has_value());
  EXPECT_EQ(
      *report,
      (FeedEntry{.realm_id = 7,
                 .seq = 10,
                 .row = PresenceRecord{.user_id = 12,
                                       .realm_id = 7,
                                       .last_connected = 1'700'000'000'000'000,
                                       .last_active = kNoTime,
                                       .last_update_id = 5},
                 .event_due = true,
                 .forced = false,
                 .written_at = 1'700'000'000'000'000}));

  // A report that wrote only its client's row (report.lua): no row, the
  // user's client rows, client_event_due.
  auto clients =
      DecodeFeedEntry("r1:7s2:11C27:2:1211:ZulipMobile1:51:51:6c1:1t1:5");
  ASSERT_TRUE(clients.has_value());
  EXPECT_EQ(
      *clients,
      (FeedEntry{
          .realm_id = 7,
          .seq = 11,
          .written_at = 5,
          .client_user = 12,
          .clients = std::vector<ClientPresenceRecord>{{.realm_id = 7,
                                                        .user_id = 12,
                                                        .client = "ZulipMobile",
                                                        .last_connected = 5,
                                                        .last_active = 5,
                                                        .last_update_id = 6}},
          .client_event_due = true}));

  auto user = DecodeFeedEntry("r1:3s1:4U" + std::to_string(kAnnEncoded.size()) +
                              ":" + kAnnEncoded);
  ASSERT_TRUE(user.has_value());
  EXPECT_EQ(*user, (FeedEntry{.realm_id = 3, .seq = 4, .user = Ann()}));

  auto access = DecodeFeedEntry("r1:7s1:3A5:5|1,2");
  ASSERT_TRUE(access.has_value());
  EXPECT_EQ(*access,
            (FeedEntry{.realm_id = 7,
                       .seq = 3,
                       .access = AccessRecord{
                           .realm_id = 7, .viewer = 5, .visible = {1, 2}}}));
  auto cleared = DecodeFeedEntry("r1:7s1:4A2:5|");
  ASSERT_TRUE(cleared.has_value());
  EXPECT_EQ(cleared->access->visible, std::vector<UserId>{});

  auto realm = DecodeFeedEntry(
      "r1:7s1:0R43:1:74:acme1:A1:01:016:16000000000000001:01:0");
  ASSERT_TRUE(realm.has_value());
  EXPECT_EQ(
      *realm,
      (FeedEntry{.realm_id = 7,
                 .seq = 0,
                 .realm = RealmRecord{.id = 7,
                                      .subdomain = "acme",
                                      .name = "A",
                                      .date_created = 1'600'000'000'000'000}}));
}

TEST(RedisFeedCodecTest, RejectsMalformedMessages) {
  for (const char* bad : {"",
                          "r",
                          "r1:",
                          "r1:1",
                          "r1:1s",
                          "r1:xs1:0",
                          "r1:1s1:0P3:1,2",
                          "r1:1s1:0d1:2",
                          "r1:1s1:0Z1:0",
                          "r1:1s1:0U4:1111",
                          "r9:1s1:0",
                          "s1:0",
                          "r1:1",
                          "r1:1s1:0A3:5,1",
                          "r1:1s1:0A3:x|1",
                          "r1:1s1:0t1:x",
                          "r1:1s1:0R3:1:7",
                          "r1:1s1:0C2:x:",
                          "r1:1s1:0C10:2:121:a1:1",
                          "r1:1s1:0c1:2"}) {
    EXPECT_EQ(DecodeFeedEntry(bad), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace presence::store
