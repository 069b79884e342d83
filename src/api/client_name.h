// ClientName: which client sent a request, from its User-Agent, as Zulip
// names clients (its `Client` rows: "website", "ZulipMobile", ...). Used by
// the per-client presence extension to key a user's presence per device.
//
// The name is the User-Agent's first product token (the text before the
// first '/', space or '(' ; only ASCII letters, digits and "-_.+" count, at
// most 64 of them), then folded the way Zulip folds it for presence:
//   - browsers ("Mozilla", "Opera", "Chrome", "Safari", "Firefox", "Edge",
//     "MobileSafari", any case) are "website";
//   - the desktop app ("ZulipElectron", and the older "ZulipDesktop") is
//     "website" too, as Zulip's consolidate_client did;
//   - every other client keeps its own name ("ZulipMobile", which the Flutter
//     app also sends, "ZulipTerminal", "ZulipPython", "curl", ...);
//   - a missing or unparsable User-Agent is "Unspecified" (Zulip's name for
//     requests without one).
//
// Thread safety: a pure function.
#ifndef PRESENCE_API_CLIENT_NAME_H_
#define PRESENCE_API_CLIENT_NAME_H_

#include <string>
#include <string_view>

namespace presence::api {

inline constexpr std::string_view kUnspecifiedClient = "Unspecified";
inline constexpr std::string_view kWebsiteClient = "website";
inline constexpr std::size_t kMaxClientNameLength = 64;

std::string ClientNameFromUserAgent(std::string_view user_agent);

}  // namespace presence::api

#endif  // PRESENCE_API_CLIENT_NAME_H_
