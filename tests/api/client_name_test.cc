#include "api/client_name.h"

#include <gtest/gtest.h>

#include <string>

namespace presence::api {
namespace {

struct Case {
  const char* user_agent;
  const char* client;
};

// User-Agent strings as Zulip's clients send them.
constexpr Case kCases[] = {
    // Browsers (Zulip's web app): "website".
    {"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, "
     "like Gecko) Chrome/79.0.3945.130 Safari/537.36",
     "website"},
    {"Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 "
     "Firefox/115.0",
     "website"},
    {"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) "
     "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 "
     "Safari/604.1",
     "website"},
    {"Opera/9.80 (X11; Linux x86_64) Presto/2.12.388 Version/12.16", "website"},
    // The desktop app (zulip-desktop sets "ZulipElectron/<version> " in
    // front of Electron's own agent), and its predecessor: "website".
    {"ZulipElectron/5.11.1 Mozilla/5.0 (X11; Linux x86_64) "
     "AppleWebKit/537.36 (KHTML, like Gecko) Zulip/5.11.1 "
     "Chrome/124.0.6367.243 "
     "Electron/30.1.2 Safari/537.36",
     "website"},
    {"ZulipDesktop/0.5.2 (Mac)", "website"},
    // zulip-mobile (React Native), and zulip-flutter, which sends the same
    // product name so that servers recognise it.
    {"ZulipMobile/27.192 (Android 11)", "ZulipMobile"},
    {"ZulipMobile/26.22.145 (iOS 10.3.1)", "ZulipMobile"},
    {"ZulipMobile/flutter", "ZulipMobile"},
    // zulip-terminal through python-zulip-api: client name, then the
    // library's "(vendor; version)".
    {"ZulipTerminal/0.7.0 Linux-6.1.0-13-amd64-x86_64-with-glibc2.36 "
     "(Debian GNU/Linux; 12)",
     "ZulipTerminal"},
    // python-zulip-api's default client name, and bots built on it.
    {"ZulipPython/0.9.0 (Ubuntu; 22.04)", "ZulipPython"},
    {"ZulipAndroid/1.0", "ZulipAndroid"},
    // Any other API client keeps its own name.
    {"node-fetch/1.0 (+https://github.com/bitinn/node-fetch)", "node-fetch"},
    {"curl/7.88.1", "curl"},
    {"python-requests/2.28.1", "python-requests"},
    {"presence-client/0.1", "presence-client"},
    // Nothing usable: Zulip's "Unspecified".
    {"", "Unspecified"},
    {"   ", "Unspecified"},
    {"(compatible)", "Unspecified"},
    {"/1.0", "Unspecified"},
};

TEST(ClientNameTest, RealUserAgentsOfZulipClients) {
  for (const Case& c : kCases) {
    EXPECT_EQ(ClientNameFromUserAgent(c.user_agent), c.client)
        << "User-Agent: " << c.user_agent;
  }
}

TEST(ClientNameTest, BrowserNamesFoldIgnoringCase) {
  EXPECT_EQ(ClientNameFromUserAgent("mozilla/5.0"), "website");
  EXPECT_EQ(ClientNameFromUserAgent("Chrome/120.0"), "website");
  // Only Zulip's own desktop product names fold; case matters there.
  EXPECT_EQ(ClientNameFromUserAgent("zulipelectron/1.0"), "zulipelectron");
}

TEST(ClientNameTest, NameIsBoundedAndStopsAtUnsafeCharacters) {
  std::string long_name(200, 'a');
  EXPECT_EQ(ClientNameFromUserAgent(long_name + "/1.0"),
            std::string(kMaxClientNameLength, 'a'));
  EXPECT_EQ(ClientNameFromUserAgent("Bad\"Name/1"), "Bad");
  EXPECT_EQ(ClientNameFromUserAgent("Tab\tName"), "Tab");
}

}  // namespace
}  // namespace presence::api
