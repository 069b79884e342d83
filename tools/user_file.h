// User files of `presencectl import` and `export`: an organisation's users
// as CSV or JSON, read into rows that name where each came from, and written
// back. Pure text in and out: no I/O, no server.
//
// CSV (RFC 4180): a header line naming the columns, then one user a line.
// Columns, in any order: email (required), full_name, role, is_bot,
// can_access_all_users. An empty cell, or a column left out, takes the
// server's default (full name: the part of the email before '@'; role
// member; is_bot false; can_access_all_users true). Fields may be quoted
// ("..." with "" for a quote) and then hold commas and line breaks.
// Booleans: true/false, yes/no, 1/0 (any case).
//
// JSON: a list of objects with the same keys (or {"users": [...]}, the shape
// `export` writes), booleans as JSON booleans.
//
// Thread safety: free functions on values.
#ifndef PRESENCE_TOOLS_USER_FILE_H_
#define PRESENCE_TOOLS_USER_FILE_H_

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace presence::tools {

enum class UserFileFormat { kCsv, kJson };

// From a file name's extension (.csv, .json; any case); nullopt otherwise.
std::optional<UserFileFormat> UserFileFormatOf(std::string_view path);

// One user as the file gives it: absent fields are nullopt.
struct UserRow {
  // Where it is: the line its record starts on (CSV) or its position in
  // the list, from 1 (JSON).
  std::size_t where = 0;
  std::string email;
  std::optional<std::string> full_name;
  std::optional<std::string> role;
  std::optional<bool> is_bot;
  std::optional<bool> can_access_all_users;
};

// A bad row: where (as UserRow::where; 0 for the file as a whole), the
// field or column at fault (may be empty) and why.
struct RowError {
  std::size_t where = 0;
  std::string field;
  std::string reason;
};

struct ParsedUsers {
  std::vector<UserRow> rows;
  std::vector<RowError> errors;  // not empty: do not import
};

// Parses `text`. Checks what needs no server: the columns or keys, value
// types, roles, a missing email and the same email twice
// (case-insensitive). The server checks the rest (email and name shapes).
ParsedUsers ParseUserFile(std::string_view text, UserFileFormat format);

// "file.csv:12: role: must be one of ..." or "file.json: user 12: ...".
std::string DescribeRowError(std::string_view file, UserFileFormat format,
                             const RowError& e);

// One user as `export` writes it (never a key).
struct ExportedUser {
  std::string email;
  std::string full_name;
  std::string role;
  bool is_bot = false;
  bool can_access_all_users = true;
};

// The file `export` writes: CSV with a header line, or JSON
// {"users": [...]} with one user a line. Import reads it back unchanged.
std::string FormatUserFile(const std::vector<ExportedUser>& users,
                           UserFileFormat format);

}  // namespace presence::tools

#endif  // PRESENCE_TOOLS_USER_FILE_H_
