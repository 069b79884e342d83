#include "http/trusted_proxies.h"

#include <gtest/gtest.h>

#include <string_view>
#include <vector>

namespace presence::http {
namespace {

namespace ip = boost::asio::ip;

ip::address A(const char* s) { return ip::make_address(s); }

TEST(CidrTest, ParsesNetworksAndSingleAddresses) {
  EXPECT_TRUE(Cidr::Parse("127.0.0.0/8"));
  EXPECT_TRUE(Cidr::Parse("127.0.0.1"));
  EXPECT_TRUE(Cidr::Parse("::1/128"));
  EXPECT_TRUE(Cidr::Parse("::/0"));
  EXPECT_FALSE(Cidr::Parse(""));
  EXPECT_FALSE(Cidr::Parse("127.0.0.1/33"));
  EXPECT_FALSE(Cidr::Parse("::1/129"));
  EXPECT_FALSE(Cidr::Parse("127.0.0.1/"));
  EXPECT_FALSE(Cidr::Parse("127.0.0.1/x"));
  EXPECT_FALSE(Cidr::Parse("localhost"));
}

TEST(CidrTest, MatchesItsPrefixOnly) {
  auto c = *Cidr::Parse("127.0.4.0/22");
  EXPECT_TRUE(c.Contains(A("127.0.4.1")));
  EXPECT_TRUE(c.Contains(A("127.0.7.255")));
  EXPECT_FALSE(c.Contains(A("127.0.8.0")));
  EXPECT_FALSE(c.Contains(A("127.0.3.255")));
  // An IPv4 network matches the IPv4-mapped form of its addresses, and no
  // other IPv6 address.
  EXPECT_TRUE(c.Contains(A("::ffff:127.0.5.5")));
  EXPECT_FALSE(c.Contains(A("::1")));
  auto one = *Cidr::Parse("::1");
  EXPECT_TRUE(one.Contains(A("::1")));
  EXPECT_FALSE(one.Contains(A("::2")));
  EXPECT_FALSE(one.Contains(A("127.0.0.1")));
}

TEST(TrustedProxiesTest, ForwardedAddressFormats) {
  EXPECT_EQ(ParseForwardedAddress(" 127.0.0.5 "), A("127.0.0.5"));
  EXPECT_EQ(ParseForwardedAddress("127.0.0.5:4711"), A("127.0.0.5"));
  EXPECT_EQ(ParseForwardedAddress("::1"), A("::1"));
  EXPECT_EQ(ParseForwardedAddress("[::1]"), A("::1"));
  EXPECT_EQ(ParseForwardedAddress("[::1]:80"), A("::1"));
  EXPECT_EQ(ParseForwardedAddress("::ffff:127.0.0.9"), A("127.0.0.9"));
  EXPECT_FALSE(ParseForwardedAddress("unknown"));
  EXPECT_FALSE(ParseForwardedAddress(""));
  EXPECT_FALSE(ParseForwardedAddress("[::1"));
  EXPECT_FALSE(ParseForwardedAddress("[::1]x"));
}

class ClientAddressTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(proxies_.Add("127.0.0.1/32")); }

  ip::address Client(const char* peer, std::vector<std::string_view> xff) {
    return proxies_.ClientAddress(A(peer), xff);
  }

  TrustedProxies proxies_;
};

TEST_F(ClientAddressTest, AnUntrustedPeerIsTheClientWhateverItSays) {
  EXPECT_EQ(Client("127.0.0.2", {"127.0.0.9"}), A("127.0.0.2"));
}

TEST_F(ClientAddressTest, ATrustedPeerNamesTheRightmostUntrustedAddress) {
  EXPECT_EQ(Client("127.0.0.1", {"127.0.0.9"}), A("127.0.0.9"));
  // Whatever the client wrote itself is left of what the proxy appended.
  EXPECT_EQ(Client("127.0.0.1", {"127.0.0.66, 127.0.0.9"}), A("127.0.0.9"));
  // Proxies of the chain are skipped, across fields too.
  EXPECT_EQ(Client("127.0.0.1", {"127.0.0.66, 127.0.0.9", "127.0.0.1"}),
            A("127.0.0.9"));
  EXPECT_EQ(Client("127.0.0.1", {"127.0.0.9,127.0.0.1, 127.0.0.1"}),
            A("127.0.0.9"));
}

TEST_F(ClientAddressTest, WithoutAHeaderOrAValidEntryThePeerIsTheClient) {
  EXPECT_EQ(Client("127.0.0.1", {}), A("127.0.0.1"));
  EXPECT_EQ(Client("127.0.0.1", {""}), A("127.0.0.1"));
  EXPECT_EQ(Client("127.0.0.1", {"garbage"}), A("127.0.0.1"));
  // A forged entry stops the walk at the last trusted hop.
  EXPECT_EQ(Client("127.0.0.1", {"127.0.0.9, nonsense, 127.0.0.1"}),
            A("127.0.0.1"));
  // All trusted: the leftmost.
  EXPECT_EQ(Client("127.0.0.1", {"127.0.0.1, 127.0.0.1"}), A("127.0.0.1"));
}

TEST_F(ClientAddressTest, NoNetworksTrustNobody) {
  TrustedProxies none;
  EXPECT_TRUE(none.empty());
  std::vector<std::string_view> xff = {"127.0.0.9"};
  EXPECT_EQ(none.ClientAddress(A("127.0.0.1"), xff), A("127.0.0.1"));
}

}  // namespace
}  // namespace presence::http
