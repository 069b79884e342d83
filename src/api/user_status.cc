#include "api/user_status.h"

#include "api/json_writer.h"

namespace presence::api {
namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
         c == '\f';
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

// Code points in UTF-8 text (continuation bytes are not counted).
std::size_t CodePoints(std::string_view s) {
  std::size_t n = 0;
  for (char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  }
  return n;
}

bool IsLowerHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

// A unicode emoji code as Zulip writes it: code points in lowercase hex
// (4 to 6 digits each, at least U+0080, no surrogate, at most U+10FFFF)
// joined by '-', e.g. "1f697" or "1f468-200d-1f4bb".
bool ValidUnicodeEmojiCode(std::string_view code) {
  if (code.empty()) return false;
  std::size_t start = 0;
  while (true) {
    std::size_t dash = code.find('-', start);
    std::string_view part = code.substr(start, dash == std::string_view::npos
                                                   ? std::string_view::npos
                                                   : dash - start);
    if (part.size() < 4 || part.size() > 6) return false;
    std::uint32_t v = 0;
    for (char c : part) {
      if (!IsLowerHex(c)) return false;
      v = v * 16 +
          static_cast<std::uint32_t>(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    if (v < 0x80 || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
      return false;
    }
    if (dash == std::string_view::npos) return true;
    start = dash + 1;
  }
}

}  // namespace

ApiResult<StatusUpdate> ReadStatusParams(RequestParams& params,
                                         bool accept_away) {
  StatusUpdate u;
  // Alphabetical, as Zulip's typed parameters; the first bad one wins.
  if (accept_away) {
    auto away = params.GetJsonBool("away");
    if (!away) return away.error();
    u.away = *away;
  }
  auto dnd = params.GetJsonBool("dnd");
  if (!dnd) return dnd.error();
  u.dnd = *dnd;
  auto dnd_end = params.GetJsonInt("dnd_end_time");
  if (!dnd_end) return dnd_end.error();
  u.dnd_end_time = *dnd_end;
  u.emoji_code = params.GetString("emoji_code");
  u.emoji_name = params.GetString("emoji_name");
  u.reaction_type = params.GetString("reaction_type");
  auto end = params.GetJsonInt("scheduled_end_time");
  if (!end) return end.error();
  u.scheduled_end_time = *end;
  if (auto text = params.GetString("status_text")) {
    std::string_view trimmed = Trim(*text);
    if (CodePoints(trimmed) > kMaxStatusTextChars) {
      return ApiError::BadRequest("status_text is too long (limit: " +
                                  std::to_string(kMaxStatusTextChars) +
                                  " characters)");
    }
    u.status_text = std::string(trimmed);
  }
  return u;
}

namespace {

// An end time: 0 (none), or after now and at most 366 days ahead.
std::optional<ApiError> CheckEnd(std::string_view name, std::int64_t end,
                                 std::int64_t now_seconds) {
  if (end == 0) return std::nullopt;
  if (end <= now_seconds) {
    return ApiError::BadRequest(std::string(name) +
                                " must be in the future (or 0 for no end)");
  }
  if (end - now_seconds > kMaxStatusEndAheadSeconds) {
    return ApiError::BadRequest(std::string(name) +
                                " must be at most 366 days ahead");
  }
  return std::nullopt;
}

ApiResult<StatusUpdate> CheckExtensions(StatusUpdate u,
                                        std::int64_t now_seconds) {
  if (u.scheduled_end_time) {
    if (auto e = CheckEnd("scheduled_end_time", *u.scheduled_end_time,
                          now_seconds)) {
      return *e;
    }
  }
  if (u.dnd_end_time) {
    if (*u.dnd_end_time != 0 && u.dnd != true) {
      return ApiError::BadRequest("dnd_end_time needs dnd=true");
    }
    if (auto e = CheckEnd("dnd_end_time", *u.dnd_end_time, now_seconds)) {
      return *e;
    }
  }
  return u;
}

ApiResult<StatusUpdate> CheckZulipStatus(StatusUpdate u) {
  if (!u.away && !u.status_text && !u.emoji_name && !u.scheduled_end_time &&
      !u.dnd && !u.dnd_end_time) {
    return ApiError::BadRequest("Client did not pass any new values.");
  }
  if (u.emoji_name && u.emoji_name->empty()) {
    // Clears the emoji, whatever code and type came with the name.
    u.emoji_code = std::string();
    u.reaction_type = std::string("unicode_emoji");
    return u;
  }
  if (!u.emoji_name) {
    if ((u.emoji_code && !u.emoji_code->empty()) ||
        (u.reaction_type && !u.reaction_type->empty())) {
      return ApiError::BadRequest(
          "Client must pass emoji_name if they pass either emoji_code or "
          "reaction_type.");
    }
    // Empty ones change nothing, as in Zulip.
    u.emoji_code.reset();
    u.reaction_type.reset();
    return u;
  }
  const std::string& name = *u.emoji_name;
  if (!u.emoji_code || !u.reaction_type) {
    // Zulip looks the name up: its realm emoji (none here), "zulip", then
    // the unicode names. Without the unicode name table, a name with a
    // code is taken as a unicode emoji, and one without is unknown.
    if (name == "zulip") {
      if (!u.emoji_code) u.emoji_code = std::string("zulip");
      if (!u.reaction_type) u.reaction_type = std::string("zulip_extra_emoji");
    } else if (!u.emoji_code) {
      return ApiError::BadRequest("Emoji '" + name + "' does not exist");
    } else {
      u.reaction_type = std::string("unicode_emoji");
    }
  }
  const std::string& code = *u.emoji_code;
  const std::string& type = *u.reaction_type;
  if (type == "realm_emoji") {
    return ApiError::BadRequest("Invalid custom emoji.");
  } else if (type == "zulip_extra_emoji") {
    if (code != "zulip") return ApiError::BadRequest("Invalid emoji code.");
    if (name != code) return ApiError::BadRequest("Invalid emoji name.");
  } else if (type == "unicode_emoji") {
    if (!ValidUnicodeEmojiCode(code)) {
      return ApiError::BadRequest("Invalid emoji code.");
    }
  } else {
    return ApiError::BadRequest("Invalid emoji type.");
  }
  return u;
}

}  // namespace

ApiResult<StatusUpdate> CheckStatusUpdate(StatusUpdate u,
                                          std::int64_t now_seconds) {
  auto zulip = CheckZulipStatus(std::move(u));
  if (!zulip) return zulip;
  return CheckExtensions(std::move(*zulip), now_seconds);
}

void AppendStatusObject(std::string& out, const store::UserStatus& status,
                        bool presence_enabled, StatusShape shape) {
  out.push_back('{');
  bool first = true;
  auto key = [&](std::string_view k) {
    if (!first) out.push_back(',');
    first = false;
    AppendJsonString(out, k);
    out.push_back(':');
  };
  if (!presence_enabled) {
    key("away");
    out.append("true");
  }
  if (!status.status_text.empty()) {
    key("status_text");
    AppendJsonString(out, status.status_text);
  }
  if (!status.emoji_name.empty()) {
    key("emoji_name");
    AppendJsonString(out, status.emoji_name);
    key("emoji_code");
    AppendJsonString(out, status.emoji_code);
    key("reaction_type");
    AppendJsonString(out, status.reaction_type);
  }
  if (shape == StatusShape::kExtended) {
    if (status.scheduled_end_time != 0) {
      key("scheduled_end_time");
      out.append(std::to_string(status.scheduled_end_time));
    }
    if (status.dnd) {
      key("dnd");
      out.append("true");
      if (status.dnd_end_time != 0) {
        key("dnd_end_time");
        out.append(std::to_string(status.dnd_end_time));
      }
    }
  }
  out.push_back('}');
}

bool StatusSaysNothing(const store::UserStatus& status, bool presence_enabled,
                       StatusShape shape) {
  if (shape == StatusShape::kExtended &&
      (status.dnd || status.scheduled_end_time != 0)) {
    return false;
  }
  return presence_enabled && status.status_text.empty() &&
         status.emoji_name.empty() && status.emoji_code.empty() &&
         status.reaction_type == "unicode_emoji";
}

}  // namespace presence::api
