// bench_populate: writes a presenced data directory holding one realm of N
// users, each with a presence row, fast enough for a million users.
//
// The schema is created by SqliteStore::Open (so it is always the one the
// server expects) and the realm by its InsertRealm; the users and their rows
// are then inserted with raw SQL in one transaction, which is what makes a
// million users take seconds instead of the hours a million CreateUser calls
// (each a SHA-256, a fsynced transaction and a key) would take.
//
// Users are those of bench/bench_users.h. Every row was last written
// `--row-age-seconds` ago (default an hour: past the 55 s write rule and the
// 130 s "came online" gap, inside the 14-day window), so the first active
// ping of any user writes its row and announces that it came online.
//
// With --store redis://HOST:PORT it fills a (fresh) Redis for scale-out
// benchmarks instead, through RedisStore's own inserts (slower, but the
// same users, keys and rows).
//
// Prints one JSON object: users, last_update_id (the realm's sequence after
// the load; every row's id is 1..N) and seconds.
#include <sqlite3.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "bench/bench_users.h"
#include "store/redis_store.h"
#include "store/sqlite_store.h"
#include "util/clock.h"
#include "util/crypto.h"

namespace presence::bench {
namespace {

bool Exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::fprintf(stderr, "bench_populate: %s: %s\n", sql, err ? err : "?");
    sqlite3_free(err);
    return false;
  }
  return true;
}

// The same realm, users and rows in a shared store (scale-out benchmarks).
int PopulateShared(const std::string& url, std::int64_t users,
                   std::int64_t row_age_seconds) {
  const auto t0 = std::chrono::steady_clock::now();
  auto st = store::RedisStore::Open(url);
  if (!st) {
    std::fprintf(stderr, "bench_populate: open %s: %s\n", url.c_str(),
                 st.error().message().c_str());
    return 1;
  }
  const Micros now = RealClock().NowMicros();
  store::RealmRecord realm;
  realm.subdomain = "";
  realm.name = "Benchmark realm";
  realm.date_created = now;
  auto realm_id = (*st)->InsertRealm(realm);
  if (!realm_id) {
    std::fprintf(stderr, "bench_populate: InsertRealm: %s\n",
                 realm_id.error().message().c_str());
    return 1;
  }
  const Micros joined = now - SecondsToMicros(30 * 86400);
  const Micros seen = now - SecondsToMicros(row_age_seconds);
  std::vector<store::PresenceRecord> rows;
  for (std::int64_t i = 0; i < users; ++i) {
    store::UserRecord u;
    u.realm_id = *realm_id;
    u.email = BenchEmail(i);
    u.full_name = BenchName(i);
    u.date_joined = joined;
    u.api_key_hash = Sha256(BenchKey(i));
    auto id = (*st)->InsertUser(u);
    if (!id) {
      std::fprintf(stderr, "bench_populate: InsertUser %lld: %s\n",
                   static_cast<long long>(i), id.error().message().c_str());
      return 1;
    }
    rows.push_back({*id, *realm_id, seen, seen, i + 1});
  }
  store::SequenceRecord seq{*realm_id, users, users};
  if (auto written = (*st)->WritePresence(rows, {}, {&seq, 1}); !written) {
    std::fprintf(stderr, "bench_populate: WritePresence: %s\n",
                 written.error().message().c_str());
    return 1;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  std::printf(
      "{\"users\":%lld,\"realm_id\":%lld,\"last_update_id\":%lld,"
      "\"seconds\":%.3f}\n",
      static_cast<long long>(users), static_cast<long long>(*realm_id),
      static_cast<long long>(users), seconds);
  return 0;
}

int Main(int argc, char** argv) {
  std::string dir;
  std::string shared;
  std::int64_t users = 1000;
  std::int64_t row_age_seconds = 3600;
  bool replace = false;
  CLI::App cli{"bench_populate: a presenced data directory for benchmarks"};
  cli.add_option("--data", dir, "data directory to create");
  cli.add_option("--store", shared,
                 "redis://HOST:PORT: fill this (empty) Redis instead");
  cli.add_option("--users", users, "number of users (each with a row)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{50'000'000}));
  cli.add_option("--row-age-seconds", row_age_seconds,
                 "age of every presence row")
      ->capture_default_str();
  cli.add_flag("--replace", replace, "delete an existing store first");
  CLI11_PARSE(cli, argc, argv);
  if (!shared.empty()) return PopulateShared(shared, users, row_age_seconds);
  if (dir.empty()) {
    std::fprintf(stderr, "bench_populate: --data or --store is required\n");
    return 2;
  }

  const auto t0 = std::chrono::steady_clock::now();
  const std::string file =
      (std::filesystem::path(dir) / store::SqliteStore::kFileName).string();
  if (std::filesystem::exists(file)) {
    if (!replace) {
      std::fprintf(stderr, "bench_populate: %s exists (use --replace)\n",
                   file.c_str());
      return 2;
    }
    for (const char* suffix : {"", "-wal", "-shm"}) {
      std::filesystem::remove(file + suffix);
    }
  }

  const Micros now = RealClock().NowMicros();
  RealmId realm_id = 0;
  {
    auto st = store::SqliteStore::Open(dir);
    if (!st) {
      std::fprintf(stderr, "bench_populate: open %s: %s\n", dir.c_str(),
                   st.error().message().c_str());
      return 1;
    }
    store::RealmRecord realm;
    realm.subdomain = "";  // the realm of an IP-literal Host (127.0.0.1)
    realm.name = "Benchmark realm";
    realm.date_created = now;
    auto id = (*st)->InsertRealm(realm);
    if (!id) {
      std::fprintf(stderr, "bench_populate: InsertRealm failed\n");
      return 1;
    }
    realm_id = *id;
  }

  sqlite3* db = nullptr;
  if (sqlite3_open(file.c_str(), &db) != SQLITE_OK) {
    std::fprintf(stderr, "bench_populate: sqlite3_open %s failed\n",
                 file.c_str());
    return 1;
  }
  // A fresh file nobody else uses: durability of the bulk load itself does
  // not matter (a crash here just means running the tool again).
  if (!Exec(db, "PRAGMA synchronous=OFF") || !Exec(db, "BEGIN")) return 1;
  sqlite3_stmt* user_stmt = nullptr;
  sqlite3_stmt* row_stmt = nullptr;
  const char* kUser =
      "INSERT INTO users (id, realm_id, email, email_lower, full_name, role, "
      "is_bot, is_active, presence_enabled, can_access_all_users, "
      "date_joined, api_key_hash) VALUES (?, ?, ?, ?, ?, 'member', 0, 1, 1, "
      "1, ?, ?)";
  const char* kRow =
      "INSERT INTO presence (user_id, realm_id, last_connected, last_active, "
      "last_update_id) VALUES (?, ?, ?, ?, ?)";
  if (sqlite3_prepare_v2(db, kUser, -1, &user_stmt, nullptr) != SQLITE_OK ||
      sqlite3_prepare_v2(db, kRow, -1, &row_stmt, nullptr) != SQLITE_OK) {
    std::fprintf(stderr, "bench_populate: prepare: %s\n", sqlite3_errmsg(db));
    return 1;
  }
  const Micros joined = now - SecondsToMicros(30 * 86400);
  const Micros seen = now - SecondsToMicros(row_age_seconds);
  for (std::int64_t i = 0; i < users; ++i) {
    const std::int64_t id = i + 1;
    const std::string email = BenchEmail(i);
    const std::string name = BenchName(i);
    const std::string hash = HexEncode(Sha256(BenchKey(i)));
    sqlite3_bind_int64(user_stmt, 1, id);
    sqlite3_bind_int64(user_stmt, 2, realm_id);
    sqlite3_bind_text(user_stmt, 3, email.data(), email.size(),
                      SQLITE_TRANSIENT);
    sqlite3_bind_text(user_stmt, 4, email.data(), email.size(),
                      SQLITE_TRANSIENT);  // already lower case
    sqlite3_bind_text(user_stmt, 5, name.data(), name.size(), SQLITE_TRANSIENT);
    sqlite3_bind_int64(user_stmt, 6, joined);
    sqlite3_bind_text(user_stmt, 7, hash.data(), hash.size(), SQLITE_TRANSIENT);
    sqlite3_bind_int64(row_stmt, 1, id);
    sqlite3_bind_int64(row_stmt, 2, realm_id);
    sqlite3_bind_int64(row_stmt, 3, seen);
    sqlite3_bind_int64(row_stmt, 4, seen);
    sqlite3_bind_int64(row_stmt, 5, id);  // update ids 1..N in user order
    if (sqlite3_step(user_stmt) != SQLITE_DONE ||
        sqlite3_step(row_stmt) != SQLITE_DONE) {
      std::fprintf(stderr, "bench_populate: insert %lld: %s\n",
                   static_cast<long long>(i), sqlite3_errmsg(db));
      return 1;
    }
    sqlite3_reset(user_stmt);
    sqlite3_reset(row_stmt);
  }
  sqlite3_finalize(user_stmt);
  sqlite3_finalize(row_stmt);
  const std::string seq =
      "UPDATE realms SET last_update_id = " + std::to_string(users) +
      ", reserved_update_id = " + std::to_string(users) +
      " WHERE id = " + std::to_string(realm_id);
  if (!Exec(db, seq.c_str()) || !Exec(db, "COMMIT")) return 1;
  if (!Exec(db, "PRAGMA wal_checkpoint(TRUNCATE)")) return 1;
  sqlite3_close(db);

  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
          .count();
  std::printf(
      "{\"users\":%lld,\"realm_id\":%lld,\"last_update_id\":%lld,"
      "\"seconds\":%.3f}\n",
      static_cast<long long>(users), static_cast<long long>(realm_id),
      static_cast<long long>(users), seconds);
  return 0;
}

}  // namespace
}  // namespace presence::bench

int main(int argc, char** argv) { return presence::bench::Main(argc, argv); }
