# Writes OUT (a .cc file) holding every .lua file of LUA_DIR as a string, so
# that the Redis store loads its scripts without reading the disk; the
# scripts stay real Lua files that editors and linters understand.
# Usage: cmake -DLUA_DIR=... -DOUT=... -P embed_lua.cmake
# (a sibling of embed_web.cmake; CMakeLists.txt reruns it when a file changes)
file(GLOB files RELATIVE ${LUA_DIR} ${LUA_DIR}/*.lua)
list(SORT files)
set(body "// Generated from src/store/lua/ by cmake/embed_lua.cmake. Do not edit.\n")
string(APPEND body "#include \"store/redis_scripts.h\"\n\n")
string(APPEND body "namespace presence::store {\n\n")
string(APPEND body "std::span<const LuaFile> EmbeddedLuaFiles() {\n")
string(APPEND body "  static const LuaFile kFiles[] = {\n")
foreach(f ${files})
  file(READ ${LUA_DIR}/${f} content HEX)
  # Emit as a char array of hex escapes: safe for any byte.
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "\\\\x\\1" escaped "${content}")
  string(LENGTH "${content}" hexlen)
  math(EXPR size "${hexlen} / 2")
  string(REGEX REPLACE "\\.lua$" "" name "${f}")
  string(APPEND body "      {\"${name}\", std::string_view(\"${escaped}\", ${size})},\n")
endforeach()
string(APPEND body "  };\n  return kFiles;\n}\n\n}  // namespace presence::store\n")
file(WRITE ${OUT}.tmp "${body}")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
