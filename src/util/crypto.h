// Small cryptographic helpers over OpenSSL's libcrypto.
//
// API keys are random, 32 alphanumeric characters (Zulip's format); only their
// SHA-256 digest is stored. Comparisons of secrets are constant-time.
//
// Thread safety: all functions are safe to call from any thread.
#ifndef PRESENCE_UTIL_CRYPTO_H_
#define PRESENCE_UTIL_CRYPTO_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace presence {

using Digest = std::array<std::uint8_t, 32>;

// SHA-256 of `data`.
Digest Sha256(std::string_view data);

// A 128-bit key of SipHash24.
using SipKey = std::array<std::uint8_t, 16>;

// SipHash-2-4 of `data` under `key` (Aumasson and Bernstein, 2012): a keyed
// 64-bit hash. Without the key, nobody can tell which inputs share a value,
// so comparing two such values in plain time reveals nothing but whether
// the inputs were (almost surely) equal.
std::uint64_t SipHash24(const SipKey& key, std::string_view data);

// SipHash-2-4 with its 128-bit output (the paper's variant: other
// initialisation and finalisation constants, so `lo` is not SipHash24's
// value): `lo` is the first 8 bytes of the output, `hi` the last 8, each
// read little-endian. Two keyed 64-bit values for the cost of one pass.
struct SipHash128Value {
  std::uint64_t lo = 0;
  std::uint64_t hi = 0;
};
SipHash128Value SipHash24x128(const SipKey& key, std::string_view data);

// A key drawn from a CSPRNG once per process (the same for every caller).
const SipKey& ProcessSipKey();

// HMAC-SHA256 (RFC 2104) of `data` under `key`.
Digest HmacSha256(std::string_view key, std::string_view data);

// `length` characters drawn uniformly from [A-Za-z0-9] with a CSPRNG.
std::string RandomAlnum(std::size_t length);

// True when the two strings are equal; the time taken depends only on their
// lengths, not on where they differ.
bool ConstantTimeEqual(std::string_view a, std::string_view b);
bool ConstantTimeEqual(const Digest& a, const Digest& b);

// Standard base64 (RFC 4648, with padding). nullopt if `in` is not valid:
// a length that is not a multiple of 4, a character outside the standard
// alphabet, or '=' anywhere but in the last two places (and then "x=" at
// the end, never "=x"). Bits left over by the padding are ignored.
std::optional<std::string> Base64Decode(std::string_view in);
// The same decoding into `out`, which has room for in.size() / 4 * 3 bytes:
// the number of bytes written, or nullopt if `in` is not valid (`out` then
// holds garbage). No allocation (a cold authentication decodes one header).
std::optional<std::size_t> Base64DecodeTo(std::string_view in, char* out);
std::string Base64Encode(std::string_view in);

std::string HexEncode(const Digest& d);
std::optional<Digest> HexDecodeDigest(std::string_view hex);

}  // namespace presence

#endif  // PRESENCE_UTIL_CRYPTO_H_
