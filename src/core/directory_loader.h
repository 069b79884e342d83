// DirectoryLoader: fills a Directory from a store as Store::LoadInto reads
// it, batch by batch, so that a start holds no Snapshot (issue #17: at ten
// million users the Snapshot was gigabytes, and building and freeing it
// most of the start).
//
// What it does with each call of the LoadSink (core/store.h):
//   OnRealms        creates every realm;
//   OnUserCount     sizes the key index, and the realm's tables when there
//                   is one realm (the common case for big stores: several
//                   realms grow their tables as they load);
//   OnUsers         appends each run of one realm's users under one lock
//                   of it, and notes their keys;
//   (then, once)    fills the realms' id and email sets and the key index
//                   in bulk, on two threads (IndexUsers), the key index
//                   with no realm lock held (its prefix check reads the
//                   holder's realm, issue #15);
//   OnPresence, OnAccess, OnClientPresence
//                   attach rows to their realm (rows of unknown realms or
//                   users are ignored, as before);
// and Finish orders each realm's rows by update id (Realm::FinishLoad).
// A user whose realm is unknown is corrupt data: Errc::kCorrupt.
//
// `progress`, if set, is called with the name of each phase as it begins
// ("users", "index", "presence", "access", "clients", "order") and with
// "done" at the end of Finish, so that the caller can time them (the core
// has no clock of its own).
//
// Thread safety: one thread uses a loader; it takes the directory's and
// the realms' locks itself, per batch. IndexUsers runs a helper thread and
// waits for it.
#ifndef PRESENCE_CORE_DIRECTORY_LOADER_H_
#define PRESENCE_CORE_DIRECTORY_LOADER_H_

#include <functional>
#include <span>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/directory.h"
#include "core/realm.h"
#include "core/store.h"

namespace presence {

class DirectoryLoader final : public store::LoadSink {
 public:
  using Progress = std::function<void(std::string_view phase)>;
  // `directory` (empty, nothing served yet) and `ids` must outlive the
  // loader; `ids` is handed to every realm created.
  DirectoryLoader(Directory* directory, UpdateIdReserver* ids,
                  Progress progress = {});

  StoreStatus OnRealms(std::span<const store::RealmRecord> realms) override;
  StoreStatus OnUserCount(std::size_t users) override;
  StoreStatus OnUsers(std::span<const store::UserRecord> users) override;
  StoreStatus OnPresence(std::span<const store::PresenceRecord> rows) override;
  StoreStatus OnAccess(std::span<const store::AccessRecord> lists) override;
  StoreStatus OnClientPresence(
      std::span<const store::ClientPresenceRecord> rows) override;

  // After LoadInto returned success: orders every realm's rows.
  void Finish();

 private:
  // The realm with this id, or nullptr (the last one found is remembered:
  // rows come in long runs of one realm).
  Realm* RealmOf(RealmId id);
  // Calls progress_ once per phase.
  void Enter(std::string_view phase);
  // Once the users are in: fills the realms' id and email sets and the key
  // index in bulk (see Realm::IndexLoadedMembers,
  // Directory::IndexLoadedKeysLocked), on two threads. Called by the first
  // call after the users; does nothing after the first time.
  void IndexUsers();

  Directory* const directory_;
  UpdateIdReserver* const ids_;
  const Progress progress_;
  std::unordered_map<RealmId, Realm*> realms_;
  Realm* last_ = nullptr;
  std::string_view phase_;
  std::size_t user_count_ = 0;
  // (key digest prefix, slot) of the users loaded, by realm, until
  // IndexUsers puts them in the key index.
  std::unordered_map<RealmId,
                     std::vector<std::pair<std::uint64_t, std::uint32_t>>>
      keys_;
  bool indexed_ = false;
};

}  // namespace presence

#endif  // PRESENCE_CORE_DIRECTORY_LOADER_H_
