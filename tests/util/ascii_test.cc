#include "util/ascii.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace presence {
namespace {

// Every byte value, in order: folding must touch exactly 'A'..'Z'.
std::string AllBytes() {
  std::string s;
  for (int b = 0; b < 256; ++b) s.push_back(static_cast<char>(b));
  return s;
}

TEST(AsciiTest, LowerFoldsOnlyTheAsciiCapitals) {
  const std::string all = AllBytes();
  const std::string lower = AsciiLower(all);
  ASSERT_EQ(lower.size(), 256u);
  for (int b = 0; b < 256; ++b) {
    const int want = (b >= 0x41 && b <= 0x5A) ? b + 0x20 : b;
    EXPECT_EQ(static_cast<unsigned char>(lower[b]), want) << "byte " << b;
  }
}

TEST(AsciiTest, LowerKnownAnswers) {
  EXPECT_EQ(AsciiLower(""), "");
  EXPECT_EQ(AsciiLower("Iago@Zulip.COM"), "iago@zulip.com");
  EXPECT_EQ(AsciiLower("[@`{"), "[@`{");  // neighbours of 'A'..'Z', 'a'..'z'
  EXPECT_EQ(AsciiLower(std::string_view("A\0B", 3)),
            std::string_view("a\0b", 3));
}

TEST(AsciiTest, LowerLeavesNonAsciiBytesAlone) {
  // "ÄÖÜ@É.de" in UTF-8: only the ASCII letters change.
  EXPECT_EQ(AsciiLower("\xC3\x84\xC3\x96\xC3\x9C@\xC3\x89.DE"),
            "\xC3\x84\xC3\x96\xC3\x9C@\xC3\x89.de");
  // U+0130 (capital I with dot) is not folded to 'i'.
  EXPECT_EQ(AsciiLower("\xC4\xB0"), "\xC4\xB0");
  EXPECT_FALSE(EqualsIgnoreCase("\xC3\x84", "\xC3\xA4"));  // Ä vs ä
  EXPECT_FALSE(EqualsIgnoreCase("\xC4\xB0", "i"));
}

TEST(AsciiTest, EqualsIgnoreCaseKnownAnswers) {
  EXPECT_TRUE(EqualsIgnoreCase("", ""));
  EXPECT_TRUE(EqualsIgnoreCase("Basic", "basic"));
  EXPECT_TRUE(EqualsIgnoreCase("HAMLET@zulip.com", "hamlet@ZULIP.com"));
  EXPECT_FALSE(EqualsIgnoreCase("basic", "basi"));
  EXPECT_FALSE(EqualsIgnoreCase("basic", "basics"));
  EXPECT_FALSE(EqualsIgnoreCase("a", "b"));
  // '@' (0x40) and '`' (0x60), '[' (0x5B) and '{' (0x7B) differ by 0x20 but
  // are not letters.
  EXPECT_FALSE(EqualsIgnoreCase("@", "`"));
  EXPECT_FALSE(EqualsIgnoreCase("[", "{"));
  // Bytes after an embedded NUL still count.
  EXPECT_FALSE(EqualsIgnoreCase(std::string_view("a\0b", 3),
                                std::string_view("a\0c", 3)));
}

TEST(AsciiTest, EqualsIgnoreCaseAgreesWithLowerOnEveryBytePair) {
  for (int a = 0; a < 256; ++a) {
    for (int b = 0; b < 256; ++b) {
      const std::string x(1, static_cast<char>(a));
      const std::string y(1, static_cast<char>(b));
      ASSERT_EQ(EqualsIgnoreCase(x, y), AsciiLower(x) == AsciiLower(y))
          << a << " " << b;
    }
  }
}

TEST(AsciiTest, HashIgnoreCaseIsFnv1aOfTheLowercase) {
  // Published 64-bit FNV-1a test vectors (offset basis, "a", "foobar").
  EXPECT_EQ(HashIgnoreCase(""), std::size_t{0xcbf29ce484222325ull});
  EXPECT_EQ(HashIgnoreCase("a"), std::size_t{0xaf63dc4c8601ec8cull});
  EXPECT_EQ(HashIgnoreCase("foobar"), std::size_t{0x85944171f73967e8ull});
  // The same values for the capitalised spellings.
  EXPECT_EQ(HashIgnoreCase("A"), std::size_t{0xaf63dc4c8601ec8cull});
  EXPECT_EQ(HashIgnoreCase("FooBAR"), std::size_t{0x85944171f73967e8ull});
}

TEST(AsciiTest, HashAgreesWithEquality) {
  const std::string_view same[][2] = {
      {"iago@zulip.com", "IAGO@ZULIP.COM"},
      {"Hamlet@Example.org", "hAMLET@eXAMPLE.ORG"},
      {"\xC3\x84x@zulip.com", "\xC3\x84X@ZULIP.com"},
  };
  for (const auto& p : same) {
    ASSERT_TRUE(EqualsIgnoreCase(p[0], p[1])) << p[0];
    EXPECT_EQ(HashIgnoreCase(p[0]), HashIgnoreCase(p[1])) << p[0];
  }
  // Strings that differ in a non-letter, or in a non-ASCII byte, are not
  // equal, and (for these inputs) do not collide either.
  const std::string_view different[][2] = {
      {"@", "`"},
      {"\xC3\x84", "\xC3\xA4"},
      {"iago@zulip.com", "iago@zulip.co"},
  };
  for (const auto& p : different) {
    ASSERT_FALSE(EqualsIgnoreCase(p[0], p[1])) << p[0];
    EXPECT_NE(HashIgnoreCase(p[0]), HashIgnoreCase(p[1])) << p[0];
  }
}

TEST(AsciiTest, UsableAtCompileTime) {
  static_assert(EqualsIgnoreCase("Content-Disposition", "content-disposition"));
  static_assert(!EqualsIgnoreCase("x", "y"));
  static_assert(HashIgnoreCase("Z") == HashIgnoreCase("z"));
  static_assert(AsciiLower('Q') == 'q' && AsciiLower('\xC4') == '\xC4');
}

}  // namespace
}  // namespace presence
