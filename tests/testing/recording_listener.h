// RecordingListener: a PresenceListener that keeps everything it is told,
// for tests. Thread-safe: a replica's changes arrive on the feed thread.
#ifndef PRESENCE_TESTING_RECORDING_LISTENER_H_
#define PRESENCE_TESTING_RECORDING_LISTENER_H_

#include <mutex>
#include <utility>
#include <vector>

#include "core/presence_listener.h"

namespace presence {

class RecordingListener : public PresenceListener {
 public:
  void OnPresenceChange(const PresenceChange& c) override {
    std::lock_guard lock(mu);
    all.push_back(c);
    if (c.event_due) due.push_back(c.user_id);
  }
  void OnPresenceEnabledChange(RealmId, UserId user, bool enabled) override {
    std::lock_guard lock(mu);
    toggles.emplace_back(user, enabled);
  }
  void OnUserDeactivated(RealmId, UserId user) override {
    std::lock_guard lock(mu);
    deactivated.push_back(user);
  }
  void OnUserStatusChange(RealmId, UserId user,
                          const store::UserStatus& status) override {
    std::lock_guard lock(mu);
    statuses.emplace_back(user, status);
  }
  // Copies, taken under the lock.
  std::vector<std::pair<UserId, store::UserStatus>> Statuses() {
    std::lock_guard lock(mu);
    return statuses;
  }
  std::vector<UserId> Due() {
    std::lock_guard lock(mu);
    return due;
  }
  std::vector<std::pair<UserId, bool>> Toggles() {
    std::lock_guard lock(mu);
    return toggles;
  }
  std::vector<UserId> Deactivated() {
    std::lock_guard lock(mu);
    return deactivated;
  }

  // Guards the fields below; lock it to read them in place.
  std::mutex mu;
  std::vector<PresenceChange> all;
  std::vector<UserId> due;  // users of the changes with event_due
  std::vector<std::pair<UserId, bool>> toggles;
  std::vector<UserId> deactivated;
  std::vector<std::pair<UserId, store::UserStatus>> statuses;
};

}  // namespace presence

#endif  // PRESENCE_TESTING_RECORDING_LISTENER_H_
