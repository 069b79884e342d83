// Appending JSON text to a std::string without building a DOM.
//
// The presence answers are the hot path: a realm's worth of rows goes out as
// one buffer, grown geometrically, with no allocation per row. Small bodies
// use Boost.JSON instead.
#ifndef PRESENCE_API_JSON_WRITER_H_
#define PRESENCE_API_JSON_WRITER_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "util/clock.h"

namespace presence::api {

// Appends `s` as a JSON string literal (quoted, escaped). `s` is UTF-8.
void AppendJsonString(std::string& out, std::string_view s);
void AppendInt(std::string& out, std::int64_t v);
// Appends a time as JSON float seconds with microseconds, e.g.
// 1656958539.628715.
void AppendSeconds(std::string& out, Micros t);
// ISO 8601 in UTC with microseconds, as Zulip writes date_joined:
// "2024-05-01T12:00:00.000000+00:00".
std::string IsoDate(Micros t);

}  // namespace presence::api

#endif  // PRESENCE_API_JSON_WRITER_H_
