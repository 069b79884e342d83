#include "store/sqlite_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "util/ascii.h"

namespace presence::store {
namespace {

// Forward migrations: kMigrations[i] takes a database from schema version i
// to i + 1. Append only; never edit a step that has shipped.
const char* const kMigrations[] = {
    // 0 -> 1: the initial schema.
    R"sql(
CREATE TABLE realms (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  subdomain TEXT NOT NULL UNIQUE COLLATE NOCASE,
  name TEXT NOT NULL,
  presence_disabled INTEGER NOT NULL CHECK (presence_disabled IN (0, 1)),
  deactivated INTEGER NOT NULL CHECK (deactivated IN (0, 1)),
  date_created INTEGER NOT NULL,
  last_update_id INTEGER NOT NULL,
  reserved_update_id INTEGER NOT NULL
);
CREATE TABLE users (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  realm_id INTEGER NOT NULL REFERENCES realms (id),
  email TEXT NOT NULL,
  email_lower TEXT NOT NULL,
  full_name TEXT NOT NULL,
  role TEXT NOT NULL,
  is_bot INTEGER NOT NULL CHECK (is_bot IN (0, 1)),
  is_active INTEGER NOT NULL CHECK (is_active IN (0, 1)),
  presence_enabled INTEGER NOT NULL CHECK (presence_enabled IN (0, 1)),
  can_access_all_users INTEGER NOT NULL
      CHECK (can_access_all_users IN (0, 1)),
  date_joined INTEGER NOT NULL,
  api_key_hash TEXT NOT NULL CHECK (length(api_key_hash) = 64 AND
                                    api_key_hash NOT GLOB '*[^0-9a-f]*'),
  UNIQUE (realm_id, email_lower)
);
CREATE TABLE access (
  realm_id INTEGER NOT NULL REFERENCES realms (id),
  viewer INTEGER NOT NULL REFERENCES users (id),
  visible INTEGER NOT NULL REFERENCES users (id),
  PRIMARY KEY (viewer, visible)
) WITHOUT ROWID;
CREATE TABLE presence (
  user_id INTEGER PRIMARY KEY REFERENCES users (id),
  realm_id INTEGER NOT NULL REFERENCES realms (id),
  last_connected INTEGER,
  last_active INTEGER,
  last_update_id INTEGER NOT NULL
);
)sql",
    // 1 -> 2: per-client presence rows (issue #8). Existing data is kept;
    // users simply have no client rows until their next report.
    R"sql(
CREATE TABLE client_presence (
  user_id INTEGER NOT NULL REFERENCES users (id),
  client TEXT NOT NULL,
  realm_id INTEGER NOT NULL REFERENCES realms (id),
  last_connected INTEGER,
  last_active INTEGER,
  last_update_id INTEGER NOT NULL,
  PRIMARY KEY (user_id, client)
) WITHOUT ROWID;
)sql",
    // 2 -> 3: Zulip's user status (issue #18). status_text is NULL for a
    // user who never set a status. The last three columns are for the
    // issue's later parts (a status that ends on its own, do-not-disturb)
    // so that they need no migration; nothing writes them yet.
    R"sql(
ALTER TABLE users ADD COLUMN status_text TEXT;
ALTER TABLE users ADD COLUMN status_emoji_name TEXT;
ALTER TABLE users ADD COLUMN status_emoji_code TEXT;
ALTER TABLE users ADD COLUMN status_reaction_type TEXT;
ALTER TABLE users ADD COLUMN status_timestamp INTEGER;
ALTER TABLE users ADD COLUMN status_passed INTEGER;
ALTER TABLE users ADD COLUMN status_scheduled_end_time INTEGER;
ALTER TABLE users ADD COLUMN status_dnd INTEGER;
ALTER TABLE users ADD COLUMN status_dnd_end_time INTEGER;
)sql",
    // 3 -> 4: the presence log (issue #17; sqlite_store.h, "The presence
    // log"). Appended to in rowid order, merged from its oldest end; no
    // index but the rowid, so an append touches only the last page. No
    // foreign keys: checking one reads a page of the users table per row
    // (at a million users, most of the log's cost); WritePresence checks
    // the ids against those it knows exist (SqliteStore::CheckIdsLocked).
    R"sql(
CREATE TABLE presence_log (
  seq INTEGER PRIMARY KEY,
  batch INTEGER NOT NULL,
  user_id INTEGER NOT NULL,
  realm_id INTEGER NOT NULL,
  client TEXT,
  last_connected INTEGER,
  last_active INTEGER,
  last_update_id INTEGER NOT NULL
);
)sql",
};
static_assert(std::size(kMigrations) == SqliteStore::kSchemaVersion,
              "kSchemaVersion must equal the number of migrations");

// Statements, cached by their address-stable text.
constexpr std::string_view kBegin = "BEGIN";
constexpr std::string_view kBeginImmediate = "BEGIN IMMEDIATE";
constexpr std::string_view kCommit = "COMMIT";
constexpr std::string_view kSelectRealms =
    "SELECT id, subdomain, name, presence_disabled, deactivated, "
    "date_created, last_update_id, reserved_update_id FROM realms ORDER BY id";
constexpr std::string_view kSelectUsers =
    "SELECT id, realm_id, email, full_name, role, is_bot, is_active, "
    "presence_enabled, can_access_all_users, date_joined, api_key_hash, "
    "status_text, status_emoji_name, status_emoji_code, "
    "status_reaction_type, status_timestamp, status_passed, "
    "status_scheduled_end_time, status_dnd, status_dnd_end_time "
    "FROM users ORDER BY id";
constexpr std::string_view kCountUsers = "SELECT COUNT(*) FROM users";
constexpr std::string_view kSelectPresence =
    "SELECT user_id, realm_id, last_connected, last_active, last_update_id "
    "FROM presence ORDER BY user_id";
constexpr std::string_view kSelectClients =
    "SELECT realm_id, user_id, client, last_connected, last_active, "
    "last_update_id FROM client_presence ORDER BY user_id, client";
constexpr std::string_view kDeleteClients =
    "DELETE FROM client_presence WHERE user_id = ?";
constexpr std::string_view kDeleteOtherClients =
    "DELETE FROM client_presence WHERE user_id = ? AND client <> ?";
// Whether kDeleteOtherClients has anything to delete: asked first because
// a DELETE from a WITHOUT ROWID table that may match several rows opens a
// temporary b-tree for their keys (OP_OpenEphemeral: a pager and a page
// cache, about 160 KB of malloc in 64-87 KB blocks), even when it deletes
// nothing, which is every ping of a one-client user.
constexpr std::string_view kHasOtherClients =
    "SELECT 1 FROM client_presence WHERE user_id = ? AND client <> ? LIMIT 1";
constexpr std::string_view kUpsertClient =
    "INSERT INTO client_presence (user_id, client, realm_id, last_connected, "
    "last_active, last_update_id) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (user_id, client) DO UPDATE SET "
    "realm_id = excluded.realm_id, "
    "last_connected = excluded.last_connected, "
    "last_active = excluded.last_active, "
    "last_update_id = excluded.last_update_id";
constexpr std::string_view kInsertClient =
    "INSERT INTO client_presence (user_id, client, realm_id, last_connected, "
    "last_active, last_update_id) VALUES (?, ?, ?, ?, ?, ?)";
constexpr std::string_view kSelectAccess =
    "SELECT realm_id, viewer, visible FROM access ORDER BY viewer, visible";
constexpr std::string_view kInsertRealm =
    "INSERT INTO realms (subdomain, name, presence_disabled, deactivated, "
    "date_created, last_update_id, reserved_update_id) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)";
constexpr std::string_view kUpdateRealm =
    "UPDATE realms SET subdomain = ?, name = ?, presence_disabled = ?, "
    "deactivated = ? WHERE id = ?";
constexpr std::string_view kInsertUser =
    "INSERT INTO users (realm_id, email, email_lower, full_name, role, "
    "is_bot, is_active, presence_enabled, can_access_all_users, date_joined, "
    "api_key_hash, status_text, status_emoji_name, status_emoji_code, "
    "status_reaction_type, status_timestamp, status_passed, "
    "status_scheduled_end_time, status_dnd, status_dnd_end_time) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
constexpr std::string_view kUpdateUser =
    "UPDATE users SET realm_id = ?, email = ?, email_lower = ?, "
    "full_name = ?, role = ?, is_bot = ?, is_active = ?, "
    "presence_enabled = ?, can_access_all_users = ?, date_joined = ?, "
    "api_key_hash = ?, status_text = ?, status_emoji_name = ?, "
    "status_emoji_code = ?, status_reaction_type = ?, status_timestamp = ?, "
    "status_passed = ?, status_scheduled_end_time = ?, status_dnd = ?, "
    "status_dnd_end_time = ? WHERE id = ?";
constexpr std::string_view kRealmExists = "SELECT 1 FROM realms WHERE id = ?";
constexpr std::string_view kUserExists = "SELECT 1 FROM users WHERE id = ?";
constexpr std::string_view kDeleteAccess =
    "DELETE FROM access WHERE viewer = ?";
constexpr std::string_view kInsertAccess =
    "INSERT INTO access (realm_id, viewer, visible) VALUES (?, ?, ?)";
constexpr std::string_view kReserve =
    "UPDATE realms SET reserved_update_id = MAX(reserved_update_id, ?) "
    "WHERE id = ?";
constexpr std::string_view kUpsertPresence =
    "INSERT INTO presence (user_id, realm_id, last_connected, last_active, "
    "last_update_id) VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE "
    "SET realm_id = excluded.realm_id, "
    "last_connected = excluded.last_connected, "
    "last_active = excluded.last_active, "
    "last_update_id = excluded.last_update_id";
constexpr std::string_view kAppendLog =
    "INSERT INTO presence_log (batch, user_id, realm_id, client, "
    "last_connected, last_active, last_update_id) VALUES (?, ?, ?, ?, ?, ?, ?)";
// The log's batches, read once at Open (a walk of the rowid b-tree).
constexpr std::string_view kLogScan =
    "SELECT seq, batch FROM presence_log ORDER BY seq";
// One batch's rows, in the order they were appended (the user order of the
// batch): a rowid range, so no sort. The merge opens one per batch.
constexpr std::string_view kLogBatch =
    "SELECT user_id, realm_id, client, last_connected, last_active, "
    "last_update_id, seq FROM presence_log WHERE seq BETWEEN ? AND ? "
    "ORDER BY seq";
constexpr std::string_view kLogDeleteChunk =
    "DELETE FROM presence_log WHERE seq <= ?";
// The whole log (a merge's usual case): SQLite's truncate optimisation
// frees the table's pages without deleting row by row.
constexpr std::string_view kLogDeleteAll = "DELETE FROM presence_log";
constexpr std::string_view kUpdateSequence =
    "UPDATE realms SET last_update_id = ?, "
    "reserved_update_id = MAX(reserved_update_id, ?) WHERE id = ?";

// A timestamp that is bound as NULL when it is kNoTime.
struct NullableTime {
  Micros micros;
};
// Marks `id` in `known` (ids are positive; anything else is never known).
void MarkKnown(std::vector<bool>& known, std::int64_t id) {
  if (id <= 0) return;
  const auto i = static_cast<std::size_t>(id);
  if (i >= known.size()) known.resize(std::max(i + 1, 2 * known.size()));
  known[i] = true;
}
bool IsKnown(const std::vector<bool>& known, std::int64_t id) {
  return id > 0 && static_cast<std::size_t>(id) < known.size() &&
         known[static_cast<std::size_t>(id)];
}
// NULL.
struct Null {};

int BindOne(sqlite3_stmt* s, int i, std::int64_t v) {
  return sqlite3_bind_int64(s, i, v);
}
int BindOne(sqlite3_stmt* s, int i, bool v) {
  return sqlite3_bind_int(s, i, v ? 1 : 0);
}
int BindOne(sqlite3_stmt* s, int i, std::string_view v) {
  return sqlite3_bind_text64(s, i, v.data(), v.size(), SQLITE_TRANSIENT,
                             SQLITE_UTF8);
}
int BindOne(sqlite3_stmt* s, int i, const std::string& v) {
  return BindOne(s, i, std::string_view(v));
}
int BindOne(sqlite3_stmt* s, int i, Null) { return sqlite3_bind_null(s, i); }
int BindOne(sqlite3_stmt* s, int i, NullableTime t) {
  if (t.micros == kNoTime) return sqlite3_bind_null(s, i);
  return sqlite3_bind_int64(s, i, t.micros);
}

// A user's nine status columns from parameter `i` on: all NULL for a user
// without a status.
int BindStatus(sqlite3_stmt* s, int i, const std::optional<UserStatus>& st) {
  if (!st) {
    int rc = SQLITE_OK;
    for (int k = 0; k < 9 && rc == SQLITE_OK; ++k) {
      rc = sqlite3_bind_null(s, i + k);
    }
    return rc;
  }
  int rc =
      sqlite3_bind_text64(s, i, st->status_text.data(), st->status_text.size(),
                          SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc == SQLITE_OK) {
    rc = sqlite3_bind_text64(s, i + 1, st->emoji_name.data(),
                             st->emoji_name.size(), SQLITE_TRANSIENT,
                             SQLITE_UTF8);
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_bind_text64(s, i + 2, st->emoji_code.data(),
                             st->emoji_code.size(), SQLITE_TRANSIENT,
                             SQLITE_UTF8);
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_bind_text64(s, i + 3, st->reaction_type.data(),
                             st->reaction_type.size(), SQLITE_TRANSIENT,
                             SQLITE_UTF8);
  }
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, i + 4, st->timestamp);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, i + 5, st->passed);
  if (rc == SQLITE_OK) {
    rc = sqlite3_bind_int64(s, i + 6, st->scheduled_end_time);
  }
  if (rc == SQLITE_OK) rc = sqlite3_bind_int(s, i + 7, st->dnd ? 1 : 0);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, i + 8, st->dnd_end_time);
  return rc;
}

// Binds `args` to parameters 1, 2, ...; returns the first failing code.
template <class... Args>
int Bind(sqlite3_stmt* s, const Args&... args) {
  int i = 0;
  int rc = SQLITE_OK;
  ((rc = rc == SQLITE_OK ? BindOne(s, ++i, args) : rc), ...);
  return rc;
}

std::int64_t ColumnInt(sqlite3_stmt* s, int i) {
  return sqlite3_column_int64(s, i);
}
bool ColumnBool(sqlite3_stmt* s, int i) {
  return sqlite3_column_int64(s, i) != 0;
}
std::string ColumnText(sqlite3_stmt* s, int i) {
  const unsigned char* p = sqlite3_column_text(s, i);
  if (p == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(p),
                     static_cast<std::size_t>(sqlite3_column_bytes(s, i)));
}
Micros ColumnTime(sqlite3_stmt* s, int i) {
  if (sqlite3_column_type(s, i) == SQLITE_NULL) return kNoTime;
  return sqlite3_column_int64(s, i);
}

// Resets a cached statement when the scope ends, so it holds no lock and no
// stale bindings between calls.
class StmtReset {
 public:
  explicit StmtReset(sqlite3_stmt* s) : s_(s) {}
  StmtReset(const StmtReset&) = delete;
  StmtReset& operator=(const StmtReset&) = delete;
  ~StmtReset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }

 private:
  sqlite3_stmt* s_;
};

}  // namespace

// A write (or read) transaction that rolls back unless committed. Lives
// inside a scope that holds store->mu_: the constructor checks it is held,
// and the other methods tell the analysis so (it cannot tie store_ to the
// caller's lock).
class SqliteStore::Transaction {
 public:
  Transaction(SqliteStore* store, std::string_view op) REQUIRES(store->mu_)
      : store_(store), op_(op) {}
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction() {
    store_->mu_.AssertHeld();
    // Some errors (SQLITE_FULL, SQLITE_IOERR, ...) already rolled back.
    if (open_ && !sqlite3_get_autocommit(store_->db_)) {
      sqlite3_exec(store_->db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }

  StoreStatus Begin(bool immediate) {
    store_->mu_.AssertHeld();
    sqlite3_stmt* s = nullptr;
    StoreStatus prepared =
        store_->Prepare(immediate ? kBeginImmediate : kBegin, &s);
    if (!prepared) return prepared;
    StoreStatus st = store_->Run(s, op_);
    open_ = st.has_value();
    return st;
  }

  StoreStatus Commit() {
    store_->mu_.AssertHeld();
    sqlite3_stmt* s = nullptr;
    if (StoreStatus prepared = store_->Prepare(kCommit, &s); !prepared) {
      return prepared;
    }
    StoreStatus st = store_->Run(s, op_);
    if (st) open_ = false;
    store_->NotePageCache();
    return st;
  }

 private:
  SqliteStore* const store_;
  const std::string_view op_;
  bool open_ = false;
};

StoreResult<std::unique_ptr<SqliteStore>> SqliteStore::Open(
    const std::string& dir) {
  return Open(dir, Options{});
}

StoreResult<std::unique_ptr<SqliteStore>> SqliteStore::Open(
    const std::string& dir, const Options& options) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return Error(Errc::kIoError,
                 "cannot create directory " + dir + ": " + ec.message());
  }
  if (!std::filesystem::is_directory(dir, ec)) {
    return Error(Errc::kIoError, dir + " is not a directory");
  }
  std::string path = (std::filesystem::path(dir) / kFileName).string();

  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
      nullptr);
  if (rc != SQLITE_OK) {
    std::string why = "cannot open " + path + ": " +
                      (db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close(db);
    return Error(Errc::kStoreFailed, std::move(why));
  }
  std::unique_ptr<SqliteStore> store(
      new SqliteStore(db, std::move(path), options));
  MutexLock lock(store->mu_);
  StoreStatus st = store->Configure();
  if (!st) {
    return Error(st.error().code(), store->path_ + ": " + st.error().message());
  }
  store->opening_ = false;
  return std::unique_ptr<SqliteStore>(std::move(store));
}

SqliteStore::SqliteStore(sqlite3* db, std::string path, const Options& options)
    : db_(db),
      path_(std::move(path)),
      options_{
          .log_merge_rows = std::max<std::size_t>(options.log_merge_rows, 1),
          .log_merge_batches =
              std::max<std::size_t>(options.log_merge_batches, 1),
          .log_merge_slices =
              std::max<std::size_t>(options.log_merge_slices, 1)} {}

SqliteStore::~SqliteStore() {
  MutexLock lock(mu_);
  for (auto& [sql, stmt] : stmts_) sqlite3_finalize(stmt);
  for (sqlite3_stmt* cursor : log_cursors_) sqlite3_finalize(cursor);
  sqlite3_close(db_);
}

StoreStatus SqliteStore::Configure() {
  sqlite3_extended_result_codes(db_, 1);
  int rc = sqlite3_busy_timeout(db_, kBusyTimeoutMs);
  if (rc != SQLITE_OK) return Fail(rc, "busy_timeout");

  // journal_mode answers with the mode in force, which stays "delete" (or
  // "memory") where WAL is impossible; insist on WAL.
  sqlite3_stmt* s = nullptr;
  rc = sqlite3_prepare_v2(db_, "PRAGMA journal_mode=WAL", -1, &s, nullptr);
  if (rc != SQLITE_OK) return Fail(rc, "PRAGMA journal_mode");
  rc = sqlite3_step(s);
  std::string mode = rc == SQLITE_ROW ? ColumnText(s, 0) : "";
  if (rc != SQLITE_ROW) {
    auto err = Fail(rc, "PRAGMA journal_mode");
    sqlite3_finalize(s);
    return err;
  }
  sqlite3_finalize(s);
  if (AsciiLower(mode) != "wal") {
    return Corrupt("PRAGMA journal_mode",
                   "WAL mode not available (got '" + mode + "')");
  }
  for (const char* pragma :
       {"PRAGMA synchronous=FULL", "PRAGMA foreign_keys=ON"}) {
    rc = sqlite3_exec(db_, pragma, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return Fail(rc, pragma);
  }
  // The page cache bound in bytes: cache_size is in pages if positive, in
  // KiB if negative.
  std::int64_t pragma_value[2] = {0, 0};
  const char* const kSizePragmas[2] = {"PRAGMA cache_size", "PRAGMA page_size"};
  for (int i = 0; i < 2; ++i) {
    rc = sqlite3_prepare_v2(db_, kSizePragmas[i], -1, &s, nullptr);
    if (rc != SQLITE_OK) return Fail(rc, kSizePragmas[i]);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) pragma_value[i] = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW) return Fail(rc, kSizePragmas[i]);
  }
  page_cache_limit_bytes_.store(pragma_value[0] < 0
                                    ? -pragma_value[0] * 1024
                                    : pragma_value[0] * pragma_value[1],
                                std::memory_order_relaxed);
  if (StoreStatus st = Migrate(); !st) return st;
  return ReadLogState();
}

StoreStatus SqliteStore::ReadLogState() {
  sqlite3_stmt* s = nullptr;
  if (StoreStatus st = Prepare(kLogScan, &s); !st) return st;
  StmtReset reset(s);
  log_batches_.clear();
  log_rows_ = 0;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    const std::int64_t seq = ColumnInt(s, 0);
    const std::int64_t batch = ColumnInt(s, 1);
    if (log_batches_.empty() || log_batches_.back().batch != batch) {
      log_batches_.push_back(
          {.batch = batch, .first_seq = seq, .last_seq = seq, .rows = 0});
    }
    log_batches_.back().last_seq = seq;
    ++log_batches_.back().rows;
    ++log_rows_;
    last_batch_ = std::max(last_batch_, batch);
  }
  if (rc != SQLITE_DONE) return Fail(rc, "presence_log");
  log_rows_seen_.store(static_cast<std::int64_t>(log_rows_),
                       std::memory_order_relaxed);
  return {};
}

void SqliteStore::NotePageCache() {
  int current = 0;
  int highwater = 0;
  if (sqlite3_db_status(db_, SQLITE_DBSTATUS_CACHE_USED, &current, &highwater,
                        0) == SQLITE_OK) {
    page_cache_bytes_.store(current, std::memory_order_relaxed);
  }
  // Read and reset: each call adds what happened since the last one.
  if (sqlite3_db_status(db_, SQLITE_DBSTATUS_CACHE_MISS, &current, &highwater,
                        1) == SQLITE_OK) {
    pages_read_.fetch_add(current, std::memory_order_relaxed);
  }
  if (sqlite3_db_status(db_, SQLITE_DBSTATUS_CACHE_WRITE, &current, &highwater,
                        1) == SQLITE_OK) {
    pages_written_.fetch_add(current, std::memory_order_relaxed);
  }
}

SqliteStore::MemoryStats SqliteStore::Memory() const {
  MemoryStats m;
  sqlite3_int64 current = 0;
  sqlite3_int64 highwater = 0;
  if (sqlite3_status64(SQLITE_STATUS_MEMORY_USED, &current, &highwater, 0) ==
      SQLITE_OK) {
    m.memory_used_bytes = current;
    m.memory_highwater_bytes = highwater;
  }
  m.page_cache_bytes = page_cache_bytes_.load(std::memory_order_relaxed);
  m.page_cache_limit_bytes =
      page_cache_limit_bytes_.load(std::memory_order_relaxed);
  m.pages_read = pages_read_.load(std::memory_order_relaxed);
  m.pages_written = pages_written_.load(std::memory_order_relaxed);
  m.log_rows = log_rows_seen_.load(std::memory_order_relaxed);
  m.log_merges = log_merges_.load(std::memory_order_relaxed);
  m.log_merged_rows = log_merged_rows_.load(std::memory_order_relaxed);
  m.log_merge_seconds =
      static_cast<double>(log_merge_ns_.load(std::memory_order_relaxed)) / 1e9;
  m.log_merge_failures = log_merge_failures_.load(std::memory_order_relaxed);
  return m;
}

StoreStatus SqliteStore::Migrate() {
  Transaction txn(this, "migrate");
  if (StoreStatus st = txn.Begin(/*immediate=*/true); !st) return st;

  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v2(db_, "PRAGMA user_version", -1, &s, nullptr);
  if (rc != SQLITE_OK) return Fail(rc, "PRAGMA user_version");
  rc = sqlite3_step(s);
  std::int64_t version = rc == SQLITE_ROW ? ColumnInt(s, 0) : 0;
  if (rc != SQLITE_ROW) {
    auto err = Fail(rc, "PRAGMA user_version");
    sqlite3_finalize(s);
    return err;
  }
  sqlite3_finalize(s);

  if (version > kSchemaVersion) {
    return Corrupt("migrate", "schema version " + std::to_string(version) +
                                  " is newer than this presenced supports (" +
                                  std::to_string(kSchemaVersion) +
                                  "); upgrade presenced or use another "
                                  "directory");
  }
  if (version < 0) {
    return Corrupt("migrate",
                   "invalid schema version " + std::to_string(version));
  }
  if (version == kSchemaVersion) return txn.Commit();
  for (auto v = version; v < kSchemaVersion; ++v) {
    rc = sqlite3_exec(db_, kMigrations[v], nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) {
      return Fail(rc, "migration to version " + std::to_string(v + 1));
    }
  }
  // PRAGMA takes no parameters; the value is our own integer.
  std::string set_version =
      "PRAGMA user_version = " + std::to_string(kSchemaVersion);
  rc = sqlite3_exec(db_, set_version.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return Fail(rc, "PRAGMA user_version");
  return txn.Commit();
}

StoreStatus SqliteStore::Prepare(std::string_view sql, sqlite3_stmt** stmt) {
  auto it = stmts_.find(sql);
  if (it != stmts_.end()) {
    *stmt = it->second;
    return {};
  }
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &s, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(s);
    return Fail(rc, "prepare");
  }
  stmts_.emplace(sql, s);
  *stmt = s;
  return {};
}

Error SqliteStore::Fail(int rc, std::string_view op) {
  switch (rc) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
      return Errc::kAlreadyExists;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
      return Errc::kNotFound;
    default:
      break;
  }
  // While opening, a file that is not a database (or a damaged one) is
  // reported as such; later it is a store failure like any other.
  const int primary = rc & 0xff;
  const Errc code =
      opening_ && (primary == SQLITE_NOTADB || primary == SQLITE_CORRUPT)
          ? Errc::kCorrupt
          : Errc::kStoreFailed;
  return Error(code, std::string(op) + ": " + sqlite3_errmsg(db_) +
                         " (sqlite code " + std::to_string(rc) + ")");
}

Error SqliteStore::Corrupt(std::string_view op, std::string_view why) {
  return Error(Errc::kCorrupt, std::string(op) + ": " + std::string(why));
}

StoreStatus SqliteStore::Run(sqlite3_stmt* stmt, std::string_view op) {
  StmtReset reset(stmt);
  int rc = sqlite3_step(stmt);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) return Fail(rc, op);
  return {};
}

StoreStatus SqliteStore::Exists(std::string_view sql, std::int64_t id,
                                std::string_view op) {
  sqlite3_stmt* s = nullptr;
  if (StoreStatus st = Prepare(sql, &s); !st) return st.error();
  StmtReset reset(s);
  if (int rc = Bind(s, id); rc != SQLITE_OK) return Fail(rc, op);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) return {};
  if (rc == SQLITE_DONE) return Errc::kNotFound;
  return Fail(rc, op);
}

StoreResult<Snapshot> SqliteStore::Load() {
  Snapshot snap;
  SnapshotSink sink(&snap);
  if (StoreStatus st = LoadInto(sink); !st) return st.error();
  return snap;
}

namespace {

// Records handed to a LoadSink per call: big enough that a call costs
// nothing per row, small enough to stay in the cache.
constexpr std::size_t kLoadBatch = 1024;

// Assigns a text column to `out`, reusing its buffer (no allocation once
// the buffer is as long as the longest value).
void AssignText(sqlite3_stmt* s, int i, std::string& out) {
  const unsigned char* p = sqlite3_column_text(s, i);
  if (p == nullptr) {
    out.clear();
    return;
  }
  out.assign(reinterpret_cast<const char*>(p),
             static_cast<std::size_t>(sqlite3_column_bytes(s, i)));
}

std::string_view TextView(sqlite3_stmt* s, int i) {
  const unsigned char* p = sqlite3_column_text(s, i);
  if (p == nullptr) return {};
  return {reinterpret_cast<const char*>(p),
          static_cast<std::size_t>(sqlite3_column_bytes(s, i))};
}

// Resets the log's cursors on the way out, so that none holds the log open.
struct ResetCursors {
  std::span<sqlite3_stmt* const> cursors;
  ~ResetCursors() {
    for (sqlite3_stmt* c : cursors) {
      sqlite3_reset(c);
      sqlite3_clear_bindings(c);
    }
  }
};

// Fills `batch` row by row with `read(stmt, record)` and hands each full
// batch, and the last one, to `deliver`. Returns SQLite's last code
// (SQLITE_DONE when every row was read) or the first failure of `read` /
// `deliver`.
template <class Record, class Read, class Deliver>
StoreStatus StreamRows(sqlite3_stmt* s, std::vector<Record>& batch, Read&& read,
                       Deliver&& deliver, int& rc) {
  std::size_t n = 0;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (n == batch.size()) batch.emplace_back();
    if (StoreStatus st = read(s, batch[n]); !st) return st;
    if (++n == kLoadBatch) {
      if (StoreStatus st = deliver(std::span<const Record>(batch.data(), n));
          !st) {
        return st;
      }
      n = 0;
    }
  }
  if (n > 0) return deliver(std::span<const Record>(batch.data(), n));
  return {};
}

}  // namespace

StoreStatus SqliteStore::LoadInto(LoadSink& sink) {
  MutexLock lock(mu_);
  // One read transaction so that the tables (and the log read over
  // presence and client_presence) agree with each other.
  Transaction txn(this, "Load");
  if (StoreStatus st = txn.Begin(/*immediate=*/false); !st) return st.error();
  int rc;
  sqlite3_stmt* s = nullptr;

  {
    std::vector<RealmRecord> realms;
    if (StoreStatus st = Prepare(kSelectRealms, &s); !st) return st.error();
    StmtReset reset(s);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      realms.push_back(RealmRecord{
          .id = ColumnInt(s, 0),
          .subdomain = ColumnText(s, 1),
          .name = ColumnText(s, 2),
          .presence_disabled = ColumnBool(s, 3),
          .deactivated = ColumnBool(s, 4),
          .date_created = ColumnInt(s, 5),
          .last_update_id = ColumnInt(s, 6),
          .reserved_update_id = ColumnInt(s, 7),
      });
    }
    if (rc != SQLITE_DONE) return Fail(rc, "Load realms");
    for (const RealmRecord& realm : realms) MarkKnown(known_realms_, realm.id);
    if (StoreStatus st = sink.OnRealms(realms); !st) return st;
  }

  {
    // COUNT(*) without a condition counts the smallest b-tree's cells
    // without decoding them: a fraction of the scan below.
    if (StoreStatus st = Prepare(kCountUsers, &s); !st) return st.error();
    StmtReset reset(s);
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) return Fail(rc, "Load users");
    if (StoreStatus st =
            sink.OnUserCount(static_cast<std::size_t>(ColumnInt(s, 0)));
        !st) {
      return st;
    }
  }

  {
    std::vector<UserRecord> batch;
    if (StoreStatus st = Prepare(kSelectUsers, &s); !st) return st.error();
    StmtReset reset(s);
    auto read = [this](sqlite3_stmt* s, UserRecord& user) -> StoreStatus {
      mu_.AssertHeld();  // run by StreamRows, below, under mu_
      user.id = ColumnInt(s, 0);
      MarkKnown(known_users_, user.id);
      user.realm_id = ColumnInt(s, 1);
      AssignText(s, 2, user.email);
      AssignText(s, 3, user.full_name);
      user.is_bot = ColumnBool(s, 5);
      user.is_active = ColumnBool(s, 6);
      user.presence_enabled = ColumnBool(s, 7);
      user.can_access_all_users = ColumnBool(s, 8);
      user.date_joined = ColumnInt(s, 9);
      const std::string_view role = TextView(s, 4);
      std::optional<Role> parsed_role = ParseRole(role);
      if (!parsed_role) {
        return Corrupt("Load users", "user " + std::to_string(user.id) +
                                         " has unknown role '" +
                                         std::string(role) + "'");
      }
      user.role = *parsed_role;
      std::optional<Digest> hash = HexDecodeDigest(TextView(s, 10));
      if (!hash) {
        return Corrupt("Load users", "user " + std::to_string(user.id) +
                                         " has a malformed api_key_hash");
      }
      user.api_key_hash = *hash;
      if (sqlite3_column_type(s, 11) != SQLITE_NULL) {
        user.status = UserStatus{
            .status_text = ColumnText(s, 11),
            .emoji_name = ColumnText(s, 12),
            .emoji_code = ColumnText(s, 13),
            .reaction_type = ColumnText(s, 14),
            .timestamp = ColumnInt(s, 15),
            .passed = static_cast<std::uint8_t>(ColumnInt(s, 16)),
            // NULL (a row written before issue #18's extensions) reads 0.
            .scheduled_end_time = ColumnInt(s, 17),
            .dnd = ColumnBool(s, 18),
            .dnd_end_time = ColumnInt(s, 19),
        };
      } else {
        user.status.reset();
      }
      return {};
    };
    auto deliver = [&sink](std::span<const UserRecord> users) {
      return sink.OnUsers(users);
    };
    if (StoreStatus st = StreamRows(s, batch, read, deliver, rc); !st) {
      return st;
    }
    if (rc != SQLITE_DONE) return Fail(rc, "Load users");
  }

  if (!log_batches_.empty()) {
    // What was written is the tables with the log over them: read so,
    // without merging first (the flushes merge it, a slice at a time).
    if (StoreStatus st = LoadWithLogLocked(sink, /*clients=*/false); !st) {
      return st;
    }
  } else {
    std::vector<PresenceRecord> batch;
    if (StoreStatus st = Prepare(kSelectPresence, &s); !st) return st.error();
    StmtReset reset(s);
    auto read = [](sqlite3_stmt* s, PresenceRecord& row) -> StoreStatus {
      row = PresenceRecord{
          .user_id = ColumnInt(s, 0),
          .realm_id = ColumnInt(s, 1),
          .last_connected = ColumnTime(s, 2),
          .last_active = ColumnTime(s, 3),
          .last_update_id = ColumnInt(s, 4),
      };
      return {};
    };
    auto deliver = [&sink](std::span<const PresenceRecord> rows) {
      return sink.OnPresence(rows);
    };
    if (StoreStatus st = StreamRows(s, batch, read, deliver, rc); !st) {
      return st;
    }
    if (rc != SQLITE_DONE) return Fail(rc, "Load presence");
  }

  {
    // Few and small: one batch.
    std::vector<AccessRecord> access;
    if (StoreStatus st = Prepare(kSelectAccess, &s); !st) return st.error();
    StmtReset reset(s);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      UserId viewer = ColumnInt(s, 1);
      if (access.empty() || access.back().viewer != viewer) {
        access.push_back(AccessRecord{
            .realm_id = ColumnInt(s, 0), .viewer = viewer, .visible = {}});
      }
      access.back().visible.push_back(ColumnInt(s, 2));
    }
    if (rc != SQLITE_DONE) return Fail(rc, "Load access");
    if (!access.empty()) {
      if (StoreStatus st = sink.OnAccess(access); !st) return st;
    }
  }

  if (!log_batches_.empty()) {
    if (StoreStatus st = LoadWithLogLocked(sink, /*clients=*/true); !st) {
      return st;
    }
  } else {
    std::vector<ClientPresenceRecord> batch;
    if (StoreStatus st = Prepare(kSelectClients, &s); !st) return st.error();
    StmtReset reset(s);
    auto read = [](sqlite3_stmt* s, ClientPresenceRecord& row) -> StoreStatus {
      row.realm_id = ColumnInt(s, 0);
      row.user_id = ColumnInt(s, 1);
      AssignText(s, 2, row.client);
      row.last_connected = ColumnTime(s, 3);
      row.last_active = ColumnTime(s, 4);
      row.last_update_id = ColumnInt(s, 5);
      return {};
    };
    auto deliver = [&sink](std::span<const ClientPresenceRecord> rows) {
      return sink.OnClientPresence(rows);
    };
    if (StoreStatus st = StreamRows(s, batch, read, deliver, rc); !st) {
      return st;
    }
    if (rc != SQLITE_DONE) return Fail(rc, "Load client_presence");
  }

  if (StoreStatus st = txn.Commit(); !st) return st.error();
  return {};
}

StoreResult<RealmId> SqliteStore::InsertRealm(const RealmRecord& realm) {
  MutexLock lock(mu_);
  sqlite3_stmt* s = nullptr;
  if (StoreStatus st = Prepare(kInsertRealm, &s); !st) return st.error();
  StmtReset reset(s);
  int rc = Bind(s, realm.subdomain, realm.name, realm.presence_disabled,
                realm.deactivated, realm.date_created, realm.last_update_id,
                realm.reserved_update_id);
  if (rc != SQLITE_OK) return Fail(rc, "InsertRealm");
  rc = sqlite3_step(s);
  if (rc != SQLITE_DONE) return Fail(rc, "InsertRealm");
  const RealmId id = sqlite3_last_insert_rowid(db_);
  MarkKnown(known_realms_, id);
  return id;
}

StoreStatus SqliteStore::UpdateRealm(const RealmRecord& realm) {
  MutexLock lock(mu_);
  sqlite3_stmt* s = nullptr;
  if (StoreStatus st = Prepare(kUpdateRealm, &s); !st) return st.error();
  StmtReset reset(s);
  int rc = Bind(s, realm.subdomain, realm.name, realm.presence_disabled,
                realm.deactivated, realm.id);
  if (rc != SQLITE_OK) return Fail(rc, "UpdateRealm");
  rc = sqlite3_step(s);
  if (rc != SQLITE_DONE) return Fail(rc, "UpdateRealm");
  if (sqlite3_changes(db_) == 0) return Errc::kNotFound;
  return {};
}

StoreResult<UserId> SqliteStore::InsertUser(const UserRecord& user) {
  MutexLock lock(mu_);
  StoreResult<UserId> id = InsertUserLocked(user);
  if (id) MarkKnown(known_users_, *id);
  return id;
}

StoreResult<UserId> SqliteStore::InsertUserLocked(const UserRecord& user) {
  sqlite3_stmt* s = nullptr;
  if (StoreStatus st = Prepare(kInsertUser, &s); !st) return st.error();
  StmtReset reset(s);
  int rc =
      Bind(s, user.realm_id, user.email, AsciiLower(user.email), user.full_name,
           RoleName(user.role), user.is_bot, user.is_active,
           user.presence_enabled, user.can_access_all_users, user.date_joined,
           HexEncode(user.api_key_hash));
  if (rc == SQLITE_OK) rc = BindStatus(s, 12, user.status);
  if (rc != SQLITE_OK) return Fail(rc, "InsertUser");
  rc = sqlite3_step(s);
  if (rc != SQLITE_DONE) return Fail(rc, "InsertUser");
  return sqlite3_last_insert_rowid(db_);
}

StoreStatus SqliteStore::UpdateUser(const UserRecord& user) {
  MutexLock lock(mu_);
  return UpdateUserLocked(user);
}

StoreStatus SqliteStore::UpdateUserLocked(const UserRecord& user) {
  sqlite3_stmt* s = nullptr;
  if (StoreStatus st = Prepare(kUpdateUser, &s); !st) return st.error();
  StmtReset reset(s);
  int rc =
      Bind(s, user.realm_id, user.email, AsciiLower(user.email), user.full_name,
           RoleName(user.role), user.is_bot, user.is_active,
           user.presence_enabled, user.can_access_all_users, user.date_joined,
           HexEncode(user.api_key_hash));
  if (rc == SQLITE_OK) rc = BindStatus(s, 12, user.status);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 21, user.id);
  if (rc != SQLITE_OK) return Fail(rc, "UpdateUser");
  rc = sqlite3_step(s);
  if (rc != SQLITE_DONE) return Fail(rc, "UpdateUser");
  if (sqlite3_changes(db_) == 0) return Errc::kNotFound;
  return {};
}

StoreStatus SqliteStore::WriteUsers(std::span<UserRecord> create,
                                    std::span<const UserRecord> update) {
  MutexLock lock(mu_);
  Transaction txn(this, "WriteUsers");
  if (StoreStatus st = txn.Begin(/*immediate=*/true); !st) return st;
  std::vector<UserId> ids;
  ids.reserve(create.size());
  for (const UserRecord& u : create) {
    auto id = InsertUserLocked(u);
    if (!id) return std::move(id).error();
    ids.push_back(*id);
  }
  for (const UserRecord& u : update) {
    if (StoreStatus st = UpdateUserLocked(u); !st) return st;
  }
  if (StoreStatus st = txn.Commit(); !st) return st;
  // Only once committed: a rolled-back batch leaves every id at 0.
  for (std::size_t i = 0; i < create.size(); ++i) {
    create[i].id = ids[i];
    MarkKnown(known_users_, ids[i]);
  }
  return {};
}

StoreStatus SqliteStore::SetAccess(const AccessRecord& access) {
  MutexLock lock(mu_);
  Transaction txn(this, "SetAccess");
  if (StoreStatus st = txn.Begin(/*immediate=*/true); !st) return st;
  // Foreign keys check the visible users, but an empty list inserts nothing,
  // so the realm and the viewer are checked explicitly.
  if (StoreStatus st = Exists(kRealmExists, access.realm_id, "SetAccess");
      !st) {
    return st;
  }
  if (StoreStatus st = Exists(kUserExists, access.viewer, "SetAccess"); !st) {
    return st;
  }
  sqlite3_stmt* s = nullptr;
  if (StoreStatus st = Prepare(kDeleteAccess, &s); !st) return st.error();
  {
    StmtReset reset(s);
    if (int rc = Bind(s, access.viewer); rc != SQLITE_OK) {
      return Fail(rc, "SetAccess");
    }
    if (int rc = sqlite3_step(s); rc != SQLITE_DONE) {
      return Fail(rc, "SetAccess");
    }
  }
  if (StoreStatus st = Prepare(kInsertAccess, &s); !st) return st.error();
  for (UserId visible :
       std::set<UserId>(access.visible.begin(), access.visible.end())) {
    StmtReset reset(s);
    if (int rc = Bind(s, access.realm_id, access.viewer, visible);
        rc != SQLITE_OK) {
      return Fail(rc, "SetAccess");
    }
    if (int rc = sqlite3_step(s); rc != SQLITE_DONE) {
      return Fail(rc, "SetAccess");
    }
  }
  return txn.Commit();
}

StoreStatus SqliteStore::ReserveUpdateIds(RealmId realm,
                                          UpdateId reserved_update_id) {
  MutexLock lock(mu_);
  sqlite3_stmt* s = nullptr;
  if (StoreStatus st = Prepare(kReserve, &s); !st) return st.error();
  StmtReset reset(s);
  int rc = Bind(s, reserved_update_id, realm);
  if (rc != SQLITE_OK) return Fail(rc, "ReserveUpdateIds");
  rc = sqlite3_step(s);
  if (rc != SQLITE_DONE) return Fail(rc, "ReserveUpdateIds");
  if (sqlite3_changes(db_) == 0) return Errc::kNotFound;
  return {};
}

StoreStatus SqliteStore::WritePresence(
    std::span<const PresenceRecord> rows,
    std::span<const ClientPresenceRecord> clients,
    std::span<const SequenceRecord> sequences) {
  MutexLock lock(mu_);
  {
    Transaction txn(this, "WritePresence");
    if (StoreStatus st = txn.Begin(/*immediate=*/true); !st) return st;
    // Every row's user and realm must exist, as the tables' foreign keys
    // require (checked here: the log has none).
    for (const PresenceRecord& row : rows) {
      if (StoreStatus st = CheckIdsLocked(row.user_id, row.realm_id); !st) {
        return st;
      }
    }
    for (const ClientPresenceRecord& row : clients) {
      if (StoreStatus st = CheckIdsLocked(row.user_id, row.realm_id); !st) {
        return st;
      }
    }
    // Appended in user order, a user's own row beside their client rows,
    // so that the merge's sort finds runs in order. Stable sorts keep the
    // batch's order for a repeated key, and the merge takes the later row.
    const std::int64_t batch = last_batch_ + 1;
    std::vector<const PresenceRecord*> ordered_rows;
    ordered_rows.reserve(rows.size());
    for (const PresenceRecord& row : rows) ordered_rows.push_back(&row);
    std::stable_sort(ordered_rows.begin(), ordered_rows.end(),
                     [](const PresenceRecord* a, const PresenceRecord* b) {
                       return a->user_id < b->user_id;
                     });
    std::vector<const ClientPresenceRecord*> ordered_clients;
    ordered_clients.reserve(clients.size());
    for (const ClientPresenceRecord& row : clients) {
      ordered_clients.push_back(&row);
    }
    std::stable_sort(
        ordered_clients.begin(), ordered_clients.end(),
        [](const ClientPresenceRecord* a, const ClientPresenceRecord* b) {
          return a->user_id < b->user_id;
        });
    sqlite3_stmt* s = nullptr;
    if (StoreStatus st = Prepare(kAppendLog, &s); !st) return st.error();
    std::size_t r = 0;
    std::size_t c = 0;
    // The batch's rowid range (rowids are the table's largest plus one, so
    // a batch is one range), for the merge's cursors.
    LogBatch appended{.batch = batch, .first_seq = 0, .last_seq = 0, .rows = 0};
    while (r < ordered_rows.size() || c < ordered_clients.size()) {
      StmtReset reset(s);
      int rc;
      if (c == ordered_clients.size() ||
          (r < ordered_rows.size() &&
           ordered_rows[r]->user_id <= ordered_clients[c]->user_id)) {
        const PresenceRecord& row = *ordered_rows[r++];
        rc = Bind(s, batch, row.user_id, row.realm_id, Null{},
                  NullableTime{row.last_connected},
                  NullableTime{row.last_active}, row.last_update_id);
      } else {
        const ClientPresenceRecord& row = *ordered_clients[c++];
        rc = Bind(s, batch, row.user_id, row.realm_id, row.client,
                  NullableTime{row.last_connected},
                  NullableTime{row.last_active}, row.last_update_id);
      }
      if (rc != SQLITE_OK) return Fail(rc, "WritePresence");
      rc = sqlite3_step(s);
      if (rc != SQLITE_DONE) return Fail(rc, "WritePresence");
      appended.last_seq = sqlite3_last_insert_rowid(db_);
      if (appended.rows++ == 0) appended.first_seq = appended.last_seq;
    }

    if (StoreStatus st = Prepare(kUpdateSequence, &s); !st) return st.error();
    for (const SequenceRecord& seq : sequences) {
      StmtReset reset(s);
      int rc =
          Bind(s, seq.last_update_id, seq.reserved_update_id, seq.realm_id);
      if (rc != SQLITE_OK) return Fail(rc, "WritePresence");
      rc = sqlite3_step(s);
      if (rc != SQLITE_DONE) return Fail(rc, "WritePresence");
      if (sqlite3_changes(db_) == 0) return Errc::kNotFound;
    }
    if (StoreStatus st = txn.Commit(); !st) return st;
    if (appended.rows > 0) {
      last_batch_ = batch;
      log_batches_.push_back(appended);
      log_rows_ += appended.rows;
      log_rows_seen_.store(static_cast<std::int64_t>(log_rows_),
                           std::memory_order_relaxed);
    }
  }
  // The batch is durable; now one slice of a merge round at most (a flush
  // turn stays short: the next one reserves update ids). A slice that fails
  // is rolled back and tried again at the next write: failing the call
  // would tell the caller its durable batch was lost.
  if (round_ || log_rows_ >= options_.log_merge_rows ||
      log_batches_.size() >= options_.log_merge_batches) {
    if (StoreStatus st = MergeSliceLocked(/*to_end=*/false); !st) {
      log_merge_failures_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  return {};
}

StoreStatus SqliteStore::CheckIdsLocked(UserId user, RealmId realm) {
  // Users and realms are never deleted, so an id once seen stays valid:
  // those Load read and those inserted here (marked once committed); one
  // not seen yet (written behind the store's back) is looked up once.
  if (!IsKnown(known_users_, user)) {
    if (StoreStatus st = Exists(kUserExists, user, "WritePresence"); !st) {
      return st;
    }
    MarkKnown(known_users_, user);
  }
  if (!IsKnown(known_realms_, realm)) {
    if (StoreStatus st = Exists(kRealmExists, realm, "WritePresence"); !st) {
      return st;
    }
    MarkKnown(known_realms_, realm);
  }
  return {};
}

StoreStatus SqliteStore::MergeLog() {
  MutexLock lock(mu_);
  return MergeLogLocked();
}

std::size_t SqliteStore::log_rows() const {
  MutexLock lock(mu_);
  return log_rows_;
}

StoreStatus SqliteStore::MergeLogLocked() {
  while (!log_batches_.empty()) {
    if (StoreStatus st = MergeSliceLocked(/*to_end=*/true); !st) return st;
  }
  return {};
}

StoreStatus SqliteStore::MergeSliceLocked(bool to_end) {
  const auto started = std::chrono::steady_clock::now();
  if (!round_) {
    // A round: the oldest batches, up to log_merge_batches (at least one),
    // merged a slice of users at a time.
    std::size_t n_batches = 0;
    std::size_t rows = 0;
    while (n_batches < log_batches_.size() &&
           n_batches < options_.log_merge_batches) {
      rows += log_batches_[n_batches++].rows;
    }
    if (n_batches == 0) return {};
    MergeRound r{.batches = n_batches,
                 .rows = rows,
                 .slice_rows = std::max<std::size_t>(
                     1, (rows + options_.log_merge_slices - 1) /
                            options_.log_merge_slices),
                 .next_seq = {}};
    r.next_seq.reserve(n_batches);
    for (std::size_t i = 0; i < n_batches; ++i) {
      r.next_seq.push_back(log_batches_[i].first_seq);
    }
    round_ = std::move(r);
  }
  const std::size_t n_batches = round_->batches;
  const bool whole_log = n_batches == log_batches_.size();

  Transaction txn(this, "merge presence_log");
  if (StoreStatus st = txn.Begin(/*immediate=*/true); !st) return st;

  // A cursor per batch, each in the batch's user order; the merge takes the
  // smallest user next, and for one user the older batch first, so the rows
  // of a user come in log order without a sort (SQLite's sorter held up to
  // 9.5 MB during a merge: bench/results/log26).
  if (StoreStatus st = PrepareLogCursorsLocked(n_batches, "merge presence_log");
      !st) {
    return st;
  }
  ResetCursors reset_cursors{std::span(log_cursors_).first(n_batches)};
  std::vector<LogHead> heads;
  if (StoreStatus st =
          StartLogCursorsLocked(round_->next_seq, heads, "merge presence_log");
      !st) {
    return st;
  }

  // One user at a time: the user's last own row, and the client rows of the
  // last batch that named any.
  std::vector<ClientPresenceRecord> client_rows;
  std::vector<const ClientPresenceRecord*> ordered;
  std::size_t merged = 0;
  sqlite3_stmt* upsert = nullptr;
  if (StoreStatus st = Prepare(kUpsertPresence, &upsert); !st) return st;
  std::optional<PresenceRecord> own;
  std::size_t n_clients = 0;
  std::size_t client_batch = 0;
  UserId user = 0;
  bool have_user = false;
  auto finish_user = [&]() -> StoreStatus {
    mu_.AssertHeld();  // called below, under mu_
    if (own) {
      StmtReset reset_upsert(upsert);
      int rc = Bind(upsert, own->user_id, own->realm_id,
                    NullableTime{own->last_connected},
                    NullableTime{own->last_active}, own->last_update_id);
      if (rc != SQLITE_OK) return Fail(rc, "merge presence_log");
      rc = sqlite3_step(upsert);
      if (rc != SQLITE_DONE) return Fail(rc, "merge presence_log");
    }
    if (n_clients > 0) {
      ordered.clear();
      for (std::size_t i = 0; i < n_clients; ++i) {
        ordered.push_back(&client_rows[i]);
      }
      std::stable_sort(
          ordered.begin(), ordered.end(),
          [](const ClientPresenceRecord* a, const ClientPresenceRecord* b) {
            return a->client < b->client;
          });
      // A client named twice in the batch: the later row wins.
      std::size_t kept = 0;
      for (std::size_t i = 0; i < ordered.size(); ++i) {
        if (kept > 0 && ordered[kept - 1]->client == ordered[i]->client) {
          ordered[kept - 1] = ordered[i];
        } else {
          ordered[kept++] = ordered[i];
        }
      }
      ordered.resize(kept);
      if (StoreStatus st = ReplaceClientsLocked(ordered); !st) return st;
    }
    own.reset();
    n_clients = 0;
    return {};
  };
  while (!heads.empty()) {
    // The slice ends with a user, once it holds its share of the round.
    if (!to_end && merged >= round_->slice_rows &&
        heads.front().first != user) {
      break;
    }
    std::pop_heap(heads.begin(), heads.end(), std::greater<>());
    const auto [row_user, i] = heads.back();
    heads.pop_back();
    sqlite3_stmt* s = log_cursors_[i];
    ++merged;
    if (!have_user || row_user != user) {
      if (have_user) {
        if (StoreStatus st = finish_user(); !st) return st;
      }
      user = row_user;
      have_user = true;
    }
    if (sqlite3_column_type(s, 2) == SQLITE_NULL) {
      own = PresenceRecord{.user_id = row_user,
                           .realm_id = ColumnInt(s, 1),
                           .last_connected = ColumnTime(s, 3),
                           .last_active = ColumnTime(s, 4),
                           .last_update_id = ColumnInt(s, 5)};
    } else {
      if (n_clients == 0 || i != client_batch) {
        n_clients = 0;  // a later batch replaces the user's clients again
        client_batch = i;
      }
      if (n_clients == client_rows.size()) client_rows.emplace_back();
      ClientPresenceRecord& c = client_rows[n_clients++];
      c.user_id = row_user;
      c.realm_id = ColumnInt(s, 1);
      AssignText(s, 2, c.client);
      c.last_connected = ColumnTime(s, 3);
      c.last_active = ColumnTime(s, 4);
      c.last_update_id = ColumnInt(s, 5);
    }
    if (StoreStatus st = StepLogCursorLocked(i, heads, "merge presence_log");
        !st) {
      return st;
    }
  }
  if (have_user) {
    if (StoreStatus st = finish_user(); !st) return st;
  }
  if (!heads.empty()) {
    // Where each batch resumes: its cursor's row, not merged yet (a batch
    // that has none left resumes past its end).
    std::vector<std::int64_t> next_seq(n_batches);
    for (std::size_t i = 0; i < n_batches; ++i) {
      next_seq[i] = log_batches_[i].last_seq + 1;
    }
    for (const auto& [head_user, i] : heads) {
      next_seq[i] = ColumnInt(log_cursors_[i], 6);
    }
    for (std::size_t i = 0; i < n_batches; ++i) sqlite3_reset(log_cursors_[i]);
    if (StoreStatus st = txn.Commit(); !st) return st;
    // The round's rows stay in the log until its last slice: after a crash
    // the next start merges them again, which gives the same tables (rows
    // applied in log order).
    round_->next_seq = std::move(next_seq);
  } else {
    for (std::size_t i = 0; i < n_batches; ++i) sqlite3_reset(log_cursors_[i]);
    sqlite3_stmt* s = nullptr;
    if (StoreStatus st =
            Prepare(whole_log ? kLogDeleteAll : kLogDeleteChunk, &s);
        !st) {
      return st;
    }
    {
      StmtReset reset(s);
      int rc =
          whole_log ? SQLITE_OK : Bind(s, log_batches_[n_batches - 1].last_seq);
      if (rc != SQLITE_OK) return Fail(rc, "merge presence_log");
      rc = sqlite3_step(s);
      if (rc != SQLITE_DONE) return Fail(rc, "merge presence_log");
    }
    if (StoreStatus st = txn.Commit(); !st) return st;
    log_batches_.erase(
        log_batches_.begin(),
        log_batches_.begin() + static_cast<std::ptrdiff_t>(n_batches));
    log_rows_ -= std::min(log_rows_, round_->rows);
    round_.reset();
    log_rows_seen_.store(static_cast<std::int64_t>(log_rows_),
                         std::memory_order_relaxed);
  }
  log_merges_.fetch_add(1, std::memory_order_relaxed);
  log_merged_rows_.fetch_add(static_cast<std::int64_t>(merged),
                             std::memory_order_relaxed);
  log_merge_ns_.fetch_add(std::chrono::duration_cast<std::chrono::nanoseconds>(
                              std::chrono::steady_clock::now() - started)
                              .count(),
                          std::memory_order_relaxed);
  return {};
}

StoreStatus SqliteStore::PrepareLogCursorsLocked(std::size_t n,
                                                 std::string_view op) {
  while (log_cursors_.size() < n) {
    sqlite3_stmt* c = nullptr;
    const int rc = sqlite3_prepare_v3(db_, kLogBatch.data(),
                                      static_cast<int>(kLogBatch.size()),
                                      SQLITE_PREPARE_PERSISTENT, &c, nullptr);
    if (rc != SQLITE_OK) {
      sqlite3_finalize(c);
      return Fail(rc, op);
    }
    log_cursors_.push_back(c);
  }
  return {};
}

StoreStatus SqliteStore::StartLogCursorsLocked(
    std::span<const std::int64_t> from, std::vector<LogHead>& heads,
    std::string_view op) {
  heads.clear();
  heads.reserve(from.size());
  for (std::size_t i = 0; i < from.size(); ++i) {
    const int rc = Bind(log_cursors_[i], from[i], log_batches_[i].last_seq);
    if (rc != SQLITE_OK) return Fail(rc, op);
    if (StoreStatus st = StepLogCursorLocked(i, heads, op); !st) return st;
  }
  return {};
}

StoreStatus SqliteStore::StepLogCursorLocked(std::size_t i,
                                             std::vector<LogHead>& heads,
                                             std::string_view op) {
  const int rc = sqlite3_step(log_cursors_[i]);
  if (rc == SQLITE_ROW) {
    heads.emplace_back(ColumnInt(log_cursors_[i], 0), i);
    std::push_heap(heads.begin(), heads.end(), std::greater<>());
  } else if (rc != SQLITE_DONE) {
    return Fail(rc, op);
  }
  return {};
}

StoreStatus SqliteStore::LoadWithLogLocked(LoadSink& sink, bool clients) {
  const char* const op = clients ? "Load client_presence" : "Load presence";
  // The table's rows in user order (kSelectClients: the user in column 1).
  sqlite3_stmt* table = nullptr;
  if (StoreStatus st =
          Prepare(clients ? kSelectClients : kSelectPresence, &table);
      !st) {
    return st;
  }
  StmtReset reset_table(table);
  const int table_user = clients ? 1 : 0;
  // A cursor per batch of the whole log, as the merge reads a round's, so
  // that each user's log rows come in log order (older batch first).
  const std::size_t n = log_batches_.size();
  if (StoreStatus st = PrepareLogCursorsLocked(n, op); !st) return st;
  ResetCursors reset_cursors{std::span(log_cursors_).first(n)};
  std::vector<std::int64_t> from;
  from.reserve(n);
  for (const LogBatch& b : log_batches_) from.push_back(b.first_seq);
  std::vector<LogHead> heads;
  if (StoreStatus st = StartLogCursorsLocked(from, heads, op); !st) return st;

  std::vector<PresenceRecord> own_out;
  std::vector<ClientPresenceRecord> client_out;
  auto deliver = [&](bool last) -> StoreStatus {
    if (clients) {
      if (client_out.empty() || (!last && client_out.size() < kLoadBatch)) {
        return {};
      }
      StoreStatus st = sink.OnClientPresence(client_out);
      client_out.clear();
      return st;
    }
    if (own_out.empty() || (!last && own_out.size() < kLoadBatch)) return {};
    StoreStatus st = sink.OnPresence(own_out);
    own_out.clear();
    return st;
  };
  // One user's rows from the log: the last own row, and the client rows of
  // the last batch that named any (the merge's rules).
  std::optional<PresenceRecord> own;
  std::vector<ClientPresenceRecord> logged;
  std::size_t client_batch = 0;
  int table_rc = sqlite3_step(table);
  while (table_rc == SQLITE_ROW || !heads.empty()) {
    UserId user =
        heads.empty() ? ColumnInt(table, table_user) : heads.front().first;
    if (table_rc == SQLITE_ROW) {
      user = std::min<UserId>(user, ColumnInt(table, table_user));
    }
    own.reset();
    logged.clear();
    while (!heads.empty() && heads.front().first == user) {
      std::pop_heap(heads.begin(), heads.end(), std::greater<>());
      const std::size_t i = heads.back().second;
      heads.pop_back();
      sqlite3_stmt* s = log_cursors_[i];
      const bool is_own = sqlite3_column_type(s, 2) == SQLITE_NULL;
      if (is_own && !clients) {
        own = PresenceRecord{.user_id = user,
                             .realm_id = ColumnInt(s, 1),
                             .last_connected = ColumnTime(s, 3),
                             .last_active = ColumnTime(s, 4),
                             .last_update_id = ColumnInt(s, 5)};
      } else if (!is_own && clients) {
        if (logged.empty() || i != client_batch) {
          logged.clear();  // a later batch replaces the user's clients
          client_batch = i;
        }
        ClientPresenceRecord& c = logged.emplace_back();
        c.user_id = user;
        c.realm_id = ColumnInt(s, 1);
        AssignText(s, 2, c.client);
        c.last_connected = ColumnTime(s, 3);
        c.last_active = ColumnTime(s, 4);
        c.last_update_id = ColumnInt(s, 5);
      }
      if (StoreStatus st = StepLogCursorLocked(i, heads, op); !st) return st;
    }
    // The table's rows of the user, kept only where the log has none.
    while (table_rc == SQLITE_ROW && ColumnInt(table, table_user) == user) {
      if (clients && logged.empty()) {
        ClientPresenceRecord& c = client_out.emplace_back();
        c.realm_id = ColumnInt(table, 0);
        c.user_id = user;
        AssignText(table, 2, c.client);
        c.last_connected = ColumnTime(table, 3);
        c.last_active = ColumnTime(table, 4);
        c.last_update_id = ColumnInt(table, 5);
      } else if (!clients && !own) {
        own_out.push_back(
            PresenceRecord{.user_id = user,
                           .realm_id = ColumnInt(table, 1),
                           .last_connected = ColumnTime(table, 2),
                           .last_active = ColumnTime(table, 3),
                           .last_update_id = ColumnInt(table, 4)});
      }
      table_rc = sqlite3_step(table);
    }
    if (own) own_out.push_back(*own);
    if (!logged.empty()) {
      // In client order; a client named twice in the batch: the later row.
      std::stable_sort(
          logged.begin(), logged.end(),
          [](const ClientPresenceRecord& a, const ClientPresenceRecord& b) {
            return a.client < b.client;
          });
      for (std::size_t i = 0; i < logged.size(); ++i) {
        if (i + 1 < logged.size() && logged[i + 1].client == logged[i].client) {
          continue;
        }
        client_out.push_back(std::move(logged[i]));
      }
    }
    if (StoreStatus st = deliver(/*last=*/false); !st) return st;
  }
  if (table_rc != SQLITE_DONE) return Fail(table_rc, op);
  return deliver(/*last=*/true);
}

StoreStatus SqliteStore::ReplaceClientsLocked(
    std::span<const ClientPresenceRecord* const> rows) {
  // A user with one row (every ping of a one-client user) keeps it in
  // place: the row is updated where it exists and the user's other rows
  // deleted. Deleting and inserting it instead made SQLite check the users
  // table's key for every row (an inserted row's foreign key; an updated
  // one that keeps its user_id is not checked): at 1M users a page read per
  // row from a table far larger than the page cache (issue #17). A user
  // with several rows is replaced whole: delete, then insert (foreign keys
  // check users and realms).
  const ClientPresenceRecord& first = *rows.front();
  sqlite3_stmt* s = nullptr;
  if (rows.size() == 1) {
    // Usually there is nothing to delete: the DELETE (and its temporary
    // b-tree, about 160 KB of malloc per row at 16,700 rows/s, carved from
    // the free holes of the heap so that their pages were resident again
    // within seconds of each trim: issue #17, the million run's RSS) runs
    // only when the user has other rows.
    if (StoreStatus st = Prepare(kHasOtherClients, &s); !st) return st;
    bool others = false;
    {
      StmtReset reset(s);
      int rc = Bind(s, first.user_id, first.client);
      if (rc != SQLITE_OK) return Fail(rc, "merge presence_log");
      rc = sqlite3_step(s);
      if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        return Fail(rc, "merge presence_log");
      }
      others = rc == SQLITE_ROW;
    }
    if (others) {
      if (StoreStatus st = Prepare(kDeleteOtherClients, &s); !st) return st;
      StmtReset reset(s);
      int rc = Bind(s, first.user_id, first.client);
      if (rc != SQLITE_OK) return Fail(rc, "merge presence_log");
      rc = sqlite3_step(s);
      if (rc != SQLITE_DONE) return Fail(rc, "merge presence_log");
    }
  } else {
    if (StoreStatus st = Prepare(kDeleteClients, &s); !st) return st;
    StmtReset reset(s);
    int rc = Bind(s, first.user_id);
    if (rc != SQLITE_OK) return Fail(rc, "merge presence_log");
    rc = sqlite3_step(s);
    if (rc != SQLITE_DONE) return Fail(rc, "merge presence_log");
  }
  if (StoreStatus st =
          Prepare(rows.size() == 1 ? kUpsertClient : kInsertClient, &s);
      !st) {
    return st;
  }
  for (const ClientPresenceRecord* row : rows) {
    StmtReset reset(s);
    int rc = Bind(s, row->user_id, row->client, row->realm_id,
                  NullableTime{row->last_connected},
                  NullableTime{row->last_active}, row->last_update_id);
    if (rc != SQLITE_OK) return Fail(rc, "merge presence_log");
    rc = sqlite3_step(s);
    if (rc != SQLITE_DONE) return Fail(rc, "merge presence_log");
  }
  return {};
}

StoreStatus SqliteStore::Checkpoint() {
  MutexLock lock(mu_);
  int rc = sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_TRUNCATE,
                                     nullptr, nullptr);
  if (rc != SQLITE_OK) return Fail(rc, "Checkpoint");
  return {};
}

StoreStatus SqliteStore::ExecForTesting(const std::string& sql) {
  MutexLock lock(mu_);
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return Fail(rc, "ExecForTesting");
  return {};
}

}  // namespace presence::store
