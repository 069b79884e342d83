// PresencedProcess: runs the real presenced binary for integration tests,
// on 127.0.0.1 with --test-clock and a data directory of the test's own.
//
// Start() spawns PRESENCED_BINARY (a compile definition of every test
// target) with PRESENCED_ADMIN_TOKEN set, waits for its one stdout line
// `listening on http://HOST:PORT`, and returns the URL. The destructor sends
// SIGTERM and waits. stderr goes to <data>/presenced.stderr.
//
// Call() is a blocking HTTP call on a private io_context through the SDK's
// own HttpTransport; Admin() adds the bearer token.
#ifndef PRESENCE_TESTS_CLIENT_PRESENCED_PROCESS_H_
#define PRESENCE_TESTS_CLIENT_PRESENCED_PROCESS_H_

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "client/http_transport.h"
#include "util/crypto.h"

extern char** environ;

namespace presence::client::testing {

inline constexpr char kAdminToken[] = "integration-test-admin-token-0123456789";

// A fresh directory under TMPDIR, removed with the object.
class TempDir {
 public:
  TempDir() {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "presence-client-XXXXXX")
            .string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// One blocking request to `url` (http://host:port).
inline Result<HttpResponse> Call(const std::string& url, HttpRequest req) {
  boost::asio::io_context ioc;
  auto transport = HttpTransport::Create(ioc.get_executor(), url);
  if (!transport) return transport.error();
  Result<HttpResponse> out =
      make_error_code(boost::system::errc::operation_canceled);
  (*transport)->Send(std::move(req), [&](Result<HttpResponse> r) {
    out = std::move(r);
  });
  ioc.run();
  return out;
}

inline Result<boost::json::value> Admin(const std::string& url,
                                        std::string method, std::string path,
                                        const boost::json::value& body) {
  HttpRequest req;
  req.method = std::move(method);
  req.target = "/admin/v1" + path;
  req.headers.emplace_back("Authorization",
                           std::string("Bearer ") + kAdminToken);
  req.headers.emplace_back("Content-Type", "application/json");
  req.body = boost::json::serialize(body);
  auto r = Call(url, std::move(req));
  if (!r) return r.error();
  if (r->status != 200) return make_error_code(Errc::kInvalidArgument);
  boost::system::error_code ec;
  auto v = boost::json::parse(r->body, ec);
  if (ec) return ec;
  return v;
}

// An API call as `email`:`key`, form-encoded body (or query for GET/DELETE).
inline Result<HttpResponse> Api(const std::string& url, std::string method,
                                std::string path, const std::string& email,
                                const std::string& key, std::string form = "") {
  HttpRequest req;
  req.method = std::move(method);
  req.target = "/api/v1" + path;
  req.headers.emplace_back("Authorization",
                           "Basic " + Base64Encode(email + ":" + key));
  if (req.method == "GET" || req.method == "DELETE") {
    if (!form.empty()) req.target += "?" + form;
  } else {
    req.headers.emplace_back("Content-Type",
                             "application/x-www-form-urlencoded");
    req.body = std::move(form);
  }
  return Call(url, std::move(req));
}

class PresencedProcess {
 public:
  // Empty on failure, with the reason in *error.
  static std::unique_ptr<PresencedProcess> Start(
      const std::string& data_dir, std::string* error,
      const std::string& listen = "127.0.0.1:0",
      const std::vector<std::string>& extra_args = {}) {
    std::unique_ptr<PresencedProcess> p(new PresencedProcess);
    int out[2];
    if (pipe(out) != 0) {
      *error = "pipe failed";
      return nullptr;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    posix_spawn_file_actions_addclose(&fa, out[1]);
    const std::string log = data_dir + "/presenced.stderr";
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, log.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    std::vector<std::string> args = {
        PRESENCED_BINARY, "--listen",     listen,      "--data",
        data_dir,         "--test-clock", "--threads", "2"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::string_view(*e).starts_with("PRESENCED_ADMIN_TOKEN=")) continue;
      env_strings.emplace_back(*e);
    }
    env_strings.push_back(std::string("PRESENCED_ADMIN_TOKEN=") + kAdminToken);
    std::vector<char*> envp;
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    const int rc = posix_spawn(&p->pid_, PRESENCED_BINARY, &fa, nullptr,
                               argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    if (rc != 0) {
      close(out[0]);
      *error = "cannot spawn " + std::string(PRESENCED_BINARY);
      p->pid_ = -1;
      return nullptr;
    }
    p->stdout_fd_ = out[0];
    // The one line: "listening on http://127.0.0.1:PORT".
    std::string line;
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (line.find('\n') == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd pfd{p->stdout_fd_, POLLIN, 0};
      if (left.count() <= 0 ||
          poll(&pfd, 1, static_cast<int>(left.count())) <= 0) {
        *error = "presenced did not say where it listens (see " + log + ")";
        return nullptr;
      }
      char buf[256];
      const ssize_t n = read(p->stdout_fd_, buf, sizeof buf);
      if (n <= 0) {
        *error = "presenced exited at start (see " + log + ")";
        return nullptr;
      }
      line.append(buf, static_cast<std::size_t>(n));
    }
    constexpr std::string_view kPrefix = "listening on ";
    const auto at = line.find(kPrefix);
    if (at == std::string::npos) {
      *error = "unexpected first line: " + line;
      return nullptr;
    }
    p->url_ = line.substr(at + kPrefix.size());
    p->url_ = p->url_.substr(0, p->url_.find('\n'));
    p->port_ = std::stoi(p->url_.substr(p->url_.rfind(':') + 1));
    return p;
  }

  ~PresencedProcess() { Stop(); }

  // Sends `sig` (SIGTERM: clean shutdown) and waits for the exit.
  void Stop(int sig = SIGTERM) {
    if (pid_ > 0) {
      kill(pid_, sig);
      int status = 0;
      waitpid(pid_, &status, 0);
      pid_ = -1;
    }
    if (stdout_fd_ >= 0) {
      close(stdout_fd_);
      stdout_fd_ = -1;
    }
  }

  const std::string& url() const { return url_; }
  int port() const { return port_; }

  // Creates the realm with subdomain "" (reached through 127.0.0.1).
  Result<std::int64_t> CreateRealm() {
    auto r = Admin(url_, "POST", "/realms",
                   boost::json::object{{"subdomain", ""}, {"name", "Test"}});
    if (!r) return r.error();
    return r->as_object().at("realm_id").as_int64();
  }

  struct User {
    std::int64_t id = 0;
    std::string email, key, full_name;
  };
  Result<User> CreateUser(std::int64_t realm, const std::string& email,
                          const std::string& full_name) {
    auto r =
        Admin(url_, "POST", "/realms/" + std::to_string(realm) + "/users",
              boost::json::object{{"email", email}, {"full_name", full_name}});
    if (!r) return r.error();
    User u;
    u.id = r->as_object().at("user_id").as_int64();
    u.key = std::string(r->as_object().at("api_key").as_string());
    u.email = email;
    u.full_name = full_name;
    return u;
  }

  // Sets the server's presence clock (unix seconds).
  Status SetClock(double now) {
    auto r = Admin(url_, "POST", "/clock", boost::json::object{{"now", now}});
    if (!r) return r.error();
    return {};
  }

 private:
  PresencedProcess() = default;
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string url_;
  int port_ = 0;
};

}  // namespace presence::client::testing

#endif  // PRESENCE_TESTS_CLIENT_PRESENCED_PROCESS_H_
