#include "core/presence_service.h"

#include <algorithm>
#include <charconv>

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

PresenceService::PresenceService(store::Store* store, const Clock* clock)
    : store_(store), clock_(clock) {}

Result<std::unique_ptr<PresenceService>> PresenceService::Create(
    store::Store* store, const Clock* clock, std::size_t max_clients_per_user) {
  std::unique_ptr<PresenceService> s(new PresenceService(store, clock));
  s->max_clients_per_user_.store(
      std::max<std::size_t>(1, max_clients_per_user));
  if (auto st = s->Load(); !st) return st.error();
  return s;
}

Status PresenceService::Load() {
  auto snap = store_->Load();
  if (!snap) return snap.error();
  std::unique_lock lock(dir_mu_);
  for (const auto& r : snap->realms) {
    auto realm = std::make_unique<Realm>(r, store_);
    realm->SetMaxClientsPerUser(max_clients_per_user_.load());
    AddRealmLocked(std::move(realm));
  }
  // Size every table once: at a million users, growing them row by row is
  // a large part of the start-up time.
  std::unordered_map<RealmId, std::size_t> per_realm;
  for (const auto& u : snap->users) ++per_realm[u.realm_id];
  for (auto& [id, n] : per_realm) {
    if (auto it = realms_.find(id); it != realms_.end()) it->second->Reserve(n);
  }
  key_index_.Reserve(snap->users.size());
  // Users and rows come realm by realm: each run of one realm is loaded
  // under one lock of it (a lock per user was a quarter of the start).
  auto& users = snap->users;
  for (std::size_t i = 0; i < users.size();) {
    std::size_t end = i;
    while (end < users.size() && users[end].realm_id == users[i].realm_id) {
      ++end;
    }
    auto it = realms_.find(users[i].realm_id);
    if (it == realms_.end()) return Errc::kCorrupt;
    const RealmId realm_id = users[i].realm_id;
    it->second->LoadMembers(
        std::span<store::UserRecord>(users.data() + i, end - i),
        [&](const store::UserRecord& u, std::uint32_t slot) {
          IndexKeyLocked(realm_id, slot, u.api_key_hash);
        });
    i = end;
  }
  const auto& rows = snap->presence;
  for (std::size_t i = 0; i < rows.size();) {
    std::size_t end = i;
    while (end < rows.size() && rows[end].realm_id == rows[i].realm_id) ++end;
    if (auto it = realms_.find(rows[i].realm_id); it != realms_.end()) {
      it->second->LoadPresence(
          std::span<const store::PresenceRecord>(rows.data() + i, end - i));
    }
    i = end;
  }
  for (const auto& c : snap->client_presence) {
    if (auto it = realms_.find(c.realm_id); it != realms_.end()) {
      it->second->LoadClientPresence(c);
    }
  }
  for (const auto& a : snap->access) {
    if (auto it = realms_.find(a.realm_id); it != realms_.end()) {
      it->second->LoadAccess(a);
    }
  }
  for (auto& [id, realm] : realms_) realm->FinishLoad();
  return {};
}

Realm* PresenceService::FindRealm(std::string_view subdomain) const {
  {
    std::shared_lock lock(dir_mu_);
    auto it = realm_by_subdomain_.find(std::string(subdomain));
    if (it != realm_by_subdomain_.end()) return it->second;
  }
  if (shared_ == nullptr) return nullptr;
  return const_cast<PresenceService*>(this)->FindOrLoadRealm(subdomain);
}

Realm* PresenceService::FindRealmById(RealmId id) const {
  std::shared_lock lock(dir_mu_);
  auto it = realms_.find(id);
  return it == realms_.end() ? nullptr : it->second.get();
}

std::vector<Realm*> PresenceService::Realms() const {
  std::vector<Realm*> out;
  {
    std::shared_lock lock(dir_mu_);
    for (auto& [id, r] : realms_) out.push_back(r.get());
  }
  std::sort(out.begin(), out.end(),
            [](Realm* a, Realm* b) { return a->id() < b->id(); });
  return out;
}

std::variant<Caller, AuthFailure> PresenceService::Authenticate(
    const Realm& realm, std::string_view email,
    std::string_view api_key) const {
  const Digest digest = Sha256(api_key);
  Realm* owner_realm = nullptr;
  std::uint32_t owner_slot = 0;
  {
    std::shared_lock lock(dir_mu_);
    // A candidate only: the index may hold another key with the same
    // prefix, which the full comparison below rejects.
    auto ref = key_index_.Find(digest);
    if (!ref) return AuthFailure::kInvalidApiKey;
    owner_realm = realm_by_ordinal_[*ref >> 32];
    owner_slot = static_cast<std::uint32_t>(*ref);
  }
  std::optional<AuthFailure> failure;
  Caller caller;
  // Read before the member: a change after this point shows as a new value.
  caller.directory_generation = owner_realm->directory_generation();
  owner_realm->WithMemberAt(owner_slot, [&](const Member* m) {
    if (m == nullptr || !ConstantTimeEqual(m->api_key_hash, digest) ||
        !EqualsIgnoreCase(m->email(), email)) {
      failure = AuthFailure::kInvalidApiKey;
      return;
    }
    if (!m->is_active) {
      failure = AuthFailure::kUserDeactivated;
      return;
    }
    caller.user_id = m->id;
    caller.is_bot = m->is_bot;
    caller.limited = m->limited();
  });
  if (failure == AuthFailure::kInvalidApiKey) return *failure;
  // Zulip checks the realm's deactivation before the user's.
  if (owner_realm->deactivated()) return AuthFailure::kRealmDeactivated;
  if (failure) return *failure;
  if (owner_realm != &realm) return AuthFailure::kWrongRealm;
  caller.realm = owner_realm;
  return caller;
}

Status PresenceService::CheckWritable() const {
  if (failed()) return Errc::kStoreFailed;
  return {};
}

void PresenceService::MarkFailed(std::string_view what) {
  std::string reason(what);
  std::string detail = store_->LastError();
  if (!detail.empty()) reason += ": " + detail;
  {
    std::lock_guard lock(failure_mu_);
    if (failure_.empty()) failure_ = reason;
  }
  failed_.store(true, std::memory_order_release);
}

std::string PresenceService::failure() const {
  std::lock_guard lock(failure_mu_);
  return failure_;
}

Realm* PresenceService::AddRealmLocked(std::unique_ptr<Realm> realm) {
  Realm* raw = realm.get();
  ordinal_by_id_[raw->id()] =
      static_cast<std::uint32_t>(realm_by_ordinal_.size());
  realm_by_ordinal_.push_back(raw);
  realm_by_subdomain_[raw->subdomain()] = raw;
  realms_[raw->id()] = std::move(realm);
  return raw;
}

KeyIndex::Ref PresenceService::KeyRefLocked(RealmId realm,
                                            std::uint32_t slot) const {
  return KeyIndex::Ref{ordinal_by_id_.at(realm)} << 32 | slot;
}

void PresenceService::IndexKeyLocked(RealmId realm, std::uint32_t slot,
                                     const Digest& key) {
  // Called only when the prefix is taken: is it the same key?
  auto holds = [this](KeyIndex::Ref ref, const Digest& d) {
    bool same = false;
    realm_by_ordinal_[ref >> 32]->WithMemberAt(
        static_cast<std::uint32_t>(ref),
        [&](const Member* m) { same = m != nullptr && m->api_key_hash == d; });
    return same;
  };
  key_index_.Insert(key, KeyRefLocked(realm, slot), holds);
}

void PresenceService::UnindexKeyLocked(RealmId realm, std::uint32_t slot,
                                       const Digest& key) {
  key_index_.Erase(key, KeyRefLocked(realm, slot));
}

void PresenceService::Announce(const std::optional<PresenceChange>& change) {
  if (change && listener_ != nullptr) listener_->OnPresenceChange(*change);
}

void PresenceService::SetMaxClientsPerUser(std::size_t n) {
  n = std::max<std::size_t>(1, n);
  max_clients_per_user_.store(n);
  std::shared_lock lock(dir_mu_);
  for (auto& [id, realm] : realms_) realm->SetMaxClientsPerUser(n);
}

Status PresenceService::Report(const Caller& caller, ReportStatus status,
                               Micros now, std::string_view client) {
  if (auto st = CheckWritable(); !st) return st;
  if (shared_ != nullptr) return SharedReport(caller, status, now);
  auto change = caller.realm->RecordReport(caller.user_id, now, status, client);
  if (!change) {
    MarkFailed("reserving update ids failed");
    return change.error();
  }
  Announce(*change);
  return {};
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

Result<RealmId> PresenceService::CreateRealm(std::string_view subdomain,
                                             std::string_view name) {
  if (!ValidSubdomain(subdomain) || !ValidName(name, 200)) {
    return Errc::kInvalidArgument;
  }
  std::lock_guard admin(admin_mu_);
  if (auto st = CheckWritable(); !st) return st.error();
  if (FindRealm(subdomain) != nullptr) return Errc::kAlreadyExists;
  store::RealmRecord rec;
  rec.subdomain = std::string(subdomain);
  rec.name = std::string(name);
  rec.date_created = Now();
  rec.reserved_update_id = Realm::kReserveAhead;
  if (shared_ != nullptr) {
    rec.reserved_update_id = 0;
    return SharedCreateRealm(rec);
  }
  auto id = store_->InsertRealm(rec);
  if (!id) {
    if (id.error() == Errc::kAlreadyExists) return id.error();
    MarkFailed("creating a realm failed");
    return id.error();
  }
  rec.id = *id;
  auto realm = std::make_unique<Realm>(rec, store_, /*fresh=*/true);
  realm->SetMaxClientsPerUser(max_clients_per_user_.load());
  realm->FinishLoad();
  std::unique_lock lock(dir_mu_);
  AddRealmLocked(std::move(realm));
  return rec.id;
}

Status PresenceService::SetRealmPresenceDisabled(RealmId realm_id,
                                                 bool disabled) {
  std::lock_guard admin(admin_mu_);
  if (auto st = CheckWritable(); !st) return st;
  Realm* realm = FindRealmById(realm_id);
  if (realm == nullptr) return Errc::kNotFound;
  store::RealmRecord rec;
  rec.id = realm_id;
  rec.subdomain = realm->subdomain();
  rec.name = realm->name();
  rec.presence_disabled = disabled;
  rec.deactivated = realm->deactivated();
  if (shared_ != nullptr) {
    return SharedDirectoryWrite(*realm, shared_->UpdateRealm(rec));
  }
  if (auto st = store_->UpdateRealm(rec); !st) {
    MarkFailed("updating a realm failed");
    return st;
  }
  realm->SetPresenceDisabled(disabled);
  return {};
}

Result<CreatedUser> PresenceService::CreateUser(RealmId realm_id,
                                                const NewUser& user) {
  if (!ValidEmail(user.email) || !ValidName(user.full_name, 100)) {
    return Errc::kInvalidArgument;
  }
  std::lock_guard admin(admin_mu_);
  if (auto st = CheckWritable(); !st) return st.error();
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
  if (shared_ != nullptr) {
    auto id = shared_->InsertUser(rec);
    if (!id) {
      if (auto st = SharedDirectoryWrite(*realm, id.error()); !st) {
        return st.error();
      }
    }
    if (auto st = Sync(*realm); !st) return st.error();
    created.user_id = *id;
    return created;
  }
  auto id = store_->InsertUser(rec);
  if (!id) {
    if (id.error() == Errc::kAlreadyExists) return id.error();
    MarkFailed("creating a user failed");
    return id.error();
  }
  rec.id = *id;
  created.user_id = *id;
  const std::uint32_t slot = realm->AddMember(rec);
  std::unique_lock lock(dir_mu_);
  IndexKeyLocked(realm_id, slot, rec.api_key_hash);
  return created;
}

Status PresenceService::UpdateUser(RealmId realm_id, UserId user,
                                   const UserPatch& patch) {
  std::lock_guard admin(admin_mu_);
  if (auto st = CheckWritable(); !st) return st;
  Realm* realm = FindRealmById(realm_id);
  if (realm == nullptr) return Errc::kNotFound;
  if (shared_ != nullptr) return SharedUpdateUser(*realm, user, patch);
  auto rec = realm->UserRecordOf(user);
  if (!rec) return Errc::kNotFound;
  if (patch.is_active) rec->is_active = *patch.is_active;
  if (patch.role) rec->role = *patch.role;
  const bool toggles = patch.presence_enabled &&
                       *patch.presence_enabled != rec->presence_enabled;
  if (patch.presence_enabled) rec->presence_enabled = *patch.presence_enabled;
  if (auto st = store_->UpdateUser(*rec); !st) {
    MarkFailed("updating a user failed");
    return st;
  }
  const bool deactivated = patch.is_active && !*patch.is_active;
  realm->UpdateMember(*rec);
  if (deactivated && listener_ != nullptr) {
    listener_->OnUserDeactivated(realm_id, user);
  }
  if (toggles) {
    auto change =
        realm->SetPresenceEnabled(user, *patch.presence_enabled, Now());
    if (!change) {
      MarkFailed("reserving update ids failed");
      return change.error();
    }
    if (listener_ != nullptr) {
      listener_->OnPresenceEnabledChange(realm_id, user,
                                         *patch.presence_enabled);
    }
    Announce(*change);
  }
  return {};
}

Status PresenceService::SetAccess(RealmId realm_id, UserId viewer,
                                  std::vector<UserId> visible) {
  std::lock_guard admin(admin_mu_);
  if (auto st = CheckWritable(); !st) return st;
  Realm* realm = FindRealmById(realm_id);
  if (realm == nullptr || !realm->UserRecordOf(viewer)) return Errc::kNotFound;
  for (UserId u : visible) {
    if (!realm->UserRecordOf(u)) return Errc::kInvalidArgument;
  }
  store::AccessRecord rec{realm_id, viewer, visible};
  if (shared_ != nullptr) {
    return SharedDirectoryWrite(*realm, shared_->SetAccess(rec));
  }
  if (auto st = store_->SetAccess(rec); !st) {
    MarkFailed("setting an access list failed");
    return st;
  }
  realm->SetAccess(viewer, std::move(visible));
  return {};
}

Result<FlushStats> PresenceService::Flush() {
  std::lock_guard flush(flush_mu_);
  if (auto st = CheckWritable(); !st) return st.error();
  std::vector<Realm*> realms;
  {
    std::shared_lock lock(dir_mu_);
    realms.reserve(realms_.size());
    for (auto& [id, r] : realms_) realms.push_back(r.get());
  }
  std::vector<store::PresenceRecord> rows;
  std::vector<store::ClientPresenceRecord> clients;
  std::vector<store::SequenceRecord> sequences;
  std::vector<Realm*> touched;
  for (Realm* r : realms) {
    store::SequenceRecord seq;
    if (r->CollectDirty(rows, clients, seq)) {
      sequences.push_back(seq);
      touched.push_back(r);
    }
  }
  FlushStats stats{rows.size(), clients.size(), touched.size()};
  if (touched.empty()) return stats;
  if (auto st = store_->WritePresence(rows, clients, sequences); !st) {
    MarkFailed("writing presence failed");
    for (Realm* r : touched) r->OnFlushFailed(rows, clients);
    return st.error();
  }
  for (std::size_t i = 0; i < touched.size(); ++i) {
    touched[i]->OnFlushed(sequences[i]);
  }
  return stats;
}

}  // namespace presence
