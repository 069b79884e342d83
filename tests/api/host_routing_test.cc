#include "api/host_routing.h"

#include <gtest/gtest.h>

namespace presence::api {
namespace {

TEST(HostRoutingTest, RootDomainAndIpLiteralsAreTheRootRealm) {
  EXPECT_EQ(SubdomainForHost("localhost", "localhost"), "");
  EXPECT_EQ(SubdomainForHost("localhost:9991", "localhost"), "");
  EXPECT_EQ(SubdomainForHost("LOCALHOST:9991", "localhost"), "");
  EXPECT_EQ(SubdomainForHost("127.0.0.1:9991", "localhost"), "");
  EXPECT_EQ(SubdomainForHost("127.0.0.1", "chat.example.com"), "");
  EXPECT_EQ(SubdomainForHost("[::1]:9991", "localhost"), "");
  EXPECT_EQ(SubdomainForHost("[::1]", "localhost"), "");
}

TEST(HostRoutingTest, SubdomainOfRootIsThatRealm) {
  EXPECT_EQ(SubdomainForHost("acme.localhost:9991", "localhost"), "acme");
  EXPECT_EQ(SubdomainForHost("Acme.Chat.Example.com", "chat.example.com"),
            "acme");
}

TEST(HostRoutingTest, AnythingElseIsNoRealm) {
  EXPECT_EQ(SubdomainForHost("", "localhost"), std::nullopt);
  EXPECT_EQ(SubdomainForHost("example.com", "localhost"), std::nullopt);
  EXPECT_EQ(SubdomainForHost("a.b.localhost", "localhost"), std::nullopt);
  EXPECT_EQ(SubdomainForHost("notlocalhost", "localhost"), std::nullopt);
  EXPECT_EQ(SubdomainForHost(".localhost", "localhost"), std::nullopt);
  EXPECT_EQ(SubdomainForHost("[::1", "localhost"), std::nullopt);
  EXPECT_EQ(SubdomainForHost("[zz]:1", "localhost"), std::nullopt);
  EXPECT_EQ(SubdomainForHost("999.1.1.1", "localhost"), std::nullopt);
}

}  // namespace
}  // namespace presence::api

namespace presence::api {
namespace {

TEST(HostRoutingTest, OnlyPlainHostsAndNumericPortsRoute) {
  EXPECT_EQ(SubdomainForHost("localhost:\x94", "localhost"), std::nullopt);
  EXPECT_EQ(SubdomainForHost("localhost:", "localhost"), std::nullopt);
  EXPECT_EQ(SubdomainForHost("localhost:99x", "localhost"), std::nullopt);
  EXPECT_EQ(SubdomainForHost("localhost:123456", "localhost"), std::nullopt);
  EXPECT_EQ(SubdomainForHost("ac\"me.localhost", "localhost"), std::nullopt);
  EXPECT_EQ(SubdomainForHost("localhost:65535", "localhost"), "");
}

}  // namespace
}  // namespace presence::api

namespace presence::api {
namespace {

// The thread keeps its last answer: repeated and alternating calls must
// still each get their own.
TEST(HostRoutingTest, RepeatedAndAlternatingCallsGetTheirOwnAnswers) {
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(SubdomainForHost("acme.localhost", "localhost"), "acme");
    EXPECT_EQ(SubdomainForHost("acme.localhost", "localhost"), "acme");
    EXPECT_EQ(SubdomainForHost("zeta.localhost:80", "localhost"), "zeta");
    // The same host under another root domain.
    EXPECT_EQ(SubdomainForHost("acme.localhost", "example.com"), std::nullopt);
    EXPECT_EQ(SubdomainForHost("acme.localhost", "acme.localhost"), "");
    EXPECT_EQ(SubdomainForHost("", "localhost"), std::nullopt);
  }
}

}  // namespace
}  // namespace presence::api
