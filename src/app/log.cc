#include "app/log.h"

#include <cstdio>

#include "api/json_writer.h"
#include "util/clock.h"
#include "util/mutex.h"

namespace presence::app {
namespace {

template <class Fields>
void Write(std::string_view level, std::string_view event,
           const Fields& fields) {
  std::string line = "ts=";
  api::AppendSeconds(line, RealClock().NowMicros());
  line += " level=";
  line += level;
  line += " event=";
  line += event;
  for (const auto& [k, v] : fields) {
    line += ' ';
    line += k;
    line += '=';
    if (v.empty() || v.find_first_of(" \"=") != std::string::npos) {
      api::AppendJsonString(line, v);
    } else {
      line += v;
    }
  }
  line += '\n';
  // Guards nothing of ours: keeps each line whole on stderr.
  static Mutex mu;
  MutexLock lock(mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace

void Log(
    std::string_view level, std::string_view event,
    std::initializer_list<std::pair<std::string_view, std::string>> fields) {
  Write(level, event, fields);
}

void Log(std::string_view level, std::string_view event,
         const std::vector<std::pair<std::string, std::string>>& fields) {
  Write(level, event, fields);
}

}  // namespace presence::app
