// presencectl: the operator's command line for presenced's admin API
// (src/api/admin_api.h). Each invocation sends one request and prints either
// friendly `key value` lines or, with --json, the server's JSON verbatim.
//
// The parsing of the command line builds a Command (method, path, JSON body
// and a formatter for the answer); main then sends it and turns the answer
// into output and an exit code (see kExit* in tools/admin_client.h).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "presence_version.h"
#include "tools/admin_client.h"
#include "tools/user_file.h"

namespace presence::tools {
namespace {

namespace json = boost::json;
using boost::beast::http::verb;

constexpr char kDefaultServer[] = "http://127.0.0.1:9991";
constexpr char kServerEnv[] = "PRESENCECTL_SERVER";
constexpr char kTokenEnv[] = "PRESENCED_ADMIN_TOKEN";

// Turns a successful answer into the friendly output (whole lines).
using Formatter = std::function<CtlResult<std::string>(const json::object&)>;

// One admin API call, as built from the command line.
struct Command {
  verb method = verb::get;
  std::string path;  // below the server's base path, e.g. "/admin/v1/realms"
  json::object body;
  bool has_body = false;
  Formatter format;
  // Commands of many calls (import, export) run this instead.
  std::function<int(const AdminClient&)> custom;
};

struct GlobalFlags {
  std::string server = kDefaultServer;
  std::string token;
  std::string token_file;
  double timeout_seconds = 10;
  bool json = false;
};

std::string Trim(std::string s) {
  auto space = [](char c) {
    return std::isspace(static_cast<unsigned char>(c)) != 0;
  };
  while (!s.empty() && space(s.back())) s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && space(s[i])) ++i;
  return s.substr(i);
}

std::string RealmPath(std::int64_t realm_id) {
  return "/admin/v1/realms/" + std::to_string(realm_id);
}

std::string UserPath(std::int64_t realm_id, std::int64_t user_id) {
  return RealmPath(realm_id) + "/users/" + std::to_string(user_id);
}

CtlError Unexpected(std::string_view what) {
  return CtlError(kExitServerError,
                  "unexpected answer from the server: " + std::string(what));
}

CtlResult<std::int64_t> IntField(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it != o.end()) {
    if (it->value().is_int64()) return it->value().as_int64();
    if (it->value().is_uint64() && it->value().as_uint64() <= INT64_MAX) {
      return static_cast<std::int64_t>(it->value().as_uint64());
    }
  }
  return Unexpected("no integer '" + std::string(key) + "'");
}

CtlResult<std::string> StringField(const json::object& o,
                                   std::string_view key) {
  auto it = o.find(key);
  if (it == o.end() || !it->value().is_string()) {
    return Unexpected("no string '" + std::string(key) + "'");
  }
  return std::string(it->value().as_string());
}

// Unix seconds as the user would write them: no exponent, no trailing zeros.
std::string FormatSeconds(double s) {
  if (s == std::floor(s) && std::fabs(s) < 1e15) {
    return std::to_string(static_cast<std::int64_t>(s));
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6f", s);
  std::string out = buf;
  while (out.back() == '0') out.pop_back();
  if (out.back() == '.') out.pop_back();
  return out;
}

Formatter Fixed(std::string text) {
  return [text = std::move(text)](
             const json::object&) -> CtlResult<std::string> { return text; };
}

// The realm list as an aligned table; NAME last because it may hold spaces.
CtlResult<std::string> FormatRealmList(const json::object& reply) {
  auto it = reply.find("realms");
  if (it == reply.end() || !it->value().is_array()) {
    return Unexpected("no 'realms' list");
  }
  std::vector<std::array<std::string, 5>> rows;
  rows.push_back({"REALM_ID", "USERS", "PRESENCE", "SUBDOMAIN", "NAME"});
  for (const json::value& v : it->value().as_array()) {
    if (!v.is_object()) return Unexpected("a realm is not an object");
    const json::object& r = v.as_object();
    auto id = IntField(r, "realm_id");
    if (!id) return id.error();
    auto users = IntField(r, "users");
    if (!users) return users.error();
    auto sub = StringField(r, "subdomain");
    if (!sub) return sub.error();
    auto name = StringField(r, "name");
    if (!name) return name.error();
    auto dis = r.find("presence_disabled");
    if (dis == r.end() || !dis->value().is_bool()) {
      return Unexpected("no boolean 'presence_disabled'");
    }
    // A subdomain is [a-z0-9-] only, so "(root)" cannot be a real one.
    rows.push_back({std::to_string(*id), std::to_string(*users),
                    dis->value().as_bool() ? "disabled" : "enabled",
                    sub->empty() ? "(root)" : *sub, *name});
  }
  std::array<std::size_t, 5> width{};
  for (const auto& row : rows) {
    for (std::size_t c = 0; c < row.size(); ++c) {
      width[c] = std::max(width[c], row[c].size());
    }
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line.append(width[c] - row[c].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

// Reads the admin token: --token, else --token-file, else the environment.
CtlResult<std::string> LoadToken(const GlobalFlags& flags, bool token_given) {
  std::string token;
  if (token_given) {
    token = flags.token;
  } else if (!flags.token_file.empty()) {
    std::ifstream in(flags.token_file);
    if (!in) {
      return CtlError(kExitUsage,
                      "cannot read --token-file " + flags.token_file);
    }
    token.assign(std::istreambuf_iterator<char>(in), {});
  } else if (const char* env = std::getenv(kTokenEnv)) {
    token = env;
  }
  // Trimmed the way presenced trims its own copy.
  token = Trim(std::move(token));
  if (token.empty()) {
    return CtlError(kExitUsage,
                    std::string("no admin token: pass --token-file FILE or "
                                "--token TOKEN, or set ") +
                        kTokenEnv);
  }
  for (char c : token) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return CtlError(kExitUsage,
                      "the admin token contains a control character");
    }
  }
  return token;
}

int Fail(const CtlError& e) {
  std::fprintf(stderr, "presencectl: %s\n", e.message.c_str());
  return e.exit_code;
}

// `text` with control characters replaced, so that nothing the server sends
// can move the cursor or recolour the user's terminal.
std::string Printable(std::string_view text) {
  std::string out;
  for (char c : text) {
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  }
  return out;
}

// The first line of a non-JSON body, shortened, for an error message.
std::string Snippet(std::string_view body) {
  return Printable(
      body.substr(0, std::min(body.find_first_of("\r\n"), std::size_t{200})));
}

// Checks an answer: a JSON object with "result":"success" and a 2xx status,
// or the error the user sees (the server's own `msg` when there is one).
CtlResult<json::object> Interpret(const HttpReply& reply,
                                  const std::optional<json::object>& answer) {
  const bool ok_status = reply.status >= 200 && reply.status < 300;
  const std::string http = "(HTTP " + std::to_string(reply.status) + ")";
  if (!answer) {
    if (ok_status) return Unexpected("not a JSON object " + http);
    std::string snippet = Snippet(reply.body);
    return CtlError(
        kExitServerError,
        "server error " + http + (snippet.empty() ? "" : ": " + snippet));
  }
  auto result = answer->find("result");
  const bool success = result != answer->end() && result->value().is_string() &&
                       result->value().as_string() == "success";
  if (ok_status && success) return *answer;
  auto msg = answer->find("msg");
  std::string text = msg != answer->end() && msg->value().is_string() &&
                             !msg->value().as_string().empty()
                         ? Printable(msg->value().as_string())
                         : "request failed";
  return CtlError(kExitServerError, text + " " + http);
}

// Sends `cmd`, prints the outcome and returns the exit code. With
// `raw_json`, any JSON answer (error answers too) goes to stdout verbatim.
int Run(const AdminClient& client, const Command& cmd, bool raw_json) {
  auto reply = client.Call(cmd.method, cmd.path,
                           cmd.has_body ? json::serialize(cmd.body) : "");
  if (!reply) return Fail(reply.error());

  std::optional<json::object> answer;
  boost::system::error_code ec;
  json::value v = json::parse(reply->body, ec);
  if (!ec && v.is_object()) answer = std::move(v.as_object());

  std::string out;
  if (raw_json && answer) {
    out = reply->body;
    if (out.empty() || out.back() != '\n') out += '\n';
  }
  auto checked = Interpret(*reply, answer);
  if (checked && !raw_json) {
    auto text = cmd.format(*checked);
    if (!text) return Fail(text.error());
    out = std::move(*text);
  }
  std::fputs(out.c_str(), stdout);
  if (std::fflush(stdout) != 0) {
    return Fail(CtlError(kExitServerError, "cannot write to stdout"));
  }
  if (!checked) return Fail(checked.error());
  return kExitOk;
}

// Arguments of every subcommand; only the one that runs is filled in.
struct Args {
  std::int64_t realm_id = 0;
  std::int64_t user_id = 0;
  std::string subdomain;
  std::string name;
  std::string flag;  // "true" or "false"
  std::string email;
  std::string full_name;
  std::string role;
  bool bot = false;
  bool limited_access = false;
  std::string presence_enabled;
  std::vector<std::int64_t> visible;
  double now = 0;
};

const std::vector<std::string> kRoles = {"owner", "administrator", "moderator",
                                         "member", "guest"};
const std::vector<std::string> kBools = {"true", "false"};

CLI::Option* AddId(CLI::App* sub, const std::string& name, std::int64_t& var,
                   const std::string& help) {
  return sub->add_option(name, var, help)
      ->required()
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{INT64_MAX}));
}

void AddRealmCommands(CLI::App& app, Args& a, Command& cmd) {
  CLI::App* realm =
      app.add_subcommand("realm", "manage realms (organisations)");
  realm->require_subcommand(1);

  CLI::App* create =
      realm->add_subcommand("create", "create a realm; prints realm_id");
  create
      ->add_option("SUBDOMAIN", a.subdomain,
                   "subdomain (\"\" for the root realm)")
      ->required();
  create->add_option("NAME", a.name, "display name")->required();
  create->callback([&] {
    cmd.method = verb::post;
    cmd.path = "/admin/v1/realms";
    cmd.body = {{"subdomain", a.subdomain}, {"name", a.name}};
    cmd.has_body = true;
    cmd.format = [](const json::object& o) -> CtlResult<std::string> {
      auto id = IntField(o, "realm_id");
      if (!id) return id.error();
      return "realm_id " + std::to_string(*id) + "\n";
    };
  });

  CLI::App* list = realm->add_subcommand("list", "list realms");
  list->callback([&] {
    cmd.method = verb::get;
    cmd.path = "/admin/v1/realms";
    cmd.format = FormatRealmList;
  });

  CLI::App* disabled = realm->add_subcommand(
      "presence-disabled", "turn presence off (true) or on (false) realm-wide");
  AddId(disabled, "REALM_ID", a.realm_id, "realm id");
  disabled->add_option("VALUE", a.flag, "true or false")
      ->required()
      ->check(CLI::IsMember(kBools));
  disabled->callback([&] {
    cmd.method = verb::patch;
    cmd.path = RealmPath(a.realm_id);
    cmd.body = {{"presence_disabled", a.flag == "true"}};
    cmd.has_body = true;
    cmd.format = Fixed("presence_disabled " + a.flag + "\n");
  });
}

void AddUserCommands(CLI::App& app, Args& a, Command& cmd) {
  CLI::App* user = app.add_subcommand("user", "manage users");
  user->require_subcommand(1);

  CLI::App* create = user->add_subcommand(
      "create", "create a user; prints user_id and api_key (shown only once)");
  AddId(create, "REALM_ID", a.realm_id, "realm id");
  create->add_option("EMAIL", a.email, "login email")->required();
  create->add_option("--full-name", a.full_name,
                     "display name (default: the part before '@')");
  create->add_option("--role", a.role, "role (default: member)")
      ->check(CLI::IsMember(kRoles));
  create->add_flag("--bot", a.bot, "the user is a bot");
  create->add_flag("--limited-access", a.limited_access,
                   "with --role guest: the user sees only the users granted "
                   "with `access set` (Zulip limits guests only)");
  create->callback([&, create] {
    cmd.method = verb::post;
    cmd.path = RealmPath(a.realm_id) + "/users";
    cmd.body = {{"email", a.email},
                {"is_bot", a.bot},
                {"can_access_all_users", !a.limited_access}};
    if (create->count("--full-name")) cmd.body["full_name"] = a.full_name;
    if (create->count("--role")) cmd.body["role"] = a.role;
    cmd.has_body = true;
    cmd.format = [](const json::object& o) -> CtlResult<std::string> {
      auto id = IntField(o, "user_id");
      if (!id) return id.error();
      auto key = StringField(o, "api_key");
      if (!key) return key.error();
      return "user_id " + std::to_string(*id) + "\napi_key " + *key + "\n";
    };
  });

  for (bool active : {false, true}) {
    CLI::App* sub = user->add_subcommand(
        active ? "reactivate" : "deactivate",
        active ? "reactivate a user" : "deactivate a user (they go offline)");
    AddId(sub, "REALM_ID", a.realm_id, "realm id");
    AddId(sub, "USER_ID", a.user_id, "user id");
    sub->callback([&, active] {
      cmd.method = verb::patch;
      cmd.path = UserPath(a.realm_id, a.user_id);
      cmd.body = {{"is_active", active}};
      cmd.has_body = true;
      cmd.format = Fixed(active ? "is_active true\n" : "is_active false\n");
    });
  }

  CLI::App* set = user->add_subcommand("set", "change a user's settings");
  AddId(set, "REALM_ID", a.realm_id, "realm id");
  AddId(set, "USER_ID", a.user_id, "user id");
  set->add_option("--role", a.role, "new role")->check(CLI::IsMember(kRoles));
  set->add_option("--presence-enabled", a.presence_enabled,
                  "whether others see this user's presence (true or false)")
      ->check(CLI::IsMember(kBools));
  set->callback([&, set] {
    const bool role = set->count("--role") > 0;
    const bool enabled = set->count("--presence-enabled") > 0;
    if (!role && !enabled) {
      throw CLI::ValidationError("user set",
                                 "give --role and/or --presence-enabled");
    }
    cmd.method = verb::patch;
    cmd.path = UserPath(a.realm_id, a.user_id);
    std::string text;
    if (role) {
      cmd.body["role"] = a.role;
      text += "role " + a.role + "\n";
    }
    if (enabled) {
      cmd.body["presence_enabled"] = a.presence_enabled == "true";
      text += "presence_enabled " + a.presence_enabled + "\n";
    }
    cmd.has_body = true;
    cmd.format = Fixed(std::move(text));
  });
}

void AddAccessCommands(CLI::App& app, Args& a, Command& cmd) {
  CLI::App* access = app.add_subcommand(
      "access", "who a limited-access user may see (--limited-access)");
  access->require_subcommand(1);
  CLI::App* set = access->add_subcommand(
      "set", "replace the list of users VIEWER_ID may see");
  AddId(set, "REALM_ID", a.realm_id, "realm id");
  AddId(set, "VIEWER_ID", a.user_id, "the viewing user");
  set->add_option("VISIBLE_ID", a.visible, "users the viewer may see")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{INT64_MAX}));
  set->callback([&] {
    cmd.method = verb::post;
    cmd.path = RealmPath(a.realm_id) + "/access";
    json::array visible;
    std::string text = "visible";
    for (std::int64_t id : a.visible) {
      visible.push_back(id);
      text += " " + std::to_string(id);
    }
    if (a.visible.empty()) text += " none";
    cmd.body = {{"viewer", a.user_id}, {"visible", std::move(visible)}};
    cmd.has_body = true;
    cmd.format = Fixed(text + "\n");
  });
}

void AddClockCommands(CLI::App& app, Args& a, Command& cmd) {
  CLI::App* clock = app.add_subcommand(
      "clock", "the test clock (presenced --test-clock only)");
  clock->require_subcommand(1);
  CLI::App* set =
      clock->add_subcommand("set", "set the server's presence clock");
  set->add_option("UNIX_SECONDS", a.now, "seconds since 1970")
      ->required()
      ->check(CLI::Range(0.0, 1e11));
  set->callback([&] {
    cmd.method = verb::post;
    cmd.path = "/admin/v1/clock";
    if (a.now == std::floor(a.now)) {
      cmd.body = {{"now", static_cast<std::int64_t>(a.now)}};
    } else {
      cmd.body = {{"now", a.now}};
    }
    cmd.has_body = true;
    cmd.format = [now =
                      a.now](const json::object& o) -> CtlResult<std::string> {
      auto it = o.find("now");
      double shown = it != o.end() && it->value().is_number()
                         ? it->value().to_number<double>()
                         : now;
      return "now " + FormatSeconds(shown) + "\n";
    };
  });
}

// --- Bulk onboarding: import and export -------------------------------------

struct BulkArgs {
  std::string file;
  std::string format;  // "", "csv" or "json"
  std::string keys_file;
  bool overwrite_keys = false;
  bool dry_run = false;
  std::size_t batch_size = 1000;
  std::string output;
};

// A progress bar on stderr, drawn only when stderr is a terminal.
class Progress {
 public:
  explicit Progress(std::size_t total) : total_(total), tty_(isatty(2) == 1) {}
  void Show(std::string_view phase, std::size_t done) const {
    if (!tty_ || total_ == 0) return;
    constexpr std::size_t kWidth = 30;
    const std::size_t filled = done * kWidth / total_;
    std::string bar(filled, '#');
    bar.append(kWidth - filled, '.');
    std::fprintf(stderr, "\r%.*s [%s] %zu/%zu %3zu%%",
                 static_cast<int>(phase.size()), phase.data(), bar.c_str(),
                 done, total_, done * 100 / total_);
    std::fflush(stderr);
  }
  // Clears the bar's line.
  void Done() const {
    if (!tty_ || total_ == 0) return;
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
  }

 private:
  const std::size_t total_;
  const bool tty_;
};

CtlResult<std::string> ReadInput(const std::string& path) {
  std::string text;
  if (path == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), {});
    return text;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return CtlError(kExitUsage,
                    "cannot read " + path + ": " + std::strerror(errno));
  }
  text.assign(std::istreambuf_iterator<char>(in), {});
  return text;
}

CtlResult<UserFileFormat> ChooseFormat(const std::string& flag,
                                       const std::string& path) {
  if (flag == "csv") return UserFileFormat::kCsv;
  if (flag == "json") return UserFileFormat::kJson;
  if (auto f = UserFileFormatOf(path)) return *f;
  if (path == "-" || path.empty()) return UserFileFormat::kCsv;
  return CtlError(kExitUsage, "cannot tell the format of " + path +
                                  ": name it .csv or .json, or pass --format");
}

// One call to the batch endpoint; the answer as JSON (whatever its status)
// with the status, or an error when there is no JSON answer.
struct BatchReply {
  unsigned status = 0;
  json::object body;
};
CtlResult<BatchReply> CallBatch(const AdminClient& client,
                                std::int64_t realm_id,
                                std::span<const UserRow> rows, bool dry_run) {
  json::array users;
  users.reserve(rows.size());
  for (const UserRow& r : rows) {
    json::object o{{"email", r.email}};
    if (r.full_name) o["full_name"] = *r.full_name;
    if (r.role) o["role"] = *r.role;
    if (r.is_bot) o["is_bot"] = *r.is_bot;
    if (r.can_access_all_users) {
      o["can_access_all_users"] = *r.can_access_all_users;
    }
    users.push_back(std::move(o));
  }
  json::object body{{"users", std::move(users)}, {"dry_run", dry_run}};
  auto reply = client.Call(verb::post, RealmPath(realm_id) + "/users:batch",
                           json::serialize(body));
  if (!reply) return reply.error();
  boost::system::error_code ec;
  json::value v = json::parse(reply->body, ec);
  if (ec || !v.is_object()) {
    return Interpret(*reply, std::nullopt).error();
  }
  return BatchReply{reply->status, std::move(v.as_object())};
}

struct Counts {
  std::size_t created = 0, updated = 0, unchanged = 0, failed = 0;
};

void PrintSummary(const Counts& c, bool dry_run) {
  std::string out;
  if (dry_run) out += "dry_run true (nothing was applied)\n";
  out += "created " + std::to_string(c.created) + "\nupdated " +
         std::to_string(c.updated) + "\nunchanged " +
         std::to_string(c.unchanged) + "\nfailed " + std::to_string(c.failed) +
         "\n";
  std::fputs(out.c_str(), stdout);
  std::fflush(stdout);
}

void PrintRowErrors(const std::string& file, UserFileFormat format,
                    std::vector<RowError> errors) {
  std::sort(
      errors.begin(), errors.end(),
      [](const RowError& a, const RowError& b) { return a.where < b.where; });
  constexpr std::size_t kShown = 50;
  for (std::size_t i = 0; i < errors.size() && i < kShown; ++i) {
    std::fprintf(stderr, "presencectl: %s\n",
                 Printable(DescribeRowError(file, format, errors[i])).c_str());
  }
  if (errors.size() > kShown) {
    std::fprintf(stderr, "presencectl: ... and %zu more\n",
                 errors.size() - kShown);
  }
}

// How many distinct rows `errors` name.
std::size_t RowsIn(const std::vector<RowError>& errors) {
  std::vector<std::size_t> rows;
  for (const RowError& e : errors) rows.push_back(e.where);
  std::sort(rows.begin(), rows.end());
  return std::unique(rows.begin(), rows.end()) - rows.begin();
}

int Import(const AdminClient& client, std::int64_t realm_id,
           const BulkArgs& b) {
  auto format = ChooseFormat(b.format, b.file);
  if (!format) return Fail(format.error());
  const std::string name = b.file == "-" ? "<stdin>" : b.file;
  if (!b.dry_run && b.keys_file.empty()) {
    return Fail(CtlError(kExitUsage,
                         "--keys-file FILE is required: the new users' API "
                         "keys are written there (or pass --dry-run)"));
  }
  if (!b.dry_run && !b.overwrite_keys) {
    struct stat st;
    if (lstat(b.keys_file.c_str(), &st) == 0) {
      return Fail(CtlError(kExitUsage, "refusing to overwrite " + b.keys_file +
                                           " (pass --overwrite-keys)"));
    }
  }
  auto text = ReadInput(b.file);
  if (!text) return Fail(text.error());
  ParsedUsers parsed = ParseUserFile(*text, *format);
  const std::vector<UserRow>& rows = parsed.rows;
  if (!parsed.errors.empty()) {
    PrintRowErrors(name, *format, parsed.errors);
    Counts c;
    c.failed = RowsIn(parsed.errors);
    PrintSummary(c, true);
    return Fail(
        CtlError(kExitServerError, "nothing was imported: fix the rows above"));
  }
  Progress progress(rows.size());
  const std::size_t step = std::max<std::size_t>(1, b.batch_size);

  // Pass 1: the server checks every row (dry run), so that a bad row
  // anywhere stops the import before anything is applied.
  std::vector<RowError> rejected;
  Counts would;
  for (std::size_t at = 0; at < rows.size(); at += step) {
    const std::size_t n = std::min(step, rows.size() - at);
    auto reply = CallBatch(client, realm_id,
                           std::span<const UserRow>(rows).subspan(at, n),
                           /*dry_run=*/true);
    if (!reply) {
      progress.Done();
      return Fail(reply.error());
    }
    auto errors = reply->body.find("errors");
    if (reply->status == 400 && errors != reply->body.end() &&
        errors->value().is_array()) {
      for (const json::value& e : errors->value().as_array()) {
        if (!e.is_object()) continue;
        const json::object& o = e.as_object();
        auto index = IntField(o, "index");
        auto field = StringField(o, "field");
        auto reason = StringField(o, "reason");
        if (!index || !field || !reason || *index < 0 ||
            static_cast<std::size_t>(*index) >= n) {
          continue;
        }
        rejected.push_back({rows[at + *index].where, *field, *reason});
      }
    } else {
      HttpReply raw{reply->status, json::serialize(reply->body)};
      auto checked = Interpret(raw, reply->body);
      if (!checked) {
        progress.Done();
        return Fail(checked.error());
      }
      for (auto [key, count] : {std::pair{"created", &would.created},
                                std::pair{"updated", &would.updated},
                                std::pair{"unchanged", &would.unchanged}}) {
        auto v = IntField(*checked, key);
        if (v) *count += static_cast<std::size_t>(*v);
      }
    }
    progress.Show("checking ", at + n);
  }
  progress.Done();
  if (!rejected.empty()) {
    PrintRowErrors(name, *format, rejected);
    Counts c;
    c.failed = RowsIn(rejected);
    PrintSummary(c, true);
    return Fail(
        CtlError(kExitServerError, "nothing was imported: fix the rows above"));
  }
  if (b.dry_run) {
    PrintSummary(would, true);
    return kExitOk;
  }

  // Pass 2: apply, writing each new key as soon as its batch is answered.
  const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW |
                    (b.overwrite_keys ? O_TRUNC : O_EXCL);
  const int fd = ::open(b.keys_file.c_str(), flags, 0600);
  if (fd < 0) {
    return Fail(CtlError(kExitUsage, "cannot create " + b.keys_file + ": " +
                                         std::strerror(errno)));
  }
  // An existing file reused with --overwrite-keys keeps no wider mode.
  if (::fchmod(fd, 0600) != 0) {
    ::close(fd);
    return Fail(CtlError(kExitUsage, "cannot chmod " + b.keys_file + ": " +
                                         std::strerror(errno)));
  }
  auto write_all = [fd](std::string_view data) {
    while (!data.empty()) {
      ssize_t w = ::write(fd, data.data(), data.size());
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(w));
    }
    return true;
  };
  auto finish_keys = [&]() {
    const bool ok = ::fsync(fd) == 0;
    return ::close(fd) == 0 && ok;
  };
  if (!write_all("email,user_id,api_key\n")) {
    finish_keys();
    return Fail(CtlError(kExitServerError, "cannot write " + b.keys_file));
  }
  Counts done;
  for (std::size_t at = 0; at < rows.size(); at += step) {
    const std::size_t n = std::min(step, rows.size() - at);
    auto reply = CallBatch(client, realm_id,
                           std::span<const UserRow>(rows).subspan(at, n),
                           /*dry_run=*/false);
    CtlResult<json::object> checked = CtlError();
    if (reply) {
      HttpReply raw{reply->status, json::serialize(reply->body)};
      checked = Interpret(raw, reply->body);
    } else {
      checked = reply.error();
    }
    if (!checked) {
      progress.Done();
      finish_keys();
      done.failed = rows.size() - at;
      PrintSummary(done, false);
      const std::string from =
          (*format == UserFileFormat::kCsv ? "line " : "user ") +
          std::to_string(rows[at].where);
      return Fail(CtlError(
          checked.error().exit_code,
          checked.error().message + "\npresencectl: the " +
              std::to_string(rows.size() - at) + " users from " + from +
              " of " + name +
              " on were not imported; the keys of users "
              "created before are in " +
              b.keys_file +
              ". Running the same import again finishes it (users already "
              "imported come back unchanged)."));
    }
    auto users = checked->find("users");
    if (users == checked->end() || !users->value().is_array() ||
        users->value().as_array().size() != n) {
      progress.Done();
      finish_keys();
      return Fail(Unexpected("no 'users' list of the batch's size"));
    }
    std::string lines;
    for (const json::value& v : users->value().as_array()) {
      if (!v.is_object()) continue;
      const json::object& u = v.as_object();
      auto outcome = StringField(u, "outcome");
      if (!outcome) continue;
      if (*outcome == "created") {
        ++done.created;
        auto email = StringField(u, "email");
        auto id = IntField(u, "user_id");
        auto key = StringField(u, "api_key");
        if (email && id && key) {
          lines += *email + "," + std::to_string(*id) + "," + *key + "\n";
        }
      } else if (*outcome == "updated") {
        ++done.updated;
      } else {
        ++done.unchanged;
      }
    }
    if (!write_all(lines)) {
      progress.Done();
      finish_keys();
      return Fail(CtlError(
          kExitServerError,
          "cannot write " + b.keys_file + ": the keys of this batch are lost"));
    }
    progress.Show("importing", at + n);
  }
  progress.Done();
  if (!finish_keys()) {
    return Fail(CtlError(kExitServerError, "cannot write " + b.keys_file));
  }
  PrintSummary(done, false);
  return kExitOk;
}

int Export(const AdminClient& client, std::int64_t realm_id,
           const BulkArgs& b) {
  auto format = ChooseFormat(b.format, b.output);
  if (!format) return Fail(format.error());
  auto reply = client.Call(verb::get, RealmPath(realm_id) + "/users");
  if (!reply) return Fail(reply.error());
  std::optional<json::object> answer;
  boost::system::error_code ec;
  json::value v = json::parse(reply->body, ec);
  if (!ec && v.is_object()) answer = std::move(v.as_object());
  auto checked = Interpret(*reply, answer);
  if (!checked) return Fail(checked.error());
  auto list = checked->find("users");
  if (list == checked->end() || !list->value().is_array()) {
    return Fail(Unexpected("no 'users' list"));
  }
  std::vector<ExportedUser> users;
  for (const json::value& item : list->value().as_array()) {
    if (!item.is_object()) return Fail(Unexpected("a user is not an object"));
    const json::object& o = item.as_object();
    ExportedUser u;
    auto email = StringField(o, "email");
    auto full_name = StringField(o, "full_name");
    auto role = StringField(o, "role");
    auto bot = o.find("is_bot");
    auto all = o.find("can_access_all_users");
    if (!email || !full_name || !role || bot == o.end() ||
        !bot->value().is_bool() || all == o.end() || !all->value().is_bool()) {
      return Fail(Unexpected("a user without its fields"));
    }
    u.email = *email;
    u.full_name = *full_name;
    u.role = *role;
    u.is_bot = bot->value().as_bool();
    u.can_access_all_users = all->value().as_bool();
    users.push_back(std::move(u));
  }
  const std::string text = FormatUserFile(users, *format);
  if (b.output.empty() || b.output == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
    if (std::fflush(stdout) != 0) {
      return Fail(CtlError(kExitServerError, "cannot write to stdout"));
    }
    return kExitOk;
  }
  // Names and emails are personal data: readable by the operator only.
  const int fd =
      ::open(b.output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Fail(CtlError(
        kExitUsage, "cannot create " + b.output + ": " + std::strerror(errno)));
  }
  std::string_view rest = text;
  while (!rest.empty()) {
    ssize_t w = ::write(fd, rest.data(), rest.size());
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      ::close(fd);
      return Fail(CtlError(kExitServerError, "cannot write " + b.output));
    }
    rest.remove_prefix(static_cast<std::size_t>(w));
  }
  if (::close(fd) != 0) {
    return Fail(CtlError(kExitServerError, "cannot write " + b.output));
  }
  return kExitOk;
}

void AddBulkCommands(CLI::App& app, Args& a, BulkArgs& b, Command& cmd) {
  const std::vector<std::string> formats = {"csv", "json"};
  CLI::App* import = app.add_subcommand(
      "import",
      "create or update a realm's users from a CSV or JSON file, "
      "idempotent by email; new API keys go to --keys-file");
  AddId(import, "REALM_ID", a.realm_id, "realm id");
  import->add_option("FILE", b.file, "users file (.csv or .json; - for stdin)")
      ->required();
  import->add_option("--format", b.format, "csv or json (default: from FILE)")
      ->check(CLI::IsMember(formats));
  import->add_option("--keys-file", b.keys_file,
                     "write the new users' API keys here (created with mode "
                     "0600; an existing file is refused)");
  import->add_flag("--overwrite-keys", b.overwrite_keys,
                   "replace an existing --keys-file");
  import->add_flag("--dry-run", b.dry_run,
                   "check every row and count what would change; apply "
                   "nothing");
  import
      ->add_option("--batch-size", b.batch_size,
                   "users per request to the server")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{10000}));
  import->callback([&] {
    cmd.custom = [&](const AdminClient& client) {
      return Import(client, a.realm_id, b);
};
}  // namespace
);

CLI::App* exp = app.add_subcommand(
    "export", "write a realm's users as CSV or JSON (never API keys)");
AddId(exp, "REALM_ID", a.realm_id, "realm id");
exp->add_option("--format", b.format,
                "csv or json (default: from --output, else csv)")
    ->check(CLI::IsMember(formats));
exp->add_option("--output,-o", b.output,
                "write here (mode 0600) instead of stdout");
exp->callback([&] {
  cmd.custom = [&](const AdminClient& client) {
    return Export(client, a.realm_id, b);
  };
});
}  // namespace presence::tools

int Main(int argc, char** argv) {
  CLI::App app{
      "presencectl: administer a presenced server through its admin API.\n"
      "Exit codes: 0 ok, 1 the server answered with an error, 2 usage "
      "error,\n3 the server could not be reached."};
  // Global flags are accepted after the subcommand too.
  app.fallthrough();
  app.require_subcommand(1);
  app.set_version_flag("--version", VersionLine("presencectl"));

  GlobalFlags flags;
  app.add_option("--server", flags.server, "presenced base URL (http:// only)")
      ->envname(kServerEnv)
      ->capture_default_str();
  CLI::Option* token = app.add_option(
      "--token", flags.token,
      "admin token (visible to other local users in ps; prefer --token-file "
      "or env PRESENCED_ADMIN_TOKEN)");
  CLI::Option* token_file = app.add_option("--token-file", flags.token_file,
                                           "file holding the admin token");
  token->excludes(token_file);
  app.add_option("--timeout", flags.timeout_seconds,
                 "seconds to wait for the server")
      ->check(CLI::Range(0.001, 3600.0))
      ->capture_default_str();
  app.add_flag("--json", flags.json,
               "print the server's JSON answer instead of key value lines");

  Args args;
  Command cmd;
  AddRealmCommands(app, args, cmd);
  AddUserCommands(app, args, cmd);
  AddAccessCommands(app, args, cmd);
  AddClockCommands(app, args, cmd);
  BulkArgs bulk;
  AddBulkCommands(app, args, bulk, cmd);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help exits 0; every other parse error is a usage error.
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }

  auto server = ParseServerUrl(flags.server);
  if (!server) return Fail(server.error());
  auto secret = LoadToken(flags, token->count() > 0);
  if (!secret) return Fail(secret.error());
  AdminClient client(
      std::move(*server), std::move(*secret),
      std::chrono::milliseconds(std::llround(flags.timeout_seconds * 1000)));
  if (cmd.custom) return cmd.custom(client);
  return Run(client, cmd, flags.json);
}

}  // namespace
}  // namespace presence::tools

int main(int argc, char** argv) {
  try {
    return presence::tools::Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "presencectl: internal error: %s\n", e.what());
    return presence::tools::kExitServerError;
  }
}
