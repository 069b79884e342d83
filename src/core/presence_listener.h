// PresenceListener: what the write paths tell the rest of the server (the
// event hub) about changes, after the realm's lock was released.
//
// Thread safety: called on the thread that made the change (an I/O thread
// for a local write, the feed thread for a change applied from a shared
// store); implementations synchronise themselves.
#ifndef PRESENCE_CORE_PRESENCE_LISTENER_H_
#define PRESENCE_CORE_PRESENCE_LISTENER_H_

#include "core/realm.h"
#include "core/types.h"

namespace presence {

class PresenceListener {
 public:
  virtual ~PresenceListener() = default;
  // Every presence write (change.event_due says whether Zulip would send an
  // event for it, spec 3.3).
  virtual void OnPresenceChange(const PresenceChange& change) = 0;
  // presence_enabled of `user` changed to `enabled` (a user_settings event).
  virtual void OnPresenceEnabledChange(RealmId realm, UserId user,
                                       bool enabled) {}
  // `user` was deactivated: its event queues must go at once.
  virtual void OnUserDeactivated(RealmId realm, UserId user) {}
  // The user status of `user` was written (a user_status event to everyone
  // who may see the user); `status` is the status as written.
  virtual void OnUserStatusChange(RealmId realm, UserId user,
                                  const store::UserStatus& status) {}
};

}  // namespace presence

#endif  // PRESENCE_CORE_PRESENCE_LISTENER_H_
