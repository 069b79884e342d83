// Structured log lines on stderr: `ts=<unix.micros> level=<l> event=<e>
// k=v...`. Values are quoted when they hold spaces or quotes. Never pass
// secrets.
//
// Thread safety: each line is written with one call, under a mutex.
#ifndef PRESENCE_APP_LOG_H_
#define PRESENCE_APP_LOG_H_

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace presence::app {

void Log(std::string_view level, std::string_view event,
         std::initializer_list<std::pair<std::string_view, std::string>>
             fields = {});
void Log(std::string_view level, std::string_view event,
         const std::vector<std::pair<std::string, std::string>>& fields);

}  // namespace presence::app

#endif  // PRESENCE_APP_LOG_H_
