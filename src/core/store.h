// Store: where presenced keeps its state durably.
//
// The core owns the live state in memory and calls a Store to make it durable.
// Two kinds of writes, with different promises:
//   - directory writes (realms, users, keys, settings, access lists) are
//     committed before the call returns;
//   - presence writes arrive in batches from the group-commit flusher
//     (WritePresence) and are committed when that call returns.
// Ids of realms and users are allocated by the store (so that several nodes
// sharing one store never hand out the same id).
//
// Update ids: a realm's presence sequence must never be handed out twice, even
// across a crash. The core reserves ranges ahead: `reserved_update_id` is the
// highest id the core may use before it reserves more. After a restart the
// core continues from the reservation, never from the last flushed row.
//
// Errors: every method returns an Error value (util/error.h) rather than
// throwing: Errc::kStoreFailed (or kCorrupt) with the reason in words, made
// by the failing call itself ("WritePresence: database or disk is full ..."),
// or Errc::kAlreadyExists / kNotFound where documented (no words needed).
//
// Thread safety: implementations must accept calls from several threads; they
// serialize internally. No Realm or Directory lock is held across a call,
// except ReserveUpdateIds (under the realm's lock; rare, see Realm). The
// locks that only serialise callers may be: PresenceService's admin lock
// around directory writes, LocalWriter's flush lock around WritePresence.
#ifndef PRESENCE_CORE_STORE_H_
#define PRESENCE_CORE_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/types.h"
#include "util/crypto.h"
#include "util/error.h"
#include "util/result.h"

namespace presence::store {

struct RealmRecord {
  RealmId id = 0;  // ignored by InsertRealm
  std::string subdomain;
  std::string name;
  bool presence_disabled = false;
  bool deactivated = false;
  Micros date_created = 0;
  // Sequence state. InsertRealm stores them; UpdateRealm leaves them alone
  // (they move only through ReserveUpdateIds and WritePresence).
  UpdateId last_update_id = 0;      // highest id flushed so far
  UpdateId reserved_update_id = 0;  // highest update id the core may use
  friend bool operator==(const RealmRecord&, const RealmRecord&) = default;
};

// A user's status (Zulip's user status API): what they say about their
// availability, beside presence. A user has none until one is first set
// (Zulip's UserStatus row); clearing every field keeps the row.
struct UserStatus {
  // Which parameters the update that wrote the status passed: the
  // user_status event names exactly those (so every node that applies the
  // record announces what Zulip would have). kAwayValue holds `away`.
  enum Passed : std::uint8_t {
    kStatusText = 1,
    kEmoji = 2,
    kAway = 4,
    kAwayValue = 8,
    // Extensions (issue #18; events to user_status_extensions queues only):
    // the scheduled end changed or was passed; dnd or its end did.
    kScheduledEnd = 16,
    kDnd = 32,
  };
  std::string status_text;  // at most 60 characters, trimmed
  std::string emoji_name;   // "" : no emoji
  std::string emoji_code;
  std::string reaction_type = "unicode_emoji";
  Micros timestamp = 0;     // when it was last written
  std::uint8_t passed = 0;  // see Passed
  // Extensions (issue #18), UNIX seconds, 0: none. At scheduled_end_time
  // the server clears status_text and the emoji; at dnd_end_time, dnd.
  std::int64_t scheduled_end_time = 0;
  bool dnd = false;
  std::int64_t dnd_end_time = 0;  // only with dnd
  friend bool operator==(const UserStatus&, const UserStatus&) = default;
};

struct UserRecord {
  UserId id = 0;  // ignored by InsertUser
  RealmId realm_id = 0;
  std::string email;
  std::string full_name;
  Role role = Role::kMember;
  bool is_bot = false;
  bool is_active = true;
  bool presence_enabled = true;
  bool can_access_all_users = true;
  Micros date_joined = 0;
  Digest
      api_key_hash{};  // SHA-256 of the API key; the key itself is never stored
  // nullopt until the user's status is first set (UserStatus).
  std::optional<UserStatus> status;
  friend bool operator==(const UserRecord&, const UserRecord&) = default;
};

struct PresenceRecord {
  UserId user_id = 0;
  RealmId realm_id = 0;
  Micros last_connected = kNoTime;  // kNoTime is stored as NULL
  Micros last_active = kNoTime;
  UpdateId last_update_id = 0;
  friend bool operator==(const PresenceRecord&,
                         const PresenceRecord&) = default;
};

// Per-client presence (extension, issue #8): one row per (user, client
// name), beside the user's PresenceRecord, which stays the authority for
// every Zulip answer. The client name is derived from the request's
// User-Agent (api/client_name.h); a user has at most a few (the core bounds
// them, --max-clients-per-user). Times follow PresenceRecord's conventions.
// last_update_id is the realm sequence value of the row's last write (the
// same id as the user row's when one report wrote both).
struct ClientPresenceRecord {
  RealmId realm_id = 0;
  UserId user_id = 0;
  std::string client;               // e.g. "website", "ZulipMobile"
  Micros last_connected = kNoTime;  // kNoTime is stored as NULL
  Micros last_active = kNoTime;
  UpdateId last_update_id = 0;
  friend bool operator==(const ClientPresenceRecord&,
                         const ClientPresenceRecord&) = default;
};

// A guest's explicit access list: which users `viewer` may see.
struct AccessRecord {
  RealmId realm_id = 0;
  UserId viewer = 0;
  std::vector<UserId> visible;
  friend bool operator==(const AccessRecord&, const AccessRecord&) = default;
};

// The sequence state of one realm, written with each presence batch.
struct SequenceRecord {
  RealmId realm_id = 0;
  UpdateId last_update_id = 0;      // highest id used so far
  UpdateId reserved_update_id = 0;  // highest id the core may use
  friend bool operator==(const SequenceRecord&,
                         const SequenceRecord&) = default;
};

// Everything, as loaded at start. Vectors are ordered by id.
struct Snapshot {
  std::vector<RealmRecord> realms;
  std::vector<UserRecord> users;
  std::vector<PresenceRecord> presence;
  std::vector<AccessRecord> access;
  // Ordered by (user_id, client) (byte order of the name).
  std::vector<ClientPresenceRecord> client_presence;
};

// Receives the whole state as Store::LoadInto reads it, so that a start
// need not hold a Snapshot (at ten million users the Snapshot alone was
// gigabytes, and building and freeing it a large part of the start; issue
// #17). Calls come in this order, each table's batches in the order of
// Snapshot's vectors:
//   OnRealms (once, every realm), OnUserCount (once: how many users the
//   OnUsers batches will hold in all), OnUsers..., OnPresence...,
//   OnAccess..., OnClientPresence...
// A batch and its strings are valid only during the call (the store reuses
// them for the next batch: copy what is kept). A batch is never empty. An
// error returned by the sink ends the load; LoadInto returns it.
class LoadSink {
 public:
  virtual ~LoadSink() = default;
  virtual StoreStatus OnRealms(std::span<const RealmRecord> realms) = 0;
  virtual StoreStatus OnUserCount(std::size_t users) = 0;
  virtual StoreStatus OnUsers(std::span<const UserRecord> users) = 0;
  virtual StoreStatus OnPresence(std::span<const PresenceRecord> rows) = 0;
  virtual StoreStatus OnAccess(std::span<const AccessRecord> lists) = 0;
  virtual StoreStatus OnClientPresence(
      std::span<const ClientPresenceRecord> rows) = 0;
};

// A LoadSink that collects everything into a Snapshot (a store whose
// LoadInto reads natively can implement Load with it).
class SnapshotSink final : public LoadSink {
 public:
  explicit SnapshotSink(Snapshot* snap) : snap_(snap) {}
  StoreStatus OnRealms(std::span<const RealmRecord> realms) override {
    snap_->realms.assign(realms.begin(), realms.end());
    return {};
  }
  StoreStatus OnUserCount(std::size_t users) override {
    snap_->users.reserve(users);
    return {};
  }
  StoreStatus OnUsers(std::span<const UserRecord> users) override {
    snap_->users.insert(snap_->users.end(), users.begin(), users.end());
    return {};
  }
  StoreStatus OnPresence(std::span<const PresenceRecord> rows) override {
    snap_->presence.insert(snap_->presence.end(), rows.begin(), rows.end());
    return {};
  }
  StoreStatus OnAccess(std::span<const AccessRecord> lists) override {
    snap_->access.insert(snap_->access.end(), lists.begin(), lists.end());
    return {};
  }
  StoreStatus OnClientPresence(
      std::span<const ClientPresenceRecord> rows) override {
    snap_->client_presence.insert(snap_->client_presence.end(), rows.begin(),
                                  rows.end());
    return {};
  }

 private:
  Snapshot* const snap_;
};

class Store {
 public:
  virtual ~Store() = default;

  // Reads the whole state. Called once at start, before any write.
  virtual StoreResult<Snapshot> Load() = 0;

  // Reads the whole state into `sink` (see LoadSink), as one consistent
  // view, as Load would return it. Called once at start, before any write,
  // instead of Load. This default calls Load and hands its vectors over; a
  // store that can read row by row overrides it to hold no Snapshot.
  virtual StoreStatus LoadInto(LoadSink& sink) {
    auto snap = Load();
    if (!snap) return std::move(snap).error();
    return FeedSnapshot(*snap, sink);
  }

  // Hands a snapshot to a sink as LoadInto does.
  static StoreStatus FeedSnapshot(const Snapshot& snap, LoadSink& sink) {
    if (auto st = sink.OnRealms(snap.realms); !st) return st;
    if (auto st = sink.OnUserCount(snap.users.size()); !st) return st;
    if (!snap.users.empty()) {
      if (auto st = sink.OnUsers(snap.users); !st) return st;
    }
    if (!snap.presence.empty()) {
      if (auto st = sink.OnPresence(snap.presence); !st) return st;
    }
    if (!snap.access.empty()) {
      if (auto st = sink.OnAccess(snap.access); !st) return st;
    }
    if (!snap.client_presence.empty()) {
      if (auto st = sink.OnClientPresence(snap.client_presence); !st) {
        return st;
      }
    }
    return {};
  }

  // Inserts a realm and returns its new id. kAlreadyExists if the subdomain is
  // taken.
  virtual StoreResult<RealmId> InsertRealm(const RealmRecord& realm) = 0;
  // Replaces subdomain, name, presence_disabled and deactivated of the realm
  // with id realm.id (not its sequence state). kNotFound if there is none.
  virtual StoreStatus UpdateRealm(const RealmRecord& realm) = 0;

  // Inserts a user and returns its new id. kAlreadyExists if the email is
  // taken in that realm (case-insensitive).
  virtual StoreResult<UserId> InsertUser(const UserRecord& user) = 0;
  // Replaces the user row with id user.id. kNotFound if there is none.
  virtual StoreStatus UpdateUser(const UserRecord& user) = 0;

  // Bulk onboarding: inserts every user of `create` (writing its new id into
  // the record) and replaces every user of `update`, in one transaction
  // where the store has them (SQLite: all or nothing). This default makes
  // one InsertUser / UpdateUser call each and stops at the first failure,
  // so a failure may leave the first ones written (their ids set; the rest
  // keep id 0).
  virtual StoreStatus WriteUsers(std::span<UserRecord> create,
                                 std::span<const UserRecord> update) {
    for (UserRecord& u : create) {
      auto id = InsertUser(u);
      if (!id) return std::move(id).error();
      u.id = *id;
    }
    for (const UserRecord& u : update) {
      if (auto st = UpdateUser(u); !st) return st;
    }
    return {};
  }

  // Replaces the access list of (realm, viewer).
  virtual StoreStatus SetAccess(const AccessRecord& access) = 0;

  // Durably raises a realm's reservation to at least `reserved_update_id`.
  virtual StoreStatus ReserveUpdateIds(RealmId realm,
                                       UpdateId reserved_update_id) = 0;

  // Commits a batch of presence rows (upserts, last write per user wins),
  // per-client rows and sequence states in one transaction: all of it or
  // nothing.
  //
  // `clients` replaces per user: for every user that has at least one record
  // in `clients`, the user's stored client rows become exactly that user's
  // records of this batch (rows of other clients of that user are deleted:
  // that is how the core's per-user bound drops the stalest client). Users
  // without a record in `clients` keep their client rows. Within a batch a
  // (user, client) pair appears at most once. Every record's user and realm
  // must exist (kNotFound otherwise, and nothing is written).
  virtual StoreStatus WritePresence(
      std::span<const PresenceRecord> rows,
      std::span<const ClientPresenceRecord> clients,
      std::span<const SequenceRecord> sequences) = 0;
};

}  // namespace presence::store

#endif  // PRESENCE_CORE_STORE_H_
