#include "store/redis_scripts.h"

#include <string>

#include "core/constants.h"
#include "util/clock.h"

namespace presence::store {
namespace {

// The file of each ScriptId, in enum order.
constexpr std::string_view kScriptFiles[kScriptCount] = {
    "index_insert_realm",
    "index_drop_realm",
    "index_rename_realm",
    "alloc_user",
    "register_node",
    "create_realm",
    "update_realm",
    "check_user",
    "put_user",
    "drop_user",
    "set_access",
    "reserve",
    "write_presence",
    "report",
    "set_presence_enabled",
    "read_realm",
    "count_request",
    "node_address",
    "live_nodes",
    "fence",
    "gate_batch",
};

const LuaFile* FindLua(std::string_view name) {
  for (const LuaFile& f : EmbeddedLuaFiles()) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::string MicrosText(std::int64_t seconds) {
  return std::to_string(SecondsToMicros(seconds));
}

}  // namespace

std::string ScriptPrelude(std::string_view feed_channel,
                          std::string_view prelude_lua) {
  // The rules' constants come from core/constants.h, so that the C++ rules
  // and the Lua ones cannot drift apart.
  std::string p;
  p += "local FEED = '" + std::string(feed_channel) + "'\n";
  p += "local ONE_DAY = " + MicrosText(kSecondsPerDay) + "\n";
  p += "local MIN_FREQ = " + MicrosText(kUpdateMinFreqSeconds) + "\n";
  p += "local ONLINE_GAP = " + MicrosText(kBecameOnlineGapSeconds) + "\n";
  p += "local BACKDATE = " + MicrosText(kInvisibleBackdateSeconds) + "\n";
  p += "local PREWRITE = " + MicrosText(kInvisiblePrewriteSeconds) + "\n";
  p += prelude_lua;
  return p;
}

StoreResult<std::vector<RedisScript>> BuildScripts(
    std::string_view feed_channel) {
  const LuaFile* prelude = FindLua("prelude");
  if (prelude == nullptr) {
    return Error(Errc::kCorrupt, "lua/prelude.lua was not embedded");
  }
  const std::string head = ScriptPrelude(feed_channel, prelude->text);
  std::vector<RedisScript> out;
  for (std::string_view name : kScriptFiles) {
    const LuaFile* file = FindLua(name);
    if (file == nullptr) {
      return Error(Errc::kCorrupt,
                   "lua/" + std::string(name) + ".lua was not embedded");
    }
    out.push_back(RedisScript{.name = std::string(name),
                              .body = head + std::string(file->text),
                              .sha = {}});
  }
  return out;
}

}  // namespace presence::store
