// RedisStore's steps for the plain Store methods: the directory (realms,
// users, access lists), the write-behind steps single-node mode uses
// (ReserveUpdateIds, WritePresence) and reading realms back (ReadRealm,
// Load). The presence steps of SharedStore are in redis_store.cc.
#include <algorithm>
#include <map>
#include <set>
#include <span>
#include <tuple>
#include <utility>

#include "store/redis_codec.h"
#include "store/redis_keys.h"
#include "store/redis_scripts.h"
#include "store/redis_store.h"
#include "util/ascii.h"

namespace presence::store {

using namespace redis_codec;  // NOLINT(build/namespaces): this file's codec
using redis_keys::RealmKeys;

namespace {

using redis_keys::kNextRealm;
using redis_keys::kNextUser;
using redis_keys::kRealms;
using redis_keys::kSubdomains;
using redis_keys::kUserRealm;

// What put_user (lua/put_user.lua) answered: true written, false not the
// expected record (its compare and set, -3); -1 (no such realm, or no such
// user where one must exist) and -2 (the email is another user's) are
// errors.
StoreResult<bool> PutUserReply(const StoreResult<RedisReply>& put) {
  if (!put) return put.error();
  auto r = IntOf(*put);
  if (!r) return Error(Errc::kCorrupt, "put_user: bad reply");
  if (*r == -1) return Errc::kNotFound;
  if (*r == -2) return Errc::kAlreadyExists;
  return *r != -3;
}

}  // namespace

StoreResult<RealmId> RedisStore::InsertRealm(const RealmRecord& realm) {
  const std::string lower = AsciiLower(realm.subdomain);
  const std::string gkeys[] = {kSubdomains, kRealms, kNextRealm};
  const std::string gargs[] = {lower};
  auto id = Eval(scripts_[kIndexInsertRealm], gkeys, gargs);
  if (!id) return id.error();
  auto id_v = IntOf(*id);
  if (!id_v) return Error(Errc::kCorrupt, "index_insert_realm: bad reply");
  if (*id_v < 0) return Errc::kAlreadyExists;
  const RealmId rid = *id_v;
  const std::string args[] = {std::to_string(rid),
                              realm.subdomain,
                              realm.name,
                              Flag(realm.presence_disabled),
                              Flag(realm.deactivated),
                              std::to_string(realm.date_created),
                              std::to_string(realm.last_update_id),
                              std::to_string(realm.reserved_update_id)};
  auto created = Eval(scripts_[kCreateRealm], RealmKeys(rid), args);
  if (!created) {
    // Best effort: free the subdomain again (the id stays used).
    const std::string dkeys[] = {kSubdomains, kRealms};
    const std::string dargs[] = {std::to_string(rid), lower};
    (void)Eval(scripts_[kIndexDropRealm], dkeys, dargs);
    return Error(Errc::kStoreFailed, std::move(created.error().detail()));
  }
  return rid;
}

StoreStatus RedisStore::UpdateRealm(const RealmRecord& realm) {
  const std::string gkeys[] = {kSubdomains, kRealms};
  const std::string gargs[] = {std::to_string(realm.id),
                               AsciiLower(realm.subdomain)};
  auto renamed = Eval(scripts_[kIndexRenameRealm], gkeys, gargs);
  if (!renamed) return renamed.error();
  auto r = IntOf(*renamed);
  if (!r) return Error(Errc::kCorrupt, "index_rename_realm: bad reply");
  if (*r == -1) return Errc::kNotFound;
  if (*r == -2) return Errc::kAlreadyExists;
  const std::string args[] = {std::to_string(realm.id), realm.subdomain,
                              realm.name, Flag(realm.presence_disabled),
                              Flag(realm.deactivated)};
  auto updated = Eval(scripts_[kUpdateRealm], RealmKeys(realm.id), args);
  if (!updated) return updated.error();
  if (IntOf(*updated).value_or(-1) < 0) return Errc::kNotFound;
  return {};
}

StoreStatus RedisStore::PutUser(const UserRecord& user, bool must_exist) {
  const std::string args[] = {std::to_string(user.realm_id),
                              std::to_string(user.id), AsciiLower(user.email),
                              EncodeUser(user), must_exist ? "1" : "0"};
  auto put =
      PutUserReply(Eval(scripts_[kPutUser], RealmKeys(user.realm_id), args));
  if (!put) return put.error();
  return {};
}

StoreResult<bool> RedisStore::UpdateUserIf(const UserRecord& expected,
                                           const UserRecord& user) {
  if (expected.id != user.id || expected.realm_id != user.realm_id) {
    return Errc::kInvalidArgument;
  }
  const std::string args[] = {std::to_string(user.realm_id),
                              std::to_string(user.id),
                              AsciiLower(user.email),
                              EncodeUser(user),
                              "1",
                              EncodeUser(expected)};
  return PutUserReply(Eval(scripts_[kPutUser], RealmKeys(user.realm_id), args));
}

StoreResult<UserId> RedisStore::InsertUser(const UserRecord& user) {
  // Check first, then take an id (the counter is on another slot), then
  // insert re-checking: a failed insert takes no id unless it lost a race.
  const std::string cargs[] = {AsciiLower(user.email)};
  auto check = Eval(scripts_[kCheckUser], RealmKeys(user.realm_id), cargs);
  if (!check) return check.error();
  auto c = IntOf(*check);
  if (!c) return Error(Errc::kCorrupt, "check_user: bad reply");
  if (*c == -1) return Errc::kNotFound;
  if (*c == -2) return Errc::kAlreadyExists;

  const std::string akeys[] = {kNextUser, kUserRealm};
  const std::string aargs[] = {std::to_string(user.realm_id)};
  auto id = Eval(scripts_[kAllocUser], akeys, aargs);
  if (!id) return id.error();
  auto id_v = IntOf(*id);
  if (!id_v) return Error(Errc::kCorrupt, "alloc_user: bad reply");

  UserRecord row = user;
  row.id = *id_v;
  if (StoreStatus st = PutUser(row, /*must_exist=*/false); !st) {
    const std::string hdel[] = {"HDEL", kUserRealm, std::to_string(row.id)};
    (void)client().Run(hdel, kUserRealm);
    return st.error();
  }
  return row.id;
}

StoreStatus RedisStore::UpdateUser(const UserRecord& user) {
  const std::string hget[] = {"HGET", kUserRealm, std::to_string(user.id)};
  auto where = Call(hget, kUserRealm);
  if (!where) return where.error();
  if (where->is_nil()) return Errc::kNotFound;
  auto old_realm = ParseInt(where->str);
  if (!old_realm) return Error(Errc::kCorrupt, "user_realm: bad realm id");
  if (*old_realm == user.realm_id) return PutUser(user, /*must_exist=*/true);

  // Moved to another realm: add it there, then remove it from the old one
  // (two slots, so two steps), then repoint the index.
  if (StoreStatus st = PutUser(user, /*must_exist=*/false); !st) return st;
  const std::string dargs[] = {std::to_string(*old_realm),
                               std::to_string(user.id), EncodeUser(user)};
  auto dropped = Eval(scripts_[kDropUser], RealmKeys(*old_realm), dargs);
  if (!dropped) return dropped.error();
  const std::string hset[] = {"HSET", kUserRealm, std::to_string(user.id),
                              std::to_string(user.realm_id)};
  auto set = Call(hset, kUserRealm);
  if (!set) return set.error();
  return {};
}

StoreStatus RedisStore::SetAccess(const AccessRecord& access) {
  const std::set<UserId> visible(access.visible.begin(), access.visible.end());
  std::vector<std::string> hmget = {"HMGET", kUserRealm,
                                    std::to_string(access.viewer)};
  for (UserId id : visible) hmget.push_back(std::to_string(id));
  auto known = Call(hmget, kUserRealm);
  if (!known) return known.error();
  for (const RedisReply& r : known->elements) {
    if (r.is_nil()) return Errc::kNotFound;
  }
  const std::string args[] = {std::to_string(access.realm_id),
                              std::to_string(access.viewer),
                              EncodeIdList(visible)};
  auto set = Eval(scripts_[kSetAccess], RealmKeys(access.realm_id), args);
  if (!set) return set.error();
  if (IntOf(*set).value_or(-1) < 0) return Errc::kNotFound;
  return {};
}

StoreStatus RedisStore::ReserveUpdateIds(RealmId realm,
                                         UpdateId reserved_update_id) {
  const std::string args[] = {std::to_string(reserved_update_id)};
  auto r = Eval(scripts_[kReserve], RealmKeys(realm), args);
  if (!r) return r.error();
  if (IntOf(*r).value_or(-1) < 0) return Errc::kNotFound;
  return {};
}

StoreStatus RedisStore::WritePresence(
    std::span<const PresenceRecord> rows,
    std::span<const ClientPresenceRecord> clients,
    std::span<const SequenceRecord> sequences) {
  if (rows.empty() && clients.empty() && sequences.empty()) return {};
  // Validate everything first (all or nothing, as far as one realm at a
  // time allows): every user and every realm must exist.
  std::set<RealmId> realms;
  std::vector<std::string> users = {"HMGET", kUserRealm};
  for (const PresenceRecord& row : rows) {
    users.push_back(std::to_string(row.user_id));
    realms.insert(row.realm_id);
  }
  for (const ClientPresenceRecord& c : clients) {
    users.push_back(std::to_string(c.user_id));
    realms.insert(c.realm_id);
  }
  for (const SequenceRecord& seq : sequences) realms.insert(seq.realm_id);
  if (users.size() > 2) {
    auto known = Call(users, kUserRealm);
    if (!known) return known.error();
    for (const RedisReply& r : known->elements) {
      if (r.is_nil()) return Errc::kNotFound;
    }
  }
  std::vector<std::string> realm_ids = {"HMGET", kRealms};
  for (RealmId r : realms) realm_ids.push_back(std::to_string(r));
  auto known = Call(realm_ids, kRealms);
  if (!known) return known.error();
  for (const RedisReply& r : known->elements) {
    if (r.is_nil()) return Errc::kNotFound;
  }

  for (RealmId realm : realms) {
    std::vector<std::string> args = {"0", "0", "0"};
    for (const SequenceRecord& seq : sequences) {
      if (seq.realm_id != realm) continue;
      args[0] = "1";
      args[1] = std::to_string(seq.last_update_id);
      args[2] = std::to_string(
          std::max(seq.reserved_update_id, ParseInt(args[2]).value_or(0)));
    }
    args.push_back("0");  // the number of rows, set below
    std::size_t n = 0;
    for (const PresenceRecord& row : rows) {
      if (row.realm_id != realm) continue;
      args.push_back(std::to_string(row.user_id));
      args.push_back(EncodeRowValue(row));
      args.push_back(std::to_string(row.last_update_id));
      ++n;
    }
    args[3] = std::to_string(n);
    // Client rows replace per user: each user's records of this batch.
    std::map<UserId, std::vector<const ClientPresenceRecord*>> by_user;
    for (const ClientPresenceRecord& c : clients) {
      if (c.realm_id == realm) by_user[c.user_id].push_back(&c);
    }
    for (const auto& [user, list] : by_user) {
      args.push_back(std::to_string(user));
      args.push_back(EncodeClientRows(list));
    }
    auto r = Eval(scripts_[kWritePresence], RealmKeys(realm), args);
    if (!r) return r.error();
    if (IntOf(*r).value_or(-1) < 0) return Errc::kNotFound;
  }
  return {};
}

StoreResult<RealmState> RedisStore::ReadRealmImpl(
    RealmId realm, std::optional<UpdateId> since) {
  const std::string args[] = {since ? "(" + std::to_string(*since) : "-inf"};
  auto reply = Eval(scripts_[kReadRealm], RealmKeys(realm), args);
  if (!reply) return reply.error();
  if (reply->type == RedisReply::Type::kInteger) return Errc::kNotFound;
  auto state = DecodeRealmState(realm, *reply);
  if (!state || !since) return state;
  // Client rows come whole: keep the users whose newest row is after since.
  std::vector<ClientPresenceRecord> kept;
  auto& all = state->clients;
  for (std::size_t i = 0; i < all.size();) {
    std::size_t end = i;
    UpdateId newest = 0;
    while (end < all.size() && all[end].user_id == all[i].user_id) {
      newest = std::max(newest, all[end].last_update_id);
      ++end;
    }
    if (newest > *since) {
      for (std::size_t j = i; j < end; ++j) kept.push_back(std::move(all[j]));
    }
    i = end;
  }
  all = std::move(kept);
  return state;
}

StoreResult<Snapshot> RedisStore::Load() {
  const std::string hkeys[] = {"HKEYS", kRealms};
  auto ids = Call(hkeys, kRealms);
  if (!ids) return ids.error();
  std::vector<RealmId> realm_ids;
  for (const RedisReply& r : ids->elements) {
    auto id = ParseInt(r.str);
    if (!id) return Error(Errc::kCorrupt, "realms index: bad id");
    realm_ids.push_back(*id);
  }
  std::sort(realm_ids.begin(), realm_ids.end());
  Snapshot snap;
  for (RealmId id : realm_ids) {
    auto state = ReadRealmImpl(id, std::nullopt);
    // A realm whose creation did not finish (indexed, no meta) is skipped.
    if (!state && state.error().code() == Errc::kNotFound) continue;
    if (!state) return state.error();
    snap.realms.push_back(std::move(state->realm));
    for (auto& u : state->users) snap.users.push_back(std::move(u));
    for (auto& r : state->rows) snap.presence.push_back(r);
    for (auto& a : state->access) snap.access.push_back(std::move(a));
    for (auto& c : state->clients) {
      snap.client_presence.push_back(std::move(c));
    }
  }
  std::sort(snap.client_presence.begin(), snap.client_presence.end(),
            [](const ClientPresenceRecord& a, const ClientPresenceRecord& b) {
              return std::tie(a.user_id, a.client) <
                     std::tie(b.user_id, b.client);
            });
  std::sort(
      snap.users.begin(), snap.users.end(),
      [](const UserRecord& a, const UserRecord& b) { return a.id < b.id; });
  std::sort(snap.presence.begin(), snap.presence.end(),
            [](const PresenceRecord& a, const PresenceRecord& b) {
              return a.user_id < b.user_id;
            });
  std::sort(snap.access.begin(), snap.access.end(),
            [](const AccessRecord& a, const AccessRecord& b) {
              return a.viewer < b.viewer;
            });
  return snap;
}

}  // namespace presence::store
