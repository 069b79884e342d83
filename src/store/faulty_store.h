// FaultyStore: a Store decorator that makes writes fail on demand.
//
// Tests wrap a real store (usually a MemoryStore) to check how the layers above
// react to a failing disk: while failing, every write (InsertRealm,
// UpdateRealm, InsertUser, UpdateUser, SetAccess, ReserveUpdateIds,
// WritePresence) returns Errc::kStoreFailed without reaching the wrapped
// store, so nothing of it is persisted. Reads (Load, LoadInto) pass through
// unless SetFailLoad(true). An injected failure says so in its message.
//
// Ownership: does not own the wrapped store, which must outlive it.
// Thread safety: the controls and counters are atomics, settable from any
// thread while other threads call the Store methods; the wrapped store does
// its own locking.
#ifndef PRESENCE_STORE_FAULTY_STORE_H_
#define PRESENCE_STORE_FAULTY_STORE_H_

#include <atomic>
#include <cstdint>
#include <string_view>

#include "core/fault_injector.h"
#include "core/store.h"

namespace presence::store {

class FaultyStore final : public Store, public FaultInjector {
 public:
  // `inner` must be non-null and outlive this object.
  explicit FaultyStore(Store* inner);
  FaultyStore(const FaultyStore&) = delete;
  FaultyStore& operator=(const FaultyStore&) = delete;
  ~FaultyStore() override = default;

  // Every write fails while `fail` is true. Clears any FailWritesAfter.
  void SetFailWrites(bool fail) override;
  // Lets the next `n` writes through, then fails every write after them
  // (n = 0: fail from now on) until SetFailWrites(false).
  void FailWritesAfter(std::int64_t n);
  // Makes Load fail with kStoreFailed while `fail` is true.
  void SetFailLoad(bool fail);

  // Writes attempted (passed or failed) and writes failed by this decorator.
  std::int64_t write_count() const { return writes_.load(); }
  std::int64_t failed_write_count() const { return failed_writes_.load(); }

  // The error of a call this decorator fails: kStoreFailed, with the
  // message kInjectedFailure.
  static constexpr std::string_view kInjectedFailure =
      "injected failure (FaultyStore)";

  StoreResult<Snapshot> Load() override;
  StoreStatus LoadInto(LoadSink& sink) override;
  StoreResult<RealmId> InsertRealm(const RealmRecord& realm) override;
  StoreStatus UpdateRealm(const RealmRecord& realm) override;
  StoreResult<UserId> InsertUser(const UserRecord& user) override;
  StoreStatus UpdateUser(const UserRecord& user) override;
  StoreStatus SetAccess(const AccessRecord& access) override;
  StoreStatus ReserveUpdateIds(RealmId realm,
                               UpdateId reserved_update_id) override;
  StoreStatus WritePresence(std::span<const PresenceRecord> rows,
                            std::span<const ClientPresenceRecord> clients,
                            std::span<const SequenceRecord> sequences) override;

 private:
  // Counts one write and says whether it must fail.
  bool ShouldFailWrite();

  Store* const inner_;
  // Writes still allowed before failing; -1 = no limit (not failing).
  std::atomic<std::int64_t> writes_left_{-1};
  std::atomic<bool> fail_load_{false};
  std::atomic<std::int64_t> writes_{0};
  std::atomic<std::int64_t> failed_writes_{0};
};

}  // namespace presence::store

#endif  // PRESENCE_STORE_FAULTY_STORE_H_
