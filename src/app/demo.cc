#include "app/demo.h"

#include <cstdio>
#include <utility>

namespace presence::app {

int SetUpDemo(PresenceService& service, const std::string& url) {
  if (!service.Realms().empty()) {
    std::printf(
        "demo: the data directory already has organisations; "
        "nothing created\n");
    return 0;
  }
  auto realm = service.CreateRealm("", "Demo organisation");
  if (!realm) return 1;
  std::string alice_key;
  for (auto [email, name] : {std::pair{"alice@example.com", "Alice"},
                             {"bob@example.com", "Bob"},
                             {"carol@example.com", "Carol"}}) {
    NewUser u;
    u.email = email;
    u.full_name = name;
    auto created = service.CreateUser(*realm, u);
    if (!created) return 1;
    if (alice_key.empty()) alice_key = created->api_key;
    std::printf("demo: user %s key %s\n", email, created->api_key.c_str());
  }
  std::printf(
      "demo: ping as Alice with:\n"
      "  curl -sS -u alice@example.com:%s -d status=active -d "
      "slim_presence=true "
      "%s/api/v1/users/me/presence\n",
      alice_key.c_str(), url.c_str());
  return 0;
}

}  // namespace presence::app
