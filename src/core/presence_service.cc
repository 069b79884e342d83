#include "core/presence_service.h"

#include <algorithm>
#include <charconv>
#include <unordered_map>

#include "core/local_writer.h"
#include "core/replica_writer.h"
#include "util/ascii.h"

namespace presence {
namespace {

bool ValidEmail(std::string_view e) {
  if (e.empty() || e.size() > 254) return false;
  auto at = e.find('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == e.size())
    return false;
  if (e.find('@', at + 1) != std::string_view::npos) return false;
  for (unsigned char c : e) {
    // ':' too: HTTP Basic splits "email:key" at it, so such a user could
    // never log in (found by fuzz/admin_fuzz).
    if (c <= ' ' || c == 0x7f || c == '"' || c == '\\' || c == ',' ||
        c == '<' || c == '>' || c == ':') {
      return false;
    }
  }
  return true;
}

bool ValidName(std::string_view n, std::size_t max) {
  if (n.empty() || n.size() > max) return false;
  for (unsigned char c : n) {
    if (c < ' ' || c == 0x7f) return false;
  }
  return true;
}

}  // namespace

bool ValidSubdomain(std::string_view s) {
  if (s.empty()) return true;
  if (s.size() > 63 || s.front() == '-' || s.back() == '-') return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
      return false;
    }
  }
  return true;
}

PresenceService::PresenceService(std::unique_ptr<PresenceWriter> writer,
                                 const Clock* clock)
    : clock_(clock), writer_(std::move(writer)) {}

StoreResult<std::unique_ptr<PresenceService>> PresenceService::Create(
    std::unique_ptr<PresenceWriter> writer, const Clock* clock,
    std::size_t max_clients_per_user,
    std::function<void(std::string_view phase)> load_progress) {
  std::unique_ptr<PresenceService> s(
      new PresenceService(std::move(writer), clock));
  s->directory_.SetMaxClientsPerUser(max_clients_per_user);
  WriterContext context{&s->directory_, &s->relay_, clock,
                        std::move(load_progress)};
  if (auto st = s->writer_->Start(context); !st) return st.error();
  return s;
}

StoreResult<std::unique_ptr<PresenceService>> PresenceService::Create(
    store::Store* store, const Clock* clock, std::size_t max_clients_per_user) {
  return Create(std::make_unique<LocalWriter>(store), clock,
                max_clients_per_user);
}

StoreResult<std::unique_ptr<PresenceService>> PresenceService::CreateShared(
    store::SharedStore* store, const Clock* clock, SharedOptions options) {
  return Create(std::make_unique<ReplicaWriter>(store, options), clock);
}

Realm* PresenceService::FindRealm(std::string_view subdomain) const {
  if (Realm* known = directory_.FindRealm(subdomain)) return known;
  return writer_->LoadRealm(subdomain);
}

Realm* PresenceService::FindLoadedRealm(std::string_view subdomain) const {
  return directory_.FindRealm(subdomain);
}

Realm* PresenceService::FindRealmById(RealmId id) const {
  return directory_.FindRealmById(id);
}

Realm* PresenceService::LookupRealm(RealmId id) {
  if (Realm* known = directory_.FindRealmById(id)) return known;
  return writer_->LoadRealm(id);
}

std::vector<Realm*> PresenceService::Realms() const {
  return directory_.Realms();
}

std::variant<Caller, AuthFailure> PresenceService::Authenticate(
    const Realm& realm, std::string_view email,
    std::string_view api_key) const {
  return directory_.Authenticate(realm, email, api_key);
}

void PresenceService::SetMaxClientsPerUser(std::size_t n) {
  directory_.SetMaxClientsPerUser(n);
}

Status PresenceService::Report(const Caller& caller, ReportStatus status,
                               Micros now, std::string_view client) {
  return writer_->Report(caller, status, now, client);
}

UpdateId PresenceService::Fetch(const Caller& caller, const FetchQuery& query,
                                Micros now,
                                FunctionRef<void(const Member&)> visit) const {
  return caller.realm->Fetch(caller.user_id, query, now, visit);
}

UpdateId PresenceService::FetchWithClients(
    const Caller& caller, const FetchQuery& query, Micros now,
    FunctionRef<void(const Member&, const ClientRowList*)> visit) const {
  return caller.realm->FetchWithClients(caller.user_id, query, now, visit);
}

std::variant<UserPresence, LookupFailure> PresenceService::LookupUser(
    const Caller& caller, std::string_view id_or_email,
    bool with_clients) const {
  const Realm& realm = *caller.realm;
  std::optional<UserId> target;
  std::int64_t id = 0;
  auto [end, ec] = std::from_chars(id_or_email.data(),
                                   id_or_email.data() + id_or_email.size(), id);
  if (!id_or_email.empty() && ec == std::errc() &&
      end == id_or_email.data() + id_or_email.size()) {
    target = id;
  } else {
    target = realm.FindIdByEmail(id_or_email);
  }
  if (!target) return LookupFailure::kNoSuchUser;
  std::variant<UserPresence, LookupFailure> out = LookupFailure::kNoSuchUser;
  bool visible = realm.CanSee(caller.user_id, *target);
  realm.WithMember(*target, [&](const Member* m) {
    if (m == nullptr || !m->is_active) return;
    if (m->is_bot) {
      out = LookupFailure::kBot;
    } else if (!visible) {
      out = LookupFailure::kInsufficientPermission;
    } else if (!m->has_row) {
      out = LookupFailure::kNoPresenceData;
    } else {
      out = UserPresence{m->times, m->date_joined, {}};
    }
  });
  if (with_clients) {
    if (auto* p = std::get_if<UserPresence>(&out)) {
      p->clients = realm.ClientsOf(*target);
    }
  }
  return out;
}

Status PresenceService::SetPresenceEnabled(RealmId realm_id, UserId user,
                                           bool enabled) {
  UserPatch patch;
  patch.presence_enabled = enabled;
  return UpdateUser(realm_id, user, patch);
}

namespace {

// How often a status write re-reads the user after a compare and set found
// the record changed (another node wrote it meanwhile): each retry follows
// a read barrier, so only a write landing in that very window needs one.
constexpr int kStatusWriteAttempts = 5;

// `update` applied to `status` (see UpdateUserStatus).
store::UserStatus ApplyStatusUpdate(store::UserStatus status,
                                    const StatusUpdate& update) {
  const store::UserStatus before = status;
  status.passed = 0;
  if (update.status_text) {
    status.status_text = *update.status_text;
    status.passed |= store::UserStatus::kStatusText;
  }
  if (update.emoji_name) {
    status.emoji_name = *update.emoji_name;
    status.emoji_code = update.emoji_code.value_or(std::string());
    status.reaction_type =
        update.reaction_type.value_or(std::string("unicode_emoji"));
    status.passed |= store::UserStatus::kEmoji;
  }
  if (update.away) {
    status.passed |= store::UserStatus::kAway;
    if (*update.away) status.passed |= store::UserStatus::kAwayValue;
  }
  if (update.scheduled_end_time) {
    status.scheduled_end_time = *update.scheduled_end_time;
  } else if (update.status_text || update.emoji_name) {
    // The end belonged to the status it was set with.
    status.scheduled_end_time = 0;
  }
  if (update.scheduled_end_time ||
      status.scheduled_end_time != before.scheduled_end_time) {
    status.passed |= store::UserStatus::kScheduledEnd;
  }
  if (update.dnd) {
    status.dnd = *update.dnd;
    status.dnd_end_time = *update.dnd ? update.dnd_end_time.value_or(0) : 0;
  } else if (update.dnd_end_time) {
    status.dnd_end_time = status.dnd ? *update.dnd_end_time : 0;
  }
  if (update.dnd || update.dnd_end_time || status.dnd != before.dnd ||
      status.dnd_end_time != before.dnd_end_time) {
    status.passed |= store::UserStatus::kDnd;
  }
  return status;
}

}  // namespace

Status PresenceService::UpdateUserStatus(RealmId realm_id, UserId user,
                                         const StatusUpdate& update) {
  MutexLock admin(admin_mu_);
  if (auto st = writer_->Writable(); !st) return st;
  Realm* realm = FindRealmById(realm_id);
  if (realm == nullptr) return Errc::kNotFound;
  if (auto st = writer_->Sync(*realm); !st) return st;
  auto now = realm->UserRecordOf(user);
  if (!now) return Errc::kNotFound;
  // Zulip changes the setting first (its user_settings events go out
  // before the user_status event), and only when it differs.
  if (update.away && *update.away == now->presence_enabled) {
    UserPatch enabled;
    enabled.presence_enabled = !*update.away;
    if (auto st = writer_->UpdateUser(*realm, user, enabled); !st) return st;
  }
  for (int attempt = 0;; ++attempt) {
    auto rec = realm->UserRecordOf(user);
    if (!rec) return Errc::kNotFound;
    store::UserStatus status =
        ApplyStatusUpdate(rec->status.value_or(store::UserStatus{}), update);
    // Strictly increasing per user, so that every write is a change a
    // replica notices (two updates within one microsecond included).
    status.timestamp = std::max(Now(), status.timestamp + 1);
    // Compare and set: a status expiry (or another request) written by
    // another node since this replica was read is never overwritten.
    auto wrote = writer_->UpdateStatusIf(*realm, *rec, status);
    if (!wrote) return wrote.error();
    if (*wrote == WriteIf::kWritten) return {};
    if (attempt + 1 >= kStatusWriteAttempts) return Errc::kUnavailable;
    if (auto st = writer_->Sync(*realm); !st) return st;
  }
}

Result<WriteIf> PresenceService::ExpireUserStatus(RealmId realm_id, UserId user,
                                                  StatusEndKind kind,
                                                  std::int64_t end) {
  MutexLock admin(admin_mu_);
  if (auto st = writer_->Writable(); !st) return st.error();
  Realm* realm = FindRealmById(realm_id);
  if (realm == nullptr) return WriteIf::kStale;
  if (auto st = writer_->Sync(*realm); !st) return st.error();
  for (int attempt = 0;; ++attempt) {
    auto rec = realm->UserRecordOf(user);
    if (!rec || !rec->status) return WriteIf::kStale;
    store::UserStatus status = *rec->status;
    if (kind == StatusEndKind::kStatus) {
      // Changed meanwhile (a new status, a new end): not this end's to clear.
      if (end == 0 || status.scheduled_end_time != end) return WriteIf::kStale;
      status.status_text.clear();
      status.emoji_name.clear();
      status.emoji_code.clear();
      status.reaction_type = "unicode_emoji";
      status.scheduled_end_time = 0;
      // Shaped as Zulip's clear: the text and the emoji (not away).
      status.passed = store::UserStatus::kStatusText |
                      store::UserStatus::kEmoji |
                      store::UserStatus::kScheduledEnd;
    } else {
      if (end == 0 || !status.dnd || status.dnd_end_time != end)
        return WriteIf::kStale;
      status.dnd = false;
      status.dnd_end_time = 0;
      status.passed = store::UserStatus::kDnd;
    }
    status.timestamp = std::max(Now(), status.timestamp + 1);
    auto wrote = writer_->UpdateStatusIf(*realm, *rec, status);
    if (!wrote) return wrote.error();
    if (*wrote == WriteIf::kWritten) return WriteIf::kWritten;
    if (attempt + 1 >= kStatusWriteAttempts) return Errc::kUnavailable;
    if (auto st = writer_->Sync(*realm); !st) return st.error();
  }
}

Result<RealmId> PresenceService::CreateRealm(std::string_view subdomain,
                                             std::string_view name) {
  if (!ValidSubdomain(subdomain) || !ValidName(name, 200)) {
    return Errc::kInvalidArgument;
  }
  MutexLock admin(admin_mu_);
  if (auto st = writer_->Writable(); !st) return st.error();
  if (FindRealm(subdomain) != nullptr) return Errc::kAlreadyExists;
  store::RealmRecord rec;
  rec.subdomain = std::string(subdomain);
  rec.name = std::string(name);
  rec.date_created = Now();
  return writer_->CreateRealm(std::move(rec));
}

Status PresenceService::SetRealmPresenceDisabled(RealmId realm_id,
                                                 bool disabled) {
  MutexLock admin(admin_mu_);
  if (auto st = writer_->Writable(); !st) return st;
  Realm* realm = FindRealmById(realm_id);
  if (realm == nullptr) return Errc::kNotFound;
  store::RealmRecord rec;
  rec.id = realm_id;
  rec.subdomain = realm->subdomain();
  rec.name = realm->name();
  rec.presence_disabled = disabled;
  rec.deactivated = realm->deactivated();
  return writer_->UpdateRealm(*realm, rec);
}

Result<CreatedUser> PresenceService::CreateUser(RealmId realm_id,
                                                const NewUser& user) {
  if (!ValidEmail(user.email) || !ValidName(user.full_name, 100)) {
    return Errc::kInvalidArgument;
  }
  MutexLock admin(admin_mu_);
  if (auto st = writer_->Writable(); !st) return st.error();
  Realm* realm = FindRealmById(realm_id);
  if (realm == nullptr) return Errc::kNotFound;
  if (realm->EmailTaken(user.email)) return Errc::kAlreadyExists;
  CreatedUser created;
  created.api_key = RandomAlnum(32);
  store::UserRecord rec;
  rec.realm_id = realm_id;
  rec.email = user.email;
  rec.full_name = user.full_name;
  rec.role = user.role;
  rec.is_bot = user.is_bot;
  rec.can_access_all_users = user.can_access_all_users;
  rec.date_joined = Now();
  rec.api_key_hash = Sha256(created.api_key);
  auto id = writer_->CreateUser(*realm, rec);
  if (!id) return id.error();
  created.user_id = *id;
  return created;
}

Result<ImportResult> PresenceService::ImportUsers(
    RealmId realm_id, const std::vector<NewUser>& rows, bool dry_run) {
  ImportResult out;
  // Checks that need no lock first.
  std::unordered_map<std::string, std::size_t> seen;
  seen.reserve(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const NewUser& u = rows[i];
    if (!ValidEmail(u.email)) {
      out.rejected.push_back(
          {i, "email",
           "must look like name@domain (no spaces, quotes, "
           "commas, colons or angle brackets; at most 254 bytes)"});
      continue;
    }
    if (!ValidName(u.full_name, 100)) {
      out.rejected.push_back(
          {i, "full_name", "must be 1-100 bytes without control characters"});
    }
    auto [it, fresh] = seen.emplace(AsciiLower(u.email), i);
    if (!fresh) {
      out.rejected.push_back({i, "email",
                              "same email as row " +
                                  std::to_string(it->second) +
                                  " (emails are case-insensitive)"});
    }
  }
  if (!out.rejected.empty()) return out;

  MutexLock admin(admin_mu_);
  if (!dry_run) {
    if (auto st = writer_->Writable(); !st) return st.error();
  }
  Realm* realm = FindRealmById(realm_id);
  if (realm == nullptr) return Errc::kNotFound;
  UserBatch batch;
  out.users.resize(rows.size());
  // Where each created user's row is, to hand back its id.
  std::vector<std::size_t> created_rows;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const NewUser& u = rows[i];
    ImportedUser& result = out.users[i];
    auto id = realm->FindIdByEmail(u.email);
    if (!id) {
      result.outcome = ImportOutcome::kCreated;
      if (dry_run) continue;
      result.api_key = RandomAlnum(32);
      store::UserRecord rec;
      rec.realm_id = realm_id;
      rec.email = u.email;
      rec.full_name = u.full_name;
      rec.role = u.role;
      rec.is_bot = u.is_bot;
      rec.can_access_all_users = u.can_access_all_users;
      rec.date_joined = Now();
      rec.api_key_hash = Sha256(result.api_key);
      batch.create.push_back(std::move(rec));
      created_rows.push_back(i);
      continue;
    }
    auto rec = realm->UserRecordOf(*id);
    if (!rec) return Errc::kNotFound;  // cannot happen: users stay
    result.user_id = *id;
    if (rec->full_name == u.full_name && rec->role == u.role &&
        rec->is_bot == u.is_bot &&
        rec->can_access_all_users == u.can_access_all_users) {
      result.outcome = ImportOutcome::kUnchanged;
      continue;
    }
    result.outcome = ImportOutcome::kUpdated;
    rec->full_name = u.full_name;
    rec->role = u.role;
    rec->is_bot = u.is_bot;
    rec->can_access_all_users = u.can_access_all_users;
    batch.update.push_back(std::move(*rec));
  }
  if (dry_run || (batch.create.empty() && batch.update.empty())) return out;
  if (auto st = writer_->WriteUsers(*realm, batch); !st) return st.error();
  for (std::size_t k = 0; k < created_rows.size(); ++k) {
    out.users[created_rows[k]].user_id = batch.create[k].id;
  }
  return out;
}

Status PresenceService::UpdateUser(RealmId realm_id, UserId user,
                                   const UserPatch& patch) {
  MutexLock admin(admin_mu_);
  if (auto st = writer_->Writable(); !st) return st;
  Realm* realm = FindRealmById(realm_id);
  if (realm == nullptr) return Errc::kNotFound;
  // A no-op costs no write (in the embedded store a full-sync transaction)
  // and empties no auth cache of the realm. Judged once the realm has
  // everything the store had (free in the embedded store; in scale-out a
  // read barrier, so that the call still returns with the replica at the
  // store's position, as a write would).
  if (auto st = writer_->Sync(*realm); !st) return st;
  auto now = realm->UserRecordOf(user);
  if (!now) return Errc::kNotFound;
  if ((!patch.is_active || *patch.is_active == now->is_active) &&
      (!patch.role || *patch.role == now->role) &&
      (!patch.presence_enabled ||
       *patch.presence_enabled == now->presence_enabled)) {
    return {};
  }
  return writer_->UpdateUser(*realm, user, patch);
}

Status PresenceService::SetAccess(RealmId realm_id, UserId viewer,
                                  std::vector<UserId> visible) {
  MutexLock admin(admin_mu_);
  if (auto st = writer_->Writable(); !st) return st;
  Realm* realm = FindRealmById(realm_id);
  if (realm == nullptr || !realm->UserRecordOf(viewer)) return Errc::kNotFound;
  for (UserId u : visible) {
    if (!realm->UserRecordOf(u)) return Errc::kInvalidArgument;
  }
  return writer_->SetAccess(*realm,
                            store::AccessRecord{realm_id, viewer, visible});
}

}  // namespace presence
