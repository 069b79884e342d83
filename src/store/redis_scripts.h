// The Redis store's Lua scripts: src/store/lua/*.lua, embedded into the
// library at build time (cmake/embed_lua.cmake), each prefixed with the
// constants of the presence rules and lua/prelude.lua.
//
// Every script runs atomically on one slot: the realm scripts on a realm's
// keys (RealmKeys in redis_keys.h, in that order), the index scripts on the
// global {presenced} keys named in each file's first line.
//
// Thread safety: EmbeddedLuaFiles() returns immutable data; BuildScripts is a
// pure function.
#ifndef PRESENCE_STORE_REDIS_SCRIPTS_H_
#define PRESENCE_STORE_REDIS_SCRIPTS_H_

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "util/error.h"

namespace presence::store {

// One embedded file of src/store/lua/: its name without ".lua", its text.
struct LuaFile {
  std::string_view name;
  std::string_view text;
};

// Every embedded file, sorted by name (generated: redis_lua.cc).
std::span<const LuaFile> EmbeddedLuaFiles();

// The scripts, in the order BuildScripts returns them.
enum ScriptId {
  kIndexInsertRealm,
  kIndexDropRealm,
  kIndexRenameRealm,
  kAllocUser,
  kRegisterNode,
  kCreateRealm,
  kUpdateRealm,
  kCheckUser,
  kPutUser,
  kDropUser,
  kSetAccess,
  kReserve,
  kWritePresence,
  kReport,
  kSetPresenceEnabled,
  kReadRealm,
  kCountRequest,
  kNodeAddress,
  kLiveNodes,
  kFence,
  kGateBatch,
  kScriptCount,
};

struct RedisScript {
  std::string name;  // the file name without ".lua"
  std::string body;  // the constants, the prelude and the script
  std::string sha;   // set by RedisStore::Open (SCRIPT LOAD)
};

// The text every script starts with: the rule constants, then prelude.lua.
// `feed_channel` is the channel the scripts PUBLISH on.
std::string ScriptPrelude(std::string_view feed_channel,
                          std::string_view prelude_lua);

// Every script, indexed by ScriptId (sha empty). kCorrupt, naming the file,
// if the build embedded no file for one of them (or no prelude).
StoreResult<std::vector<RedisScript>> BuildScripts(
    std::string_view feed_channel);

}  // namespace presence::store

#endif  // PRESENCE_STORE_REDIS_SCRIPTS_H_
