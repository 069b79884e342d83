#include "core/types.h"

namespace presence {

std::optional<Role> ParseRole(std::string_view name) {
  if (name == "owner") return Role::kOwner;
  if (name == "administrator") return Role::kAdministrator;
  if (name == "moderator") return Role::kModerator;
  if (name == "member") return Role::kMember;
  if (name == "guest") return Role::kGuest;
  return std::nullopt;
}

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kOwner:
      return "owner";
    case Role::kAdministrator:
      return "administrator";
    case Role::kModerator:
      return "moderator";
    case Role::kMember:
      return "member";
    case Role::kGuest:
      return "guest";
  }
  return "member";
}

}  // namespace presence
