// JsonEventEncoder: the wire form of the events presenced sends (spec 3.3 and
// 4), for EventHub. Bodies are JSON objects without "id"; the hub's queues
// share each one.
//
// Thread safety: stateless; any thread.
#ifndef PRESENCE_API_EVENT_ENCODER_H_
#define PRESENCE_API_EVENT_ENCODER_H_

#include "core/event_hub.h"

namespace presence::api {

class JsonEventEncoder final : public EventEncoder {
 public:
  // Per-client variants (`clients` non-null): the modern shape's entry is
  // the per-client modern value; the legacy and slim shapes' "presence" is
  // the per-client legacy value (aggregated plus one key per client), as in
  // the per-client answers (presence_format.h).
  std::string Presence(const PresenceChange& change, PresenceShape shape,
                       Micros server_time, std::string_view transition,
                       const ClientRowList* clients) const override;
  std::string UserSettingsPresenceEnabled(bool enabled) const override;
  std::string GlobalNotificationsPresenceEnabled(std::string_view email,
                                                 bool enabled) const override;
  std::string UserStatus(UserId user,
                         const store::UserStatus& status) const override;
  std::string UserStatusExtended(
      UserId user, const store::UserStatus& status) const override;
  std::string Heartbeat() const override;
};

// Appends `{...,"id":N}`: the stored body with the queue's event id.
void AppendEventWithId(std::string& out, const std::string& body,
                       std::int64_t id);

}  // namespace presence::api

#endif  // PRESENCE_API_EVENT_ENCODER_H_
