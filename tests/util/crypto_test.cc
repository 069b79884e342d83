#include "util/crypto.h"

#include <gtest/gtest.h>

#include <cctype>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace presence {
namespace {

// FIPS 180-2, appendix B: one-block and two-block messages, plus the empty
// message (its digest is the widely published e3b0c442... value).
TEST(CryptoTest, Sha256MatchesFips180Vectors) {
  EXPECT_EQ(HexEncode(Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(HexEncode(Sha256("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(HexEncode(Sha256(
                "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(CryptoTest, Sha256DigestBytesAreBigEndianWords) {
  // The raw bytes, not only their hex rendering: the first and last bytes of
  // SHA-256("abc").
  Digest d = Sha256("abc");
  EXPECT_EQ(d.front(), 0xba);
  EXPECT_EQ(d.back(), 0xad);
}

constexpr std::string_view kAlnum =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

TEST(CryptoTest, RandomAlnumHasLengthAndAlphabet) {
  EXPECT_EQ(RandomAlnum(0), "");
  EXPECT_EQ(RandomAlnum(1).size(), 1u);
  std::set<std::string> seen;
  std::set<char> chars;
  for (int i = 0; i < 50; ++i) {
    std::string k = RandomAlnum(32);
    ASSERT_EQ(k.size(), 32u);
    for (char c : k) {
      EXPECT_NE(kAlnum.find(c), std::string_view::npos)
          << "not in [A-Za-z0-9]: " << static_cast<int>(c);
      chars.insert(c);
    }
    seen.insert(k);
  }
  EXPECT_EQ(seen.size(), 50u);
  // 1600 uniform draws over 62 symbols miss one with probability ~1e-9: a
  // generator that never yields some letters (say, only hex) fails here.
  EXPECT_EQ(chars.size(), kAlnum.size());
}

TEST(CryptoTest, ConstantTimeEqualComparesContent) {
  EXPECT_TRUE(ConstantTimeEqual("abc", "abc"));
  EXPECT_TRUE(ConstantTimeEqual("", ""));
  EXPECT_FALSE(ConstantTimeEqual("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEqual("abc", "xbc"));
  EXPECT_FALSE(ConstantTimeEqual("abc", "abcd"));
  EXPECT_FALSE(ConstantTimeEqual("abc", ""));
  EXPECT_FALSE(ConstantTimeEqual("", "a"));
  // A difference only past an embedded NUL still counts.
  EXPECT_FALSE(ConstantTimeEqual(std::string_view("a\0b", 3),
                                 std::string_view("a\0c", 3)));
}

TEST(CryptoTest, ConstantTimeEqualComparesDigests) {
  Digest a = Sha256("abc");
  Digest b = Sha256("abc");
  EXPECT_TRUE(ConstantTimeEqual(a, b));
  for (std::size_t at : {0u, 17u, 31u}) {
    Digest c = a;
    c[at] ^= 0x01;
    EXPECT_FALSE(ConstantTimeEqual(a, c)) << at;
  }
}

// RFC 4648, section 10.
struct Base64Vector {
  std::string_view plain;
  std::string_view encoded;
};
constexpr Base64Vector kRfc4648[] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

TEST(CryptoTest, Base64EncodeMatchesRfc4648Vectors) {
  for (const auto& v : kRfc4648) {
    EXPECT_EQ(Base64Encode(v.plain), v.encoded) << v.plain;
  }
}

TEST(CryptoTest, Base64DecodeMatchesRfc4648Vectors) {
  for (const auto& v : kRfc4648) {
    auto dec = Base64Decode(v.encoded);
    ASSERT_TRUE(dec.has_value()) << v.encoded;
    EXPECT_EQ(*dec, v.plain) << v.encoded;
  }
}

TEST(CryptoTest, Base64UsesTheStandardAlphabetNotUrlSafe) {
  // 0xfb 0xff 0xbf encodes to the two last symbols of the standard alphabet.
  EXPECT_EQ(Base64Encode("\xfb\xff\xbf"), "+/+/");
  EXPECT_EQ(Base64Decode("+/+/"), std::string("\xfb\xff\xbf"));
  EXPECT_FALSE(Base64Decode("-_-_").has_value());
  // Binary bytes, NUL included, survive.
  EXPECT_EQ(Base64Encode(std::string_view("\0\0\0", 3)), "AAAA");
  EXPECT_EQ(Base64Decode("AAAA"), std::string(3, '\0'));
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

TEST(CryptoTest, Base64RefusesPaddingAnywhereButTheEnd) {
  for (std::string_view bad :
       {"=AAA", "A=AA", "AA=A", "Zg==Zg==", "Zm9=Zm9v",
        "Z===", "====", "Zm9v=", "Zm9vYg=", "Zm 9v", "Zm9v\n"}) {
    EXPECT_FALSE(Base64Decode(bad).has_value()) << bad;
  }
  // Bits the padding leaves over do not matter (as Python's decoder).
  EXPECT_EQ(Base64Decode("Zh=="), std::string("f"));
  EXPECT_EQ(Base64Decode("Zm9="), std::string("fo"));
}

TEST(CryptoTest, Base64DecodeToWritesIntoTheCallersBuffer) {
  const std::string plain = "user@example.com:" + std::string(32, 'k');
  const std::string enc = Base64Encode(plain);
  std::string out(enc.size() / 4 * 3, '?');
  const std::optional<std::size_t> n = Base64DecodeTo(enc, out.data());
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(out.substr(0, *n), plain);
  EXPECT_EQ(Base64DecodeTo("", out.data()), std::optional<std::size_t>(0));
  EXPECT_FALSE(Base64DecodeTo("ab*d", out.data()).has_value());
}

TEST(CryptoTest, Base64DecodeUndoesTheEncoderForEveryByteAndLength) {
  // The encoder is OpenSSL's, the decoder our own: every byte value, in
  // every position of a group, at every length up to 100.
  std::string plain;
  for (int n = 0; n <= 100; ++n) {
    const std::optional<std::string> back = Base64Decode(Base64Encode(plain));
    ASSERT_TRUE(back.has_value()) << n;
    EXPECT_EQ(*back, plain) << n;
    plain.push_back(static_cast<char>((n * 97 + 13) % 256));
  }
  for (int b = 0; b < 256; ++b) {
    for (int at = 0; at < 3; ++at) {
      std::string s(3, 'x');
      s[at] = static_cast<char>(b);
      EXPECT_EQ(Base64Decode(Base64Encode(s)), s) << b << " at " << at;
    }
  }
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

// RFC 4231, test cases 1, 2, 3 and 6 (HMAC-SHA-256 column).
TEST(CryptoTest, HmacSha256MatchesRfc4231Vectors) {
  EXPECT_EQ(HexEncode(HmacSha256(std::string(20, '\x0b'), "Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(HexEncode(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(
      HexEncode(HmacSha256(std::string(20, '\xaa'), std::string(50, '\xdd'))),
      "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
  // A key longer than SHA-256's block is hashed first.
  EXPECT_EQ(HexEncode(HmacSha256(
                std::string(131, '\xaa'),
                "Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(CryptoTest, HmacSha256DependsOnKeyAndData) {
  EXPECT_NE(HmacSha256("k1", "data"), HmacSha256("k2", "data"));
  EXPECT_NE(HmacSha256("k", "data1"), HmacSha256("k", "data2"));
  EXPECT_EQ(HmacSha256("", ""), HmacSha256("", ""));
}

// The vectors of the SipHash paper's appendix (key 00 01 .. 0f, message
// 00 01 .. of the length given).
TEST(CryptoTest, SipHash24MatchesThePapersVectors) {
  SipKey key;
  for (std::size_t i = 0; i < key.size(); ++i) {
    key[i] = static_cast<std::uint8_t>(i);
  }
  auto message = [](std::size_t n) {
    std::string m;
    for (std::size_t i = 0; i < n; ++i) m.push_back(static_cast<char>(i));
    return m;
  };
  EXPECT_EQ(SipHash24(key, message(0)), 0x726fdb47dd0e0e31ULL);
  EXPECT_EQ(SipHash24(key, message(1)), 0x74f839c593dc67fdULL);
  EXPECT_EQ(SipHash24(key, message(8)), 0x93f5f5799a932462ULL);
  EXPECT_EQ(SipHash24(key, message(15)), 0xa129ca6149be45e5ULL);
}

// The 128-bit output's vectors of the SipHash reference implementation
// (vectors_sip128: key 00 01 .. 0f, message 00 01 .. len-1), as bytes.
TEST(CryptoTest, SipHash24x128MatchesTheReferenceVectors) {
  SipKey key;
  for (int i = 0; i < 16; ++i) key[i] = static_cast<std::uint8_t>(i);
  auto message = [](int n) {
    std::string m;
    for (int i = 0; i < n; ++i) m.push_back(static_cast<char>(i));
    return m;
  };
  auto bytes = [](SipHash128Value v) {
    std::vector<int> out;
    for (std::uint64_t half : {v.lo, v.hi}) {
      for (int i = 0; i < 8; ++i) out.push_back(int(half >> (8 * i)) & 0xff);
    }
    return out;
  };
  const std::vector<std::vector<int>> want = {
      {0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6,  //
       0x6d, 0xf6, 0x72, 0x14, 0xc7, 0x55, 0x02, 0x93},
      {0xda, 0x87, 0xc1, 0xd8, 0x6b, 0x99, 0xaf, 0x44,  //
       0x34, 0x76, 0x59, 0x11, 0x9b, 0x22, 0xfc, 0x45},
      {0x81, 0x77, 0x22, 0x8d, 0xa4, 0xa4, 0x5d, 0xc7,  //
       0xfc, 0xa3, 0x8b, 0xde, 0xf6, 0x0a, 0xff, 0xe4},
      {0x9c, 0x70, 0xb6, 0x0c, 0x52, 0x67, 0xa9, 0x4e,  //
       0x5f, 0x33, 0xb6, 0xb0, 0x29, 0x85, 0xed, 0x51},
  };
  for (std::size_t n = 0; n < want.size(); ++n) {
    EXPECT_EQ(bytes(SipHash24x128(key, message(static_cast<int>(n)))), want[n])
        << "length " << n;
  }
}

TEST(CryptoTest, SipHash24DependsOnTheKey) {
  SipKey a{}, b{};
  b[15] = 1;
  EXPECT_NE(SipHash24(a, "Basic dTFAYmVuY2g="),
            SipHash24(b, "Basic dTFAYmVuY2g="));
  EXPECT_EQ(&ProcessSipKey(), &ProcessSipKey());
  EXPECT_NE(ProcessSipKey(), SipKey{});  // drawn, not left zero
}

TEST(CryptoTest, Sha256IsTheSameOnEveryCallAndThread) {
  // Each thread keeps its own hashing context (issue #17): reused, it must
  // start afresh every time.
  const Digest abc = Sha256("abc");
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Sha256("abc"), abc);
  Digest other{};
  std::thread t([&] {
    Sha256("something else first");
    other = Sha256("abc");
  });
  t.join();
  EXPECT_EQ(other, abc);
}

}  // namespace
}  // namespace presence
