#include "util/crypto.h"

#include <gtest/gtest.h>

#include <cctype>
#include <set>
#include <string>

namespace presence {
namespace {

TEST(CryptoTest, Sha256OfKnownInput) {
  EXPECT_EQ(HexEncode(Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(CryptoTest, RandomAlnumHasLengthAndAlphabet) {
  std::set<std::string> seen;
  for (int i = 0; i < 50; ++i) {
    std::string k = RandomAlnum(32);
    ASSERT_EQ(k.size(), 32u);
    for (char c : k) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)));
    seen.insert(k);
  }
  EXPECT_EQ(seen.size(), 50u);
}

TEST(CryptoTest, ConstantTimeEqualComparesContent) {
  EXPECT_TRUE(ConstantTimeEqual("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEqual("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEqual("abc", "abcd"));
}

TEST(CryptoTest, Base64RoundTripsAndRejectsGarbage) {
  for (std::string s : {"", "a", "ab", "abc", "user@example.com:KEY123"}) {
    auto enc = Base64Encode(s);
    auto dec = Base64Decode(enc);
    ASSERT_TRUE(dec.has_value()) << enc;
    EXPECT_EQ(*dec, s);
  }
  EXPECT_FALSE(Base64Decode("abc").has_value());
  EXPECT_FALSE(Base64Decode("a*c=").has_value());
}

TEST(CryptoTest, HexDigestRoundTrips) {
  Digest d = Sha256("x");
  auto back = HexDecodeDigest(HexEncode(d));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, d);
  EXPECT_FALSE(HexDecodeDigest("zz").has_value());
  // Upper case decodes too; one non-hex character anywhere is refused.
  std::string upper = HexEncode(d);
  for (char& c : upper) c = static_cast<char>(std::toupper(c));
  EXPECT_EQ(HexDecodeDigest(upper), d);
  for (std::size_t at : {0u, 31u, 63u}) {
    for (char bad : {'g', 'G', ' ', '\xff', '/', ':', '@', '`'}) {
      std::string hex = HexEncode(d);
      hex[at] = bad;
      EXPECT_FALSE(HexDecodeDigest(hex).has_value()) << at << " " << bad;
    }
  }
}

}  // namespace
}  // namespace presence
