// SQLite-only behaviour: durability across reopen, file format, schema
// versions and real failures. The shared contract is in store_typed_test.cc.
#include "store/sqlite_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <latch>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "store/temp_dir.h"
#include "testing/memory_store.h"

namespace presence::store {
namespace {

RealmRecord RealmNamed(std::string subdomain) {
  return RealmRecord{.subdomain = std::move(subdomain), .name = "Realm"};
}

UserRecord UserNamed(RealmId realm, std::string email) {
  return UserRecord{
      .realm_id = realm, .email = std::move(email), .full_name = "User"};
}

using ::testing::HasSubstr;

std::unique_ptr<SqliteStore> MustOpen(const std::string& dir) {
  auto store = SqliteStore::Open(dir);
  EXPECT_TRUE(store.has_value()) << store.error();
  return store ? std::move(*store) : nullptr;
}

std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A plain connection to the same file, for looking behind the store's back.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
    sqlite3_busy_timeout(db_, 5000);
  }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;
  ~RawDb() { sqlite3_close(db_); }

  void Exec(const std::string& sql) {
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK)
        << sql << ": " << (err ? err : "");
    sqlite3_free(err);
  }

  // The first column of the first row as text ("NULL" for NULL).
  std::string Query(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db_);
    std::string out = "<no row>";
    if (sqlite3_step(s) == SQLITE_ROW) {
      const unsigned char* t = sqlite3_column_text(s, 0);
      out = t ? reinterpret_cast<const char*>(t) : "NULL";
    }
    sqlite3_finalize(s);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

class SqliteStoreTest : public ::testing::Test {
 protected:
  std::string DbPath() const {
    return (std::filesystem::path(dir_.path()) / SqliteStore::kFileName)
        .string();
  }

  // One realm with two users, presence, an access list and sequence state.
  static Snapshot Populate(Store* store) {
    RealmRecord realm{.subdomain = "acme",
                      .name = "Acme",
                      .presence_disabled = true,
                      .date_created = 1'700'000'000'000'000,
                      .last_update_id = 3,
                      .reserved_update_id = 100};
    realm.id = store->InsertRealm(realm).value();
    UserRecord a{.realm_id = realm.id,
                 .email = "Alice@Acme.test",
                 .full_name = "Alice",
                 .role = Role::kOwner,
                 .date_joined = 1'700'000'000'000'001,
                 .api_key_hash = Sha256("alice-key")};
    a.id = store->InsertUser(a).value();
    UserRecord g{.realm_id = realm.id,
                 .email = "guest@acme.test",
                 .full_name = "Guest",
                 .role = Role::kGuest,
                 .is_bot = true,
                 .can_access_all_users = false,
                 .date_joined = 1'700'000'000'000'002,
                 .api_key_hash = Sha256("guest-key")};
    g.id = store->InsertUser(g).value();
    AccessRecord access{
        .realm_id = realm.id, .viewer = g.id, .visible = {a.id}};
    EXPECT_TRUE(store->SetAccess(access));
    std::vector<PresenceRecord> rows = {
        {.user_id = a.id,
         .realm_id = realm.id,
         .last_connected = 1'700'000'000'500'000,
         .last_active = kNoTime,
         .last_update_id = 4},
        {.user_id = g.id,
         .realm_id = realm.id,
         .last_connected = kNoTime,
         .last_active = kNoTime,
         .last_update_id = 5}};
    std::vector<SequenceRecord> seqs = {
        {.realm_id = realm.id, .last_update_id = 5, .reserved_update_id = 200}};
    EXPECT_TRUE(store->WritePresence(rows, {}, seqs));
    realm.last_update_id = 5;
    realm.reserved_update_id = 200;
    return Snapshot{.realms = {realm},
                    .users = {a, g},
                    .presence = rows,
                    .access = {access}};
  }

  TempDir dir_;
};

void ExpectSameSnapshot(const Snapshot& got, const Snapshot& want) {
  EXPECT_EQ(got.realms, want.realms);
  EXPECT_EQ(got.users, want.users);
  EXPECT_EQ(got.presence, want.presence);
  EXPECT_EQ(got.access, want.access);
  EXPECT_EQ(got.client_presence, want.client_presence);
}

TEST_F(SqliteStoreTest, DataSurvivesCloseAndReopen) {
  Snapshot want;
  {
    auto store = MustOpen(dir_.path());
    ASSERT_NE(store, nullptr);
    want = Populate(store.get());
  }
  auto store = MustOpen(dir_.path());
  ASSERT_NE(store, nullptr);
  auto got = store->Load();
  ASSERT_TRUE(got.has_value());
  ExpectSameSnapshot(*got, want);
  // Ids continue after the reopen.
  auto id = store->InsertRealm(RealmNamed("second"));
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(*id, 2);
}

// A sink that keeps every batch's size and a copy of its records.
class RecordingSink final : public LoadSink {
 public:
  StoreStatus OnRealms(std::span<const RealmRecord> realms) override {
    calls.push_back("realms");
    snap.realms.assign(realms.begin(), realms.end());
    return {};
  }
  StoreStatus OnUserCount(std::size_t users) override {
    calls.push_back("count");
    user_count = users;
    return {};
  }
  StoreStatus OnUsers(std::span<const UserRecord> users) override {
    calls.push_back("users");
    user_batches.push_back(users.size());
    snap.users.insert(snap.users.end(), users.begin(), users.end());
    return {};
  }
  StoreStatus OnPresence(std::span<const PresenceRecord> rows) override {
    calls.push_back("presence");
    snap.presence.insert(snap.presence.end(), rows.begin(), rows.end());
    return {};
  }
  StoreStatus OnAccess(std::span<const AccessRecord> lists) override {
    calls.push_back("access");
    snap.access.insert(snap.access.end(), lists.begin(), lists.end());
    return {};
  }
  StoreStatus OnClientPresence(
      std::span<const ClientPresenceRecord> rows) override {
    calls.push_back("clients");
    snap.client_presence.insert(snap.client_presence.end(), rows.begin(),
                                rows.end());
    return {};
  }
  Snapshot snap;
  std::size_t user_count = 0;
  std::vector<std::size_t> user_batches;
  std::vector<std::string> calls;
};

// Issue #17: the start streams the tables in batches of reused records
// (no Snapshot). What it hands over is exactly what Load returns, users
// in id order with their statuses, the count exact, no batch empty or
// over the batch size, and a record reused for a user without a status
// carries none.
TEST_F(SqliteStoreTest, LoadIntoStreamsWhatLoadReturnsInBatches) {
  auto store = MustOpen(dir_.path());
  ASSERT_NE(store, nullptr);
  Snapshot want = Populate(store.get());
  std::vector<UserRecord> more;
  for (int i = 0; i < 2500; ++i) {
    UserRecord u = UserNamed(want.realms[0].id,
                             "bulk" + std::to_string(i) + "@example.com");
    u.full_name =
        "Bulk user with a name longer than before " + std::to_string(i);
    if (i % 1000 == 7) u.status = UserStatus{.status_text = "away a while"};
    more.push_back(u);
  }
  ASSERT_TRUE(store->WriteUsers(more, {}));
  auto loaded = store->Load();
  ASSERT_TRUE(loaded.has_value());
  ASSERT_EQ(loaded->users.size(), 2502u);

  RecordingSink sink;
  ASSERT_TRUE(store->LoadInto(sink));
  ExpectSameSnapshot(sink.snap, *loaded);
  EXPECT_EQ(sink.user_count, 2502u);
  ASSERT_GE(sink.user_batches.size(), 3u);
  for (std::size_t n : sink.user_batches) {
    EXPECT_GT(n, 0u);
    EXPECT_LE(n, 1024u);
  }
  for (std::size_t i = 1; i < sink.snap.users.size(); ++i) {
    EXPECT_LT(sink.snap.users[i - 1].id, sink.snap.users[i].id);
  }
  int with_status = 0;
  for (const UserRecord& u : sink.snap.users) with_status += u.status ? 1 : 0;
  EXPECT_EQ(with_status, 3);
  EXPECT_EQ(sink.calls.front(), "realms");
  EXPECT_EQ(sink.calls[1], "count");
}

TEST_F(SqliteStoreTest, WriteUsersIsOneTransaction) {
  auto store = MustOpen(dir_.path());
  ASSERT_NE(store, nullptr);
  auto realm = store->InsertRealm(RealmNamed("acme"));
  ASSERT_TRUE(realm.has_value());
  auto taken = store->InsertUser(UserNamed(*realm, "taken@example.com"));
  ASSERT_TRUE(taken.has_value());

  // The second insert collides: the first is rolled back with it, and no
  // id is handed out.
  std::vector<UserRecord> create = {UserNamed(*realm, "new@example.com"),
                                    UserNamed(*realm, "TAKEN@example.com")};
  auto st = store->WriteUsers(create, {});
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error(), Errc::kAlreadyExists);
  EXPECT_EQ(create[0].id, 0);
  auto snap = store->Load();
  ASSERT_TRUE(snap.has_value());
  EXPECT_EQ(snap->users.size(), 1u);

  // Inserts and an update together.
  UserRecord renamed = snap->users[0];
  renamed.full_name = "Renamed";
  create = {UserNamed(*realm, "a@example.com"),
            UserNamed(*realm, "b@example.com")};
  std::vector<UserRecord> update = {renamed};
  ASSERT_TRUE(store->WriteUsers(create, update).has_value());
  EXPECT_GT(create[0].id, *taken);
  EXPECT_GT(create[1].id, create[0].id);
  snap = store->Load();
  ASSERT_TRUE(snap.has_value());
  ASSERT_EQ(snap->users.size(), 3u);
  EXPECT_EQ(snap->users[0].full_name, "Renamed");
  EXPECT_EQ(snap->users[2].email, "b@example.com");
}

TEST_F(SqliteStoreTest, CreatesMissingDirectories) {
  std::string nested = dir_.path() + "/a/b/c";
  auto store = MustOpen(nested);
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(std::filesystem::exists(nested + "/presence.sqlite3"));
  EXPECT_EQ(store->path(), nested + "/presence.sqlite3");
}

TEST_F(SqliteStoreTest, IdsAreNotReusedAfterTheLastRowIsDeleted) {
  auto store = MustOpen(dir_.path());
  ASSERT_NE(store, nullptr);
  ASSERT_EQ(store->InsertRealm(RealmNamed("a")).value(), 1);
  ASSERT_EQ(store->InsertRealm(RealmNamed("b")).value(), 2);
  ASSERT_TRUE(store->ExecForTesting("DELETE FROM realms WHERE id = 2"));
  EXPECT_EQ(store->InsertRealm(RealmNamed("c")).value(), 3);
}

TEST_F(SqliteStoreTest, UsesWalAndTheCurrentSchemaVersion) {
  auto store = MustOpen(dir_.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->InsertRealm(RealmNamed("a")));
  EXPECT_TRUE(std::filesystem::exists(DbPath() + "-wal"));
  RawDb raw(DbPath());
  EXPECT_EQ(raw.Query("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(raw.Query("PRAGMA user_version"),
            std::to_string(SqliteStore::kSchemaVersion));
}

// Schema 1 -> 2 (per-client rows): a data directory written before the
// extension opens, keeps everything and gains an empty client table. The
// version-1 file is built from a frozen SQL dump (tests/store/fixtures/v1.sql),
// not from today's schema, so a change to the migrations that breaks old
// files fails here.
TEST_F(SqliteStoreTest, Issue8_Version1DirectoryMigratesAndKeepsEverything) {
  const std::string fixture =
      ReadFile(std::filesystem::path(PRESENCE_SOURCE_DIR) / "tests" / "store" /
               "fixtures" / "v1.sql");
  ASSERT_FALSE(fixture.empty()) << "missing fixture v1.sql";
  {
    RawDb raw(DbPath());
    raw.Exec(fixture);
    ASSERT_EQ(raw.Query("PRAGMA user_version"), "1");
    ASSERT_EQ(raw.Query("SELECT count(*) FROM sqlite_master WHERE name = "
                        "'client_presence'"),
              "0");
  }

  // What the fixture holds, written out independently of it.
  const Snapshot want{
      .realms = {{.id = 1,
                  .subdomain = "acme",
                  .name = "Acme",
                  .presence_disabled = true,
                  .date_created = 1'700'000'000'000'000,
                  .last_update_id = 5,
                  .reserved_update_id = 200},
                 {.id = 3,
                  .subdomain = "old",
                  .name = "Old Corp",
                  .deactivated = true,
                  .date_created = 1'600'000'000'000'000,
                  .last_update_id = 7,
                  .reserved_update_id = 100}},
      .users = {{.id = 1,
                 .realm_id = 1,
                 .email = "Alice@Acme.test",
                 .full_name = "Alice",
                 .role = Role::kOwner,
                 .date_joined = 1'700'000'000'000'001,
                 .api_key_hash = Sha256("alice-key")},
                {.id = 2,
                 .realm_id = 1,
                 .email = "guest@acme.test",
                 .full_name = "Guest",
                 .role = Role::kGuest,
                 .is_bot = true,
                 .presence_enabled = false,
                 .can_access_all_users = false,
                 .date_joined = 1'700'000'000'000'002,
                 .api_key_hash = Sha256("guest-key")},
                {.id = 4,
                 .realm_id = 3,
                 .email = "bob@old.test",
                 .full_name = "Bob",
                 .role = Role::kMember,
                 .is_active = false,
                 .date_joined = 1'600'000'000'000'003,
                 .api_key_hash = Sha256("bob-key")}},
      .presence = {{.user_id = 1,
                    .realm_id = 1,
                    .last_connected = 1'700'000'000'500'000,
                    .last_active = kNoTime,
                    .last_update_id = 4},
                   {.user_id = 2,
                    .realm_id = 1,
                    .last_connected = kNoTime,
                    .last_active = kNoTime,
                    .last_update_id = 5},
                   {.user_id = 4,
                    .realm_id = 3,
                    .last_connected = 1'600'000'000'400'000,
                    .last_active = 1'600'000'000'300'000,
                    .last_update_id = 7}},
      .access = {{.realm_id = 1, .viewer = 2, .visible = {1}}},
  };

  auto store = MustOpen(dir_.path());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(RawDb(DbPath()).Query("PRAGMA user_version"),
            std::to_string(SqliteStore::kSchemaVersion));
  auto got = store->Load();
  ASSERT_TRUE(got.has_value());
  ExpectSameSnapshot(*got, want);
  EXPECT_TRUE(got->client_presence.empty());

  // The update-id reservation is still in force: reserving below it does not
  // lower it, and ids handed out before the upgrade are not handed out again.
  ASSERT_TRUE(store->ReserveUpdateIds(1, 150));
  EXPECT_EQ(store->Load()->realms.at(0).reserved_update_id, 200);
  ASSERT_TRUE(store->ReserveUpdateIds(1, 300));
  EXPECT_EQ(store->Load()->realms.at(0).reserved_update_id, 300);
  // The AUTOINCREMENT counters survived too: deleted ids are not reused.
  EXPECT_EQ(store->InsertRealm(RealmNamed("new")).value(), 4);
  EXPECT_EQ(store->InsertUser(UserNamed(1, "new@acme.test")).value(), 6);

  // The new table works on the migrated file.
  ClientPresenceRecord row{.realm_id = 1,
                           .user_id = 1,
                           .client = "ZulipMobile",
                           .last_connected = 5,
                           .last_active = kNoTime,
                           .last_update_id = 9};
  ASSERT_TRUE(store->WritePresence({}, {&row, 1}, {}));
  EXPECT_THAT(store->Load()->client_presence, ::testing::ElementsAre(row));
}

TEST_F(SqliteStoreTest, StoresNullTimesAsNullAndHashAsLowercaseHex) {
  auto store = MustOpen(dir_.path());
  ASSERT_NE(store, nullptr);
  Snapshot snap = Populate(store.get());
  // Presence rows reach their table when the log is merged.
  ASSERT_TRUE(store->MergeLog());
  RawDb raw(DbPath());
  EXPECT_EQ(raw.Query("SELECT count(*) FROM presence WHERE last_active IS "
                      "NULL"),
            "2");
  EXPECT_EQ(raw.Query("SELECT typeof(last_connected) FROM presence WHERE "
                      "user_id = " +
                      std::to_string(snap.users[1].id)),
            "null");
  EXPECT_EQ(raw.Query("SELECT api_key_hash FROM users WHERE id = " +
                      std::to_string(snap.users[0].id)),
            HexEncode(Sha256("alice-key")));
  EXPECT_EQ(raw.Query("SELECT typeof(api_key_hash) FROM users LIMIT 1"),
            "text");
  EXPECT_EQ(raw.Query("SELECT role FROM users WHERE id = " +
                      std::to_string(snap.users[1].id)),
            "guest");
  EXPECT_EQ(raw.Query("SELECT email_lower FROM users WHERE id = " +
                      std::to_string(snap.users[0].id)),
            "alice@acme.test");
}

TEST_F(SqliteStoreTest, FilesContainNoPlainApiKey) {
  const std::string key = "SECRETKEYabcdefghijklmnopqrstuvw";
  {
    auto store = MustOpen(dir_.path());
    ASSERT_NE(store, nullptr);
    auto realm = store->InsertRealm(RealmNamed("acme"));
    ASSERT_TRUE(realm.has_value());
    auto id = store->InsertUser({.realm_id = *realm,
                                 .email = "a@acme.test",
                                 .full_name = "A",
                                 .api_key_hash = Sha256(key)});
    ASSERT_TRUE(id.has_value());
    // Look at the bytes while the data is still in the WAL.
    std::string db = ReadFile(DbPath());
    std::string wal = ReadFile(DbPath() + "-wal");
    EXPECT_EQ(db.find("SECRETKEY"), std::string::npos);
    EXPECT_EQ(wal.find("SECRETKEY"), std::string::npos);
    // The grep does see the stored data: the hash is there.
    EXPECT_NE((db + wal).find(HexEncode(Sha256(key))), std::string::npos);
  }
  // And after the close has checkpointed it into the main file.
  std::string db = ReadFile(DbPath());
  EXPECT_EQ(db.find("SECRETKEY"), std::string::npos);
  EXPECT_NE(db.find(HexEncode(Sha256(key))), std::string::npos);
}

TEST_F(SqliteStoreTest, RefusesAFutureSchemaVersion) {
  { ASSERT_NE(MustOpen(dir_.path()), nullptr); }
  const int future = SqliteStore::kSchemaVersion + 1;
  {
    RawDb raw(DbPath());
    raw.Exec("PRAGMA user_version = " + std::to_string(future));
  }
  auto store = SqliteStore::Open(dir_.path());
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error(), Errc::kCorrupt);
  EXPECT_THAT(store.error().message(),
              HasSubstr("schema version " + std::to_string(future)));
  EXPECT_THAT(store.error().message(), HasSubstr("newer"));
  // The file was left as it was.
  RawDb raw(DbPath());
  EXPECT_EQ(raw.Query("PRAGMA user_version"), std::to_string(future));
}

TEST_F(SqliteStoreTest, RefusesAFileThatIsNotADatabase) {
  {
    std::ofstream out(DbPath(), std::ios::binary);
    out << std::string(4096, 'x');
  }
  auto store = SqliteStore::Open(dir_.path());
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error(), Errc::kCorrupt);
  EXPECT_FALSE(store.error().message().empty());
}

TEST_F(SqliteStoreTest, OpenFailsUnderARegularFile) {
  // Works as root too: no permission check is involved, a file is not a
  // directory.
  std::string file = dir_.path() + "/plain";
  { std::ofstream(file) << "x"; }
  auto store = SqliteStore::Open(file + "/db");
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error(), Errc::kIoError);
  EXPECT_THAT(store.error().message(), HasSubstr(file));

  store = SqliteStore::Open(file);
  ASSERT_FALSE(store.has_value());
  EXPECT_EQ(store.error(), Errc::kIoError);
}

TEST_F(SqliteStoreTest, WritesFailWithStoreFailedWhenDatabaseRefusesThem) {
  auto store = MustOpen(dir_.path());
  ASSERT_NE(store, nullptr);
  Snapshot before = Populate(store.get());
  ASSERT_TRUE(store->MergeLog());
  // query_only makes SQLite refuse every write, whoever the process runs as.
  ASSERT_TRUE(store->ExecForTesting("PRAGMA query_only = ON"));

  const RealmId realm = before.realms[0].id;
  const UserId user = before.users[0].id;
  auto id = store->InsertRealm(RealmNamed("new"));
  ASSERT_FALSE(id.has_value());
  EXPECT_EQ(id.error(), Errc::kStoreFailed);
  // The error carries SQLite's reason and the operation that failed.
  EXPECT_THAT(id.error().message(), HasSubstr("InsertRealm"));
  EXPECT_THAT(id.error().message(), HasSubstr("readonly"));

  RealmRecord r = before.realms[0];
  r.name = "changed";
  EXPECT_EQ(store->UpdateRealm(r).error(), Errc::kStoreFailed);
  UserRecord u = before.users[0];
  u.full_name = "changed";
  EXPECT_EQ(store->InsertUser(UserNamed(realm, "n@x")).error(),
            Errc::kStoreFailed);
  EXPECT_EQ(store->UpdateUser(u).error(), Errc::kStoreFailed);
  EXPECT_EQ(store->SetAccess({.realm_id = realm, .viewer = user, .visible = {}})
                .error(),
            Errc::kStoreFailed);
  EXPECT_EQ(store->ReserveUpdateIds(realm, 1000).error(), Errc::kStoreFailed);
  PresenceRecord row{.user_id = user, .realm_id = realm, .last_update_id = 9};
  SequenceRecord seq{
      .realm_id = realm, .last_update_id = 9, .reserved_update_id = 9000};
  auto st = store->WritePresence({&row, 1}, {}, {&seq, 1});
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error(), Errc::kStoreFailed);
  EXPECT_THAT(st.error().message(), HasSubstr("WritePresence"));

  // Reads still work and show nothing of the failed writes.
  auto after = store->Load();
  ASSERT_TRUE(after.has_value());
  ExpectSameSnapshot(*after, before);

  // No transaction was left open: once writable again, writes go through.
  ASSERT_TRUE(store->ExecForTesting("PRAGMA query_only = OFF"));
  EXPECT_TRUE(store->WritePresence({&row, 1}, {}, {&seq, 1}));
  EXPECT_TRUE(store->InsertRealm(RealmNamed("new")));

  // Load reads the presence log without merging it, so a store that
  // refuses writes still loads what was written; merging it fails there
  // (and says why), and the rows stay in the log for a store that can.
  ASSERT_EQ(store->log_rows(), 1u);
  ASSERT_TRUE(store->ExecForTesting("PRAGMA query_only = ON"));
  auto loaded = store->Load();
  ASSERT_TRUE(loaded.has_value()) << loaded.error();
  EXPECT_THAT(loaded->presence, ::testing::Contains(row));
  auto refused = store->MergeLog();
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error(), Errc::kStoreFailed);
  EXPECT_THAT(refused.error().message(), HasSubstr("merge presence_log"));
  EXPECT_EQ(store->log_rows(), 1u);
  ASSERT_TRUE(store->ExecForTesting("PRAGMA query_only = OFF"));
  ASSERT_TRUE(store->MergeLog());
  EXPECT_EQ(store->log_rows(), 0u);
  auto merged = store->Load();
  ASSERT_TRUE(merged.has_value()) << merged.error();
  EXPECT_EQ(merged->presence, loaded->presence);
}

// Two threads failing at once each get the reason of their own call (a
// "last error" kept in the store could hand one the other's).
TEST_F(SqliteStoreTest, ConcurrentFailuresEachCarryTheirOwnReason) {
  auto store = MustOpen(dir_.path());
  ASSERT_NE(store, nullptr);
  Snapshot before = Populate(store.get());
  ASSERT_TRUE(store->ExecForTesting("PRAGMA query_only = ON"));
  RealmRecord changed = before.realms[0];
  changed.name = "changed";

  constexpr int kRounds = 200;
  std::latch start(2);
  std::vector<std::string> inserts;
  std::vector<std::string> updates;
  std::thread inserter([&] {
    start.arrive_and_wait();
    for (int i = 0; i < kRounds; ++i) {
      auto id = store->InsertRealm(RealmNamed("n" + std::to_string(i)));
      inserts.push_back(id ? "succeeded" : id.error().message());
    }
  });
  std::thread updater([&] {
    start.arrive_and_wait();
    for (int i = 0; i < kRounds; ++i) {
      auto st = store->UpdateRealm(changed);
      updates.push_back(st ? "succeeded" : st.error().message());
    }
  });
  inserter.join();
  updater.join();
  ASSERT_EQ(inserts.size(), static_cast<std::size_t>(kRounds));
  ASSERT_EQ(updates.size(), static_cast<std::size_t>(kRounds));
  for (const std::string& why : inserts) {
    EXPECT_THAT(why, HasSubstr("InsertRealm: "));
    EXPECT_THAT(why, HasSubstr("readonly"));
  }
  for (const std::string& why : updates) {
    EXPECT_THAT(why, HasSubstr("UpdateRealm: "));
    EXPECT_THAT(why, HasSubstr("readonly"));
  }
}

TEST_F(SqliteStoreTest, FullDatabaseFailsTheWholeBatch) {
  auto store = MustOpen(dir_.path());
  ASSERT_NE(store, nullptr);
  RealmId realm = store->InsertRealm(RealmNamed("acme")).value();
  std::vector<PresenceRecord> rows;
  for (int i = 0; i < 2000; ++i) {
    UserId id = store
                    ->InsertUser({.realm_id = realm,
                                  .email = "u" + std::to_string(i) + "@x",
                                  .full_name = std::string(40, 'n')})
                    .value();
    rows.push_back({.user_id = id,
                    .realm_id = realm,
                    .last_connected = 1'700'000'000'000'000 + i,
                    .last_active = 1'700'000'000'000'000 + i,
                    .last_update_id = i + 1});
  }
  // A database "disk" that is exactly as large as it is now: SQLite clamps
  // max_page_count to the current size.
  ASSERT_TRUE(store->ExecForTesting("PRAGMA max_page_count = 1"));
  SequenceRecord seq{
      .realm_id = realm, .last_update_id = 2000, .reserved_update_id = 3000};
  auto st = store->WritePresence(rows, {}, {&seq, 1});
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error(), Errc::kStoreFailed);
  EXPECT_THAT(st.error().message(), HasSubstr("full"));

  auto snap = store->Load();
  ASSERT_TRUE(snap.has_value());
  EXPECT_TRUE(snap->presence.empty());
  EXPECT_EQ(snap->realms[0].last_update_id, 0);
  EXPECT_EQ(snap->realms[0].reserved_update_id, 0);
}

TEST_F(SqliteStoreTest, WaitsForAnotherWriterWithinTheBusyTimeout) {
  auto store = MustOpen(dir_.path());
  ASSERT_NE(store, nullptr);
  std::promise<void> locked;
  std::thread other([&] {
    RawDb raw(DbPath());
    raw.Exec("BEGIN IMMEDIATE");
    locked.set_value();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    raw.Exec("COMMIT");
  });
  locked.get_future().wait();
  auto id = store->InsertRealm(RealmNamed("a"));
  other.join();
  EXPECT_TRUE(id.has_value()) << id.error();
}

TEST_F(SqliteStoreTest, CheckpointEmptiesTheWal) {
  auto store = MustOpen(dir_.path());
  ASSERT_NE(store, nullptr);
  Populate(store.get());
  EXPECT_GT(std::filesystem::file_size(DbPath() + "-wal"), 0u);
  auto checkpoint = store->Checkpoint();
  ASSERT_TRUE(checkpoint) << checkpoint.error();
  EXPECT_EQ(std::filesystem::file_size(DbPath() + "-wal"), 0u);
  auto snap = store->Load();
  ASSERT_TRUE(snap.has_value());
  EXPECT_EQ(snap->users.size(), 2u);
}

// /metrics reports SQLite's memory so that a soak can tell its page cache
// from the rest of the heap (issue #6).
TEST_F(SqliteStoreTest, Issue6_ReportsItsMemoryAndPageCacheBound) {
  auto store = MustOpen(dir_.path());
  ASSERT_NE(store, nullptr);
  Populate(store.get());
  const SqliteStore::MemoryStats m = store->Memory();
  EXPECT_GT(m.memory_used_bytes, 0);
  EXPECT_GE(m.memory_highwater_bytes, m.memory_used_bytes);
  // The pages just written are cached, and the cache is SQLite's memory.
  EXPECT_GT(m.page_cache_bytes, 0);
  EXPECT_LE(m.page_cache_bytes, m.memory_used_bytes);
  // The store sets no cache_size: the bound is SQLite's default, which a
  // fresh connection reports (pages if positive, KiB if negative).
  RawDb raw(DbPath());
  const std::int64_t cache_size = std::stoll(raw.Query("PRAGMA cache_size"));
  const std::int64_t page_size = std::stoll(raw.Query("PRAGMA page_size"));
  EXPECT_EQ(m.page_cache_limit_bytes,
            cache_size < 0 ? -cache_size * 1024 : cache_size * page_size);
}

// Users 1..n of `realm`, inserted behind the store's back (one statement),
// for tests that need many rows quickly.
void InsertUsers(const std::string& db_path, RealmId realm, int n) {
  RawDb raw(db_path);
  raw.Exec(
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
      "WHERE i < " +
      std::to_string(n) +
      ") INSERT INTO users (realm_id, email, email_lower, full_name, role, "
      "is_bot, is_active, presence_enabled, can_access_all_users, "
      "date_joined, api_key_hash) SELECT " +
      std::to_string(realm) +
      ", 'u' || i || '@x', 'u' || i || '@x', 'User ' || i, 'member', 0, 1, "
      "1, 1, 0, lower(hex(randomblob(32))) FROM n");
}

// A group commit appends its rows to the presence log, and a merge writes
// them into the tables in key order, whatever order they changed in (issue
// #17: 16,700 random rows a second over 1M users, written in place, read a
// leaf per row and spilled pages to the WAL again and again; written in
// order, they still rewrote nearly every page of both tables in every
// commit). With a cache of 16 pages, 20,000 rows (and a client row each)
// rewritten in random order: the commit writes about the pages the rows
// fill, and reads the users table's pages (the rows' foreign keys) once, in
// order; the merge reads and writes each page of the log and the tables
// about once. In random order each would be a page or more per row.
TEST_F(SqliteStoreTest, Issue17_GroupCommitAndMergeTouchEachPageOnce) {
  auto store = MustOpen(dir_.path());
  ASSERT_NE(store, nullptr);
  const RealmId realm = store->InsertRealm(RealmNamed("acme")).value();
  constexpr int kUsers = 20'000;
  InsertUsers(DbPath(), realm, kUsers);
  auto loaded = store->Load();
  ASSERT_TRUE(loaded.has_value()) << loaded.error();
  ASSERT_EQ(loaded->users.size(), static_cast<std::size_t>(kUsers));
  std::vector<PresenceRecord> rows;
  for (const UserRecord& u : loaded->users) {
    rows.push_back({.user_id = u.id,
                    .realm_id = realm,
                    .last_connected = 1'700'000'000'000'000,
                    .last_active = 1'700'000'000'000'000,
                    .last_update_id = 1});
  }
  // Every user also has one client row, as every ping of a one-client
  // user writes.
  auto clients_of = [&](const std::vector<PresenceRecord>& of) {
    std::vector<ClientPresenceRecord> clients;
    for (const PresenceRecord& r : of) {
      clients.push_back({.realm_id = realm,
                         .user_id = r.user_id,
                         .client = "website",
                         .last_connected = r.last_connected,
                         .last_active = r.last_active,
                         .last_update_id = r.last_update_id});
    }
    return clients;
  };
  std::mt19937 rng(17);
  std::shuffle(rows.begin(), rows.end(), rng);
  SequenceRecord seq{
      .realm_id = realm, .last_update_id = 1, .reserved_update_id = 100};
  ASSERT_TRUE(store->WritePresence(rows, clients_of(rows), {&seq, 1}));
  ASSERT_TRUE(store->MergeLog());

  ASSERT_TRUE(store->ExecForTesting("PRAGMA cache_size = 16"));
  std::shuffle(rows.begin(), rows.end(), rng);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    rows[i].last_active += 1'000'000;
    rows[i].last_update_id = static_cast<UpdateId>(i + 2);
  }
  seq.last_update_id = static_cast<UpdateId>(rows.size() + 1);
  const SqliteStore::MemoryStats before = store->Memory();
  ASSERT_TRUE(store->WritePresence(rows, clients_of(rows), {&seq, 1}));
  const SqliteStore::MemoryStats appended = store->Memory();
  EXPECT_EQ(store->log_rows(), 2u * kUsers);
  ASSERT_TRUE(store->MergeLog());
  EXPECT_EQ(store->log_rows(), 0u);
  const SqliteStore::MemoryStats merged = store->Memory();
  const std::int64_t append_read = appended.pages_read - before.pages_read;
  const std::int64_t append_written =
      appended.pages_written - before.pages_written;
  const std::int64_t merge_read = merged.pages_read - appended.pages_read;
  const std::int64_t merge_written =
      merged.pages_written - appended.pages_written;
  // The log's 40,000 rows fill some 450 pages; the users table takes some
  // 700 (its keys' digests in hex), presence and client_presence some 350.
  // The merge reads the log, then frees its pages, and reads and writes the
  // two tables.
  EXPECT_GT(append_written, 0);
  EXPECT_LT(append_written, kUsers / 32) << "pages written for " << kUsers;
  EXPECT_LT(append_read, kUsers / 16) << "pages read for " << kUsers;
  EXPECT_GT(merge_written, 0);
  EXPECT_LT(merge_written, kUsers / 16) << "pages merged for " << kUsers;
  EXPECT_LT(merge_read, kUsers / 8) << "pages read to merge " << kUsers;

  auto snap = store->Load();
  ASSERT_TRUE(snap.has_value());
  ASSERT_EQ(snap->presence.size(), rows.size());
  std::sort(rows.begin(), rows.end(),
            [](const PresenceRecord& a, const PresenceRecord& b) {
              return a.user_id < b.user_id;
            });
  EXPECT_EQ(snap->presence, rows);
  EXPECT_EQ(snap->client_presence, clients_of(rows));
}

// One group commit's worth: a presence row and a client row for every user,
// all stamped `t`.
struct PresenceBatch {
  std::vector<PresenceRecord> rows;
  std::vector<ClientPresenceRecord> clients;
  SequenceRecord seq;
};

PresenceBatch BatchFor(const std::vector<UserRecord>& users, RealmId realm,
                       Micros t, UpdateId id) {
  PresenceBatch b;
  for (const UserRecord& u : users) {
    b.rows.push_back({.user_id = u.id,
                      .realm_id = realm,
                      .last_connected = t,
                      .last_active = t,
                      .last_update_id = id});
    b.clients.push_back({.realm_id = realm,
                         .user_id = u.id,
                         .client = "website",
                         .last_connected = t,
                         .last_active = t,
                         .last_update_id = id});
  }
  b.seq = {.realm_id = realm, .last_update_id = id, .reserved_update_id = id};
  return b;
}

// Rows a commit left in the WAL (not yet checkpointed into the database
// file) survive a crash: the files as they are while the store is open,
// without its shared-memory index, reopen with every committed row (the
// next Open rebuilds the index from the WAL's frames). Durability rests on
// the WAL's fsync at each commit, not on the checkpoint (ckpt22).
TEST_F(SqliteStoreTest, CommitsOnlyInTheWalSurviveACrash) {
  auto store = MustOpen(dir_.path());
  ASSERT_NE(store, nullptr);
  const RealmId realm = store->InsertRealm(RealmNamed("acme")).value();
  InsertUsers(DbPath(), realm, 2'000);
  auto loaded = store->Load();
  ASSERT_TRUE(loaded.has_value()) << loaded.error();
  // Start from an empty WAL: everything before this is in the database file.
  ASSERT_TRUE(store->Checkpoint());
  constexpr int kCommits = 3;
  PresenceBatch b;
  for (int i = 1; i <= kCommits; ++i) {
    b = BatchFor(loaded->users, realm, 1'700'000'000'000'000 + i, i);
    ASSERT_TRUE(store->WritePresence(b.rows, b.clients, {&b.seq, 1}));
  }

  // "Crash": copy the database and its WAL while the store holds them.
  TempDir crashed;
  const std::filesystem::path copy =
      std::filesystem::path(crashed.path()) / SqliteStore::kFileName;
  std::filesystem::copy_file(DbPath(), copy);
  std::filesystem::copy_file(DbPath() + "-wal", copy.string() + "-wal");
  {
    // The database file alone has none of the rows: they are in the WAL.
    TempDir alone;
    const std::filesystem::path only =
        std::filesystem::path(alone.path()) / SqliteStore::kFileName;
    std::filesystem::copy_file(DbPath(), only);
    EXPECT_EQ(RawDb(only.string()).Query("SELECT count(*) FROM presence"), "0");
  }
  auto reopened = MustOpen(crashed.path());
  ASSERT_NE(reopened, nullptr);
  auto snap = reopened->Load();
  ASSERT_TRUE(snap.has_value()) << snap.error();
  EXPECT_EQ(snap->presence, b.rows);
  EXPECT_EQ(snap->client_presence, b.clients);
  ASSERT_EQ(snap->realms.size(), 1u);
  EXPECT_EQ(snap->realms[0].last_update_id, kCommits);
}

std::unique_ptr<SqliteStore> MustOpenWith(
    const std::string& dir, std::size_t log_merge_rows,
    std::size_t log_merge_batches = 1'000'000,
    std::size_t log_merge_slices = 1) {
  auto store = SqliteStore::Open(
      dir, SqliteStore::Options{.log_merge_rows = log_merge_rows,
                                .log_merge_batches = log_merge_batches,
                                .log_merge_slices = log_merge_slices});
  EXPECT_TRUE(store.has_value()) << store.error();
  return store ? std::move(*store) : nullptr;
}

// The presence log waits until it holds log_merge_rows rows; the write that
// fills it merges it after its own commit, and the tables then hold the
// rows.
TEST_F(SqliteStoreTest, Issue17_PresenceLogMergesOnceItHoldsTheThreshold) {
  auto store = MustOpenWith(dir_.path(), 10);
  ASSERT_NE(store, nullptr);
  const RealmId realm = store->InsertRealm(RealmNamed("acme")).value();
  std::vector<UserId> users;
  for (int i = 0; i < 3; ++i) {
    users.push_back(
        store->InsertUser(UserNamed(realm, "u" + std::to_string(i) + "@x"))
            .value());
  }
  RawDb raw(DbPath());
  std::vector<PresenceRecord> rows;
  for (int batch = 1; batch <= 4; ++batch) {
    rows.clear();
    for (UserId u : users) {
      rows.push_back({.user_id = u,
                      .realm_id = realm,
                      .last_connected = 1'000 * batch,
                      .last_active = 1'000 * batch,
                      .last_update_id = batch});
    }
    ASSERT_TRUE(store->WritePresence(rows, {}, {}));
    if (batch < 4) {
      EXPECT_EQ(store->log_rows(), 3u * batch);
      EXPECT_EQ(raw.Query("SELECT count(*) FROM presence_log"),
                std::to_string(3 * batch));
      EXPECT_EQ(raw.Query("SELECT count(*) FROM presence"), "0");
    }
  }
  EXPECT_EQ(store->log_rows(), 0u);
  EXPECT_EQ(raw.Query("SELECT count(*) FROM presence_log"), "0");
  EXPECT_EQ(raw.Query("SELECT count(*) FROM presence"), "3");
  EXPECT_EQ(raw.Query("SELECT max(last_active) FROM presence"), "4000");
  EXPECT_EQ(store->Load()->presence, rows);
}

// A log of many small batches is merged once it holds log_merge_batches of
// them, however few rows they carry (the merge reads a cursor per batch).
TEST_F(SqliteStoreTest, Issue17_PresenceLogMergesOnceItHoldsTheBatches) {
  auto store = MustOpenWith(dir_.path(), 1'000'000, 3);
  ASSERT_NE(store, nullptr);
  const RealmId realm = store->InsertRealm(RealmNamed("acme")).value();
  const UserId a = store->InsertUser(UserNamed(realm, "a@x")).value();
  const UserId b = store->InsertUser(UserNamed(realm, "b@x")).value();
  RawDb raw(DbPath());
  for (int batch = 1; batch <= 7; ++batch) {
    // b's row comes first in the call; the log holds it in user order.
    const PresenceRecord rows[] = {{.user_id = batch % 2 ? b : a,
                                    .realm_id = realm,
                                    .last_connected = 10 * batch,
                                    .last_active = 10 * batch,
                                    .last_update_id = batch}};
    ASSERT_TRUE(store->WritePresence(rows, {}, {}));
    EXPECT_EQ(store->log_rows(), static_cast<std::size_t>(batch % 3));
    EXPECT_EQ(raw.Query("SELECT count(*) FROM presence_log"),
              std::to_string(batch % 3));
  }
  // Merged at batches 3 and 6: b last wrote at 5, a at 6; batch 7 (b) is
  // in the log.
  EXPECT_EQ(raw.Query("SELECT group_concat(last_active) FROM (SELECT "
                      "last_active FROM presence ORDER BY user_id)"),
            "60,50");
  auto snap = store->Load();
  ASSERT_TRUE(snap.has_value());
  ASSERT_EQ(snap->presence.size(), 2u);
  EXPECT_EQ(snap->presence[0].last_active, 60);
  EXPECT_EQ(snap->presence[1].last_active, 70);  // read from the log
  EXPECT_EQ(store->log_rows(), 1u);              // and left there
}

// A merge that fails after its batch committed fails no write: the batch
// is durable and stands, the merge is rolled back (counted) and the next
// write merges the log, the failed round's rows included.
TEST_F(SqliteStoreTest, Issue17_AFailedMergeLeavesTheBatchAndIsTriedAgain) {
  auto store = MustOpenWith(dir_.path(), 2);
  ASSERT_NE(store, nullptr);
  const RealmId realm = store->InsertRealm(RealmNamed("acme")).value();
  const UserId a = store->InsertUser(UserNamed(realm, "a@x")).value();
  const UserId b = store->InsertUser(UserNamed(realm, "b@x")).value();
  // The merge writes presence; the append does not.
  ASSERT_TRUE(store->ExecForTesting(
      "CREATE TRIGGER block_merge BEFORE INSERT ON presence "
      "BEGIN SELECT RAISE(ABORT, 'merge blocked'); END"));
  RawDb raw(DbPath());
  auto row = [&](UserId u, Micros at) {
    return PresenceRecord{.user_id = u,
                          .realm_id = realm,
                          .last_connected = at,
                          .last_active = at,
                          .last_update_id = at};
  };
  const PresenceRecord first[] = {row(a, 10), row(b, 10)};
  SequenceRecord seq{
      .realm_id = realm, .last_update_id = 10, .reserved_update_id = 100};
  auto st = store->WritePresence(first, {}, {&seq, 1});
  ASSERT_TRUE(st.has_value()) << st.error();
  EXPECT_EQ(store->Memory().log_merge_failures, 1);
  EXPECT_EQ(store->Memory().log_merges, 0);
  // Committed: the rows in the log, the sequence written; nothing merged.
  EXPECT_EQ(raw.Query("SELECT count(*) FROM presence_log"), "2");
  EXPECT_EQ(raw.Query("SELECT count(*) FROM presence"), "0");
  EXPECT_EQ(raw.Query("SELECT last_update_id FROM realms"), "10");
  EXPECT_EQ(store->log_rows(), 2u);

  ASSERT_TRUE(store->ExecForTesting("DROP TRIGGER block_merge"));
  const PresenceRecord second[] = {row(b, 20)};
  ASSERT_TRUE(store->WritePresence(second, {}, {}));
  EXPECT_EQ(store->Memory().log_merge_failures, 1);
  EXPECT_EQ(store->log_rows(), 1u);  // the second batch waits for a round
  EXPECT_EQ(raw.Query("SELECT group_concat(last_active) FROM (SELECT "
                      "last_active FROM presence ORDER BY user_id)"),
            "10,10");
  auto snap = store->Load();
  ASSERT_TRUE(snap.has_value()) << snap.error();
  EXPECT_EQ(snap->presence,
            (std::vector<PresenceRecord>{row(a, 10), row(b, 20)}));
  EXPECT_EQ(snap->realms[0].last_update_id, 10);
}

// A round is merged a slice of users after each write; its rows leave the
// log with its last slice. A store that stops in the middle of a round (a
// crash: nothing merged on the way out) leaves rows already merged in the
// log, and merging them again on the next Load gives the same tables.
TEST_F(SqliteStoreTest, Issue17_PresenceLogRoundCutByACrashMergesTheSame) {
  MemoryStore model;
  auto store = MustOpenWith(dir_.path(), 40, 1'000'000, 4);
  ASSERT_NE(store, nullptr);
  const RealmId realm = store->InsertRealm(RealmNamed("acme")).value();
  ASSERT_EQ(model.InsertRealm(RealmNamed("acme")).value(), realm);
  std::vector<UserId> users;
  for (int i = 0; i < 20; ++i) {
    const UserRecord u = UserNamed(realm, "u" + std::to_string(i) + "@x");
    users.push_back(store->InsertUser(u).value());
    ASSERT_EQ(model.InsertUser(u).value(), users.back());
  }
  RawDb raw(DbPath());
  auto write = [&](int batch) {
    std::vector<PresenceRecord> rows;
    std::vector<ClientPresenceRecord> clients;
    for (UserId u : users) {
      rows.push_back({.user_id = u,
                      .realm_id = realm,
                      .last_connected = 100 * batch,
                      .last_active = 100 * batch + u,
                      .last_update_id = batch});
      clients.push_back({.realm_id = realm,
                         .user_id = u,
                         .client = batch % 2 ? "website" : "ZulipMobile",
                         .last_connected = 100 * batch,
                         .last_active = 100 * batch + u,
                         .last_update_id = batch});
    }
    ASSERT_TRUE(store->WritePresence(rows, clients, {}));
    ASSERT_TRUE(model.WritePresence(rows, clients, {}));
  };
  // Batch 1 (40 rows) starts a round and its first slice merges 10 rows,
  // 5 users; batches 2 and 3 each merge the next slice of the round.
  write(1);
  EXPECT_EQ(raw.Query("SELECT count(*) FROM presence"), "5");
  EXPECT_EQ(raw.Query("SELECT count(*) FROM presence_log"), "40");
  write(2);
  write(3);
  EXPECT_EQ(raw.Query("SELECT count(*) FROM presence"), "15");
  EXPECT_EQ(raw.Query("SELECT count(*) FROM presence_log"), "120");
  EXPECT_EQ(store->log_rows(), 120u);
  // The fourth slice ends batch 1's round and deletes its rows.
  write(4);
  EXPECT_EQ(raw.Query("SELECT count(*) FROM presence"), "20");
  EXPECT_EQ(raw.Query("SELECT max(last_update_id) FROM presence"), "1");
  EXPECT_EQ(store->log_rows(), 120u);
  EXPECT_EQ(raw.Query("SELECT count(*) FROM presence_log"), "120");
  // Batch 5 starts a round of batches 2-5 (160 rows); its first slice
  // merges the first 5 users (8 rows each), with batch 5's rows winning.
  write(5);
  EXPECT_EQ(raw.Query("SELECT group_concat(last_update_id) FROM (SELECT "
                      "last_update_id FROM presence ORDER BY user_id)"),
            "5,5,5,5,5,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1");
  EXPECT_EQ(raw.Query("SELECT count(*) FROM presence_log"), "160");
  // The crash, in the middle of that round.
  store.reset();
  store = MustOpenWith(dir_.path(), 1'000'000);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->log_rows(), 160u);
  auto got = store->Load();
  ASSERT_TRUE(got.has_value()) << got.error();
  auto want = model.Load();
  EXPECT_EQ(got->presence, want->presence);
  EXPECT_EQ(got->client_presence, want->client_presence);
  EXPECT_EQ(store->log_rows(), 160u);
  ASSERT_TRUE(store->MergeLog());
  EXPECT_EQ(store->log_rows(), 0u);
  got = store->Load();
  ASSERT_TRUE(got.has_value()) << got.error();
  EXPECT_EQ(got->presence, want->presence);
  EXPECT_EQ(got->client_presence, want->client_presence);
}

// Merging the log gives what writing each batch into the tables in place
// gave (MemoryStore does that): a user's last row wins, and a user's client
// rows are those of the last batch that named any (a client named twice in
// a batch: its later row). Also when rounds are merged in slices, when they
// start by rows or by batches, and when a log left by a store that never
// merged is merged in rounds, a later round overriding an earlier one.
// Load, which reads the tables with the log over them, gives the same
// before the log is merged and after.
TEST_F(SqliteStoreTest, Issue17_PresenceLogMergesAsWritesInPlace) {
  MemoryStore model;
  // Rounds of whole batches from 5 rows, merged in 3 slices of users.
  std::unique_ptr<SqliteStore> store =
      MustOpenWith(dir_.path(), 5, 1'000'000, 3);
  ASSERT_NE(store, nullptr);
  const RealmId realm = store->InsertRealm(RealmNamed("acme")).value();
  ASSERT_EQ(model.InsertRealm(RealmNamed("acme")).value(), realm);
  constexpr int kUsers = 12;
  std::vector<UserId> users;
  for (int i = 0; i < kUsers; ++i) {
    const UserRecord u = UserNamed(realm, "u" + std::to_string(i) + "@x");
    users.push_back(store->InsertUser(u).value());
    ASSERT_EQ(model.InsertUser(u).value(), users.back());
  }
  const std::string names[] = {"website", "ZulipMobile", "ZulipDesktop"};
  std::mt19937 rng(4);
  auto pick = [&rng](int n) {
    return std::uniform_int_distribution<int>(0, n - 1)(rng);
  };
  auto time_or_none = [&](Micros t) { return pick(5) == 0 ? kNoTime : t; };
  auto expect_same = [&](const char* when, int step) {
    auto want = model.Load();
    for (const char* log : {"with the log", "merged"}) {
      if (std::string_view(log) == "merged") {
        ASSERT_TRUE(store->MergeLog());
        EXPECT_EQ(store->log_rows(), 0u);
      }
      auto got = store->Load();
      ASSERT_TRUE(got.has_value()) << got.error();
      EXPECT_EQ(got->presence, want->presence) << when << " " << step << log;
      EXPECT_EQ(got->client_presence, want->client_presence)
          << when << " " << step << log;
      EXPECT_EQ(got->realms, want->realms) << when << " " << step << log;
    }
  };
  for (int step = 1; step <= 300; ++step) {
    std::vector<PresenceRecord> rows;
    for (int k = pick(5); k > 0; --k) {
      rows.push_back({.user_id = users[pick(kUsers)],
                      .realm_id = realm,
                      .last_connected = time_or_none(step * 10),
                      .last_active = time_or_none(step * 10 + k),
                      .last_update_id = step});
    }
    std::vector<ClientPresenceRecord> clients;
    for (int k = pick(5); k > 0; --k) {
      clients.push_back({.realm_id = realm,
                         .user_id = users[pick(kUsers)],
                         .client = names[pick(3)],
                         .last_connected = time_or_none(step * 10),
                         .last_active = time_or_none(step * 10 + k),
                         .last_update_id = step});
    }
    const SequenceRecord seq{.realm_id = realm,
                             .last_update_id = step,
                             .reserved_update_id = step + 10};
    ASSERT_TRUE(store->WritePresence(rows, clients, {&seq, 1})) << step;
    ASSERT_TRUE(model.WritePresence(rows, clients, {&seq, 1})) << step;
    if (step % 50 == 0 && step <= 150) {
      expect_same("merged while writing, step", step);
    }
    if (step == 100) {
      // A store that merges by batches: every third batch, whatever its
      // rows, in two slices.
      store.reset();
      store = MustOpenWith(dir_.path(), 1'000'000, 3, 2);
      ASSERT_NE(store, nullptr);
    }
    if (step == 150) {
      // A store that never merges (its thresholds out of reach) ...
      store.reset();
      store = MustOpenWith(dir_.path(), 1'000'000);
      ASSERT_NE(store, nullptr);
    }
    if (step == 299) {
      EXPECT_GT(store->log_rows(), 100u);
      // ... and its log read by the next one's Load, then merged in
      // rounds of at most four batches.
      store.reset();
      store = MustOpenWith(dir_.path(), 3, 4, 2);
      ASSERT_NE(store, nullptr);
      EXPECT_GT(store->log_rows(), 100u);
      expect_same("merged on load in rounds, step", step);
    }
  }
  expect_same("at the end, step", 300);
}

TEST_F(SqliteStoreTest, UndecodableRowIsCorrupt) {
  auto store = MustOpen(dir_.path());
  ASSERT_NE(store, nullptr);
  Populate(store.get());
  ASSERT_TRUE(store->ExecForTesting("UPDATE users SET role = 'emperor'"));
  auto snap = store->Load();
  ASSERT_FALSE(snap.has_value());
  EXPECT_EQ(snap.error(), Errc::kCorrupt);
  EXPECT_THAT(snap.error().message(), HasSubstr("emperor"));
}

}  // namespace
}  // namespace presence::store
