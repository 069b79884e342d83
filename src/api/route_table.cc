#include "api/route_table.h"

namespace presence::api {

MethodSet MethodBit(std::string_view method) {
  for (std::size_t i = 0; i < kMethodNames.size(); ++i) {
    if (method == kMethodNames[i]) return static_cast<MethodSet>(1u << i);
  }
  return 0;
}

MethodList::MethodList(MethodSet set) {
  for (std::size_t i = 0; i < kMethodNames.size(); ++i) {
    if ((set & (1u << i)) != 0) names_[size_++] = kMethodNames[i];
  }
}

std::string MethodList::Joined() const {
  std::string out;
  for (std::string_view m : names()) {
    if (!out.empty()) out += ", ";
    out += m;
  }
  return out;
}

bool MatchPattern(std::string_view pattern, std::string_view path,
                  RouteArgs* args) {
  std::size_t p = 0;  // in pattern
  std::size_t i = 0;  // in path
  std::size_t n = 0;  // args filled
  while (p < pattern.size()) {
    // "{}" read as two bytes, not with compare(): every request walks the
    // table's patterns up to its own (issue #17).
    if (pattern[p] == '{' && p + 1 < pattern.size() && pattern[p + 1] == '}') {
      // One non-empty segment: up to the next '/' or the end.
      std::size_t end = path.find('/', i);
      if (end == std::string_view::npos) end = path.size();
      if (end == i || n == kMaxRouteArgs) return false;
      (*args)[n++] = path.substr(i, end - i);
      i = end;
      p += 2;
      continue;
    }
    if (i >= path.size() || path[i] != pattern[p]) return false;
    ++i;
    ++p;
  }
  return i == path.size();
}

}  // namespace presence::api
