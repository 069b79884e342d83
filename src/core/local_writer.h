// LocalWriter: the single-node write path (see core/presence_writer.h).
//
// Durability: directory changes (realms, users, keys, settings, access) are
// committed to the store before the call returns. Presence rows are written
// behind: Flush() commits everything changed since the last flush, and
// raises each realm's update-id reservation ahead of use (a realm that runs
// past it reserves synchronously, through ReserveUpdateIds). A failed store
// write is sticky: from then on every write is refused with
// Errc::kStoreFailed (reads keep working) and failure() says why.
//
// Thread safety: as PresenceWriter. flush_mu_ serialises flushes;
// failure_mu_ guards failure_. The store is called with no lock of this
// class held, except flush_mu_ across WritePresence and a realm's lock
// across the rare synchronous reservation.
#ifndef PRESENCE_CORE_LOCAL_WRITER_H_
#define PRESENCE_CORE_LOCAL_WRITER_H_

#include <atomic>
#include <string>

#include "core/presence_writer.h"
#include "core/store.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace presence {

class LocalWriter final : public PresenceWriter, private UpdateIdReserver {
 public:
  // `store` must outlive the writer.
  explicit LocalWriter(store::Store* store);

  StoreStatus Start(const WriterContext& context) override;
  Status Writable() const override;
  Status Report(const Caller& caller, ReportStatus status, Micros now,
                std::string_view client) override;
  Result<RealmId> CreateRealm(store::RealmRecord record) override;
  Status UpdateRealm(Realm& realm, const store::RealmRecord& record) override;
  Result<UserId> CreateUser(Realm& realm,
                            const store::UserRecord& record) override;
  Status UpdateUser(Realm& realm, UserId user, const UserPatch& patch) override;
  Result<WriteIf> UpdateStatusIf(Realm& realm,
                                 const store::UserRecord& expected,
                                 const store::UserStatus& status) override;
  Status WriteUsers(Realm& realm, UserBatch& batch) override;
  Status SetAccess(Realm& realm, store::AccessRecord record) override;
  Realm* LoadRealm(std::string_view) override { return nullptr; }
  Realm* LoadRealm(RealmId) override { return nullptr; }
  Status Sync(const Realm&) override { return {}; }
  Result<FlushStats> Flush() override;
  std::string failure() const override;
  bool failed() const override {
    return failed_.load(std::memory_order_acquire);
  }
  std::optional<std::string> StoreUnavailable() const override {
    return std::nullopt;
  }

 private:
  Status ReserveUpdateIds(RealmId realm, UpdateId up_to) override;
  UpdateIdReserver* ids() { return this; }
  // Makes the failure sticky; the reason is `what` and the failed call's
  // own error ("writing presence failed: WritePresence: disk I/O error").
  void MarkFailed(std::string_view what, const Error& error);

  store::Store* const store_;
  WriterContext context_;
  Mutex flush_mu_;  // one flush at a time (guards no data of its own)
  std::atomic<bool> failed_{false};
  mutable Mutex failure_mu_;  // guards failure_
  std::string failure_ GUARDED_BY(failure_mu_);
};

}  // namespace presence

#endif  // PRESENCE_CORE_LOCAL_WRITER_H_
