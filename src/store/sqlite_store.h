// SqliteStore: the embedded, default Store, one SQLite file per server.
//
// Layout: DIR/presence.sqlite3 (+ -wal and -shm while open). The connection
// runs in WAL mode with synchronous=FULL, so a call that returned success has
// been fsynced; foreign keys are enforced.
//
// Schema: versioned by `PRAGMA user_version`. Open applies the missing
// forward migrations in order, in one transaction; a file whose version is
// newer than kSchemaVersion is refused (Errc::kCorrupt) rather than guessed
// at. Tables:
//   realms   (id AUTOINCREMENT, subdomain UNIQUE NOCASE, name, flags,
//             date_created, last_update_id, reserved_update_id)
//   users    (id AUTOINCREMENT, realm_id, email, email_lower UNIQUE per realm,
//             full_name, role by name, flags, date_joined, api_key_hash as 64
//             lowercase hex characters; the API key itself is never stored)
//   access   (realm_id, viewer, visible), primary key (viewer, visible)
//   presence (user_id PRIMARY KEY, realm_id, last_connected, last_active,
//             last_update_id); times in microseconds, kNoTime stored as NULL.
//   client_presence (user_id, client) PRIMARY KEY, realm_id, last_connected,
//             last_active, last_update_id: per-client rows (schema 2; a
//             version-1 file gains the empty table when opened).
//   users.status_* (schema 3): the user status (core/store.h UserStatus),
//             all NULL until one is set; status_scheduled_end_time,
//             status_dnd and status_dnd_end_time are reserved for issue
//             #18's later parts and not written yet.
//   presence_log (schema 4): seq INTEGER PRIMARY KEY, batch, user_id,
//             realm_id, client (NULL for the user's own row), the three
//             presence columns. WritePresence appends its rows here (one
//             batch number per call) instead of updating presence and
//             client_presence in place; see "The presence log" below. No
//             foreign keys (one would read a page of users per row): the
//             store checks the ids against those it has seen exist.
// AUTOINCREMENT means ids are never reused, even after a row is deleted.
//
// The presence log. At a million users pinging once a minute, a flush of
// 16,700 rows spread over the whole user table rewrote nearly every leaf
// page of presence and client_presence in each commit (about 18,500 pages,
// 0.45 s; issue #17), whatever the batch held. Appending to the log writes
// about 40 bytes a row instead. The log is merged into the tables in
// rounds: once it holds log_merge_rows rows or log_merge_batches batches,
// a round takes its batches (up to log_merge_batches) and merges them a
// slice of users at a time, one slice after each WritePresence's own
// commit, in a transaction of its own, in user order, so a round visits
// each leaf page at most once however many rows it carries. Each batch is
// appended in user order, so the merge reads a cursor per batch and takes
// the smallest user next: no sort, memory for the cursors only. Merging
// applies the rules of an in-place write in log order: a user's last row
// wins, and a user's client rows are those of the last batch that named
// any. The round's last slice deletes its rows from the log; merging them
// again (a crash in a round) gives the same tables. LoadInto merges
// nothing: it reads presence and client_presence with the log over them
// by the same rules (a cursor per batch and one on the table, smallest user
// next), so what it reads is what was written, and a start after a crash
// reads the log left behind instead of merging it before it can serve. A slice
// that fails after its batch committed rolls back alone: the batch is durable,
// so WritePresence succeeds, the failure is counted (log_merge_failures) and
// the next WritePresence tries the slice again.
//
// Semantics are those documented in memory_store.h (the typed store suite
// runs against both). Errors: a UNIQUE violation on insert or update is
// Errc::kAlreadyExists; a missing id or a missing referenced realm/user is
// Errc::kNotFound; any other SQLite failure is Errc::kStoreFailed (stored data
// that cannot be decoded: kCorrupt), and the error carries SQLite's reason,
// e.g. "WritePresence: database or disk is full (sqlite code 13)".
// A failed write leaves no partial change behind (its transaction is rolled
// back).
//
// Thread safety: safe to call from any thread. Every method but Memory()
// takes mu_, which serializes all use of the one connection, its cached
// statements (checked by the clang-tsa build); Memory()
// reads two atomics and never waits for it.
#ifndef PRESENCE_STORE_SQLITE_STORE_H_
#define PRESENCE_STORE_SQLITE_STORE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/store.h"
#include "util/mutex.h"
#include "util/thread_annotations.h"

struct sqlite3;
struct sqlite3_stmt;

namespace presence::store {

class SqliteStore final : public Store {
 public:
  // The schema version this code writes and the newest it can read.
  static constexpr int kSchemaVersion = 4;
  // How long a statement waits for a lock held by another connection.
  static constexpr int kBusyTimeoutMs = 5000;
  // The database file name inside the directory given to Open.
  static constexpr std::string_view kFileName = "presence.sqlite3";

  // Creates `dir` (and its parents) if missing, opens or creates
  // DIR/presence.sqlite3, configures the connection and migrates the schema.
  // Errors: kIoError if the directory cannot be created; kCorrupt if the file
  // is not a database or its schema is newer than kSchemaVersion;
  // kStoreFailed for any other SQLite failure; the error says why.
  static StoreResult<std::unique_ptr<SqliteStore>> Open(const std::string& dir);

  struct Options {
    // Log rows that start a merge round. At 16,700 rows a second (own and
    // client rows: about 33,000), 262,144 is a round every 8 s that
    // rewrites each page of the tables once.
    std::size_t log_merge_rows = 262'144;
    // Batches that start a round, and the most a round takes: the merge
    // reads a cursor per batch (a realm that flushes a few rows a second
    // merges every minute or so).
    std::size_t log_merge_batches = 64;
    // A round (the log's batches when it starts) is merged in this many
    // slices of users, one after each flush, so that no flush turn takes
    // the whole round's time (the heap grew in steps while a 2-s merge
    // held the flush thread and the next batch gathered rows).
    std::size_t log_merge_slices = 8;
  };
  static StoreResult<std::unique_ptr<SqliteStore>> Open(const std::string& dir,
                                                        const Options& options);

  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;
  // Finalizes the statements and closes the connection (which checkpoints
  // the WAL into the main file).
  ~SqliteStore() override;

  // Load is LoadInto with a SnapshotSink: both read the same rows.
  StoreResult<Snapshot> Load() override;
  // Streams the tables in batches of reused records, so that nothing is
  // allocated per row once the buffers have grown; the user count comes
  // from COUNT(*) in the same read transaction (exact).
  StoreStatus LoadInto(LoadSink& sink) override;
  StoreResult<RealmId> InsertRealm(const RealmRecord& realm) override;
  StoreStatus UpdateRealm(const RealmRecord& realm) override;
  StoreResult<UserId> InsertUser(const UserRecord& user) override;
  StoreStatus UpdateUser(const UserRecord& user) override;
  // One transaction: all or nothing.
  StoreStatus WriteUsers(std::span<UserRecord> create,
                         std::span<const UserRecord> update) override;
  StoreStatus SetAccess(const AccessRecord& access) override;
  StoreStatus ReserveUpdateIds(RealmId realm,
                               UpdateId reserved_update_id) override;
  StoreStatus WritePresence(std::span<const PresenceRecord> rows,
                            std::span<const ClientPresenceRecord> clients,
                            std::span<const SequenceRecord> sequences) override;

  // Merges the whole presence log into presence and client_presence, a
  // round at a time (a clean stop does this). kStoreFailed on failure.
  StoreStatus MergeLog() EXCLUDES(mu_);
  // Rows in the presence log (a round's stay until its last slice).
  std::size_t log_rows() const EXCLUDES(mu_);

  // Copies the WAL into the database file and truncates it. kStoreFailed on
  // failure.
  StoreStatus Checkpoint() EXCLUDES(mu_);

  // Full path of the database file.
  const std::string& path() const { return path_; }

  // SQLite's memory, for /metrics.
  struct MemoryStats {
    // sqlite3_status64(SQLITE_STATUS_MEMORY_USED): every byte SQLite holds
    // in this process through its allocator (page caches, schemas, prepared
    // statements of every connection), and its high-water mark since start.
    std::int64_t memory_used_bytes = 0;
    std::int64_t memory_highwater_bytes = 0;
    // This connection's page cache (SQLITE_DBSTATUS_CACHE_USED), as of the
    // end of its last transaction (Open, Load or a write).
    std::int64_t page_cache_bytes = 0;
    // The most that page cache may hold: PRAGMA cache_size in bytes.
    std::int64_t page_cache_limit_bytes = 0;
    // Since Open, as of the end of the last committed transaction: pages the
    // connection read from the files because its cache lacked them
    // (DBSTATUS_CACHE_MISS), and pages it wrote to the WAL, a spill of a
    // transaction larger than the cache included (DBSTATUS_CACHE_WRITE).
    // A checkpoint's copy of the WAL into the database is not counted.
    std::int64_t pages_read = 0;
    std::int64_t pages_written = 0;
    // The presence log: its rows (a round's stay until its last slice), and
    // since Open the merge transactions (slices), the rows they merged and
    // the time they took.
    std::int64_t log_rows = 0;
    std::int64_t log_merges = 0;
    std::int64_t log_merged_rows = 0;
    double log_merge_seconds = 0;
    // Slices that failed and were rolled back (tried again at the next
    // write; their batches stand).
    std::int64_t log_merge_failures = 0;
  };
  // Never blocks on mu_ (a /metrics scrape must not wait for an fsync).
  MemoryStats Memory() const;

  // Test hook: runs `sql` on the connection, e.g. "PRAGMA query_only=ON" to
  // make every later write fail. kStoreFailed, with SQLite's reason, on
  // failure.
  StoreStatus ExecForTesting(const std::string& sql) EXCLUDES(mu_);

 private:
  class Transaction;

  SqliteStore(sqlite3* db, std::string path, const Options& options);

  // Sets *stmt to the cached prepared statement for `sql`, which must be a
  // string with static storage duration (it keys the cache).
  StoreStatus Prepare(std::string_view sql, sqlite3_stmt** stmt) REQUIRES(mu_);
  // Maps the SQLite result code `rc` of operation `op` to an error: unique
  // violations kAlreadyExists, foreign keys kNotFound, anything else
  // kStoreFailed (kCorrupt for a damaged file while opening) with SQLite's
  // reason.
  Error Fail(int rc, std::string_view op) REQUIRES(mu_);
  // A kCorrupt error saying why.
  Error Corrupt(std::string_view op, std::string_view why) REQUIRES(mu_);
  // Runs a statement that returns no rows. SQLITE_DONE -> success.
  StoreStatus Run(sqlite3_stmt* stmt, std::string_view op) REQUIRES(mu_);
  // Returns kNotFound unless `sql` (one int64 parameter) yields a row.
  StoreStatus Exists(std::string_view sql, std::int64_t id, std::string_view op)
      REQUIRES(mu_);
  // InsertUser and UpdateUser without taking the lock (no transaction of
  // their own).
  StoreResult<UserId> InsertUserLocked(const UserRecord& user) REQUIRES(mu_);
  StoreStatus UpdateUserLocked(const UserRecord& user) REQUIRES(mu_);
  // Sets the pragmas and migrates the schema; part of Open.
  StoreStatus Configure() REQUIRES(mu_);
  StoreStatus Migrate() REQUIRES(mu_);
  // Records this connection's page cache size for Memory().
  void NotePageCache() REQUIRES(mu_);
  // Reads the log's batches (their rowid ranges) and last batch number;
  // part of Open.
  StoreStatus ReadLogState() REQUIRES(mu_);
  // Merges the next slice of the current round (starting one), or with
  // `to_end` the rest of it; the last slice deletes the round's rows.
  StoreStatus MergeSliceLocked(bool to_end) REQUIRES(mu_);
  StoreStatus MergeLogLocked() REQUIRES(mu_);
  // Prepares log_cursors_ (kLogBatch) up to `n`; `op` names the failure.
  StoreStatus PrepareLogCursorsLocked(std::size_t n, std::string_view op)
      REQUIRES(mu_);
  // The log read as one stream in (user, batch) order: cursor i over batch
  // i's rows from seq from[i], and `heads` a min-heap of (the user of each
  // cursor's current row, i). StartLogCursorsLocked binds and steps the
  // first from.size() cursors (prepared); StepLogCursorLocked moves cursor
  // i to its next row and puts that on the heap (nothing when it is done).
  using LogHead = std::pair<UserId, std::size_t>;
  StoreStatus StartLogCursorsLocked(std::span<const std::int64_t> from,
                                    std::vector<LogHead>& heads,
                                    std::string_view op) REQUIRES(mu_);
  StoreStatus StepLogCursorLocked(std::size_t i, std::vector<LogHead>& heads,
                                  std::string_view op) REQUIRES(mu_);
  // LoadInto's presence rows (or client rows) when the log holds rows: the
  // table's, in user order, with the log over them by the merge's rules
  // (a k-way merge of the table and the log's batches, nothing merged).
  StoreStatus LoadWithLogLocked(LoadSink& sink, bool clients) REQUIRES(mu_);
  // kNotFound unless the user and the realm exist (as the foreign keys of
  // presence and client_presence would say).
  StoreStatus CheckIdsLocked(UserId user, RealmId realm) REQUIRES(mu_);
  // A user's client rows replace all of theirs (rows of one user, sorted by
  // client); part of a write transaction.
  StoreStatus ReplaceClientsLocked(
      std::span<const ClientPresenceRecord* const> rows) REQUIRES(mu_);

  // Guards the connection (every use of db_) and the statement cache.
  mutable Mutex mu_;
  sqlite3* const db_ GUARDED_BY(mu_);
  const std::string path_;
  std::unordered_map<std::string_view, sqlite3_stmt*> stmts_ GUARDED_BY(mu_);
  // True until Open has configured the connection (see Fail).
  bool opening_ GUARDED_BY(mu_) = true;
  const Options options_;
  // Rows in presence_log, and the batch number of the last WritePresence.
  std::size_t log_rows_ GUARDED_BY(mu_) = 0;
  std::int64_t last_batch_ GUARDED_BY(mu_) = 0;
  // The log's batches, oldest first: each a rowid range in user order.
  struct LogBatch {
    std::int64_t batch;
    std::int64_t first_seq;
    std::int64_t last_seq;
    std::size_t rows;
  };
  std::deque<LogBatch> log_batches_ GUARDED_BY(mu_);
  // The merge's cursors (kLogBatch), one per batch of a round; prepared
  // when first needed, kept until the store closes.
  std::vector<sqlite3_stmt*> log_cursors_ GUARDED_BY(mu_);
  // The merge under way: the log's first `batches` batches, `rows` rows,
  // about `slice_rows` a slice, and where each batch resumes.
  struct MergeRound {
    std::size_t batches;
    std::size_t rows;
    std::size_t slice_rows;
    std::vector<std::int64_t> next_seq;
  };
  std::optional<MergeRound> round_ GUARDED_BY(mu_);
  // Ids known to exist (from Load, or looked up once): a bit per id.
  std::vector<bool> known_users_ GUARDED_BY(mu_);
  std::vector<bool> known_realms_ GUARDED_BY(mu_);
  // Memory(): written under mu_, read without it.
  std::atomic<std::int64_t> page_cache_bytes_{0};
  std::atomic<std::int64_t> page_cache_limit_bytes_{0};
  std::atomic<std::int64_t> pages_read_{0};
  std::atomic<std::int64_t> pages_written_{0};
  std::atomic<std::int64_t> log_rows_seen_{0};
  std::atomic<std::int64_t> log_merges_{0};
  std::atomic<std::int64_t> log_merged_rows_{0};
  std::atomic<std::int64_t> log_merge_ns_{0};
  std::atomic<std::int64_t> log_merge_failures_{0};
};

}  // namespace presence::store

#endif  // PRESENCE_STORE_SQLITE_STORE_H_
