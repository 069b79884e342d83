#include "client/user_status.h"

#include <boost/json/value.hpp>
#include <string_view>

namespace presence::client {
namespace {

std::optional<std::string> StringField(const boost::json::object& o,
                                       std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  return std::string(v->as_string());
}

std::optional<std::int64_t> IntField(const boost::json::object& o,
                                     std::string_view key, bool& present) {
  const auto* v = o.if_contains(key);
  present = false;
  if (v == nullptr) return std::nullopt;
  if (v->is_int64()) {
    present = true;
    return v->as_int64();
  }
  if (v->is_uint64()) {
    present = true;
    return static_cast<std::int64_t>(v->as_uint64());
  }
  if (v->is_null()) present = true;  // null: no end, as 0
  return std::nullopt;
}

// 0 (or null) means "no end".
void ApplyEnd(const boost::json::object& o, std::string_view key,
              std::optional<std::int64_t>& end) {
  bool present = false;
  auto v = IntField(o, key, present);
  if (!present) return;
  if (v && *v > 0) {
    end = *v;
  } else {
    end.reset();
  }
}

}  // namespace

void UserStatus::Apply(const boost::json::object& o) {
  if (const auto* v = o.if_contains("away"); v != nullptr && v->is_bool()) {
    away = v->as_bool();
  }
  if (auto t = StringField(o, "status_text")) status_text = std::move(*t);
  if (auto name = StringField(o, "emoji_name")) {
    emoji_name = std::move(*name);
    if (emoji_name.empty()) {
      emoji_code.clear();
      reaction_type.clear();
    } else {
      emoji_code = StringField(o, "emoji_code").value_or("");
      reaction_type = StringField(o, "reaction_type").value_or("unicode_emoji");
    }
  }
  ApplyEnd(o, "scheduled_end_time", scheduled_end_time);
  if (const auto* v = o.if_contains("dnd"); v != nullptr && v->is_bool()) {
    dnd = v->as_bool();
    if (!dnd) dnd_end_time.reset();
  }
  ApplyEnd(o, "dnd_end_time", dnd_end_time);
}

UserStatus UserStatus::FromJson(const boost::json::object& o) {
  UserStatus s;
  s.Apply(o);
  return s;
}

}  // namespace presence::client
