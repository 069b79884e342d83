// Realm: one organisation's users and presence rows, in memory.
//
// Design. Members live in a vector (a "slot" is an index into it, stable for
// the realm's life: users are deactivated, never removed). Every member with a
// presence row is linked into an update-order list: a write takes the next
// update id and moves the row to the tail, so the rows changed since a cursor
// are exactly the tail run whose ids exceed it. An incremental fetch therefore
// costs O(rows changed), never O(users in the realm).
//
// Update ids come from the realm's sequence. To never hand one out twice
// across a crash, ids are used only up to `reserved_update_id`, which the
// store made durable beforehand; the flusher reserves ahead, and a writer
// that runs out reserves synchronously (rare). How far ahead follows the
// realm's write rate: each flush reserves kReserveIntervals times the ids
// used since the previous one (at least kReserveAhead), so a steady rate,
// whatever it is, never runs out while the next commit runs; a ping would
// otherwise reserve under the realm's lock and wait for that commit.
//
// Per-client rows (extension, issue #8). Beside the user's row, the realm
// keeps one row per (user, client name), in a side table (ClientTable: paged
// by slot, one 40-byte entry per user who has reported with a client name,
// names interned), so Member does not grow.
// Every report with a client name applies Zulip's rules (55 s, 130 s) to the
// client's own row, independently of the user row, which stays exactly as
// Zulip's. A client-row write takes an update id: the user row's id when
// the same report wrote it, else the realm's next id (so incremental and
// event consumers that asked for per-client data see device changes; the
// user row's id is not touched, so nobody else sees a difference but gaps
// in the sequence, which Zulip's ids already have). Users with client rows
// are linked into a second update-order list by their newest client-row
// id. At most max_clients_per_user rows per user: a new client pushes out
// the stalest (oldest last_connected, then oldest update id).
//
// Thread safety: every method locks `mu_` itself: shared for reads, exclusive
// for writes. Visitors run under the shared lock and must not call back into
// the realm. Id, subdomain-free fields are immutable after construction.
#ifndef PRESENCE_CORE_REALM_H_
#define PRESENCE_CORE_REALM_H_

#include <atomic>
#include <boost/unordered/unordered_flat_set.hpp>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "core/client_table.h"
#include "core/presence_rules.h"
#include "core/slot_by_id.h"
#include "core/store.h"
#include "core/types.h"
#include "util/arena.h"
#include "util/ascii.h"
#include "util/crypto.h"
#include "util/function_ref.h"
#include "util/mutex.h"
#include "util/result.h"
#include "util/slot_list.h"
#include "util/thread_annotations.h"

namespace presence {

// Where a realm gets more update ids when its reservation runs out (the
// realm's one port). Ids up to `up_to` must be durable before the call
// returns: a crash must never hand one out twice (see core/store.h).
class UpdateIdReserver {
 public:
  virtual ~UpdateIdReserver() = default;
  virtual Status ReserveUpdateIds(RealmId realm, UpdateId up_to) = 0;
};

// One user as the realm holds it. Read-only outside Realm.
//
// Kept small (a million of them live in one vector): the email and full name
// are not std::strings but one record in the realm's Arena, laid out as
// [email size][name size][email][full name], which `text` points at, each
// size a varint (7 bits a byte, low bits first: one byte below 128, where
// two uint32 cost 8 bytes a user, issue #17). The record is never changed or
// freed while the realm lives (a rename writes a new one), so a copy of a
// Member (MemberById) keeps valid strings as long as its realm exists, which is
// as long as the server runs.
struct Member {
  static constexpr std::uint32_t kNil =
      std::numeric_limits<std::uint32_t>::max();
  // The record of a Member with empty email and name.
  static constexpr char kNoText[8] = {};

  std::string_view email() const {
    std::uint32_t email_size, name_size;
    const char* p = ReadSize(ReadSize(text, &email_size), &name_size);
    return {p, email_size};
  }
  std::string_view full_name() const {
    std::uint32_t email_size, name_size;
    const char* p = ReadSize(ReadSize(text, &email_size), &name_size);
    return {p + email_size, name_size};
  }

  UserId id = 0;
  Micros date_joined = 0;
  Digest api_key_hash{};
  PresenceTimes times;
  UpdateId last_update_id = 0;
  const char* text = kNoText;  // see above
  std::uint32_t prev = kNil;   // update-order list (rows only)
  std::uint32_t next = kNil;
  Role role = Role::kMember;
  bool is_bot = false;
  bool is_active = true;
  bool presence_enabled = true;
  bool can_access_all_users = true;
  bool has_row = false;  // a presence row exists
  bool dirty = false;    // changed since the last flush

  // A guest without full access sees only its access list (and itself).
  bool limited() const { return role == Role::kGuest && !can_access_all_users; }
  // Shows up in realm fetches (if it has a row).
  bool listed() const { return is_active && !is_bot; }

  // The most bytes a size takes in `text`.
  static constexpr std::size_t kMaxSizeBytes = 5;
  // Writes `n` at `p` (at most kMaxSizeBytes) and returns the byte after it.
  static char* WriteSize(char* p, std::uint32_t n) {
    while (n >= 0x80) {
      *p++ = static_cast<char>((n & 0x7f) | 0x80);
      n >>= 7;
    }
    *p++ = static_cast<char>(n);
    return p;
  }
  // Reads a size WriteSize wrote at `p` and returns the byte after it.
  static const char* ReadSize(const char* p, std::uint32_t* n) {
    std::uint32_t v = 0;
    for (int shift = 0;; shift += 7) {
      const auto b = static_cast<unsigned char>(*p++);
      v |= std::uint32_t{b & 0x7fu} << shift;
      if (b < 0x80) break;
    }
    *n = v;
    return p;
  }
};
// 96 bytes: every byte here is a megabyte at a million users (issue #4).
static_assert(sizeof(Member) == 96, "Member grew: check issue #4's budget");

// One client's presence row of a user (per-client extension).
struct ClientPresence {
  std::string client;  // e.g. "website", "ZulipMobile"
  PresenceTimes times;
  UpdateId last_update_id = 0;  // realm sequence value of its last write
  friend bool operator==(const ClientPresence&,
                         const ClientPresence&) = default;
};

// A user's client rows, ordered by client name (byte order).
using ClientRowList = std::vector<ClientPresence>;

// What a presence fetch should return (spec 3.4).
struct FetchQuery {
  std::optional<UpdateId> last_update_id;  // cursor, if the client sent one
  std::optional<std::int64_t> history_limit_days;  // default 14
  // Per-client extension: also count client-row writes as changes (a user
  // whose client rows changed after the cursor is returned even if the
  // user row did not), and hand the visitor the client rows.
  bool per_client = false;
};

// A change that should be told to watchers (spec 3.3).
struct PresenceChange {
  RealmId realm_id = 0;
  UserId user_id = 0;
  std::string email;
  Micros date_joined = 0;
  PresenceTimes times;
  UpdateId update_id = 0;
  Micros written_at = 0;   // the presence time of the write
  bool event_due = false;  // Zulip would send a presence event (spec 3.3)
  bool forced = false;     // ... even past the user limit / disabled realm
  // False when only client rows were written (per-client extension): the
  // user row, `times` and `update_id` are as before the report.
  bool row_written = true;
  // A client row was created or came online (the 130 s rule applied to the
  // client row) with the realm's presence enabled: queues that asked for
  // per-client data should hear of it even when event_due is false.
  bool client_event_due = false;
};

class Realm {
 public:
  // A realm loaded from the store continues its sequence after the
  // reservation (ids up to it may have been handed out before a crash); a
  // `fresh` realm, just created, starts at record.last_update_id.
  // `ids` (not owned; must outlive the realm) is asked for more update ids
  // when a local write runs past the reservation.
  Realm(const store::RealmRecord& record, UpdateIdReserver* ids,
        bool fresh = false);
  Realm(const Realm&) = delete;
  Realm& operator=(const Realm&) = delete;

  RealmId id() const { return id_; }
  std::string subdomain() const;
  std::string name() const;
  bool presence_disabled() const;
  bool deactivated() const;
  UpdateId last_update_id() const;
  std::size_t member_count() const;
  // Active users, bots included (Zulip's presence event recipients).
  std::size_t active_count() const;
  // Grows after every change that can alter what authenticating a member of
  // this realm yields (a member's key, activity, role; the realm's settings,
  // deactivation included), once the change is visible. A Caller stamped
  // with the value read before it was authenticated is still what
  // authentication would give while the value is unchanged.
  std::uint64_t directory_generation() const {
    return directory_generation_.load(std::memory_order_acquire);
  }

  // --- Loading and directory changes (the store was already updated) ------

  // Makes room for `n` members (loading), so that adding them rehashes and
  // reallocates nothing.
  void Reserve(std::size_t n);

  // Adds a member; returns its slot. Precondition: id and email are new.
  // The strings are copied into the realm's arena (see Member).
  std::uint32_t AddMember(const store::UserRecord& user);
  // Loading: adds every user of `users` under one lock (their strings are
  // copied). They are found by id and email only once IndexLoadedMembers
  // (or LoadPresence, LoadClientPresence, FinishLoad, which call it) has
  // indexed them: one bulk pass instead of an insert per user.
  // Returns the slot of the first: users[i] is at that slot + i. The
  // caller indexes the keys once this returns, with the realm's lock
  // released: the key index's prefix-collision check reads a holder's
  // member under that lock, which may be this very realm (issue #15).
  std::uint32_t LoadMembers(std::span<const store::UserRecord> users);
  // Indexes the members LoadMembers added (see there); idempotent.
  void IndexLoadedMembers();
  // Attaches a loaded presence row to a member. Unknown users are ignored.
  void LoadPresence(const store::PresenceRecord& row);
  // The same for many rows, under one lock.
  void LoadPresence(std::span<const store::PresenceRecord> rows);
  void LoadAccess(const store::AccessRecord& access);
  // After every LoadPresence: orders the rows by update id.
  void FinishLoad();
  void SetPresenceDisabled(bool disabled);
  // Replaces the member's directory fields (role, is_active, full name,
  // can_access_all_users, key hash, user status) but neither presence_enabled
  // (see SetPresenceEnabled) nor its presence row. False if the user is
  // unknown.
  bool UpdateMember(const store::UserRecord& user);
  void SetAccess(UserId viewer, std::vector<UserId> visible);

  // A copy of the member's directory record (its status included), if it
  // exists.
  std::optional<store::UserRecord> UserRecordOf(UserId id) const;
  // The member's user status, if it exists and has one.
  std::optional<store::UserStatus> StatusOf(UserId id) const;
  // Visits the active members with a status that `viewer` may see (spec
  // 3.8), under the shared lock; O(members with a status).
  void ForEachVisibleStatus(
      UserId viewer,
      FunctionRef<void(const Member&, const store::UserStatus&)> fn) const;
  // Visits every member with a status (active or not), under the shared
  // lock; O(members with a status).
  void ForEachStatus(
      FunctionRef<void(UserId, const store::UserStatus&)> fn) const;
  std::optional<Member> MemberById(UserId id) const;
  // Active-or-not member by email, case-insensitive.
  std::optional<UserId> FindIdByEmail(std::string_view email) const;
  bool EmailTaken(std::string_view email) const;

  // --- Presence --------------------------------------------------------

  // A user's own report (spec 3.1/3.2). Does nothing if the user is unknown
  // or invisible. Returns the change when the row was written; its
  // event_due says whether Zulip would send an event (created, or came
  // online, and the realm's presence is enabled).
  // Fails only if an update id could not be reserved (store failure).
  // `client` (per-client extension): the reporting client's name; empty
  // records no client row (the user row alone, exactly as before).
  Result<std::optional<PresenceChange>> RecordReport(
      UserId user, Micros now, ReportStatus status,
      std::string_view client = {});

  // Whether RecordReport(user, now, status, client) would write nothing
  // because the user's row (and the client's row, if `client` is given) is
  // already fresh enough (spec 3.2). False for an unknown, inactive, bot or
  // invisible user, or one without a row: those are not decided here.
  // Rows only move forward while the user is visible, so a row that is
  // fresh here is fresh in any store this replica lags behind (scale-out,
  // ReplicaWriter::Gate).
  bool ReportWritesNothing(UserId user, Micros now, ReportStatus status,
                           std::string_view client = {}) const;

  // presence_enabled toggled to `enabled` (spec 3.7): stores the setting and
  // applies the back-dating or the visible-again report. Returns the forced
  // change to announce, if any.
  Result<std::optional<PresenceChange>> SetPresenceEnabled(UserId user,
                                                           bool enabled,
                                                           Micros now);

  // Visits the rows a fetch returns, as `viewer` sees them, and returns
  // presence_last_update_id (spec 3.4). Runs under the shared lock.
  // An unknown viewer sees nothing.
  UpdateId Fetch(UserId viewer, const FetchQuery& query, Micros now,
                 FunctionRef<void(const Member&)> visit) const;
  // The same with each member's client rows (nullptr: none). With
  // query.per_client, a cursor also selects users whose client rows changed
  // after it, and the returned id covers client-row ids too.
  UpdateId FetchWithClients(
      UserId viewer, const FetchQuery& query, Micros now,
      FunctionRef<void(const Member&, const ClientRowList*)> visit) const;

  // A copy of the user's client rows (empty if none).
  ClientRowList ClientsOf(UserId user) const;
  // Attaches a loaded client row (LoadPresence's twin); unknown users are
  // ignored. FinishLoad orders them and applies the bound.
  void LoadClientPresence(const store::ClientPresenceRecord& row);
  // The per-user bound (>= 1). Lowering it trims at the next write.
  void SetMaxClientsPerUser(std::size_t n);

  // Runs `fn` with the member (or nullptr) under the shared lock.
  void WithMember(UserId id, FunctionRef<void(const Member*)> fn) const;
  // The same by slot (AddMember's result; nullptr if out of range).
  void WithMemberAt(std::uint32_t slot,
                    FunctionRef<void(const Member*)> fn) const;
  // Visits every member under the shared lock.
  void ForEachMember(FunctionRef<void(const Member&)> fn) const;
  // Visits the members `viewer` may see (spec 3.8), under the shared lock.
  void ForEachVisibleMember(UserId viewer,
                            FunctionRef<void(const Member&)> fn) const;

  // How many active users (bots included) may see `target`: the recipients
  // of an event about it (spec 3.3 with 3.8). O(users); used only for
  // Zulip's optional user-limit cut-off.
  std::size_t CountViewers(UserId target) const;

  // Whether `viewer` may see `target` (spec 3.8; always enforced here).
  bool CanSee(UserId viewer, UserId target) const;
  // CanSee(viewers[i], target) into visible[i] (resized to viewers.size()),
  // read under one reader lock: a fan-out asks it of every watcher of the
  // realm, and a lock per watcher was most of its cost (issue #17). Holds
  // the lock for the whole span: callers pass what one event reaches.
  void CanSeeEach(std::span<const UserId> viewers, UserId target,
                  std::vector<std::uint8_t>& visible) const;

  // --- Write-behind ----------------------------------------------------

  // Moves every dirty row into `rows` and describes the sequence state to
  // persist (with a reservation raised ahead when it runs low). Returns false
  // if there is nothing to write. Takes the lock kCollectChunk rows at a
  // time, so writers wait for one chunk, not for the batch.
  bool CollectDirty(std::vector<store::PresenceRecord>& rows,
                    std::vector<store::ClientPresenceRecord>& clients,
                    store::SequenceRecord& sequence);
  // The batch holding `sequence` was committed.
  void OnFlushed(const store::SequenceRecord& sequence);
  // The batch failed: mark its rows dirty again so a later flush (after the
  // operator fixed the disk and restarted) is not silently skipped.
  void OnFlushFailed(const std::vector<store::PresenceRecord>& rows,
                     const std::vector<store::ClientPresenceRecord>& clients);

  // Dirty rows CollectDirty reads per hold of the realm's lock.
  static constexpr std::size_t kCollectChunk = 1024;
  // How many ids the flusher reserves ahead of use, at the least.
  static constexpr UpdateId kReserveAhead = 10'000;
  // Beyond that, how many flush intervals' worth of ids (at the rate seen
  // in the last one) a flush reserves; it tops up while three are left
  // (CollectDirty), so a commit may take two intervals before a writer at
  // that rate runs out.
  static constexpr UpdateId kReserveIntervals = 4;

  // --- Changes made elsewhere ---------------------------------------------
  //
  // A replica of a shared store (core/replica_writer.h) never takes update
  // ids itself and has nothing to write behind: every change arrives with
  // the ids the store gave it and is applied with these.

  // What applying a user record changed.
  struct MemberDelta {
    bool added = false;
    bool deactivated = false;              // was active, is not any more
    std::optional<bool> presence_enabled;  // the new value, if it changed
    std::optional<Digest> replaced_key;    // the old key hash, if it changed
    bool status_changed = false;           // the user status was written
    std::uint32_t slot = Member::kNil;     // the member's slot
  };
  // Adds the user or replaces every field of it (presence_enabled included).
  MemberDelta UpsertMember(const store::UserRecord& user);
  // Takes a row as the shared store holds it: if `row.last_update_id` is
  // newer than the member's, the row moves to the tail of the update order.
  // Returns the change to announce (nullopt for an unknown user).
  std::optional<PresenceChange> ApplyRow(const store::PresenceRecord& row,
                                         Micros written_at, bool event_due,
                                         bool forced);
  // Takes a user's client rows as the shared store holds them (all of that
  // user's rows): if their newest update id is newer than the replica's,
  // they replace the user's client rows and the user moves to the tail of
  // the client update order (the store applied the bound already). Returns
  // the change to announce, with row_written = false and the user row as it
  // stands (nullopt for an unknown user).
  std::optional<PresenceChange> ApplyClientRows(
      UserId user, std::span<const store::ClientPresenceRecord> rows,
      Micros written_at);
  // Name, presence_disabled and deactivated of `record`.
  void ApplySettings(const store::RealmRecord& record);
  // Replaces every access list.
  void ReplaceAccess(const std::vector<store::AccessRecord>& lists);

 private:
  // Appends the member; `index` also puts it in the id and email sets
  // (loading leaves that to IndexLoadedLocked).
  std::uint32_t AddMemberLocked(const store::UserRecord& user,
                                bool index = true) REQUIRES(mu_);
  // Puts the members LoadMembers appended (slots from indexed_ on) into
  // the id and email sets: each set filled in the order of its slots'
  // places in it, so that the filling walks the table instead of missing
  // the cache on every insert, the two sets on two threads when there are
  // many (issue #17).
  void IndexLoadedLocked() REQUIRES(mu_);
  // A 64-bit finaliser (splitmix64's): every input bit reaches every
  // output bit, so the sets may use the high bits as the position.
  static std::uint64_t MixHash(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Whether RecordReport would write a user or client row (shared lock).
  bool ReportWouldWriteLocked(UserId user, Micros now, ReportStatus status,
                              std::string_view client) const
      REQUIRES_SHARED(mu_);
  void LoadPresenceLocked(const store::PresenceRecord& row) REQUIRES(mu_);
  // The member's slot, or Member::kNil.
  std::uint32_t SlotLocked(UserId id) const REQUIRES_SHARED(mu_) {
    return slot_by_id_.Find(id);
  }
  // Writes email and name into text_ (see Member) and returns the record.
  const char* StoreTextLocked(std::string_view email, std::string_view name)
      REQUIRES(mu_);
  bool CanSeeLocked(const Member& viewer, UserId target) const
      REQUIRES_SHARED(mu_);
  Result<UpdateId> NextUpdateIdLocked() REQUIRES(mu_);
  // Moves the member's row to the tail of the update order with `id`; a
  // local write (`dirty`) is also queued for the write-behind.
  void TouchLocked(std::uint32_t slot, const PresenceTimes& times, UpdateId id,
                   bool dirty = true) REQUIRES(mu_);
  auto MemberLinks() REQUIRES(mu_) {
    return [members = &members_](std::uint32_t s) -> Member& {
      return (*members)[s];
    };
  }
  auto ClientLinks() REQUIRES(mu_) {
    return [clients = &clients_](std::uint32_t s) -> ClientTable::Entry& {
      return clients->At(s);
    };
  }
  PresenceChange ChangeOfLocked(const Member& m, Micros now, bool event_due,
                                bool forced) const REQUIRES_SHARED(mu_);

  struct ClientReport {
    bool wrote = false;
    bool event_due = false;  // created or came online
  };
  // Applies a report to the client row of `slot`. `shared_id` is the id the
  // user row just took (0: none; a client write then takes its own).
  Result<ClientReport> RecordClientLocked(std::uint32_t slot,
                                          std::string_view client, Micros now,
                                          ReportStatus status,
                                          UpdateId shared_id) REQUIRES(mu_);
  // Moves the entry to the tail of the client list with `id`; marks dirty.
  void TouchClientsLocked(std::uint32_t slot, ClientTable::Entry& entry,
                          UpdateId id) REQUIRES(mu_);
  void UnlinkClientsLocked(std::uint32_t slot, ClientTable::Entry& entry)
      REQUIRES(mu_);
  void AppendClientsLocked(std::uint32_t slot, ClientTable::Entry& entry)
      REQUIRES(mu_);
  // `slot`'s client rows as the API sees them (sorted by client name) into
  // `out`; `scratch` is working space. False (out untouched) if none.
  bool ClientRowsLocked(std::uint32_t slot,
                        std::vector<ClientTable::Row>& scratch,
                        ClientRowList& out) const REQUIRES_SHARED(mu_);
  // Invisible mode: no client row may look fresher than the user row.
  Status ClampClientsLocked(std::uint32_t slot, UpdateId id) REQUIRES(mu_);
  template <class Visit>
  UpdateId FetchLocked(const Member& viewer, const FetchQuery& query,
                       Micros now, Visit&& visit) const REQUIRES_SHARED(mu_);

  const RealmId id_;
  UpdateIdReserver* const ids_;

  // Guards everything below but the atomic directory_generation_: shared
  // for reads, exclusive for writes.
  mutable SharedMutex mu_;
  std::string subdomain_ GUARDED_BY(mu_);
  std::string name_ GUARDED_BY(mu_);
  bool presence_disabled_ GUARDED_BY(mu_) = false;
  bool deactivated_ GUARDED_BY(mu_) = false;
  // Bumped under mu_, after the change (see directory_generation()).
  std::atomic<std::uint64_t> directory_generation_{0};
  UpdateId last_update_id_ GUARDED_BY(mu_) = 0;
  UpdateId reserved_update_id_ GUARDED_BY(mu_) = 0;
  // last_update_id_ at the previous CollectDirty: the ids used since then
  // are the write rate the next reservation follows.
  UpdateId collected_update_id_ GUARDED_BY(mu_) = 0;
  // How far ahead the last flush reserved (a synchronous reservation takes
  // as much, so a burst that outran it does not come back at once).
  UpdateId reserve_ahead_ GUARDED_BY(mu_) = kReserveAhead;
  std::vector<Member> members_ GUARDED_BY(mu_);
  // Members below this slot are in slot_by_id_ and slot_by_email_; those
  // from it on were appended by LoadMembers and wait for
  // IndexLoadedLocked.
  std::uint32_t indexed_ GUARDED_BY(mu_) = 0;
  // Loading: the slot after the last presence row's member
  // (LoadPresenceLocked).
  std::uint32_t load_hint_ GUARDED_BY(mu_) = 0;
  std::size_t active_members_ GUARDED_BY(mu_) = 0;
  // The members' emails and names (see Member).
  Arena text_ GUARDED_BY(mu_);
  // Slots by user id (see SlotById: an array of 4-byte slots while the ids
  // are dense, else a set like the next) and by email (case-insensitively:
  // an open-addressing set of 4-byte slots, hashed and compared through
  // members_[slot], looked up by string_view). About 10 bytes per member
  // for a set, where node-based maps cost 40 with malloc's overhead
  // (issue #4).
  // The member's id, for slot_by_id_.
  struct IdOfSlot {
    const std::vector<Member>* members;
    UserId operator()(std::uint32_t slot) const { return (*members)[slot].id; }
  };
  SlotById<IdOfSlot> slot_by_id_ GUARDED_BY(mu_){IdOfSlot{&members_}};
  // A hash computed ahead for one slot: the bulk fill (IndexLoadedLocked)
  // hashes every email once in slot order, then inserts in hash order with
  // the slot's hash here, so the set's own hashing of the slot does not
  // read the member and its email again at a random place (at ten million
  // members those two cache misses per insert were most of a restart's
  // index phase). `slot` is Member::kNil outside a bulk fill.
  struct KnownHash {
    std::uint32_t slot;
    std::size_t hash;
  };
  struct EmailHash {
    using is_transparent = void;
    using is_avalanching = std::true_type;
    const std::vector<Member>* members;
    const KnownHash* known;
    std::size_t operator()(std::uint32_t slot) const;
    std::size_t operator()(std::string_view email) const;
  };
  struct EmailEq {
    using is_transparent = void;
    const std::vector<Member>* members;
    std::string_view Of(std::uint32_t slot) const {
      return (*members)[slot].email();
    }
    std::string_view Of(std::string_view s) const { return s; }
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
      return EqualsIgnoreCase(Of(a), Of(b));
    }
  };
  // Written only by the bulk fill, under mu_ held exclusively; read by
  // slot_by_email_'s hasher (which has no lock of its own to name).
  KnownHash email_known_{Member::kNil, 0};
  boost::unordered_flat_set<std::uint32_t, EmailHash, EmailEq> slot_by_email_
      GUARDED_BY(mu_){0, EmailHash{&members_, &email_known_},
                      EmailEq{&members_}};
  // Sorted visible lists of guests with limited access.
  std::unordered_map<UserId, std::vector<UserId>> access_ GUARDED_BY(mu_);
  SlotList order_ GUARDED_BY(mu_);  // members with a row, oldest update first
  std::vector<std::uint32_t> dirty_ GUARDED_BY(mu_);
  // Per-client rows, by slot (see ClientTable).
  ClientTable clients_ GUARDED_BY(mu_);
  // Working space of the writers' client-row changes (exclusive lock).
  std::vector<ClientTable::Row> client_scratch_ GUARDED_BY(mu_);
  SlotList client_order_
      GUARDED_BY(mu_);  // users with client rows, oldest write first
  std::vector<std::uint32_t> client_dirty_ GUARDED_BY(mu_);
  std::size_t max_clients_ GUARDED_BY(mu_) = 8;
  // User statuses, by slot: only users who ever set one have an entry, so
  // Member does not grow.
  std::unordered_map<std::uint32_t, store::UserStatus> statuses_
      GUARDED_BY(mu_);
};

}  // namespace presence

#endif  // PRESENCE_CORE_REALM_H_
