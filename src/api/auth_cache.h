// AuthCache: recent successful authentications, for one I/O thread.
//
// Clients send the same Authorization header on every request. Checking it
// again costs a base64 decode, a SHA-256 of the key, a key-index lookup and a
// member lookup, and the answer cannot differ while the realm's directory
// generation is unchanged (Realm::directory_generation grows after every
// change that can alter it: a key, a role, an account's or the realm's
// activation). So the thread keeps, for recent headers, the caller they gave
// and the generation it was read at, and the API reuses a caller when the
// header, the realm and the generation all match. Failures are never kept:
// every failed attempt is checked in full.
//
// A header is known by its keyed hash (AuthHashOf): SipHash-2-4's 128-bit
// output under a key drawn when the process starts, in two halves. The tag
// picks the set and is compared first, in plain time; the check is
// compared in constant time when the tag matched. Without the key nobody
// can choose headers by either half; two different headers share both
// with probability 2^-128, so the pair stands for the header, and the
// table keeps no header bytes (no user's API key) at all. A miss reads
// only the set's tags.
//
// A two-way set-associative table of 2 * kSets entries (a new header takes
// the less recently used entry of its set); headers longer than kMaxHeader
// bytes are not kept. A set is 104 bytes: 416 KiB for the table, and
// nothing on the heap (until session 22 a set held the two headers, 100
// bytes each on the heap, in half as many sets: 700 KiB once full, and a
// realm of 6,000 users pinging in rotation missed every time; issue #17).
//
// Cold authentication (issue #17): when users ping once a minute, almost
// every request misses, so a miss must cost little: one pass of the hash
// over the header, which the API computes once for every lookup and store.
//
// Thread safety: none; each I/O thread owns one (see HttpSession).
#ifndef PRESENCE_API_AUTH_CACHE_H_
#define PRESENCE_API_AUTH_CACHE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/presence_service.h"
#include "util/crypto.h"

namespace presence::api {

// Longer Authorization headers are never kept (checked in full each time).
inline constexpr std::size_t kMaxCachedHeader = 512;

// The keyed hash of an Authorization header (see the file comment): `tag`
// is compared in plain time, `check` in constant time.
struct AuthHash {
  std::uint64_t tag = 0;
  std::uint64_t check = 0;
};
inline AuthHash AuthHashOf(std::string_view header) {
  const SipHash128Value v = SipHash24x128(ProcessSipKey(), header);
  return {v.lo, v.hi};
}
// The tag alone (AuthMemo keeps no check: it compares the header itself).
inline std::uint64_t AuthTag(std::string_view header) {
  return AuthHashOf(header).tag;
}

// The last successful authentication of one connection: a client sends the
// same header on every request of its connection, so this one entry hits
// whatever the number of users of the thread (the thread's AuthCache below
// holds 8192). It keeps the header itself: a connection's next request is
// compared with it in constant time, without a hash (FindUntagged). Same
// rules: header bytes, realm and generation must match.
struct AuthMemo {
  std::string header;
  std::uint64_t tag = 0;  // AuthTag(header)
  Caller caller;          // caller.realm is null while empty

  // `t` is AuthTag(h).
  const Caller* Find(std::string_view h, std::uint64_t t,
                     const Realm& realm) const {
    // The tag first (keyed: see the file comment), then the header, which
    // holds a user's API key: compared in constant time.
    if (tag != t || caller.realm != &realm || !ConstantTimeEqual(header, h) ||
        realm.directory_generation() != caller.directory_generation) {
      return nullptr;
    }
    return &caller;
  }
  const Caller* Find(std::string_view h, const Realm& realm) const {
    return Find(h, AuthTag(h), realm);
  }
  // The same rules without the tag (issue #17): a connection's client sends
  // its header again on every request (a parked poll's re-poll on every
  // answer), and SipHash of it costs more than comparing it in constant
  // time. A miss tells the sender only that this connection's last header
  // differs from theirs (or its length does), which the answer tells anyway.
  const Caller* FindUntagged(std::string_view h, const Realm& realm) const {
    if (caller.realm != &realm || !ConstantTimeEqual(header, h) ||
        realm.directory_generation() != caller.directory_generation) {
      return nullptr;
    }
    return &caller;
  }
  void Store(std::string_view h, std::uint64_t t, const Caller& c) {
    if (h.size() > kMaxCachedHeader) return;
    header.assign(h);
    tag = t;
    caller = c;
  }
  void Store(std::string_view h, const Caller& c) { Store(h, AuthTag(h), c); }
};

// What a connection keeps of its authentications. A client's connection
// carries one header, so its next request is looked up without the tag
// (AuthMemo::FindUntagged: one comparison). A connection that carries many
// users' requests (a reverse proxy's, or a load generator's) holds another
// header nearly every time, and the untagged lookup then compares every
// byte in constant time for nothing (about 1.3% of the server's CPU in
// issue #17's 10k-user pings). So once a request of the connection was
// checked some other way (the thread's cache or in full), the next one is
// looked up by tag first, which a different header fails in plain time
// without reading the kept header; a hit there goes back to the untagged
// lookup. A client's own connection pays one tag for its second request.
struct ConnectionAuth {
  AuthMemo memo;
  // The last success did not come from the memo: look up by tag first.
  bool by_tag = false;

  void Store(std::string_view h, std::uint64_t t, const Caller& c) {
    memo.Store(h, t, c);
    by_tag = true;
  }
};

class AuthCache {
 public:
  static constexpr std::size_t kSets = 4096;  // a power of two
  static constexpr std::size_t kMaxHeader = kMaxCachedHeader;

  AuthCache() : sets_(std::make_unique<Set[]>(kSets)) {}

  // The cached caller if the header whose hash is `hash` (AuthHashOf) for
  // `realm` gave it and the realm's directory is as it was then; null
  // otherwise.
  const Caller* Find(const AuthHash& hash, const Realm& realm) {
    Set& set = sets_[Index(hash.tag)];
    for (std::uint8_t w = 0; w < 2; ++w) {
      Way& way = set.ways[w];
      // The tag first, in plain time (keyed: see the file comment).
      if (way.tag != hash.tag || way.caller.realm != &realm) continue;
      if (!ConstantTimeEqual(AsBytes(way.check), AsBytes(hash.check)) ||
          realm.directory_generation() != way.caller.directory_generation) {
        continue;
      }
      set.recent = w;
      return &way.caller;
    }
    return nullptr;
  }
  const Caller* Find(std::string_view header, const Realm& realm) {
    return Find(AuthHashOf(header), realm);
  }

  // Keeps `caller` for `header`, whose hash is `hash`.
  void Store(std::string_view header, const AuthHash& hash,
             const Caller& caller) {
    if (header.size() > kMaxHeader) return;
    Set& set = sets_[Index(hash.tag)];
    // The way that already holds this header (by tag: a header is stored
    // only after a full check, and a way whose tag matches another header
    // is as good a victim as any), else the less recent one.
    std::uint8_t w =
        set.ways[set.recent].tag == hash.tag ? set.recent : 1 - set.recent;
    set.ways[w] = Way{hash.tag, hash.check, caller};
    set.recent = w;
  }
  void Store(std::string_view header, const Caller& caller) {
    Store(header, AuthHashOf(header), caller);
  }

  // The set a header whose AuthTag is `tag` belongs to: the tag's high
  // bits (its low bits are what a way compares first).
  static std::size_t SetIndex(std::uint64_t tag) {
    return (tag >> 40) & (kSets - 1);
  }

 private:
  struct Way {
    std::uint64_t tag = 0;    // AuthHash::tag of the header
    std::uint64_t check = 0;  // AuthHash::check of the header
    Caller caller;            // caller.realm is null while empty
  };
  // Two ways per set; `recent` is the one used last.
  struct Set {
    Way ways[2];
    std::uint8_t recent = 0;
  };
  static_assert(sizeof(Set) <= 104, "a set is 104 bytes (file comment)");
  static std::size_t Index(std::uint64_t tag) { return SetIndex(tag); }
  static std::string_view AsBytes(const std::uint64_t& v) {
    return {reinterpret_cast<const char*>(&v), sizeof v};
  }

  std::unique_ptr<Set[]> sets_;
};

}  // namespace presence::api

#endif  // PRESENCE_API_AUTH_CACHE_H_
