#include "tools/user_file.h"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <unordered_map>

namespace presence::tools {
namespace {

namespace json = boost::json;

constexpr std::string_view kColumns[] = {"email", "full_name", "role", "is_bot",
                                         "can_access_all_users"};
constexpr std::string_view kRoles[] = {"owner", "administrator", "moderator",
                                       "member", "guest"};

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return std::string(s);
}

bool KnownRole(std::string_view role) {
  for (std::string_view r : kRoles) {
    if (r == role) return true;
  }
  return false;
}

const char* kRoleReason =
    "must be one of owner, administrator, moderator, member, guest";

std::optional<bool> ParseBool(std::string_view text) {
  const std::string v = Lower(text);
  if (v == "true" || v == "yes" || v == "1") return true;
  if (v == "false" || v == "no" || v == "0") return false;
  return std::nullopt;
}

// One CSV record: its fields and the line it starts on.
struct CsvRecord {
  std::size_t line = 0;
  std::vector<std::string> fields;
};

// RFC 4180 records; a blank line is no record. Sets *error for a quote
// left open.
std::vector<CsvRecord> SplitCsv(std::string_view text, RowError* error) {
  std::vector<CsvRecord> out;
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // BOM
  std::size_t line = 1;
  std::size_t i = 0;
  while (i < text.size()) {
    CsvRecord rec;
    rec.line = line;
    std::string field;
    bool quoted_any = false;
    bool end_of_record = false;
    while (!end_of_record) {
      if (i < text.size() && text[i] == '"') {
        quoted_any = true;
        const std::size_t opened = line;
        ++i;
        while (true) {
          if (i >= text.size()) {
            *error = {opened, "", "a quoted field is never closed"};
            return out;
          }
          if (text[i] == '"') {
            if (i + 1 < text.size() && text[i + 1] == '"') {
              field += '"';
              i += 2;
              continue;
            }
            ++i;
            break;
          }
          if (text[i] == '\n') ++line;
          field += text[i++];
        }
      }
      // Up to the next comma or line end (text after a closing quote is
      // kept, as most spreadsheets do).
      while (i < text.size() && text[i] != ',' && text[i] != '\n') {
        if (text[i] != '\r') field += text[i];
        ++i;
      }
      rec.fields.push_back(std::move(field));
      field.clear();
      if (i < text.size() && text[i] == ',') {
        ++i;
        continue;
      }
      if (i < text.size()) {  // '\n'
        ++i;
        ++line;
      }
      end_of_record = true;
    }
    const bool blank =
        rec.fields.size() == 1 && !quoted_any && Trim(rec.fields[0]).empty();
    if (!blank) out.push_back(std::move(rec));
  }
  return out;
}

// Finishes the checks common to both formats: emails present and unique.
void CheckEmails(ParsedUsers& parsed) {
  std::unordered_map<std::string, std::size_t> seen;
  for (const UserRow& row : parsed.rows) {
    if (row.email.empty()) {
      parsed.errors.push_back({row.where, "email", "is required"});
      continue;
    }
    auto [it, fresh] = seen.emplace(Lower(row.email), row.where);
    if (!fresh) {
      parsed.errors.push_back({row.where, "email",
                               "same email as " + std::to_string(it->second) +
                                   " (emails are case-insensitive)"});
    }
  }
}

ParsedUsers ParseCsv(std::string_view text) {
  ParsedUsers parsed;
  RowError open_quote;
  std::vector<CsvRecord> records = SplitCsv(text, &open_quote);
  if (!open_quote.reason.empty()) {
    parsed.errors.push_back(open_quote);
    return parsed;
  }
  if (records.empty()) {
    parsed.errors.push_back({0, "", "no header line (email,full_name,...)"});
    return parsed;
  }
  // Column index of each known name.
  std::vector<int> column_of(std::size(kColumns), -1);
  const CsvRecord& columns = records[0];
  for (std::size_t c = 0; c < columns.fields.size(); ++c) {
    const std::string name = Lower(Trim(columns.fields[c]));
    bool known = false;
    for (std::size_t k = 0; k < std::size(kColumns); ++k) {
      if (name == kColumns[k]) {
        known = true;
        if (column_of[k] >= 0) {
          parsed.errors.push_back({columns.line, name, "column given twice"});
        }
        column_of[k] = static_cast<int>(c);
      }
    }
    if (!known) {
      parsed.errors.push_back(
          {columns.line, name,
           "unknown column (known: email, full_name, role, is_bot, "
           "can_access_all_users)"});
    }
  }
  if (column_of[0] < 0) {
    parsed.errors.push_back({columns.line, "email", "no email column"});
  }
  if (!parsed.errors.empty()) return parsed;
  for (std::size_t r = 1; r < records.size(); ++r) {
    const CsvRecord& rec = records[r];
    if (rec.fields.size() != columns.fields.size()) {
      parsed.errors.push_back({rec.line, "",
                               std::to_string(rec.fields.size()) +
                                   " fields, the header has " +
                                   std::to_string(columns.fields.size())});
      continue;
    }
    auto cell = [&](std::size_t k) -> std::optional<std::string> {
      if (column_of[k] < 0) return std::nullopt;
      // Roles and booleans are trimmed; email and name kept as written.
      std::string v =
          k >= 2 ? Trim(rec.fields[column_of[k]]) : rec.fields[column_of[k]];
      if (v.empty()) return std::nullopt;
      return v;
    };
    UserRow row;
    row.where = rec.line;
    row.email = cell(0).value_or("");
    row.full_name = cell(1);
    if (auto role = cell(2)) {
      if (KnownRole(Lower(*role))) {
        row.role = Lower(*role);
      } else {
        parsed.errors.push_back({rec.line, "role", kRoleReason});
      }
    }
    for (std::size_t k : {std::size_t{3}, std::size_t{4}}) {
      auto v = cell(k);
      if (!v) continue;
      auto b = ParseBool(*v);
      if (!b) {
        parsed.errors.push_back({rec.line, std::string(kColumns[k]),
                                 "must be true or false, not '" + *v + "'"});
        continue;
      }
      (k == 3 ? row.is_bot : row.can_access_all_users) = *b;
    }
    parsed.rows.push_back(std::move(row));
  }
  return parsed;
}

ParsedUsers ParseJson(std::string_view text) {
  ParsedUsers parsed;
  boost::system::error_code ec;
  json::value doc = json::parse(text, ec);
  if (ec) {
    parsed.errors.push_back({0, "", "not JSON: " + ec.message()});
    return parsed;
  }
  const json::array* list = nullptr;
  if (doc.is_array()) {
    list = &doc.as_array();
  } else if (doc.is_object()) {
    auto it = doc.as_object().find("users");
    if (it != doc.as_object().end() && it->value().is_array()) {
      list = &it->value().as_array();
    }
  }
  if (list == nullptr) {
    parsed.errors.push_back(
        {0, "", "want a list of users, or {\"users\": [...]}"});
    return parsed;
  }
  for (std::size_t i = 0; i < list->size(); ++i) {
    const std::size_t where = i + 1;
    if (!(*list)[i].is_object()) {
      parsed.errors.push_back({where, "", "not an object"});
      continue;
    }
    const json::object& o = (*list)[i].as_object();
    UserRow row;
    row.where = where;
    bool ok = true;
    auto fail = [&](std::string_view field, std::string reason) {
      parsed.errors.push_back({where, std::string(field), std::move(reason)});
      ok = false;
    };
    for (const auto& kv : o) {
      const std::string_view key = kv.key();
      const json::value& v = kv.value();
      if (key == "email" || key == "full_name" || key == "role") {
        if (!v.is_string()) {
          fail(key, "not a string");
          continue;
        }
        std::string s(v.as_string());
        if (key == "email") {
          row.email = std::move(s);
        } else if (key == "full_name") {
          row.full_name = std::move(s);
        } else if (KnownRole(s)) {
          row.role = std::move(s);
        } else {
          fail(key, kRoleReason);
        }
      } else if (key == "is_bot" || key == "can_access_all_users") {
        if (!v.is_bool()) {
          fail(key, "not a boolean");
          continue;
        }
        (key == "is_bot" ? row.is_bot : row.can_access_all_users) = v.as_bool();
      } else if (key == "user_id" || key == "is_active") {
        // Written by `export` of the server's listing; ids and activity
        // are the server's, never imported.
      } else {
        fail(key, "unknown field");
      }
    }
    if (ok) parsed.rows.push_back(std::move(row));
  }
  return parsed;
}

// A CSV field, quoted when it must be.
std::string CsvField(std::string_view v) {
  const bool quote = v.find_first_of(",\"\r\n") != std::string_view::npos ||
                     (!v.empty() && (v.front() == ' ' || v.back() == ' '));
  if (!quote) return std::string(v);
  std::string out = "\"";
  for (char c : v) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::optional<UserFileFormat> UserFileFormatOf(std::string_view path) {
  const std::string p = Lower(path);
  if (p.ends_with(".csv")) return UserFileFormat::kCsv;
  if (p.ends_with(".json")) return UserFileFormat::kJson;
  return std::nullopt;
}

ParsedUsers ParseUserFile(std::string_view text, UserFileFormat format) {
  ParsedUsers parsed =
      format == UserFileFormat::kCsv ? ParseCsv(text) : ParseJson(text);
  if (parsed.errors.empty() || parsed.errors.front().where != 0) {
    CheckEmails(parsed);
  }
  return parsed;
}

std::string DescribeRowError(std::string_view file, UserFileFormat format,
                             const RowError& e) {
  std::string out(file);
  if (e.where != 0) {
    // Appended, not "literal" + string: gcc 12 -O3 warns (-Wrestrict) on
    // the inlined operator+ there.
    out += format == UserFileFormat::kCsv ? ":" : ": user ";
    out += std::to_string(e.where);
  }
  out += ": ";
  if (!e.field.empty()) out += e.field + ": ";
  return out + e.reason;
}

std::string FormatUserFile(const std::vector<ExportedUser>& users,
                           UserFileFormat format) {
  std::string out;
  if (format == UserFileFormat::kCsv) {
    out = "email,full_name,role,is_bot,can_access_all_users\n";
    for (const ExportedUser& u : users) {
      out += CsvField(u.email) + "," + CsvField(u.full_name) + "," +
             CsvField(u.role) + "," + (u.is_bot ? "true" : "false") + "," +
             (u.can_access_all_users ? "true" : "false") + "\n";
    }
    return out;
  }
  out = "{\"users\": [";
  for (std::size_t i = 0; i < users.size(); ++i) {
    const ExportedUser& u = users[i];
    json::object o{{"email", u.email},
                   {"full_name", u.full_name},
                   {"role", u.role},
                   {"is_bot", u.is_bot},
                   {"can_access_all_users", u.can_access_all_users}};
    out += (i == 0 ? "\n  " : ",\n  ") + json::serialize(o);
  }
  return out + (users.empty() ? "]}\n" : "\n]}\n");
}

}  // namespace presence::tools
