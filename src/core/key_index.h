// KeyIndex: which member holds an API key, by the key's SHA-256 digest.
//
// Design. A million keys in a node-based map of 32-byte digests cost about
// 88 bytes each (issue #4). Here the main table is an open-addressing map
// from the digest's first 8 bytes to an 8-byte reference to the holder
// (16 bytes a slot). The prefix alone does not identify a key, so:
//   - a caller verifies the full digest against the holder before trusting
//     an answer (Authenticate compares it in constant time, as it must
//     anyway);
//   - two different keys sharing a prefix (about one pair in 10^7 at a
//     million keys, or crafted) are both kept: the second goes to a small
//     overflow table keyed by the full digest, which Find consults first.
//     A digest is never in both tables.
// Deciding whether an insert whose prefix is taken replaces the same key or
// collides needs the current holder's full digest, which the index does not
// store; the caller's `holds` callback tells it.
//
// Thread safety: none; PresenceService guards it with dir_mu_.
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
  // Names a key's holder; the index does not interpret it.
  using Ref = std::uint64_t;
  // Whether the holder `ref` now holds the key with this digest.
  using Holds = FunctionRef<bool(Ref, const Digest&)>;

  static std::uint64_t Prefix(const Digest& d) {
    std::uint64_t p;
    std::memcpy(&p, d.data(), sizeof p);
    return p;
  }

  // Makes room for `n` keys.
  void Reserve(std::size_t n) { main_.reserve(n); }

  // Makes `ref` the holder of `digest`, replacing the previous holder of the
  // same digest if there is one.
  void Insert(const Digest& digest, Ref ref, Holds holds);

  // Loading: makes `ref` the holder of a key with this prefix if no key
  // with it is indexed and the overflow table is empty (then the key cannot
  // be indexed under another holder either); otherwise changes nothing and
  // returns false, and the caller calls Insert with the full digest.
  bool TryInsertNew(std::uint64_t prefix, Ref ref) {
    if (!overflow_.empty()) return false;
    return main_.try_emplace(prefix, ref).second;
  }

  // Removes `digest` if `ref` is its holder in the index.
  void Erase(const Digest& digest, Ref ref);

  // The holder of `digest`, if indexed, or possibly the holder of another
  // key with the same prefix: the caller must compare full digests.
  std::optional<Ref> Find(const Digest& digest) const;

  std::size_t size() const { return main_.size() + overflow_.size(); }
  std::size_t overflow_size() const { return overflow_.size(); }

 private:
  struct PrefixHash {
    // The prefix of a SHA-256 digest is uniform already: no post-mixing.
    using is_avalanching = std::true_type;
    std::size_t operator()(std::uint64_t p) const { return p; }
  };
  boost::unordered_flat_map<std::uint64_t, Ref, PrefixHash> main_;
  std::map<Digest, Ref> overflow_;  // keys whose prefix main_ holds already
};

}  // namespace presence

#endif  // PRESENCE_CORE_KEY_INDEX_H_
