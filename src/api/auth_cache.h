// AuthCache: recent successful authentications, for one I/O thread.
//
// Clients send the same Authorization header on every request. Checking it
// again costs a base64 decode, a SHA-256 of the key, a key-index lookup and a
// member lookup, and the answer cannot differ while the realm's directory
// generation is unchanged (Realm::directory_generation grows after every
// change that can alter it: a key, a role, an account's or the realm's
// activation). So the thread keeps, for recent headers, the caller they gave
// and the generation it was read at, and the API reuses a caller when the
// header (every byte), the realm and the generation all match. Failures are
// never kept: every failed attempt is checked in full.
//
// A two-way set-associative table of 2 * kSets entries (a new header takes
// the less recently used entry of its set); headers longer than kMaxHeader
// bytes are not kept. About 150 bytes per entry in use, 144 KiB when empty.
//
// Thread safety: none; each I/O thread owns one (see HttpSession).
#ifndef PRESENCE_API_AUTH_CACHE_H_
#define PRESENCE_API_AUTH_CACHE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/presence_service.h"
#include "util/crypto.h"

namespace presence::api {

// Longer Authorization headers are never kept (checked in full each time).
inline constexpr std::size_t kMaxCachedHeader = 512;

// The last successful authentication of one connection: a client sends the
// same header on every request of its connection, so this one entry hits
// whatever the number of users of the thread (the thread's AuthCache below
// holds 4096). Same rules: header bytes, realm and generation must match.
struct AuthMemo {
  std::string header;
  Caller caller;  // caller.realm is null while empty

  const Caller* Find(std::string_view h, const Realm& realm) const {
    // The header holds a user's API key: compared in constant time.
    if (caller.realm != &realm || !ConstantTimeEqual(header, h) ||
        realm.directory_generation() != caller.directory_generation) {
      return nullptr;
    }
    return &caller;
  }
  void Store(std::string_view h, const Caller& c) {
    if (h.size() > kMaxCachedHeader) return;
    header.assign(h);
    caller = c;
  }
};

class AuthCache {
 public:
  static constexpr std::size_t kSets = 2048;  // a power of two
  static constexpr std::size_t kMaxHeader = kMaxCachedHeader;

  AuthCache() : sets_(std::make_unique<Set[]>(kSets)) {}

  // The cached caller if `header` for `realm` gave it and the realm's
  // directory is as it was then; null otherwise.
  const Caller* Find(std::string_view header, const Realm& realm) {
    Set& set = sets_[Index(header)];
    for (std::uint8_t w = 0; w < 2; ++w) {
      if (const Caller* c = set.ways[w].Find(header, realm)) {
        set.recent = w;
        return c;
      }
    }
    return nullptr;
  }

  void Store(std::string_view header, const Caller& caller) {
    if (header.size() > kMaxHeader) return;
    Set& set = sets_[Index(header)];
    // The way that already holds this header, else the less recent one.
    std::uint8_t w = ConstantTimeEqual(set.ways[set.recent].header, header)
                         ? set.recent
                         : 1 - set.recent;
    set.ways[w].Store(header, caller);
    set.recent = w;
  }

 private:
  // Two ways per set; `recent` is the one used last.
  struct Set {
    AuthMemo ways[2];
    std::uint8_t recent = 0;
  };
  static std::size_t Index(std::string_view header) {
    return std::hash<std::string_view>{}(header) & (kSets - 1);
  }

  std::unique_ptr<Set[]> sets_;
};

}  // namespace presence::api

#endif  // PRESENCE_API_AUTH_CACHE_H_
