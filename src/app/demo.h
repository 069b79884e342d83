// The --demo organisation.
#ifndef PRESENCE_APP_DEMO_H_
#define PRESENCE_APP_DEMO_H_

#include <string>

#include "core/presence_service.h"

namespace presence::app {

// On an empty data directory, creates the demo organisation and prints a
// ready-to-paste ping for one of its users. Returns 0, or 1 on failure.
int SetUpDemo(PresenceService& service, const std::string& url);

}  // namespace presence::app

#endif  // PRESENCE_APP_DEMO_H_
