#include "api/client_name.h"

#include <array>

#include "util/ascii.h"

namespace presence::api {
namespace {

bool TokenChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '+';
}

// Product names that mean "a web browser" (and so Zulip's web app).
constexpr std::array<std::string_view, 8> kBrowsers = {
    "Mozilla", "Opera", "Chrome", "Safari",
    "Firefox", "Edge",  "Edg",    "MobileSafari"};

// Zulip's desktop apps, folded into "website" for presence.
constexpr std::array<std::string_view, 2> kDesktopApps = {"ZulipElectron",
                                                          "ZulipDesktop"};

}  // namespace

std::string ClientNameFromUserAgent(std::string_view user_agent) {
  std::size_t begin = 0;
  while (begin < user_agent.size() &&
         (user_agent[begin] == ' ' || user_agent[begin] == '\t')) {
    ++begin;
  }
  std::size_t end = begin;
  while (end < user_agent.size() && TokenChar(user_agent[end]) &&
         end - begin < kMaxClientNameLength) {
    ++end;
  }
  std::string_view name = user_agent.substr(begin, end - begin);
  if (name.empty()) return std::string(kUnspecifiedClient);
  for (std::string_view b : kBrowsers) {
    if (EqualsIgnoreCase(name, b)) return std::string(kWebsiteClient);
  }
  for (std::string_view d : kDesktopApps) {
    if (name == d) return std::string(kWebsiteClient);
  }
  return std::string(name);
}

}  // namespace presence::api
