// The Lua scripts embedded at build time (cmake/embed_lua.cmake): every
// script the store runs is there, after the constants and the prelude.
#include "store/redis_scripts.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

namespace presence::store {
namespace {

std::string ReadSource(const std::string& name) {
  std::ifstream in(std::string(PRESENCE_SOURCE_DIR) + "/src/store/lua/" + name +
                   ".lua");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(RedisScriptsTest, EveryScriptIsTheFileAfterConstantsAndPrelude) {
  auto scripts = BuildScripts("chan");
  ASSERT_TRUE(scripts.has_value()) << scripts.error().detail();
  ASSERT_EQ(scripts->size(), static_cast<std::size_t>(kScriptCount));
  const std::string prelude = ReadSource("prelude");
  ASSERT_FALSE(prelude.empty());
  const std::string head = ScriptPrelude("chan", prelude);
  // The rule constants, in microseconds (core/constants.h).
  EXPECT_EQ(head.substr(0, 74),
            "local FEED = 'chan'\n"
            "local ONE_DAY = 86400000000\n"
            "local MIN_FREQ = 55000000\n");
  EXPECT_EQ(scripts->at(kReport).name, "report");
  EXPECT_EQ(scripts->at(kCountRequest).name, "count_request");
  for (const RedisScript& s : *scripts) {
    const std::string file = ReadSource(s.name);
    ASSERT_FALSE(file.empty()) << s.name;
    // Embedded byte for byte, so a changed file is a changed script.
    EXPECT_EQ(s.body, head + file) << s.name;
    EXPECT_TRUE(s.sha.empty());
  }
}

}  // namespace
}  // namespace presence::store
