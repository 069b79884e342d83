// Shared by the Router fuzz targets (router_fuzz.cc, admin_fuzz.cc): a whole
// presenced object graph in memory, a splitter for the text input format, and
// the invariants every response must keep.
//
// The graph is the one src/app/main.cc builds, minus the sockets: a
// PresenceService over a store::MemoryStore with a ManualClock, an EventHub
// with the JSON event encoder, and an api::Router whose ApiOptions carry an
// admin token and the test clock. Request.waiter stays null, so GET /events
// answers at once instead of parking.
//
// State: the JSON event encoder is built once (static); the service, hub and
// router are built afresh for every input and destroyed before it returns.
// A run of one input therefore never depends on the inputs before it, which
// is what makes a crash file a regression test that replays on its own; and
// nothing allocated by one input is freed by the next, which keeps libFuzzer's
// leak check exact. Building costs a few microseconds of SHA-256 per user.
// To reach stateful paths (register, then poll), one input carries several
// requests.
//
// Thread safety: single-threaded, as libFuzzer runs.
#ifndef PRESENCE_FUZZ_FUZZ_WORLD_H_
#define PRESENCE_FUZZ_FUZZ_WORLD_H_

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/api_options.h"
#include "api/event_encoder.h"
#include "api/http_types.h"
#include "api/router.h"
#include "core/event_hub.h"
#include "core/presence_service.h"
#include "testing/memory_store.h"
#include "util/clock.h"
#include "util/crypto.h"

namespace presence::fuzz {

// Aborts with the failed condition, which libFuzzer reports as a crash.
#define FUZZ_CHECK(cond)                                                      \
  do {                                                                        \
    if (!(cond)) {                                                            \
      std::fprintf(stderr, "CHECK failed at %s:%d: %s\n", __FILE__, __LINE__, \
                   #cond);                                                    \
      std::abort();                                                           \
    }                                                                         \
  } while (false)

inline constexpr std::string_view kAdminToken = "fuzz-admin-token-0123456789";
inline constexpr Micros kStartTime = SecondsToMicros(1'700'000'000);

// Credentials the input can name by index ("@0" .. "@5", see Authorization).
struct Credential {
  std::string email;
  std::string api_key;
  UserId user_id = 0;
};

// The users every input starts with, by index.
enum CredentialIndex {
  kMember = 0,        // member of the root realm, with a presence row
  kBot = 1,           // bot of the root realm
  kLimitedGuest = 2,  // guest who sees only kMember
  kDeactivated = 3,   // deactivated member of the root realm
  kOtherRealm = 4,    // member of realm "zephyr" (presence disabled)
  kAdminBearer = 5,   // not a user: the admin API's bearer token
  kNumCredentials = 6,
};

inline const api::JsonEventEncoder& Encoder() {
  static const api::JsonEventEncoder encoder;
  return encoder;
}

class World {
 public:
  explicit World(int rate_limit_per_minute = 10) {
    options_.admin_token = std::string(kAdminToken);
    options_.test_clock = &clock_;
    options_.rate_limit_per_minute = rate_limit_per_minute;
    auto service = PresenceService::Create(&store_, &clock_);
    FUZZ_CHECK(service);
    service_ = std::move(*service);
    hub_ = std::make_unique<EventHub>(service_.get(), &Encoder(), HubOptions{});
    service_->SetListener(hub_.get());
    router_ =
        std::make_unique<api::Router>(service_.get(), hub_.get(), &options_);

    auto root = service_->CreateRealm("", "Fuzz");
    FUZZ_CHECK(root);
    auto zephyr = service_->CreateRealm("zephyr", "Zephyr");
    FUZZ_CHECK(zephyr);
    FUZZ_CHECK(service_->SetRealmPresenceDisabled(*zephyr, true));
    root_ = *root;

    creds_.resize(kNumCredentials);
    Add(kMember, *root, "alice@example.com", Role::kMember, false, true);
    Add(kBot, *root, "bot@example.com", Role::kMember, true, true);
    Add(kLimitedGuest, *root, "guest@example.com", Role::kGuest, false, false);
    Add(kDeactivated, *root, "gone@example.com", Role::kMember, false, true);
    Add(kOtherRealm, *zephyr, "zed@example.com", Role::kAdministrator, false,
        true);
    FUZZ_CHECK(service_->SetAccess(*root, creds_[kLimitedGuest].user_id,
                                   {creds_[kMember].user_id}));
    UserPatch off;
    off.is_active = false;
    FUZZ_CHECK(service_->UpdateUser(*root, creds_[kDeactivated].user_id, off));

    // Presence rows, so that fetches have something to return.
    Realm* realm = service_->FindRealmById(*root);
    for (int i : {kMember, kLimitedGuest}) {
      auto who =
          service_->Authenticate(*realm, creds_[i].email, creds_[i].api_key);
      FUZZ_CHECK(std::holds_alternative<Caller>(who));
      FUZZ_CHECK(service_->Report(std::get<Caller>(who), ReportStatus::kActive,
                                  clock_.NowMicros()));
    }
  }

  World(const World&) = delete;
  World& operator=(const World&) = delete;

  const api::Router& router() const { return *router_; }
  PresenceService& service() { return *service_; }
  EventHub& hub() { return *hub_; }
  ManualClock& clock() { return clock_; }
  RealmId root() const { return root_; }
  const Credential& credential(int i) const { return creds_.at(i); }

  // The Authorization header value for credential `i`.
  std::string AuthorizationFor(int i) const {
    if (i == kAdminBearer) return "Bearer " + std::string(kAdminToken);
    const Credential& c = creds_.at(i);
    return "Basic " + Base64Encode(c.email + ":" + c.api_key);
  }

 private:
  void Add(int index, RealmId realm, std::string email, Role role, bool bot,
           bool all) {
    NewUser u;
    u.email = email;
    u.full_name = email.substr(0, email.find('@'));
    u.role = role;
    u.is_bot = bot;
    u.can_access_all_users = all;
    auto created = service_->CreateUser(realm, u);
    FUZZ_CHECK(created);
    creds_[index] = {std::move(email), created->api_key, created->user_id};
  }

  ManualClock clock_{kStartTime};
  store::MemoryStore store_;
  api::ApiOptions options_;
  std::unique_ptr<PresenceService> service_;
  std::unique_ptr<EventHub> hub_;
  std::unique_ptr<api::Router> router_;
  RealmId root_ = 0;
  std::vector<Credential> creds_;
};

// Input splitting -----------------------------------------------------------

// Takes the next line off `in` (without its '\n'); the rest stays in `in`.
inline std::string_view NextLine(std::string_view& in) {
  std::size_t nl = in.find('\n');
  std::string_view line = in.substr(0, nl);
  in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  return line;
}

// Splits an input into request blocks separated by lines "%%" (at most
// `max_blocks`; the last block keeps the rest of the input).
inline std::vector<std::string_view> SplitBlocks(std::string_view in,
                                                 std::size_t max_blocks) {
  constexpr std::string_view kSeparator = "\n%%\n";
  std::vector<std::string_view> blocks;
  while (blocks.size() + 1 < max_blocks) {
    std::size_t at = in.find(kSeparator);
    if (at == std::string_view::npos) break;
    blocks.push_back(in.substr(0, at));
    in = in.substr(at + kSeparator.size());
  }
  blocks.push_back(in);
  return blocks;
}

// Values an input can refer to by "$<letter>": the letter's value, or
// nothing when it has none yet.
struct Variables {
  std::string queue_id;  // $Q: the last queue id a response carried
  std::string realm_id;  // $R: the last realm the admin API created
  std::string user_id;   // $U: the last user the admin API created

  std::string_view Get(char letter) const {
    switch (letter) {
      case 'Q':
        return queue_id;
      case 'R':
        return realm_id;
      case 'U':
        return user_id;
      default:
        return {};
    }
  }
};

// Replaces "$Q", "$R" and "$U" in `s` by their values; everything else is
// copied.
inline std::string Substitute(std::string_view s, const Variables& vars) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '$' && i + 1 < s.size() &&
        (s[i + 1] == 'Q' || s[i + 1] == 'R' || s[i + 1] == 'U')) {
      out += vars.Get(s[i + 1]);
      ++i;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Remembers the queue id, realm id and user id a successful response
// carried (top-level "queue_id", "realm_id", "user_id").
inline void Capture(const boost::json::value& body, Variables& vars) {
  if (!body.is_object()) return;
  const boost::json::object& o = body.as_object();
  if (const auto* q = o.if_contains("queue_id"); q && q->is_string()) {
    vars.queue_id = std::string(q->as_string());
  }
  if (const auto* r = o.if_contains("realm_id"); r && r->is_int64()) {
    vars.realm_id = std::to_string(r->as_int64());
  }
  if (const auto* u = o.if_contains("user_id"); u && u->is_int64()) {
    vars.user_id = std::to_string(u->as_int64());
  }
}

// A method line may start with "+SECONDS " to move the presence clock forward
// before the request (at most 30 days a step). Returns the method.
inline std::string_view TakeClockStep(std::string_view method,
                                      ManualClock& clock) {
  if (method.empty() || method[0] != '+') return method;
  std::size_t sp = method.find(' ');
  std::string_view digits = method.substr(
      1, sp == std::string_view::npos ? std::string_view::npos : sp - 1);
  std::int64_t seconds = 0;
  auto [end, ec] =
      std::from_chars(digits.data(), digits.data() + digits.size(), seconds);
  if (ec == std::errc() && seconds >= 0 && seconds <= 30 * 86400) {
    clock.Advance(SecondsToMicros(seconds));
  }
  return sp == std::string_view::npos ? std::string_view()
                                      : method.substr(sp + 1);
}

// With FUZZ_VERBOSE set in the environment, prints each exchange to stderr
// (to look at what a seed or a crash input does).
inline void Trace(const api::Request& req, const api::Response& res) {
  static const bool verbose = std::getenv("FUZZ_VERBOSE") != nullptr;
  if (!verbose) return;
  std::fprintf(
      stderr, "> %.*s %.*s\n< %u %.*s\n", static_cast<int>(req.method.size()),
      req.method.data(), static_cast<int>(req.target.size()), req.target.data(),
      res.status, static_cast<int>(std::min<std::size_t>(res.body.size(), 400)),
      res.body.data());
}

// Invariants ------------------------------------------------------------------

// The statuses presenced answers with. 500 never: every error is expected
// input. 503 only once the store failed (a MemoryStore never does).
inline bool KnownStatus(unsigned s) {
  switch (s) {
    case 200:
    case 204:
    case 400:
    case 401:
    case 403:
    case 404:
    case 405:
    case 409:
    case 429:
    case 503:
      return true;
    default:
      return false;
  }
}

inline bool HasHeader(const api::Response& r, std::string_view name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return true;
  }
  return false;
}

// Checks the response to any request and returns its JSON body (null when the
// body is not JSON or empty).
inline boost::json::value CheckResponse(const api::Response& r,
                                        const PresenceService& service) {
  FUZZ_CHECK(KnownStatus(r.status));
  FUZZ_CHECK(r.status != 503 || service.failed());
  // No waiter was given, so nothing may park.
  FUZZ_CHECK(!r.parked);
  if (r.status == 204) FUZZ_CHECK(r.body.empty());
  if (r.status == 401) FUZZ_CHECK(HasHeader(r, "WWW-Authenticate"));
  if (r.status == 405) FUZZ_CHECK(HasHeader(r, "Allow"));
  if (r.status == 429) FUZZ_CHECK(HasHeader(r, "Retry-After"));
  if (r.body.empty() || r.content_type != "application/json") {
    FUZZ_CHECK(r.status < 400);  // errors are always JSON
    return nullptr;
  }
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(r.body, ec);
  if (ec) {
    std::fprintf(stderr, "status %u, body not JSON (%s): %.*s\n", r.status,
                 ec.message().c_str(), static_cast<int>(r.body.size()),
                 r.body.data());
  }
  FUZZ_CHECK(!ec);
  FUZZ_CHECK(v.is_object());
  const boost::json::object& o = v.as_object();
  if (r.status >= 400) {
    const auto* result = o.if_contains("result");
    const auto* msg = o.if_contains("msg");
    FUZZ_CHECK(result != nullptr && *result == "error");
    FUZZ_CHECK(msg != nullptr && msg->is_string());
  } else if (const auto* result = o.if_contains("result")) {
    FUZZ_CHECK(*result == "success");
    const auto* msg = o.if_contains("msg");
    FUZZ_CHECK(msg != nullptr && msg->is_string());
  }
  return v;
}

}  // namespace presence::fuzz

#endif  // PRESENCE_FUZZ_FUZZ_WORLD_H_
