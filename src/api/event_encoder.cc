#include "api/event_encoder.h"

#include "api/json_writer.h"
#include "api/presence_format.h"
#include "core/presence_rules.h"

namespace presence::api {

std::string JsonEventEncoder::Presence(const PresenceChange& change,
                                       PresenceShape shape, Micros server_time,
                                       std::string_view transition,
                                       const ClientRowList* clients) const {
  std::string out = R"({"type":"presence")";
  if (shape == PresenceShape::kModern) {
    out.append(",\"presences\":{\"");
    AppendInt(out, change.user_id);
    out.append("\":");
    if (clients != nullptr) {
      AppendModernValuePerClient(out, change.times, change.date_joined,
                                 clients);
    } else {
      AppendModernValue(out, change.times, change.date_joined);
    }
    out.push_back('}');
    if (!transition.empty()) {
      // The modern shape has no clock of its own; a transition needs one.
      out.append(",\"server_timestamp\":");
      AppendSeconds(out, server_time);
    }
  } else {
    out.append(",\"user_id\":");
    AppendInt(out, change.user_id);
    if (shape == PresenceShape::kLegacy) {
      out.append(",\"email\":");
      AppendJsonString(out, change.email);
    }
    out.append(",\"server_timestamp\":");
    AppendSeconds(out, server_time);
    if (clients != nullptr) {
      out.append(",\"presence\":");
      AppendLegacyValuePerClient(out, change.times, change.date_joined,
                                 clients);
      if (!transition.empty()) {
        out.append(",\"transition\":");
        AppendJsonString(out, transition);
      }
      out.push_back('}');
      return out;
    }
    LegacyView v = ComputeLegacy(change.times, change.date_joined);
    out.append(
        ",\"presence\":{\"website\":{\"client\":\"website\",\"status\":");
    out.append(v.active ? "\"active\"" : "\"idle\"");
    out.append(",\"timestamp\":");
    AppendInt(out, v.timestamp);
    out.append(",\"pushable\":false}}");
  }
  if (!transition.empty()) {
    out.append(",\"transition\":");
    AppendJsonString(out, transition);
  }
  out.push_back('}');
  return out;
}

std::string JsonEventEncoder::UserSettingsPresenceEnabled(bool enabled) const {
  return std::string(
             R"({"type":"user_settings","op":"update","property":"presence_enabled","value":)") +
         (enabled ? "true" : "false") + "}";
}

std::string JsonEventEncoder::UserStatus(
    UserId user, const store::UserStatus& status) const {
  // Zulip's order: user_id, then away, status_text and the emoji, each only
  // when the update passed it.
  std::string out = R"({"type":"user_status","user_id":)";
  out.append(std::to_string(user));
  if (status.passed & store::UserStatus::kAway) {
    out.append(",\"away\":");
    out.append(status.passed & store::UserStatus::kAwayValue ? "true"
                                                             : "false");
  }
  if (status.passed & store::UserStatus::kStatusText) {
    out.append(",\"status_text\":");
    AppendJsonString(out, status.status_text);
  }
  if (status.passed & store::UserStatus::kEmoji) {
    out.append(",\"emoji_name\":");
    AppendJsonString(out, status.emoji_name);
    out.append(",\"emoji_code\":");
    AppendJsonString(out, status.emoji_code);
    out.append(",\"reaction_type\":");
    AppendJsonString(out, status.reaction_type);
  }
  out.push_back('}');
  return out;
}

std::string JsonEventEncoder::UserStatusExtended(
    UserId user, const store::UserStatus& status) const {
  std::string out = UserStatus(user, status);
  out.pop_back();  // '}'
  if (status.passed & store::UserStatus::kScheduledEnd) {
    out.append(",\"scheduled_end_time\":");
    out.append(std::to_string(status.scheduled_end_time));
  }
  if (status.passed & store::UserStatus::kDnd) {
    out.append(",\"dnd\":");
    out.append(status.dnd ? "true" : "false");
    out.append(",\"dnd_end_time\":");
    out.append(std::to_string(status.dnd_end_time));
  }
  out.push_back('}');
  return out;
}

std::string JsonEventEncoder::GlobalNotificationsPresenceEnabled(
    std::string_view email, bool enabled) const {
  std::string out = R"({"type":"update_global_notifications","user":)";
  AppendJsonString(out, email);
  out.append(R"(,"notification_name":"presence_enabled","setting":)");
  out.append(enabled ? "true" : "false");
  out.push_back('}');
  return out;
}

std::string JsonEventEncoder::Heartbeat() const {
  return R"({"type":"heartbeat"})";
}

void AppendEventWithId(std::string& out, const std::string& body,
                       std::int64_t id) {
  out.append(body.data(), body.size() - 1);  // without the closing brace
  out.append(",\"id\":");
  AppendInt(out, id);
  out.push_back('}');
}

}  // namespace presence::api
