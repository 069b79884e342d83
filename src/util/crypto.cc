#include "util/crypto.h"

// SHA256_Init and friends (see Sha256).
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <array>
#include <cstdint>
#include <stdexcept>

namespace presence {

Digest Sha256(std::string_view data) {
  // OpenSSL 3's one-shot SHA256() looks the algorithm up and allocates a
  // context on every call, and EVP_DigestInit_ex2 frees and allocates the
  // provider's context again even on a kept EVP_MD_CTX; a request that
  // authenticates cold hashes its API key (issue #17). The low-level
  // functions hash on the stack with the same assembly, no allocation and
  // no dispatch: deprecated in OpenSSL 3, still part of its API.
  SHA256_CTX context;
  Digest out;
  if (SHA256_Init(&context) != 1 ||
      SHA256_Update(&context, data.data(), data.size()) != 1 ||
      SHA256_Final(out.data(), &context) != 1) {
    // SHA-256 is always there: a failure is a broken library, not input.
    throw std::runtime_error("SHA-256 failed");
  }
  // The context held the key being hashed.
  OPENSSL_cleanse(&context, sizeof context);
  return out;
}

namespace {

std::uint64_t Rotl(std::uint64_t x, int b) {
  return (x << b) | (x >> (64 - b));
}

std::uint64_t Load64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];  // little-endian
  return v;
}

struct SipState {
  std::uint64_t v0, v1, v2, v3;
  void Round() {
    v0 += v1;
    v1 = Rotl(v1, 13);
    v1 ^= v0;
    v0 = Rotl(v0, 32);
    v2 += v3;
    v3 = Rotl(v3, 16);
    v3 ^= v2;
    v0 += v3;
    v3 = Rotl(v3, 21);
    v3 ^= v0;
    v2 += v1;
    v1 = Rotl(v1, 17);
    v1 ^= v2;
    v2 = Rotl(v2, 32);
  }
  void Absorb(std::uint64_t m) {
    v3 ^= m;
    Round();
    Round();
    v0 ^= m;
  }
};

// The state after `data` is absorbed (SipHash's compression), `wide`:
// the 128-bit variant's initialisation.
SipState SipAbsorb(const SipKey& key, std::string_view data, bool wide) {
  const std::uint64_t k0 = Load64(key.data()), k1 = Load64(key.data() + 8);
  SipState s{k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL,
             k0 ^ 0x6c7967656e657261ULL, k1 ^ 0x7465646279746573ULL};
  if (wide) s.v1 ^= 0xee;
  const auto* p = reinterpret_cast<const std::uint8_t*>(data.data());
  const std::size_t n = data.size();
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) s.Absorb(Load64(p + i));
  // The last block: the remaining bytes, and the length's low byte on top.
  std::uint64_t last = static_cast<std::uint64_t>(n & 0xff) << 56;
  for (std::size_t k = 0; i + k < n; ++k) {
    last |= static_cast<std::uint64_t>(p[i + k]) << (8 * k);
  }
  s.Absorb(last);
  return s;
}

}  // namespace

std::uint64_t SipHash24(const SipKey& key, std::string_view data) {
  SipState s = SipAbsorb(key, data, /*wide=*/false);
  s.v2 ^= 0xff;
  for (int r = 0; r < 4; ++r) s.Round();
  return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

SipHash128Value SipHash24x128(const SipKey& key, std::string_view data) {
  SipState s = SipAbsorb(key, data, /*wide=*/true);
  SipHash128Value out;
  s.v2 ^= 0xee;
  for (int r = 0; r < 4; ++r) s.Round();
  out.lo = s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
  s.v1 ^= 0xdd;
  for (int r = 0; r < 4; ++r) s.Round();
  out.hi = s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
  return out;
}

const SipKey& ProcessSipKey() {
  static const SipKey key = [] {
    SipKey k;
    if (RAND_bytes(k.data(), static_cast<int>(k.size())) != 1) {
      throw std::runtime_error("RAND_bytes failed");
    }
    return k;
  }();
  return key;
}

Digest HmacSha256(std::string_view key, std::string_view data) {
  Digest out;
  unsigned int length = 0;
  // An empty key is a valid HMAC key; OpenSSL wants a non-null pointer.
  static constexpr char kNoKey = 0;
  const void* key_data = key.empty() ? &kNoKey : key.data();
  if (HMAC(EVP_sha256(), key_data, static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(),
           out.data(), &length) == nullptr ||
      length != out.size()) {
    // SHA-256 is always there: a failure is a broken library, not input.
    throw std::runtime_error("HMAC-SHA256 failed");
  }
  return out;
}

std::string RandomAlnum(std::size_t length) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string out;
  out.reserve(length);
  while (out.size() < length) {
    unsigned char buf[64];
    if (RAND_bytes(buf, sizeof buf) != 1) {
      // No entropy source is a broken machine, not bad input.
      throw std::runtime_error("RAND_bytes failed");
    }
    for (unsigned char b : buf) {
      // 248 = 4 * 62: reject the tail so every character is equally likely.
      if (b < 248 && out.size() < length) out.push_back(kAlphabet[b % 62]);
    }
  }
  return out;
}

bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool ConstantTimeEqual(const Digest& a, const Digest& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

namespace {

// The value of each base64 character; kPad for '=', kBad for the rest.
constexpr std::uint8_t kPad = 64, kBad = 255;
constexpr std::array<std::uint8_t, 256> kBase64Values = [] {
  std::array<std::uint8_t, 256> t{};
  for (auto& v : t) v = kBad;
  constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (std::size_t i = 0; i < kAlphabet.size(); ++i) {
    t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::uint8_t>(i);
  }
  t['='] = kPad;
  return t;
}();

}  // namespace

std::optional<std::size_t> Base64DecodeTo(std::string_view in, char* out) {
  if (in.size() % 4 != 0) return std::nullopt;
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  const std::size_t n = in.size();
  std::size_t written = 0;
  // Every group but the last: four characters of the alphabet, OR-ed
  // together so that one test catches '=' or any other character.
  const std::size_t body = n == 0 ? 0 : n - 4;
  for (std::size_t i = 0; i < body; i += 4) {
    const std::uint32_t a = kBase64Values[p[i]], b = kBase64Values[p[i + 1]],
                        c = kBase64Values[p[i + 2]],
                        d = kBase64Values[p[i + 3]];
    if ((a | b | c | d) >= kPad) return std::nullopt;
    const std::uint32_t v = a << 18 | b << 12 | c << 6 | d;
    out[written] = static_cast<char>(v >> 16);
    out[written + 1] = static_cast<char>(v >> 8);
    out[written + 2] = static_cast<char>(v);
    written += 3;
  }
  if (n == 0) return written;
  // The last group may end in "=" or "==".
  const std::uint32_t a = kBase64Values[p[n - 4]], b = kBase64Values[p[n - 3]],
                      c = kBase64Values[p[n - 2]], d = kBase64Values[p[n - 1]];
  if (a >= kPad || b >= kPad || c == kBad || d == kBad) return std::nullopt;
  if (c == kPad && d != kPad) return std::nullopt;
  const std::uint32_t v = a << 18 | b << 12 | (c & 63) << 6 | (d & 63);
  out[written++] = static_cast<char>(v >> 16);
  if (c != kPad) out[written++] = static_cast<char>(v >> 8);
  if (d != kPad) out[written++] = static_cast<char>(v);
  return written;
}

std::optional<std::string> Base64Decode(std::string_view in) {
  std::string out(in.size() / 4 * 3, '\0');
  const std::optional<std::size_t> n = Base64DecodeTo(in, out.data());
  if (!n) return std::nullopt;
  out.resize(*n);
  return out;
}

std::string Base64Encode(std::string_view in) {
  std::string out((in.size() + 2) / 3 * 4 + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::string HexEncode(const Digest& d) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(d.size() * 2);
  for (auto b : d) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

std::optional<Digest> HexDecodeDigest(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  // A table, not branches: a restart decodes one digest per user.
  static constexpr auto kNibble = [] {
    std::array<std::int8_t, 256> t{};
    for (auto& v : t) v = -1;
    for (int c = '0'; c <= '9'; ++c) t[c] = static_cast<std::int8_t>(c - '0');
    for (int c = 'a'; c <= 'f'; ++c) {
      t[c] = static_cast<std::int8_t>(c - 'a' + 10);
    }
    for (int c = 'A'; c <= 'F'; ++c) {
      t[c] = static_cast<std::int8_t>(c - 'A' + 10);
    }
    return t;
  }();
  Digest d;
  int bad = 0;
  for (std::size_t i = 0; i < d.size(); ++i) {
    const int hi = kNibble[static_cast<unsigned char>(hex[2 * i])];
    const int lo = kNibble[static_cast<unsigned char>(hex[2 * i + 1])];
    bad |= hi | lo;  // negative if either was not a hex digit
    d[i] = static_cast<std::uint8_t>((static_cast<unsigned>(hi) << 4) |
                                     (static_cast<unsigned>(lo) & 0xfu));
  }
  if (bad < 0) return std::nullopt;
  return d;
}

}  // namespace presence
