// UnknownSubdomains: a short-lived negative cache of the subdomains no realm
// had when the shared store was last asked (scale-out), so that requests
// naming an unknown Host cost one store read per subdomain per window, not
// one each.
//
// An entry is dropped when its window ends, when the feed announces a realm
// under that subdomain (Forget), or when the feed was interrupted (Clear). A
// realm created on this node is in its directory at once, and the directory
// is asked before this cache, so it is found immediately; one created on
// another node is found as soon as its feed entry arrives, and at the
// latest when the window ends. The cache is bounded (kMaxEntries): the names
// come from clients. Subdomains are compared case-insensitively, as realms
// are found.
//
// Thread safety: any thread; mu_ guards the map.
#ifndef PRESENCE_CORE_UNKNOWN_SUBDOMAINS_H_
#define PRESENCE_CORE_UNKNOWN_SUBDOMAINS_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>

#include "util/ascii.h"
#include "util/clock.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace presence {

class UnknownSubdomains {
 public:
  static constexpr std::size_t kMaxEntries = 4096;

  // Entries last `window` microseconds of the time given to the calls.
  explicit UnknownSubdomains(Micros window) : window_(window) {}

  // Whether `subdomain` was found unknown less than the window before `now`.
  bool Contains(std::string_view subdomain, Micros now) const EXCLUDES(mu_) {
    const std::string key = AsciiLower(subdomain);
    MutexLock lock(mu_);
    auto it = until_.find(key);
    return it != until_.end() && now < it->second;
  }

  // Remembers that no realm had `subdomain` at `now`.
  void Add(std::string_view subdomain, Micros now) EXCLUDES(mu_) {
    std::string key = AsciiLower(subdomain);
    MutexLock lock(mu_);
    if (until_.size() >= kMaxEntries) {
      std::erase_if(until_, [&](const auto& e) { return e.second <= now; });
      if (until_.size() >= kMaxEntries) until_.clear();
    }
    until_[std::move(key)] = now + window_;
  }

  // A realm has `subdomain` now.
  void Forget(std::string_view subdomain) EXCLUDES(mu_) {
    const std::string key = AsciiLower(subdomain);
    MutexLock lock(mu_);
    until_.erase(key);
  }

  void Clear() EXCLUDES(mu_) {
    MutexLock lock(mu_);
    until_.clear();
  }

 private:
  const Micros window_;
  mutable Mutex mu_;  // guards until_
  std::unordered_map<std::string, Micros> until_ GUARDED_BY(mu_);
};

}  // namespace presence

#endif  // PRESENCE_CORE_UNKNOWN_SUBDOMAINS_H_
