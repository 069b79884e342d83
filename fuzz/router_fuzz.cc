// libFuzzer target for api::Router::Handle(): routing, Host -> realm, HTTP
// Basic and bearer authentication, method checks and override, parameter
// parsing and every handler behind them, over a fresh in-memory server
// (fuzz/fuzz_world.h).
//
// Input: up to 16 requests separated by lines "%%". Each request is
//   METHOD          optionally "+SECONDS METHOD": advance the clock first
//   TARGET          origin-form; "$Q", "$R", "$U" are the last queue,
//                   realm and user id a response carried (fuzz_world.h)
//   HOST
//   AUTHORIZATION   ""   no header
//                   "@N<tail>"  a real credential N (0 member, 1 bot,
//                         2 limited guest, 3 deactivated, 4 other realm,
//                         5 admin bearer) with <tail> appended
//                   "!<text>" or any other text: that header, verbatim
//   CONTENT-TYPE
//   BODY            the rest of the block (with the same substitutions)
// A missing line is empty, so every byte string is an input.
//
// Checked invariants (abort on violation), besides the sanitizers:
//  - the status is a known one, never 500; 503 only if the store failed;
//    nothing parks (the waiter is null);
//  - a JSON body parses with Boost.JSON as an object; an error has
//    "result":"error" and a string "msg"; a success has "result":"success";
//    401 carries WWW-Authenticate, 405 Allow, 429 Retry-After;
//  - authentication holds: a 200 from an authenticated /api/v1 endpoint
//    needs a real active credential, a 2xx from /admin/v1 the admin token
//    (until an admin call in the same input changed the directory).
#include <boost/json/value.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_world.h"

namespace {

using namespace presence;
using presence::fuzz::World;

constexpr std::size_t kMaxRequests = 16;

struct Authorization {
  bool present = false;
  std::string value;
  int credential = -1;  // the index it was derived from, if any
};

Authorization ParseAuthorization(std::string_view line, const World& world) {
  Authorization a;
  if (line.empty()) return a;
  a.present = true;
  if (line[0] == '@' && line.size() >= 2 && line[1] >= '0' && line[1] <= '9') {
    a.credential = (line[1] - '0') % fuzz::kNumCredentials;
    a.value = world.AuthorizationFor(a.credential);
    a.value += line.substr(2);
    return a;
  }
  if (line[0] == '!') line.remove_prefix(1);
  a.value = std::string(line);
  return a;
}

std::string_view PathOf(std::string_view target) {
  return target.substr(0, target.find('?'));
}

bool UnderPrefix(std::string_view path, std::string_view prefix) {
  return path.starts_with(prefix) &&
         (path.size() == prefix.size() || path[prefix.size()] == '/');
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  World world;
  fuzz::Variables vars;
  bool directory_changed = false;

  for (std::string_view block : fuzz::SplitBlocks(input, kMaxRequests)) {
    std::string_view method =
        fuzz::TakeClockStep(fuzz::NextLine(block), world.clock());
    const std::string target = fuzz::Substitute(fuzz::NextLine(block), vars);
    std::string_view host = fuzz::NextLine(block);
    Authorization auth = ParseAuthorization(fuzz::NextLine(block), world);
    std::string_view content_type = fuzz::NextLine(block);
    const std::string body = fuzz::Substitute(block, vars);

    api::Request req;
    req.method = method;
    req.target = target;
    req.host = host;
    req.has_authorization = auth.present;
    req.authorization = auth.value;
    req.content_type = content_type;
    req.body = body;
    api::Response res = world.router().Handle(req);
    fuzz::Trace(req, res);
    boost::json::value json = fuzz::CheckResponse(res, world.service());

    const std::string_view path = PathOf(target);
    if (UnderPrefix(path, "/admin/v1")) {
      if (res.status < 300) {
        FUZZ_CHECK(auth.value.find(fuzz::kAdminToken) != std::string::npos);
        if (method != "GET") directory_changed = true;
      }
    } else if (UnderPrefix(path, "/api/v1") && res.status == 200 &&
               path != "/api/v1/server_settings" && !directory_changed) {
      const int c = auth.credential;
      FUZZ_CHECK(c == fuzz::kMember || c == fuzz::kBot ||
                 c == fuzz::kLimitedGuest || c == fuzz::kOtherRealm);
    }

    if (res.status == 200) fuzz::Capture(json, vars);
  }
  return 0;
}
