// RequestParams: the named parameters of one API request, and Zulip's typed
// getters over them (spec §2.0 "Request parameters").
//
// Design. Parameters come from the query string and from the body; Parse()
// decodes both up front into one name -> value map, so a handler sees plain
// strings and never the wire encoding:
//  - the query string and an `application/x-www-form-urlencoded` body are
//    split on '&' and at the first '='; names and values are percent-decoded
//    with Boost.URL, '+' meaning a space (as Django's QueryDict does). A
//    segment without '=' has the empty value; empty segments and segments with
//    an empty name are skipped. A malformed escape ("%zz", a trailing "%") is
//    an error, where Python would keep it literally; characters that RFC 3986
//    does not allow unencoded (e.g. `["a"]`) are accepted as they are;
//  - a `multipart/form-data` body is split at its boundary (CRLF line endings,
//    bare LF tolerated); each part must carry `Content-Disposition: form-data;
//    name="..."`. A filename attribute is ignored and the part still counts as
//    the named field (Django would file it under FILES instead). Part contents
//    are taken verbatim: Content-Type and Content-Transfer-Encoding headers of
//    parts are ignored;
//  - any other content type, or none, contributes no parameters, whatever the
//    body holds (as Django does);
//  - a name given twice keeps its last value; a body parameter replaces a
//    query parameter of the same name;
//  - bytes that are not UTF-8 are replaced by U+FFFD, one per maximal invalid
//    subsequence, as Python's decode(errors="replace") does, so every name and
//    value is valid UTF-8 and safe to echo in a JSON body.
// Anything malformed or over a limit makes Parse() return a 400 BAD_REQUEST
// ApiError; nothing here throws on bad input or aborts.
//
// The getters implement Zulip's typing: GetString() returns the text as is;
// GetJson*() parse the text as strict JSON ("1" is not a boolean, "true" is
// not an integer). Every getter marks the name as used, so that UnusedNames()
// gives what Zulip reports as `ignored_parameters_unsupported`.
//
// Thread safety: none. A RequestParams belongs to one request and is used by
// one thread at a time; the getters modify it (they record the names used).
#ifndef PRESENCE_API_REQUEST_PARAMS_H_
#define PRESENCE_API_REQUEST_PARAMS_H_

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/api_error.h"

namespace presence::api {

// Limits applied by RequestParams::Parse(); going over any of them is an
// error, never a truncation.
struct RequestParamsOptions {
  // Name/value pairs in the query string and the body together, counting
  // repeated names every time.
  std::size_t max_parameters = 100;
  // Length in bytes of a decoded name.
  std::size_t max_name_length = 256;
  // Length in bytes of a decoded value.
  std::size_t max_value_length = 64 * 1024;
  // Parts in a multipart body.
  std::size_t max_parts = 100;
  // Bytes of header lines of one multipart part.
  std::size_t max_part_header_bytes = 8 * 1024;
};

class RequestParams {
 public:
  using Options = RequestParamsOptions;

  // Decodes the parameters of one request.
  //  - `query`: the raw query string of the request target, with or without
  //    its leading '?'; may be empty;
  //  - `content_type`: the Content-Type header value; empty if absent. Only
  //    the media type (case-insensitive) and its `boundary` matter;
  //  - `body`: the request body; may be empty.
  // On error: 400 BAD_REQUEST with a message naming the problem, e.g.
  // "Malformed multipart body: missing closing boundary".
  static ApiResult<RequestParams> Parse(std::string_view query,
                                        std::string_view content_type,
                                        std::string_view body,
                                        const Options& options = {});

  RequestParams() = default;  // no parameters

  // --- Typed getters. All of them mark `name` as used. ---------------------
  // Absent -> nullopt (or, for Require*, 400 REQUEST_VARIABLE_MISSING
  // "Missing '<name>' argument" with var_name). Present but of the wrong JSON
  // type -> 400 BAD_REQUEST "<name> is not valid JSON" / "<name> is not a
  // boolean" / "<name> is not an integer" / "<name> is not a list" /
  // "<name> is not a dict". Spec §2.0 writes these as "`<name>` is not valid
  // JSON"; the backticks there are Markdown around the placeholder, not part
  // of the text (e.g. "slim_presence is not a boolean"). The list/dict/string
  // wordings are not in the spec; they follow the same pattern.

  // The value as sent (e.g. status=active gives "active").
  std::optional<std::string> GetString(std::string_view name);
  ApiResult<std::string> RequireString(std::string_view name);

  // JSON `true` or `false`.
  ApiResult<std::optional<bool>> GetJsonBool(std::string_view name);
  ApiResult<bool> RequireJsonBool(std::string_view name);

  // A JSON integer in int64 range (`-1`, `365`). Floats (`1.5`, `1e3`, `1.0`),
  // booleans, strings and out-of-range numbers are "not an integer".
  ApiResult<std::optional<std::int64_t>> GetJsonInt(std::string_view name);
  ApiResult<std::int64_t> RequireJsonInt(std::string_view name);

  // Any JSON value.
  ApiResult<std::optional<boost::json::value>> GetJsonValue(
      std::string_view name);

  // A JSON array, e.g. event_types=["presence","realm"].
  ApiResult<std::optional<boost::json::array>> GetJsonList(
      std::string_view name);
  ApiResult<boost::json::array> RequireJsonList(std::string_view name);

  // A JSON array of strings; an element of another type gives
  // "<name>[<index>] is not a string".
  ApiResult<std::optional<std::vector<std::string>>> GetJsonStringList(
      std::string_view name);

  // A JSON object, e.g.
  // client_capabilities={"simplified_presence_events":true}.
  ApiResult<std::optional<boost::json::object>> GetJsonObject(
      std::string_view name);
  ApiResult<boost::json::object> RequireJsonObject(std::string_view name);

  // --- Bookkeeping. ----------------------------------------------------------

  // True if the request carried `name`. Does not mark it as used.
  bool Has(std::string_view name) const;
  // Marks `name` as used without reading it (e.g. a parameter consumed by
  // the router, such as the legacy `method` override).
  void MarkUsed(std::string_view name);
  // Every parameter name the request carried, sorted (byte order).
  std::vector<std::string> Names() const;
  // The names no getter has asked for, sorted (byte order): Zulip's
  // `ignored_parameters_unsupported`.
  std::vector<std::string> UnusedNames() const;
  // Number of distinct names.
  std::size_t size() const { return params_.size(); }
  bool empty() const { return params_.empty(); }

 private:
  struct Entry {
    std::string value;
    bool used = false;
  };
  // Where Parse() puts the pairs it decodes (request_params.cc).
  struct Sink;

  // Where `name` is in params_; params_.size() if absent.
  std::size_t IndexOf(std::string_view name) const;
  // The value of `name`, marking it used; nullptr if absent.
  const std::string* Lookup(std::string_view name);
  ApiResult<std::optional<boost::json::value>> ParseJson(std::string_view name);

  // Sorted by name (byte order), one entry per name: a flat list rather
  // than a tree, since a request has a few parameters (one allocation for
  // all of them, not one each).
  std::vector<std::pair<std::string, Entry>> params_;
};

}  // namespace presence::api

#endif  // PRESENCE_API_REQUEST_PARAMS_H_
