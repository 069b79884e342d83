// RouteTable: one entry per route, the single place that says what the API
// serves.
//
// Each entry names a path pattern, the methods it answers, the handler, the
// metric label its requests are counted under and its flags (Redis's command
// table is the model: one entry per command holds arity, flags and the
// statistics name). Dispatch, the 405 answers with their Allow header, the
// OPTIONS answers and the metric labels all read the same entries, for the
// Zulip API (ZulipApi::Routes) and the admin API (AdminApi::Routes) alike.
//
// Patterns are literal paths in which "{}" stands for one non-empty segment
// without '/' (e.g. "/users/{}/presence"); nothing else is special. Several
// entries may share a pattern with different methods (GET/DELETE/PATCH
// /events): each has its own handler and metric label.
//
// Matching allocates nothing and uses no regex: it compares the pattern with
// the path character by character, entry by entry.
//
// Thread safety: tables are immutable; every function here is pure.
#ifndef PRESENCE_API_ROUTE_TABLE_H_
#define PRESENCE_API_ROUTE_TABLE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "api/metrics.h"

namespace presence::api {

// A set of HTTP methods, one bit each; listed (Allow, allowed_methods) in
// the order of kMethodNames.
using MethodSet = std::uint8_t;
inline constexpr MethodSet kGet = 1 << 0;
inline constexpr MethodSet kHead = 1 << 1;
inline constexpr MethodSet kPost = 1 << 2;
inline constexpr MethodSet kDelete = 1 << 3;
inline constexpr MethodSet kPatch = 1 << 4;
inline constexpr std::array<std::string_view, 5> kMethodNames = {
    "GET", "HEAD", "POST", "DELETE", "PATCH"};

// The bit of `method` (exact, upper case as sent); 0 for any other method.
MethodSet MethodBit(std::string_view method);

// The names of the methods in `set`, in kMethodNames order.
class MethodList {
 public:
  explicit MethodList(MethodSet set);
  std::span<const std::string_view> names() const { return {names_, size_}; }
  // "GET, HEAD": the value of an Allow header.
  std::string Joined() const;

 private:
  std::string_view names_[kMethodNames.size()];
  std::size_t size_ = 0;
};

// Route flags.
enum RouteFlag : std::uint16_t {
  // The caller must authenticate (HTTP Basic for the Zulip API).
  kNeedsAuth = 1 << 0,
  // Counted against the caller's rate limit (long polls wait, not work).
  kRateLimited = 1 << 1,
  // Names an event queue that may live on another node (scale-out relay).
  kRelayable = 1 << 2,
  // A long poll that may park; once its queue woke it, it is not synced
  // with the store again.
  kParks = 1 << 3,
  // Admin: the {} after /realms is a realm id, resolved (404) and synced
  // with the store before the method is checked.
  kRealmScoped = 1 << 4,
  // Admin: served only with --test-clock / --test-faults (404 otherwise,
  // before the method is checked).
  kNeedsTestClock = 1 << 5,
  kNeedsFaultInjector = 1 << 6,
  // Zulip: the handler's own write is the read barrier, so the request skips
  // the separate one (PresenceService::Sync, a store round trip in
  // scale-out) that other authenticated routes pass before they are handled.
  // Only for a handler that reads nothing before its PresenceService::Report
  // (which returns once the realm reflects everything the store had when the
  // report ran, written or not) and answers only errors that need no fresh
  // state before it. Authentication then runs against the replica as it
  // stands; a key it does not know (made a moment ago on another node) is
  // looked up again after a Sync, so it is never refused for being new, and
  // if the handler's barrier changed the realm's directory the caller is
  // authenticated again, so a key revoked (or a user deactivated) before
  // the request is refused as before. The store itself never writes for an
  // inactive user; a report racing a key change on another node may be
  // written with the old key and then refused.
  kWriteIsBarrier = 1 << 7,
  // The handler may wait on the shared store (a directory write, its
  // read barrier, a realm read): where ApiOptions::offload is set
  // (scale-out), it runs there, off the I/O thread, and the request is
  // resumed on its connection with the answer (api/offload.h). A new
  // handler that writes through PresenceService carries this flag.
  kMayWait = 1 << 8,
};

// How a Zulip route reads its parameters when the request is not a POST
// (POST bodies are always decoded first, for the legacy `method` field).
enum class Params : std::uint8_t {
  kStrict,   // decoded; a malformed query or body is a 400
  kLenient,  // decoded if well-formed, else ignored (the presence GETs)
  kNone,     // not read at all
};

template <class Handler>
struct Route {
  std::string_view pattern;
  MethodSet methods = 0;
  Handler handler{};
  Endpoint metric = Endpoint::kOther;
  std::uint16_t flags = 0;
  Params params = Params::kStrict;

  bool has(RouteFlag f) const { return (flags & f) != 0; }
};

// The {} segments of a matched path, in order, still percent-encoded.
inline constexpr std::size_t kMaxRouteArgs = 2;
using RouteArgs = std::array<std::string_view, kMaxRouteArgs>;

// Whether `path` matches `pattern`; fills `args` with its {} segments.
bool MatchPattern(std::string_view pattern, std::string_view path,
                  RouteArgs* args);

template <class Handler>
struct RouteMatch {
  // The entry for the path and the method; null if the path matched but no
  // entry takes the method (405), or the path matched nothing (404).
  const Route<Handler>* route = nullptr;
  // The first entry whose pattern matched, whatever the method; null: 404.
  const Route<Handler>* path_route = nullptr;
  // Every method some entry of the path takes (Allow).
  MethodSet allowed = 0;
  RouteArgs args{};

  bool path_found() const { return path_route != nullptr; }
};

// Looks `path` and `method` up in `table`. Entries of one pattern must be
// adjacent; the first pattern that matches wins.
template <class Handler>
RouteMatch<Handler> FindRoute(std::span<const Route<Handler>> table,
                              std::string_view path, std::string_view method) {
  RouteMatch<Handler> m;
  const MethodSet bit = MethodBit(method);
  for (const Route<Handler>& r : table) {
    if (m.path_route != nullptr) {
      if (r.pattern != m.path_route->pattern) break;
    } else if (!MatchPattern(r.pattern, path, &m.args)) {
      continue;
    } else {
      m.path_route = &r;
    }
    m.allowed |= r.methods;
    if (m.route == nullptr && (r.methods & bit) != 0) m.route = &r;
  }
  return m;
}

// The metric label of a request for `path` with `method`: its entry's, else
// that of the first entry of its path (a 405 counts where the path does),
// else `fallback` (an unknown path).
template <class Handler>
Endpoint MetricFor(std::span<const Route<Handler>> table, std::string_view path,
                   std::string_view method, Endpoint fallback) {
  RouteMatch<Handler> m = FindRoute(table, path, method);
  if (m.route != nullptr) return m.route->metric;
  if (m.path_route != nullptr) return m.path_route->metric;
  return fallback;
}

}  // namespace presence::api

#endif  // PRESENCE_API_ROUTE_TABLE_H_
