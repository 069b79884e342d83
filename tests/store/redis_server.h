// RedisServer / RedisCluster: real redis-server processes for the store
// tests, on 127.0.0.1 only, on free ports, with no persistence, in a temporary
// directory; killed when the object goes away (and, through
// PR_SET_PDEATHSIG, if the test process dies first). Never the system's
// redis on 6379.
//
// A missing redis-server is a failure (ADD_FAILURE), never a skip.
//
// Thread safety: none; create and use from the test's main thread (the
// death signal follows the thread that started the server).
#ifndef PRESENCE_TESTS_STORE_REDIS_SERVER_H_
#define PRESENCE_TESTS_STORE_REDIS_SERVER_H_

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "store/redis_client.h"
#include "store/temp_dir.h"

namespace presence::store {

namespace redis_test {

// `name` on PATH, else /usr/bin/name; "" if neither exists.
inline std::string FindBinary(const std::string& name) {
  if (const char* path = std::getenv("PATH")) {
    std::stringstream dirs(path);
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
      if (dir.empty()) continue;
      std::filesystem::path p = std::filesystem::path(dir) / name;
      if (::access(p.c_str(), X_OK) == 0) return p.string();
    }
  }
  std::string fallback = "/usr/bin/" + name;
  return ::access(fallback.c_str(), X_OK) == 0 ? fallback : "";
}

// True if 127.0.0.1:port can be bound right now.
inline bool PortFree(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// A port the kernel says is free on 127.0.0.1 (bind to 0, read, close). With
// `bus`, port + 10000 (the cluster bus) is free too.
inline int PickPort(bool bus) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    int port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
    ::close(fd);
    if (port == 0) continue;
    if (!bus) return port;
    if (port + 10000 <= 65535 && PortFree(port + 10000)) return port;
  }
  return 0;
}

// Starts `argv` with stdout/stderr to `log`; dies with this thread.
inline pid_t Spawn(const std::vector<std::string>& argv,
                   const std::string& log) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.data()));
  args.push_back(nullptr);
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  // Child: only async-signal-safe calls until exec.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd >= 0) {
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::close(fd);
  }
  ::execv(args[0], args.data());
  ::_exit(127);
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs one command on a fresh short-lived connection.
inline StoreResult<RedisReply> Command(int port,
                                       std::vector<std::string> argv) {
  RedisConnection conn(RedisAddress{.host = "127.0.0.1", .port = port},
                       RedisTimeouts{.connect = std::chrono::milliseconds(500),
                                     .io = std::chrono::milliseconds(2000)});
  return conn.Command(argv);
}

}  // namespace redis_test

class RedisServer {
 public:
  // Starts redis-server with `extra` arguments; nullptr (and `error`) if it
  // does not answer within a few seconds, after 5 attempts.
  static std::unique_ptr<RedisServer> Start(std::vector<std::string> extra = {},
                                            bool cluster_bus = false,
                                            std::string* error = nullptr) {
    const std::string binary = redis_test::FindBinary("redis-server");
    if (binary.empty()) {
      if (error) *error = "redis-server not found on PATH or in /usr/bin";
      return nullptr;
    }
    std::string why = "no free port";
    for (int attempt = 0; attempt < 5; ++attempt) {
      std::unique_ptr<RedisServer> s(new RedisServer());
      s->port_ = redis_test::PickPort(cluster_bus);
      if (s->port_ == 0) continue;
      std::vector<std::string> argv = {
          binary,   "--port",       std::to_string(s->port_),
          "--bind", "127.0.0.1",    "--save",
          "",       "--appendonly", "no",
          "--dir",  s->dir_.path(), "--daemonize",
          "no",     "--logfile",    s->log_path()};
      argv.insert(argv.end(), extra.begin(), extra.end());
      s->pid_ = redis_test::Spawn(argv, s->log_path());
      if (s->pid_ < 0) {
        why = "fork failed";
        continue;
      }
      if (s->WaitReady(std::chrono::seconds(10), &why)) return s;
    }
    if (error) *error = why;
    return nullptr;
  }

  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;
  ~RedisServer() { Kill(); }

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string url() const { return "redis://" + address(); }
  const std::string& dir() const { return dir_.path(); }
  std::string log_path() const { return dir_.path() + "/redis.log"; }

  // Kills the server (SIGKILL) and reaps it.
  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  StoreResult<RedisReply> Command(std::vector<std::string> argv) const {
    return redis_test::Command(port_, std::move(argv));
  }

  // Polls this master until it reports `n` replicas, each online (initial
  // sync done; a replica still in wait_bgsave does not acknowledge a WAIT).
  bool WaitForReplicas(int n) const {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(20);
    const std::string want = "connected_slaves:" + std::to_string(n) + "\r";
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = Command({"INFO", "replication"});
      if (r && r->str.find(want) != std::string::npos) {
        std::size_t online = 0;
        for (auto at = r->str.find("state=online"); at != std::string::npos;
             at = r->str.find("state=online", at + 1)) {
          ++online;
        }
        if (online == static_cast<std::size_t>(n)) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  // FLUSHALL; ADD_FAILURE if it does not answer OK.
  void FlushAll() const {
    auto r = Command({"FLUSHALL"});
    if (!r || r->str != "OK") ADD_FAILURE() << "FLUSHALL failed on " << url();
  }

 private:
  RedisServer() = default;

  bool WaitReady(std::chrono::seconds limit, std::string* why) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    bool other = false;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;  // exited: a port clash or a bad argument
        *why = "redis-server exited: " + redis_test::ReadFile(log_path());
        return false;
      }
      // Ours, not a server that another test process started on the same
      // port a moment earlier: it reports our child's process id.
      auto r = Command({"INFO", "server"});
      if (r && r->type == RedisReply::Type::kString) {
        if (r->str.find("process_id:" + std::to_string(pid_) + "\r") !=
            std::string::npos) {
          return true;
        }
        other = true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    *why = other ? "another redis-server answers on " + address()
                 : "redis-server did not answer on " + address();
    Kill();
    return false;
  }

  TempDir dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// Three masters, no replicas, joined with redis-cli --cluster create.
class RedisCluster {
 public:
  static std::unique_ptr<RedisCluster> Start(std::string* error) {
    std::unique_ptr<RedisCluster> c(new RedisCluster());
    std::vector<std::string> create = {redis_test::FindBinary("redis-cli"),
                                       "--cluster", "create"};
    if (create[0].empty()) {
      *error = "redis-cli not found on PATH or in /usr/bin";
      return nullptr;
    }
    for (int i = 0; i < 3; ++i) {
      std::string why;
      // The directory is the server's own (--dir), so a relative config
      // file name lands in it.
      auto s = RedisServer::Start(
          {"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
           "--cluster-node-timeout", "5000"},
          /*cluster_bus=*/true, &why);
      if (!s) {
        *error = why;
        return nullptr;
      }
      create.push_back(s->address());
      c->nodes_.push_back(std::move(s));
    }
    create.insert(create.end(), {"--cluster-replicas", "0", "--cluster-yes"});
    const std::string log = c->nodes_[0]->dir() + "/cluster-create.log";
    pid_t pid = redis_test::Spawn(create, log);
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(30);
    int status = 0;
    bool exited = false;
    while (std::chrono::steady_clock::now() < deadline) {
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        exited = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!exited) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      *error = "redis-cli --cluster create hung: " + redis_test::ReadFile(log);
      return nullptr;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      *error =
          "redis-cli --cluster create failed: " + redis_test::ReadFile(log);
      return nullptr;
    }
    // Every node must see the whole cluster as ok.
    for (const auto& node : c->nodes_) {
      bool ok = false;
      while (!ok && std::chrono::steady_clock::now() < deadline) {
        auto r = node->Command({"CLUSTER", "INFO"});
        ok = r && r->str.find("cluster_state:ok") != std::string::npos;
        if (!ok) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      if (!ok) {
        *error = "cluster_state is not ok on " + node->address();
        return nullptr;
      }
    }
    return c;
  }

  const std::vector<std::unique_ptr<RedisServer>>& nodes() const {
    return nodes_;
  }
  // redis://A,B,C with every node as a seed.
  std::string url() const {
    std::string u = "redis://";
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (i > 0) u += ",";
      u += nodes_[i]->address();
    }
    return u;
  }

 private:
  RedisCluster() = default;
  std::vector<std::unique_ptr<RedisServer>> nodes_;
};

// The standalone server of this test process, started on first use and
// killed at exit. nullptr (with a test failure) if it cannot start.
inline RedisServer* SharedRedisServer() {
  static std::unique_ptr<RedisServer> server = [] {
    std::string why;
    auto s = RedisServer::Start({}, false, &why);
    if (!s) ADD_FAILURE() << "cannot start redis-server: " << why;
    return s;
  }();
  return server.get();
}

}  // namespace presence::store

#endif  // PRESENCE_TESTS_STORE_REDIS_SERVER_H_
