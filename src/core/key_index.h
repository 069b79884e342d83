// KeyIndex: which member holds an API key, by the key's SHA-256 digest.
//
// Design. A million keys in a node-based map of 32-byte digests cost about
// 88 bytes each (issue #4). Here the main table is an open-addressing map
// from 4 bytes of the digest (its key, KeyOf) to a 4-byte reference to the
// holder: 8 bytes a slot, about 17 bytes a key at a million keys, where an
// 8-byte prefix and an 8-byte reference cost about 33 (issue #17). The key
// alone does not identify an API key, so:
//   - a caller verifies the full digest against the holder before trusting
//     an answer (Authenticate compares it in constant time, as it must
//     anyway);
//   - two different API keys sharing a table key (about a hundred pairs at
//     a million keys, or crafted) are both kept: the second goes to a small
//     overflow table keyed by the full digest (ordered by table key first),
//     which Find consults first. A digest is never in both tables.
// Deciding whether an insert whose table key is taken replaces the same API
// key or collides needs the current holder's full digest, which the index
// does not store; the caller's `holds` callback tells it.
//
// References. A Ref is (high << 32 | low), as Directory writes (realm
// ordinal, slot). While every Ref has high < 2^kHighBits and low <
// 2^kLowBits (at most 256 realms of at most 16,777,216 members), the table
// stores them in 4 bytes; the first Ref that does not fit moves the table,
// once, to 8-byte references (the old layout's cost per key less 4 bytes).
//
// Thread safety: none; Directory guards it with its mutex.
#ifndef PRESENCE_CORE_KEY_INDEX_H_
#define PRESENCE_CORE_KEY_INDEX_H_

#include <boost/unordered/unordered_flat_map.hpp>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <type_traits>

#include "util/crypto.h"
#include "util/function_ref.h"

namespace presence {

class KeyIndex {
 public:
  // Names a key's holder; the index interprets it only to pack it (above).
  using Ref = std::uint64_t;
  // Whether the holder `ref` now holds the key with this digest.
  using Holds = FunctionRef<bool(Ref, const Digest&)>;
  static constexpr int kHighBits = 8;
  static constexpr int kLowBits = 24;

  // The digest's first 8 bytes as a number: its top 32 bits are the table
  // key, and its top bits order a bulk fill (util/hash_order.h: the table
  // places a key by these same top bits).
  static std::uint64_t Prefix(const Digest& d) {
    std::uint64_t p;
    std::memcpy(&p, d.data(), sizeof p);
    return p;
  }
  static std::uint32_t KeyOf(std::uint64_t prefix) {
    return static_cast<std::uint32_t>(prefix >> 32);
  }

  // Makes room for `n` keys.
  void Reserve(std::size_t n);

  // Makes `ref` the holder of `digest`, replacing the previous holder of the
  // same digest if there is one.
  void Insert(const Digest& digest, Ref ref, Holds holds);

  // Loading: makes `ref` the holder of a key with this prefix if no key
  // with its table key is indexed, in either table (then the key cannot be
  // indexed under another holder either); otherwise changes nothing and
  // returns false, and the caller calls Insert with the full digest.
  bool TryInsertNew(std::uint64_t prefix, Ref ref);

  // Removes `digest` if `ref` is its holder in the index.
  void Erase(const Digest& digest, Ref ref);

  // The holder of `digest`, if indexed, or possibly the holder of another
  // key with the same table key: the caller must compare full digests.
  std::optional<Ref> Find(const Digest& digest) const;

  std::size_t size() const {
    return narrow_.size() + wide_.size() + overflow_.size();
  }
  std::size_t overflow_size() const { return overflow_.size(); }
  // Whether references are stored in 8 bytes (see References above).
  bool wide() const { return wide_mode_; }

 private:
  struct KeyHash {
    // The key is uniform already; the table places by the hash's top bits
    // and filters by its low ones, so both get the key's bits.
    using is_avalanching = std::true_type;
    std::size_t operator()(std::uint32_t k) const {
      return static_cast<std::size_t>(std::uint64_t{k} << 32 | k);
    }
  };
  // The overflow table's order: table key first, so that whether any digest
  // with a given table key is there is one lookup.
  struct OverflowLess {
    using is_transparent = void;
    static std::uint32_t K(const Digest& d) { return KeyOf(Prefix(d)); }
    bool operator()(const Digest& a, const Digest& b) const {
      const std::uint32_t ka = K(a), kb = K(b);
      return ka != kb ? ka < kb : a < b;
    }
    bool operator()(const Digest& a, std::uint32_t k) const { return K(a) < k; }
    bool operator()(std::uint32_t k, const Digest& b) const { return k < K(b); }
  };
  static bool Fits(Ref ref) {
    return (ref >> 32) < (Ref{1} << kHighBits) &&
           (ref & 0xffffffffu) < (Ref{1} << kLowBits);
  }
  static std::uint32_t Pack(Ref ref) {
    return static_cast<std::uint32_t>((ref >> 32) << kLowBits |
                                      (ref & ((Ref{1} << kLowBits) - 1)));
  }
  static Ref Unpack(std::uint32_t v) {
    return Ref{v >> kLowBits} << 32 | (v & ((1u << kLowBits) - 1));
  }
  static Ref Unpack(Ref v) { return v; }
  // Moves narrow_ to wide_ if `ref` does not fit 4 bytes.
  void Admit(Ref ref);
  bool OverflowHasKey(std::uint32_t key) const {
    return !overflow_.empty() && overflow_.find(key) != overflow_.end();
  }
  // Runs fn(table, encode) on the table in use.
  template <class Fn>
  decltype(auto) WithMain(Fn&& fn) {
    if (wide_mode_) return fn(wide_, [](Ref r) { return r; });
    return fn(narrow_, [](Ref r) { return Pack(r); });
  }
  template <class Fn>
  decltype(auto) WithMain(Fn&& fn) const {
    if (wide_mode_) return fn(wide_);
    return fn(narrow_);
  }

  bool wide_mode_ = false;
  boost::unordered_flat_map<std::uint32_t, std::uint32_t, KeyHash> narrow_;
  boost::unordered_flat_map<std::uint32_t, Ref, KeyHash> wide_;
  // Keys whose table key the main table holds already.
  std::map<Digest, Ref, OverflowLess> overflow_;
};

}  // namespace presence

#endif  // PRESENCE_CORE_KEY_INDEX_H_
