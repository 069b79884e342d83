#include "core/realm.h"

#include <gtest/gtest.h>

#include <string>

#include "core/types.h"

namespace presence {
namespace {

store::UserRecord User(UserId id, std::string email, std::string name) {
  store::UserRecord u;
  u.id = id;
  u.realm_id = 1;
  u.email = std::move(email);
  u.full_name = std::move(name);
  u.api_key_hash = Sha256("key" + std::to_string(id));
  return u;
}

// Reservations always granted, and counted.
class CountingReserver : public UpdateIdReserver {
 public:
  Status ReserveUpdateIds(RealmId, UpdateId up_to) override {
    ++calls;
    reserved = up_to;
    return {};
  }
  int calls = 0;
  UpdateId reserved = 0;
};

class RealmTest : public ::testing::Test {
 protected:
  CountingReserver ids_;
  Realm realm_{store::RealmRecord{.id = 1, .subdomain = "r", .name = "R"},
               &ids_, /*fresh=*/true};
};

TEST_F(RealmTest, AWriteRunningPastTheReservationReservesAhead) {
  store::UserRecord u = User(7, "a@example.com", "A");
  realm_.AddMember(u);
  auto change = realm_.RecordReport(7, SecondsToMicros(1'700'000'000),
                                    ReportStatus::kActive);
  ASSERT_TRUE(change);
  ASSERT_TRUE(change->has_value());
  EXPECT_EQ((*change)->update_id, 1);
  EXPECT_EQ(ids_.calls, 1);
  EXPECT_EQ(ids_.reserved, Realm::kReserveAhead);
}

TEST_F(RealmTest, MembersKeepTheirNames) {
  for (int i = 0; i < 5000; ++i) {
    realm_.AddMember(User(100 + i, "User" + std::to_string(i) + "@Example.com",
                          "Name " + std::to_string(i)));
  }
  for (int i = 0; i < 5000; i += 7) {
    auto m = realm_.MemberById(100 + i);
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->email(), "User" + std::to_string(i) + "@Example.com");
    EXPECT_EQ(m->full_name(), "Name " + std::to_string(i));
    EXPECT_EQ(realm_.FindIdByEmail("user" + std::to_string(i) + "@EXAMPLE.COM"),
              100 + i);
  }
  EXPECT_FALSE(realm_.MemberById(99).has_value());
  EXPECT_FALSE(realm_.FindIdByEmail("user5000@example.com").has_value());
}

TEST_F(RealmTest, ACopiedMemberKeepsItsNameAcrossARename) {
  realm_.AddMember(User(7, "a@x.org", "Old Name"));
  const Member before = *realm_.MemberById(7);
  auto renamed = User(7, "a@x.org", "A New, Longer Name");
  ASSERT_TRUE(realm_.UpdateMember(renamed));
  EXPECT_EQ(before.full_name(), "Old Name");  // the copy's record is intact
  EXPECT_EQ(before.email(), "a@x.org");
  const Member after = *realm_.MemberById(7);
  EXPECT_EQ(after.full_name(), "A New, Longer Name");
  EXPECT_EQ(after.email(), "a@x.org");
  EXPECT_EQ(realm_.UserRecordOf(7)->full_name, "A New, Longer Name");
  EXPECT_EQ(realm_.FindIdByEmail("A@X.ORG"), 7);
}

TEST_F(RealmTest, LongNamesAreKeptWhole) {
  // Beyond 16-bit sizes: nothing may be cut off, whatever the store holds.
  const std::string name(70'000, 'n');
  const std::string email = std::string(70'000, 'e') + "@x.org";
  realm_.AddMember(User(1, email, name));
  realm_.AddMember(User(2, "b@x.org", ""));
  auto r = realm_.UserRecordOf(1);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->full_name, name);
  EXPECT_EQ(r->email, email);
  EXPECT_EQ(realm_.FindIdByEmail(email), 1);
  EXPECT_EQ(realm_.MemberById(2)->full_name(), "");
  EXPECT_EQ(realm_.MemberById(2)->email(), "b@x.org");
}

TEST_F(RealmTest, Issue17_NamesOfEverySizeAroundTheSizeBytesBoundaries) {
  // Sizes are varints in the arena: one byte below 128, two below 16,384.
  const std::size_t sizes[] = {0, 1, 127, 128, 129, 16383, 16384, 16385};
  UserId id = 1;
  for (std::size_t e : sizes) {
    for (std::size_t n : sizes) {
      const std::string email =
          std::string(e, 'a' + id % 26) + "@x" + std::to_string(id) + ".org";
      const std::string name(n, 'A' + id % 26);
      realm_.AddMember(User(id, email, name));
      const Member m = *realm_.MemberById(id);
      EXPECT_EQ(m.email(), email) << e << " " << n;
      EXPECT_EQ(m.full_name(), name) << e << " " << n;
      EXPECT_EQ(realm_.FindIdByEmail(email), id);
      ++id;
    }
  }
}

TEST(MemberTest, ADefaultMemberHasEmptyStrings) {
  Member m;
  EXPECT_EQ(m.email(), "");
  EXPECT_EQ(m.full_name(), "");
}

}  // namespace
}  // namespace presence
