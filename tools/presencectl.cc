// presencectl: the operator's command line for presenced's admin API
// (src/api/admin_api.h). Each invocation sends one request and prints either
// friendly `key value` lines or, with --json, the server's JSON verbatim.
//
// The parsing of the command line builds a Command (method, path, JSON body
// and a formatter for the answer); main then sends it and turns the answer
// into output and an exit code (see kExit* in tools/admin_client.h).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "presence_version.h"
#include "tools/admin_client.h"

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
