// RelayAuth: a signature verifies for exactly the request, secret and time
// window it was made for; malformed marks never verify.
#include "http/relay_auth.h"

#include <gtest/gtest.h>

#include <string>

namespace presence::http {
namespace {

constexpr std::int64_t kNow = 1'700'000'000;

TEST(RelayAuthTest, ASignatureVerifiesWithinTheWindowOnly) {
  const RelayAuth auth("sixteen-chars-or-more");
  const std::string mark = auth.Sign("GET", "/api/v1/events?a=1", "", kNow);
  EXPECT_EQ(mark.rfind("1700000000.", 0), 0u) << mark;
  const std::int64_t skew = RelayAuth::kMaxSkew.count();
  for (std::int64_t now : {kNow, kNow - skew, kNow + skew}) {
    EXPECT_TRUE(auth.Verify("GET", "/api/v1/events?a=1", "", mark, now));
  }
  for (std::int64_t now : {kNow - skew - 1, kNow + skew + 1}) {
    EXPECT_FALSE(auth.Verify("GET", "/api/v1/events?a=1", "", mark, now));
  }
}

TEST(RelayAuthTest, PartsCannotBeShiftedBetweenFields) {
  const RelayAuth auth("sixteen-chars-or-more");
  const std::string mark = auth.Sign("POST", "/a", "bc", kNow);
  EXPECT_TRUE(auth.Verify("POST", "/a", "bc", mark, kNow));
  EXPECT_FALSE(auth.Verify("POST", "/ab", "c", mark, kNow));
  EXPECT_FALSE(auth.Verify("POST", "/a", "bc ", mark, kNow));
}

TEST(RelayAuthTest, MalformedMarksNeverVerify) {
  const RelayAuth auth("sixteen-chars-or-more");
  const std::string good = auth.Sign("GET", "/x", "", kNow);
  const std::string mac = good.substr(good.find('.') + 1);
  for (const std::string& bad :
       {std::string(), std::string("1"), std::string("."), "." + mac,
        "-5." + mac, "17e8." + mac, " 1700000000." + mac, "1700000000" + mac,
        "1700000000." + mac + "0", "1700000000." + mac.substr(1),
        std::string("1700000000.") + std::string(mac.size(), '0'),
        "99999999999999999999." + mac}) {
    EXPECT_FALSE(auth.Verify("GET", "/x", "", bad, kNow)) << bad;
  }
  EXPECT_TRUE(auth.Verify("GET", "/x", "", good, kNow));
}

}  // namespace
}  // namespace presence::http
