#include "http/operator_endpoints.h"

#include <gtest/gtest.h>

namespace presence::http {
namespace {

boost::asio::ip::tcp::endpoint Ep(const char* address) {
  return {boost::asio::ip::make_address(address), 9991};
}

TEST(OperatorEndpointsTest, LoopbackServesThemOnTheMainListener) {
  EXPECT_FALSE(OperatorEndpointsError(Ep("127.0.0.1"), false, false));
  EXPECT_FALSE(OperatorEndpointsError(Ep("127.3.2.1"), false, false));
  EXPECT_FALSE(OperatorEndpointsError(Ep("::1"), false, false));
  EXPECT_FALSE(OperatorEndpointsError(Ep("::ffff:127.0.0.1"), false, false));
}

TEST(OperatorEndpointsTest, AnyOtherAddressNeedsTheOperatorToSayWhere) {
  // The wildcards stand for every address that is not loopback (parsed
  // here, never bound).
  for (const char* a : {"0.0.0.0", "::"}) {
    auto why = OperatorEndpointsError(Ep(a), false, false);
    ASSERT_TRUE(why) << a;
    EXPECT_NE(why->find("--admin-listen"), std::string::npos) << *why;
    EXPECT_NE(why->find("--admin-on-main-listener"), std::string::npos);
    EXPECT_FALSE(OperatorEndpointsError(Ep(a), true, false)) << a;
    EXPECT_FALSE(OperatorEndpointsError(Ep(a), false, true)) << a;
  }
}

TEST(OperatorEndpointsTest, BothFlagsAtOnceAreRefused) {
  EXPECT_TRUE(OperatorEndpointsError(Ep("127.0.0.1"), true, true));
}

}  // namespace
}  // namespace presence::http
