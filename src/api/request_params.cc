#include "api/request_params.h"

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/url/encoding_opts.hpp>
#include <boost/url/pct_string_view.hpp>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "util/ascii.h"

namespace presence::api {
// Where Parse puts the pairs it decodes, in order: one entry per name,
// sorted by name, a later pair (the body's after the query's, a repeated
// name) replacing the value of an earlier one. size() counts every pair
// added, repeated names each time (max_parameters). Filling params_
// directly spares a list of pairs and a second move of every string.
struct RequestParams::Sink {
  std::vector<std::pair<std::string, Entry>>& params;
  std::size_t added = 0;

  std::size_t size() const { return added; }

  template <class Name, class Value>
  void Add(Name&& name, Value&& value) {
    ++added;
    const std::string_view key(name);
    auto it = std::lower_bound(
        params.begin(), params.end(), key,
        [](const auto& entry, std::string_view n) { return entry.first < n; });
    if (it != params.end() && it->first == key) {
      it->second.value = std::forward<Value>(value);
      it->second.used = false;
      return;
    }
    // Entry{...}, not piecewise: clang 14 has no parenthesized aggregate
    // initialization (the clang-tsa and fuzz builds).
    params.emplace(it, std::forward<Name>(name),
                   Entry{std::string(std::forward<Value>(value))});
  }
};

namespace {

constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

ApiError Malformed(std::string_view what) {
  return ApiError::BadRequest(std::string(what));
}

ApiError MalformedMultipart(std::string_view why) {
  return ApiError::BadRequest("Malformed multipart body: " + std::string(why));
}

bool IsSpaceOrTab(char c) { return c == ' ' || c == '\t'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpaceOrTab(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpaceOrTab(s.back())) s.remove_suffix(1);
  return s;
}

// Valid UTF-8 is copied unchanged; each maximal subpart of an ill-formed
// sequence becomes one U+FFFD (Unicode's recommended practice, which is also
// what CPython's decoder does, so Django would see the same text).
std::string ToUtf8Lossy(std::string_view s) {
  // Nearly every parameter is ASCII: copy it whole.
  if (std::all_of(s.begin(), s.end(), [](char c) {
        return static_cast<unsigned char>(c) < 0x80;
      })) {
    return std::string(s);
  }
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      out.push_back(s[i]);
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // range allowed for the second byte
    if (b >= 0xC2 && b <= 0xDF) {
      len = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      len = 3;
      if (b == 0xE0) lo = 0xA0;  // no overlongs
      if (b == 0xED) hi = 0x9F;  // no surrogates
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4;
      if (b == 0xF0) lo = 0x90;  // no overlongs
      if (b == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
    } else {
      out.append(kReplacementChar);
      ++i;
      continue;
    }
    std::size_t k = 1;
    while (k < len && i + k < s.size()) {
      auto c = static_cast<unsigned char>(s[i + k]);
      unsigned char min = k == 1 ? lo : 0x80;
      unsigned char max = k == 1 ? hi : 0xBF;
      if (c < min || c > max) break;
      ++k;
    }
    if (k == len) {
      out.append(s.substr(i, len));
    } else {
      out.append(kReplacementChar);
    }
    i += k;
  }
  return out;
}

// Adds one decoded pair to `out`, enforcing the count and length limits. An
// empty name is dropped. `raw_name` and `raw_value` are decoded but may not be
// UTF-8 yet; lengths are checked before the repair (which only ever makes a
// string longer) and after it.
template <class Pairs>
ApiResult<void> AddPair(std::string_view raw_name, std::string_view raw_value,
                        const RequestParamsOptions& options, Pairs& out) {
  if (raw_name.size() > options.max_name_length) {
    return Malformed("Parameter name too long");
  }
  std::string name = ToUtf8Lossy(raw_name);
  if (name.size() > options.max_name_length) {
    return Malformed("Parameter name too long");
  }
  if (name.empty()) return {};
  if (out.size() >= options.max_parameters) {
    return Malformed("Too many parameters");
  }
  if (raw_value.size() > options.max_value_length) {
    return Malformed("Parameter '" + name + "' is too long");
  }
  std::string value = ToUtf8Lossy(raw_value);
  if (value.size() > options.max_value_length) {
    return Malformed("Parameter '" + name + "' is too long");
  }
  out.Add(std::move(name), std::move(value));
  return {};
}

// Percent-decodes one name or value of a form-urlencoded string, '+' being a
// space (Boost.URL does the decoding). The result is never longer than `raw`.
ApiResult<std::string> FormDecode(std::string_view raw,
                                  std::string_view where) {
  // Nothing to decode (the common case): no escape, no '+'.
  if (raw.find_first_of("%+") == std::string_view::npos) {
    return std::string(raw);
  }
  auto pct = boost::urls::make_pct_string_view(raw);
  if (!pct) {
    return Malformed("Malformed percent-encoding in " + std::string(where));
  }
  boost::urls::encoding_opts opts;
  opts.space_as_plus = true;
  return pct->decode(opts);
}

// ASCII with no escape and no '+': decoding and UTF-8 repair leave it as it
// is.
bool IsPlain(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x80 && c != '%' && c != '+';
  });
}

// application/x-www-form-urlencoded (also the query string): '&'-separated
// segments, each "name" or "name=value".
template <class Pairs>
ApiResult<void> ParseUrlEncoded(std::string_view s, std::string_view where,
                                const RequestParamsOptions& options,
                                Pairs& out) {
  while (!s.empty()) {
    std::size_t amp = s.find('&');
    std::string_view segment = s.substr(0, amp);
    s = amp == std::string_view::npos ? std::string_view() : s.substr(amp + 1);
    if (segment.empty()) continue;

    std::size_t eq = segment.find('=');
    std::string_view raw_name = segment.substr(0, eq);
    std::string_view raw_value = eq == std::string_view::npos
                                     ? std::string_view()
                                     : segment.substr(eq + 1);
    if (IsPlain(raw_name) && IsPlain(raw_value)) {
      // Nothing to decode or repair (nearly every pair): the checks of
      // AddPair on the text as it is.
      if (raw_name.size() > options.max_name_length) {
        return Malformed("Parameter name too long");
      }
      if (raw_name.empty()) continue;
      if (out.size() >= options.max_parameters) {
        return Malformed("Too many parameters");
      }
      if (raw_value.size() > options.max_value_length) {
        return Malformed("Parameter '" + std::string(raw_name) +
                         "' is too long");
      }
      out.Add(raw_name, raw_value);
      continue;
    }
    auto name = FormDecode(raw_name, where);
    if (!name) return name.error();
    auto value = FormDecode(raw_value, where);
    if (!value) return value.error();
    auto added = AddPair(*name, *value, options, out);
    if (!added) return added.error();
  }
  return {};
}

// A header value such as `multipart/form-data; boundary="abc"` or
// `form-data; name="status"; filename="a.txt"`.
struct HeaderValue {
  std::string token;                                        // lower-cased
  std::vector<std::pair<std::string, std::string>> params;  // names lowered

  const std::string* Param(std::string_view name) const {
    const std::string* found = nullptr;
    for (const auto& [k, v] : params) {
      if (k == name) found = &v;  // the last one wins
    }
    return found;
  }
};

// Splits at ';' outside quoted strings. In a quoted string, \" and \\ stand
// for " and \ (as Django's parser reads them); other backslashes are literal
// because browsers and the form-data package do not escape them.
HeaderValue ParseHeaderValue(std::string_view s) {
  HeaderValue out;
  std::size_t i = s.find(';');
  out.token = AsciiLower(Trim(s.substr(0, i)));
  while (i != std::string_view::npos && i < s.size()) {
    ++i;  // past ';'
    std::size_t sep = s.find_first_of("=;", i);
    if (sep == std::string_view::npos || s[sep] == ';') {
      i = sep;  // an attribute without '=': ignored
      continue;
    }
    std::string name = AsciiLower(Trim(s.substr(i, sep - i)));
    i = sep + 1;
    while (i < s.size() && IsSpaceOrTab(s[i])) ++i;
    std::string value;
    if (i < s.size() && s[i] == '"') {
      ++i;
      while (i < s.size() && s[i] != '"') {
        if (s[i] == '\\' && i + 1 < s.size() &&
            (s[i + 1] == '"' || s[i + 1] == '\\')) {
          ++i;
        }
        value.push_back(s[i]);
        ++i;
      }
      // Past the closing quote; an unterminated string runs to the end.
      i = i < s.size() ? s.find(';', i + 1) : std::string_view::npos;
    } else {
      std::size_t end = s.find(';', i);
      value = std::string(Trim(s.substr(i, end - i)));
      i = end;
    }
    out.params.emplace_back(std::move(name), std::move(value));
  }
  return out;
}

// RFC 2046 allows 1 to 70 characters; like Django we accept up to 200
// printable ASCII characters, the last not a space.
bool IsValidBoundary(std::string_view b) {
  if (b.empty() || b.size() > 200 || b.back() == ' ') return false;
  for (char c : b) {
    if (c < 0x20 || c > 0x7E) return false;
  }
  return true;
}

// The position of the next delimiter `delim` ("--" + boundary) at or after
// `from` that starts a line (at `from` itself or right after '\n') and is
// followed by "--", blanks, a line end or the end of the body. npos if none.
std::size_t FindDelimiter(std::string_view body, std::string_view delim,
                          std::size_t from) {
  std::size_t idx = from;
  while ((idx = body.find(delim, idx)) != std::string_view::npos) {
    bool line_start = idx == from || body[idx - 1] == '\n';
    std::string_view after = body.substr(idx + delim.size());
    bool ends = after.empty() || after.substr(0, 2) == "--" ||
                after[0] == ' ' || after[0] == '\t' || after[0] == '\r' ||
                after[0] == '\n';
    if (line_start && ends) return idx;
    ++idx;
  }
  return std::string_view::npos;
}

// multipart/form-data (RFC 7578 over RFC 2046). Lines end in CRLF; a bare LF
// is accepted too. The preamble and the epilogue are ignored.
template <class Pairs>
ApiResult<void> ParseMultipart(std::string_view boundary, std::string_view body,
                               const RequestParamsOptions& options,
                               Pairs& out) {
  const std::string delim = "--" + std::string(boundary);
  std::size_t pos = FindDelimiter(body, delim, 0);
  if (pos == std::string_view::npos) {
    return MalformedMultipart("no opening boundary");
  }
  std::size_t parts = 0;
  while (true) {
    // `pos` is at a delimiter.
    std::size_t p = pos + delim.size();
    if (body.substr(p, 2) == "--") return {};  // close delimiter
    while (p < body.size() && IsSpaceOrTab(body[p])) ++p;
    if (p < body.size() && body[p] == '\r') ++p;
    if (p >= body.size()) return MalformedMultipart("missing closing boundary");
    if (body[p] != '\n') return MalformedMultipart("bad boundary line");
    ++p;

    if (++parts > options.max_parts) return Malformed("Too many parts");

    // Part headers, up to an empty line.
    std::optional<HeaderValue> disposition;
    std::size_t header_bytes = 0;
    while (true) {
      std::size_t nl = body.find('\n', p);
      std::size_t line_end = nl == std::string_view::npos ? body.size() : nl;
      header_bytes += line_end - p + 1;
      if (header_bytes > options.max_part_header_bytes) {
        return MalformedMultipart("part headers too long");
      }
      if (nl == std::string_view::npos) {
        return MalformedMultipart("truncated part headers");
      }
      std::string_view line = body.substr(p, nl - p);
      p = nl + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty()) break;
      std::size_t colon = line.find(':');
      if (colon == std::string_view::npos) {
        return MalformedMultipart("bad part header");
      }
      if (AsciiLower(Trim(line.substr(0, colon))) == "content-disposition") {
        disposition = ParseHeaderValue(line.substr(colon + 1));
      }
    }
    const std::string* name = disposition && disposition->token == "form-data"
                                  ? disposition->Param("name")
                                  : nullptr;
    if (name == nullptr) {
      return MalformedMultipart("part without a form-data name");
    }

    // Content, up to the line break before the next delimiter.
    std::size_t next = FindDelimiter(body, delim, p);
    if (next == std::string_view::npos) {
      return MalformedMultipart("missing closing boundary");
    }
    std::string_view content = body.substr(p, next - p);
    if (!content.empty()) {
      content.remove_suffix(1);  // the '\n' FindDelimiter saw
      if (!content.empty() && content.back() == '\r') content.remove_suffix(1);
    }
    auto added = AddPair(*name, content, options, out);
    if (!added) return added.error();
    pos = next;
  }
}

std::string NotA(std::string_view name, std::string_view what) {
  std::string msg(name);
  msg.append(" is not ").append(what);
  return msg;
}

template <class T>
ApiResult<T> Required(ApiResult<std::optional<T>> r, std::string_view name) {
  if (!r) return r.error();
  if (!r->has_value()) return ApiError::MissingArgument(name);
  return std::move(**r);
}

}  // namespace

ApiResult<RequestParams> RequestParams::Parse(std::string_view query,
                                              std::string_view content_type,
                                              std::string_view body,
                                              const Options& options) {
  if (!query.empty() && query.front() == '?') query.remove_prefix(1);

  // The pairs of the query and then of the body go straight into the
  // sorted list (Sink); all of them count towards max_parameters.
  RequestParams params;
  constexpr std::size_t kUsualParameters = 4;
  if (!query.empty() || !body.empty()) {
    params.params_.reserve(kUsualParameters);
  }
  Sink pairs{params.params_};
  auto q = ParseUrlEncoded(query, "query string", options, pairs);
  if (!q) return q.error();

  constexpr std::string_view kForm = "application/x-www-form-urlencoded";
  // The usual header, exactly: no need to take it apart.
  HeaderValue type =
      content_type == kForm ? HeaderValue{} : ParseHeaderValue(content_type);
  if (content_type == kForm || type.token == kForm) {
    auto b = ParseUrlEncoded(body, "request body", options, pairs);
    if (!b) return b.error();
  } else if (type.token == "multipart/form-data") {
    const std::string* boundary = type.Param("boundary");
    if (boundary == nullptr) {
      return MalformedMultipart("no boundary in Content-Type");
    }
    if (!IsValidBoundary(*boundary)) return MalformedMultipart("bad boundary");
    if (!body.empty()) {
      auto b = ParseMultipart(*boundary, body, options, pairs);
      if (!b) return b.error();
    }
  }
  return params;
}

std::size_t RequestParams::IndexOf(std::string_view name) const {
  // A request carries a few parameters and a handler asks for many that
  // are absent (22 lookups per ping): a scan that compares sizes first
  // rejects most names without reading a character, where a binary
  // search compares strings at every step.
  constexpr std::size_t kScanUpTo = 8;
  if (params_.size() <= kScanUpTo) {
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const std::string& key = params_[i].first;
      if (key.size() == name.size() &&
          std::char_traits<char>::compare(key.data(), name.data(),
                                          name.size()) == 0) {
        return i;
      }
    }
    return params_.size();
  }
  auto it = std::lower_bound(
      params_.begin(), params_.end(), name,
      [](const auto& entry, std::string_view n) { return entry.first < n; });
  return it != params_.end() && it->first == name
             ? static_cast<std::size_t>(it - params_.begin())
             : params_.size();
}

const std::string* RequestParams::Lookup(std::string_view name) {
  const std::size_t i = IndexOf(name);
  if (i == params_.size()) return nullptr;
  params_[i].second.used = true;
  return &params_[i].second.value;
}

std::optional<std::string> RequestParams::GetString(std::string_view name) {
  const std::string* v = Lookup(name);
  if (v == nullptr) return std::nullopt;
  return *v;
}

ApiResult<std::string> RequestParams::RequireString(std::string_view name) {
  std::optional<std::string> v = GetString(name);
  if (!v) return ApiError::MissingArgument(name);
  return std::move(*v);
}

namespace {

// The JSON texts parameters nearly always are, read without a JSON parser:
// `true`, `false`, and integers of up to 18 digits in JSON's own grammar
// (no '+', no leading zero, no surrounding space), which always fit in
// int64. Anything else goes to Boost.JSON, so the answers are the same.
std::optional<std::int64_t> SimpleInt(std::string_view text) {
  std::string_view digits = text;
  if (!digits.empty() && digits.front() == '-') digits.remove_prefix(1);
  if (digits.empty() || digits.size() > 18 || text == "-0" ||
      (digits.front() == '0' && digits.size() > 1) ||
      !std::all_of(digits.begin(), digits.end(),
                   [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  std::int64_t v = 0;
  std::from_chars(text.data(), text.data() + text.size(), v);
  return v;
}

std::optional<boost::json::value> SimpleJson(std::string_view text) {
  if (text == "true") return boost::json::value(true);
  if (text == "false") return boost::json::value(false);
  if (auto v = SimpleInt(text)) return boost::json::value(*v);
  return std::nullopt;
}

}  // namespace

ApiResult<std::optional<boost::json::value>> RequestParams::ParseJson(
    std::string_view name) {
  const std::string* text = Lookup(name);
  if (text == nullptr) return std::nullopt;
  if (auto simple = SimpleJson(*text)) {
    return std::optional<boost::json::value>(std::move(*simple));
  }
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(*text, ec);
  if (ec) return ApiError::BadRequest(NotA(name, "valid JSON"));
  return std::optional<boost::json::value>(std::move(v));
}

ApiResult<std::optional<boost::json::value>> RequestParams::GetJsonValue(
    std::string_view name) {
  return ParseJson(name);
}

ApiResult<std::optional<bool>> RequestParams::GetJsonBool(
    std::string_view name) {
  // Absent, `true` or `false` (nearly every call): no JSON value made.
  const std::string* text = Lookup(name);
  if (text == nullptr) return std::optional<bool>();
  if (*text == "true") return std::optional<bool>(true);
  if (*text == "false") return std::optional<bool>(false);
  auto v = ParseJson(name);
  if (!v) return v.error();
  if (!v->has_value()) return std::optional<bool>();
  if (!(*v)->is_bool()) return ApiError::BadRequest(NotA(name, "a boolean"));
  return std::optional<bool>((*v)->get_bool());
}

ApiResult<bool> RequestParams::RequireJsonBool(std::string_view name) {
  return Required(GetJsonBool(name), name);
}

ApiResult<std::optional<std::int64_t>> RequestParams::GetJsonInt(
    std::string_view name) {
  // Absent, or an integer SimpleJson reads (nearly every call): no JSON
  // value made.
  const std::string* text = Lookup(name);
  if (text == nullptr) return std::optional<std::int64_t>();
  if (auto simple = SimpleInt(*text)) {
    return std::optional<std::int64_t>(*simple);
  }
  auto v = ParseJson(name);
  if (!v) return v.error();
  if (!v->has_value()) return std::optional<std::int64_t>();
  // Boost.JSON keeps integers in int64 range as int64 and parses larger ones
  // as uint64 or double: those are out of range, hence "not an integer".
  if (!(*v)->is_int64()) {
    return ApiError::BadRequest(NotA(name, "an integer"));
  }
  return std::optional<std::int64_t>((*v)->get_int64());
}

ApiResult<std::int64_t> RequestParams::RequireJsonInt(std::string_view name) {
  return Required(GetJsonInt(name), name);
}

ApiResult<std::optional<boost::json::array>> RequestParams::GetJsonList(
    std::string_view name) {
  auto v = ParseJson(name);
  if (!v) return v.error();
  if (!v->has_value()) return std::optional<boost::json::array>();
  if (!(*v)->is_array()) return ApiError::BadRequest(NotA(name, "a list"));
  return std::optional<boost::json::array>(std::move((*v)->get_array()));
}

ApiResult<boost::json::array> RequestParams::RequireJsonList(
    std::string_view name) {
  return Required(GetJsonList(name), name);
}

ApiResult<std::optional<std::vector<std::string>>>
RequestParams::GetJsonStringList(std::string_view name) {
  auto list = GetJsonList(name);
  if (!list) return list.error();
  if (!list->has_value()) return std::optional<std::vector<std::string>>();
  std::vector<std::string> out;
  out.reserve((*list)->size());
  for (std::size_t i = 0; i < (*list)->size(); ++i) {
    const boost::json::value& item = (**list)[i];
    if (!item.is_string()) {
      std::string var(name);
      var.append("[").append(std::to_string(i)).append("]");
      return ApiError::BadRequest(NotA(var, "a string"));
    }
    out.emplace_back(item.get_string());
  }
  return std::optional<std::vector<std::string>>(std::move(out));
}

ApiResult<std::optional<boost::json::object>> RequestParams::GetJsonObject(
    std::string_view name) {
  auto v = ParseJson(name);
  if (!v) return v.error();
  if (!v->has_value()) return std::optional<boost::json::object>();
  if (!(*v)->is_object()) return ApiError::BadRequest(NotA(name, "a dict"));
  return std::optional<boost::json::object>(std::move((*v)->get_object()));
}

ApiResult<boost::json::object> RequestParams::RequireJsonObject(
    std::string_view name) {
  return Required(GetJsonObject(name), name);
}

bool RequestParams::Has(std::string_view name) const {
  return IndexOf(name) != params_.size();
}

void RequestParams::MarkUsed(std::string_view name) { Lookup(name); }

std::vector<std::string> RequestParams::Names() const {
  std::vector<std::string> names;
  names.reserve(params_.size());
  for (const auto& [name, entry] : params_) names.push_back(name);
  return names;
}

std::vector<std::string> RequestParams::UnusedNames() const {
  std::vector<std::string> names;
  for (const auto& [name, entry] : params_) {
    if (!entry.used) names.push_back(name);
  }
  return names;
}

}  // namespace presence::api
