// The Redis key layout of presenced (documented in redis_store.h).
//
// Every key of realm N carries the hash tag {rN}, so one realm lives on one
// slot; global keys carry {presenced}; a user's rate-limit log {uN}.
//
// Thread safety: constants and pure functions.
#ifndef PRESENCE_STORE_REDIS_KEYS_H_
#define PRESENCE_STORE_REDIS_KEYS_H_

#include <string>
#include <string_view>
#include <vector>

#include "core/types.h"

namespace presence::store::redis_keys {

inline const std::string kGlobal = "presenced:{presenced}:";
inline const std::string kNextRealm = kGlobal + "next_realm_id";
inline const std::string kNextUser = kGlobal + "next_user_id";
inline const std::string kNextNode = kGlobal + "next_node_id";
inline const std::string kSubdomains = kGlobal + "subdomains";
inline const std::string kRealms = kGlobal + "realms";
inline const std::string kUserRealm = kGlobal + "user_realm";
inline const std::string kNodes = kGlobal + "nodes";
inline const std::string kNodeDeadlines = kGlobal + "node_deadlines";

// Indexes into RealmKeys(): the order every realm script expects its KEYS.
enum RealmKey { kMeta, kUsers, kEmails, kRows, kRowSeq, kAccess, kClients };

// The keys of one realm, in RealmKey order.
inline std::vector<std::string> RealmKeys(RealmId realm) {
  const std::string p = "presenced:{r" + std::to_string(realm) + "}:";
  return {p + "meta",   p + "users",  p + "emails", p + "rows",
          p + "rowseq", p + "access", p + "clients"};
}

// One user's rate-limit log and its member counter (one slot).
inline std::vector<std::string> RateKeys(UserId user) {
  const std::string p = "presenced:{u" + std::to_string(user) + "}:";
  return {p + "requests", p + "n"};
}

// One user's rate-limit log and its member counter as the gate script
// (lua/gate_batch.lua) keeps them: on the user's realm's slot, so that the
// limit is decided in the same atomic step as the request's report or barrier.
inline std::vector<std::string> RealmRateKeys(RealmId realm, UserId user) {
  const std::string p = "presenced:{r" + std::to_string(realm) +
                        "}:rate:" + std::to_string(user) + ":";
  return {p + "requests", p + "n"};
}

// Where the gate script keeps a batch's answer under the caller's token
// (lua/gate_batch.lua), on the realm's slot; it expires on its own.
inline std::string GateAnswerKey(RealmId realm, std::string_view token) {
  return "presenced:{r" + std::to_string(realm) +
         "}:gate:" + std::string(token);
}

}  // namespace presence::store::redis_keys

#endif  // PRESENCE_STORE_REDIS_KEYS_H_
