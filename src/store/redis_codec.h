// The record codec of the Redis store: how records are written into Redis
// values and feed messages, and read back.
//
// Formats (the Lua scripts in lua/ read and write some of them too):
//   netstring    "<decimal length>:<bytes>", e.g. "5:hello"
//   time         decimal microseconds; "" for kNoTime
//   flag         "1" or "0"
//   user         4 flag bytes (is_bot, is_active, presence_enabled,
//                can_access_all_users) then netstrings of lower(email), id,
//                realm id, role name, date_joined, hex api_key_hash, email,
//                full_name, then, for a user with a user status, netstrings
//                of status_text, emoji_name, emoji_code, reaction_type,
//                timestamp, passed (more netstrings after them are skipped:
//                room for issue #18's later fields). The scripts read the
//                flags and the folded email.
//   row          "connected,active,update_id" (times as above)
//   client rows  per client, netstrings of name, connected, active, update id
//   id list      "id,id,..." ("" for none)
//   realm field  netstrings of id, subdomain, name, presence_disabled,
//                deactivated, date_created, last_update_id, reserved
// Every decoder returns nullopt for input it cannot read in full: trailing
// bytes, a short netstring, a non-decimal number or flag are all rejected.
//
// Thread safety: pure functions.
#ifndef PRESENCE_STORE_REDIS_CODEC_H_
#define PRESENCE_STORE_REDIS_CODEC_H_

#include <cstdint>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/shared_store.h"
#include "core/store.h"
#include "store/redis_client.h"
#include "util/error.h"

namespace presence::store::redis_codec {

// Appends `s` to `out` as a netstring.
void PutNs(std::string* out, std::string_view s);

// Reads netstrings one after the other.
class NsReader {
 public:
  explicit NsReader(std::string_view s) : rest_(s) {}
  // The next netstring's bytes, or nullopt if what follows is not one.
  std::optional<std::string_view> Next();
  // Whether everything was read.
  bool done() const { return rest_.empty(); }

 private:
  std::string_view rest_;
};

// A whole decimal integer (optional '-'); nullopt otherwise.
std::optional<std::int64_t> ParseInt(std::string_view s);
std::string TimeText(Micros t);
std::optional<Micros> ParseTime(std::string_view s);
std::optional<bool> ParseFlag(std::string_view s);
const char* Flag(bool b);

std::string EncodeUser(const UserRecord& user);
std::optional<UserRecord> DecodeUser(std::string_view s);

std::string EncodeRowValue(const PresenceRecord& row);
// The row of `user` in `realm` from its stored value.
std::optional<PresenceRecord> DecodeRowValue(UserId user, RealmId realm,
                                             std::string_view s);

// One user's client rows, in the order given.
std::string EncodeClientRows(std::span<const ClientPresenceRecord* const> rows);
std::optional<std::vector<ClientPresenceRecord>> DecodeClientRows(
    RealmId realm, UserId user, std::string_view s);

std::string EncodeIdList(const std::set<UserId>& ids);
std::optional<std::vector<UserId>> DecodeIdList(std::string_view s);

// The realm record of a feed 'R' field.
std::optional<RealmRecord> DecodeRealmField(std::string_view s);
// The realm record of a realm's meta hash as HGETALL returns it.
std::optional<RealmRecord> DecodeMeta(RealmId id, const RedisReply& flat);

// The realm of a read_realm script reply ({meta, users, rows, access,
// clients}), users, rows and access lists sorted by id, client rows by
// (user, client) (all of them: the caller filters by `since`). kCorrupt, saying
// what, if any part does not decode.
StoreResult<RealmState> DecodeRealmState(RealmId realm,
                                         const RedisReply& reply);

// The integer of an integer reply, or nullopt.
std::optional<long long> IntOf(const RedisReply& r);

}  // namespace presence::store::redis_codec

#endif  // PRESENCE_STORE_REDIS_CODEC_H_
