#include "core/directory.h"

#include <algorithm>
#include <mutex>

#include "util/ascii.h"
#include "util/hash_order.h"

namespace presence {

Realm* Directory::FindRealm(std::string_view subdomain) const {
  ReaderLock lock(mu_);
  auto it = realm_by_subdomain_.find(std::string(subdomain));
  return it == realm_by_subdomain_.end() ? nullptr : it->second;
}

Realm* Directory::FindRealmById(RealmId id) const {
  ReaderLock lock(mu_);
  return FindRealmByIdLocked(id);
}

Realm* Directory::FindRealmByIdLocked(RealmId id) const {
  auto it = realms_.find(id);
  return it == realms_.end() ? nullptr : it->second.get();
}

std::vector<Realm*> Directory::Realms() const {
  std::vector<Realm*> out;
  {
    ReaderLock lock(mu_);
    out.reserve(realms_.size());
    for (auto& [id, r] : realms_) out.push_back(r.get());
  }
  std::sort(out.begin(), out.end(),
            [](Realm* a, Realm* b) { return a->id() < b->id(); });
  return out;
}

std::variant<Caller, AuthFailure> Directory::Authenticate(
    const Realm& realm, std::string_view email,
    std::string_view api_key) const {
  const Digest digest = Sha256(api_key);
  Realm* owner_realm = nullptr;
  std::uint32_t owner_slot = 0;
  {
    ReaderLock lock(mu_);
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

void Directory::SetMaxClientsPerUser(std::size_t n) {
  n = std::max<std::size_t>(1, n);
  max_clients_per_user_.store(n);
  ReaderLock lock(mu_);
  for (auto& [id, realm] : realms_) realm->SetMaxClientsPerUser(n);
}

Realm* Directory::AddRealm(std::unique_ptr<Realm> realm) {
  WriterLock lock(mu_);
  return AddRealmLocked(std::move(realm));
}

Realm* Directory::AddRealmLocked(std::unique_ptr<Realm> realm) {
  Realm* raw = realm.get();
  raw->SetMaxClientsPerUser(max_clients_per_user_.load());
  ordinal_by_id_[raw->id()] =
      static_cast<std::uint32_t>(realm_by_ordinal_.size());
  realm_by_ordinal_.push_back(raw);
  realm_by_subdomain_[raw->subdomain()] = raw;
  realms_[raw->id()] = std::move(realm);
  return raw;
}

void Directory::IndexKey(RealmId realm, std::uint32_t slot, const Digest& key) {
  WriterLock lock(mu_);
  IndexKeyLocked(realm, slot, key);
}

void Directory::UnindexKey(RealmId realm, std::uint32_t slot,
                           const Digest& key) {
  WriterLock lock(mu_);
  UnindexKeyLocked(realm, slot, key);
}

void Directory::UnindexKeyLocked(RealmId realm, std::uint32_t slot,
                                 const Digest& key) {
  key_index_.Erase(key, KeyRefLocked(realm, slot));
}

void Directory::Exclusive(FunctionRef<void()> fn) {
  WriterLock lock(mu_);
  fn();
}

KeyIndex::Ref Directory::KeyRefLocked(RealmId realm, std::uint32_t slot) const {
  return KeyIndex::Ref{ordinal_by_id_.at(realm)} << 32 | slot;
}

void Directory::IndexKeyLocked(RealmId realm, std::uint32_t slot,
                               const Digest& key) {
  // Called only when the prefix is taken: is it the same key?
  auto holds = [this](KeyIndex::Ref ref, const Digest& d) {
    AssertHeld();  // KeyIndex::Insert calls it here, under mu_
    bool same = false;
    realm_by_ordinal_[ref >> 32]->WithMemberAt(
        static_cast<std::uint32_t>(ref), [&](const Member* m) {
          same = m != nullptr && ConstantTimeEqual(m->api_key_hash, d);
        });
    return same;
  };
  key_index_.Insert(key, KeyRefLocked(realm, slot), holds);
}

void Directory::IndexLoadedKeysLocked(
    RealmId realm,
    std::span<const std::pair<std::uint64_t, std::uint32_t>> keys) {
  const KeyIndex::Ref base = KeyRefLocked(realm, 0);
  Realm* holder = realm_by_ordinal_[base >> 32];
  const std::vector<std::uint32_t> order =
      OrderByHash(keys.size(), [&](std::size_t i) { return keys[i].first; });
  // keys is read at random in that order: fetched a few inserts ahead.
  constexpr std::size_t kAhead = 16;
  for (std::size_t o = 0; o < order.size(); ++o) {
    if (o + kAhead < order.size()) __builtin_prefetch(&keys[order[o + kAhead]]);
    const auto& [prefix, slot] = keys[order[o]];
    if (key_index_.TryInsertNew(prefix, base | slot)) continue;
    Digest digest{};
    holder->WithMemberAt(slot, [&](const Member* m) {
      if (m != nullptr) digest = m->api_key_hash;
    });
    IndexKeyLocked(realm, slot, digest);
  }
}

}  // namespace presence
