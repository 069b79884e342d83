// loadgen: an HTTP/1.1 load generator for presenced (and, with the very same
// requests, for any server used as a reference, such as nginx).
//
// Modes
//   closed  Every connection sends its next request as soon as the previous
//           answer arrived: maximum throughput. Latency is send -> answer.
//   open    Requests are due at a fixed rate, t_k = t0 + k / rate, whatever
//           the server does; a due request waits for a free connection, and
//           its latency runs from when it was DUE, not from when it could be
//           sent. A slow server therefore cannot hide its stalls by slowing
//           the generator down (no coordinated omission). Requests still
//           unanswered when the run ends count with the time they waited.
//   fanout  W connections each register an event queue (modern presence
//           events) and park a long poll on it; then, round by round, one
//           user who was offline pings "active" and every watcher's answer
//           is timed from the moment that ping was sent. Also reports the
//           server's resident memory per parked poll (--server-pid);
//           --hold-ms H also reads it again after the polls stayed parked
//           H ms more (past the server's periodic malloc_trim), with the
//           kernel's TCP buffer pages (/proc/net/sockstat) and the slab
//           memory of sockets, files and epoll entries (/proc/slabinfo,
//           root only; both ends of every loopback connection).
//   churn   Fan-out running flat out, and pings measured meanwhile (issue
//           #17, "pings first"): W watchers each register a queue and
//           re-poll at once on every answer, as Zulip clients do; users
//           come online at --trigger-rate per second (cold users
//           [--trigger-first, ...), one "came online" event to every
//           watcher each); and an open-loop ping load (--rate, over the
//           online users [0, --users), warmed up first so their pings do
//           not write) measures the ping round trip from when each ping
//           was due. Reports deliveries per second, events per answer,
//           delivery latency (a watcher's k-th presence event belongs to
//           the k-th user who came online, timed from when that ping was
//           due) per second and overall, ping latency, and the server's
//           CPU and RSS (--server-pid). Three threads: the watchers' reads
//           and re-polls, the online pings (on time whatever the watchers'
//           thread leaves undone: their due time is what delivery latency
//           counts from), and the ping load.
//   ping    One request; prints the status and the body (for scripts).
//
// Workload of closed/open: pings of Zulip's POST /api/v1/users/me/presence,
// `status=active&last_update_id=<cursor>`, keep-alive, from many distinct
// users of one realm (bench/bench_users.h). Users [0, --users) are "online":
// an unmeasured warm-up pings each once (ping_only), so that within the run
// their pings fall under the 55 s rule and do not write; then each keeps
// its own cursor, the presence_last_update_id of its previous answer. A
// --write-fraction of the requests come from users not seen yet
// ([--cold-first, ...)), whose rows are old, so those pings write (and the
// other users' incremental answers carry those rows).
//
// Defaults on, cold authentication (issue #17): the server runs with its
// rate limit (200 requests per user per minute by default), so the load
// rotates over enough users that none comes near it: --users 100000 at
// 60,000 requests/s is 36 requests per user per minute, and with more users
// than any cache of the server holds every request authenticates cold.
// Each run reports the most requests one user made in it and the rate per
// user per minute the load would reach if sustained, warns when that would
// exceed --user-limit, and counts 429 answers apart (rate_limited).
// --warmup-only pings the users once and stops (a script then runs several
// measured runs within the 55 s the warm-up keeps rows fresh);
// --rotate-from K starts the rotation at user K, so that consecutive runs
// continue it rather than ping the same users again; the warm-up goes
// backwards from K, so that the first users of the rotation are the last
// warmed.
//
// Every loop is bounded: --duration (at most 300 s), --max-requests, and a
// hard deadline after which the program stops whatever is pending. Only
// numeric IPv4/IPv6 addresses are accepted (loopback in the benchmarks).
//
// Output: a human summary on stderr and one JSON object on stdout.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench/bench_users.h"
#include "bench/http_wire.h"
#include "bench/send_now.h"
#include "http/drained_socket.h"

namespace presence::bench {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using Ns = std::int64_t;

Ns NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             Clock::now().time_since_epoch())
      .count();
}

// ---------------------------------------------------------------- options

struct Options {
  std::string mode = "closed";
  std::string host = "127.0.0.1";
  int port = 0;
  std::string path = "/api/v1/users/me/presence";
  int connections = 64;
  int threads = 1;
  double duration = 5;
  std::int64_t max_requests = 50'000'000;
  double rate = 1000;  // open: requests per second, all threads together
  std::int64_t users = 1000;
  std::int64_t cold_first = -1;  // -1: right after the online users
  std::int64_t cold_count = 0;
  double write_fraction = 0;
  bool warmup = true;
  bool warmup_only = false;
  std::int64_t rotate_from = 0;   // first online user of the measured run
  std::int64_t user_limit = 200;  // the server's --rate-limit, for a warning
  std::int64_t base_cursor = -1;  // <0: no cursor synchronisation
  std::string body;               // ping mode: a body to send
  std::string method = "POST";
  std::string auth_user;  // ping mode: bench user number to log in as
  // fanout
  std::int64_t watchers = 1000;
  std::int64_t watch_first = 0;
  std::int64_t trigger_first = -1;  // -1: right after the watchers
  int trigger_port = 0;             // 0: --port (another node: scale-out)
  int rounds = 5;
  int settle_ms = 1000;
  int hold_ms = 0;
  // churn
  double trigger_rate = 50;      // users coming online per second
  std::vector<int> server_pids;  // --server-pid, comma-separated
  std::string label;
};

[[noreturn]] void Usage(const char* why) {
  std::fprintf(stderr,
               "loadgen: %s\n"
               "usage: loadgen --port P [--host 127.0.0.1] [--mode "
               "closed|open|fanout|churn|ping]\n"
               "  [--connections 64] [--threads 1] [--duration 5] "
               "[--max-requests N] [--rate R]\n"
               "  [--users N] [--write-fraction F] [--cold-first I] "
               "[--cold-count N] [--no-warmup]\n"
               "  [--warmup-only] [--rotate-from K] [--user-limit 200]\n"
               "  [--base-cursor ID] [--path P] [--label L]\n"
               "  fanout: [--watchers W] [--watch-first I] [--trigger-first "
               "I] [--rounds R]\n"
               "          [--settle-ms MS] [--hold-ms MS] [--trigger-port P]\n"
               "  churn:  fanout's options, --rate R (pings/s), --users N,\n"
               "          [--trigger-rate T] (users coming online per s)\n"
               "  any mode: [--server-pid PID[,PID...]] to report the "
               "server's CPU time and memory\n"
               "  ping:   [--method M] [--body B] [--auth-user I]\n",
               why);
  std::exit(2);
}

Options ParseOptions(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Usage(("missing value after " + a).c_str());
      return argv[++i];
    };
    auto num = [&]() { return std::strtod(next().c_str(), nullptr); };
    auto inum = [&]() { return std::strtoll(next().c_str(), nullptr, 10); };
    if (a == "--mode") {
      o.mode = next();
    } else if (a == "--host") {
      o.host = next();
    } else if (a == "--port") {
      o.port = static_cast<int>(inum());
    } else if (a == "--path") {
      o.path = next();
    } else if (a == "--connections") {
      o.connections = static_cast<int>(inum());
    } else if (a == "--threads") {
      o.threads = static_cast<int>(inum());
    } else if (a == "--duration") {
      o.duration = num();
    } else if (a == "--max-requests") {
      o.max_requests = inum();
    } else if (a == "--rate") {
      o.rate = num();
    } else if (a == "--users") {
      o.users = inum();
    } else if (a == "--cold-first") {
      o.cold_first = inum();
    } else if (a == "--cold-count") {
      o.cold_count = inum();
    } else if (a == "--write-fraction") {
      o.write_fraction = num();
    } else if (a == "--no-warmup") {
      o.warmup = false;
    } else if (a == "--warmup-only") {
      o.warmup_only = true;
    } else if (a == "--rotate-from") {
      o.rotate_from = inum();
    } else if (a == "--user-limit") {
      o.user_limit = inum();
    } else if (a == "--base-cursor") {
      o.base_cursor = inum();
    } else if (a == "--body") {
      o.body = next();
    } else if (a == "--method") {
      o.method = next();
    } else if (a == "--auth-user") {
      o.auth_user = next();
    } else if (a == "--watchers") {
      o.watchers = inum();
    } else if (a == "--watch-first") {
      o.watch_first = inum();
    } else if (a == "--trigger-first") {
      o.trigger_first = inum();
    } else if (a == "--trigger-port") {
      o.trigger_port = static_cast<int>(inum());
    } else if (a == "--rounds") {
      o.rounds = static_cast<int>(inum());
    } else if (a == "--trigger-rate") {
      o.trigger_rate = std::stod(next());
    } else if (a == "--settle-ms") {
      o.settle_ms = static_cast<int>(inum());
    } else if (a == "--hold-ms") {
      o.hold_ms = static_cast<int>(inum());
    } else if (a == "--server-pid") {
      std::string list = next();
      for (std::size_t p = 0; p < list.size();) {
        std::size_t e = list.find(',', p);
        if (e == std::string::npos) e = list.size();
        const int pid = std::atoi(list.substr(p, e - p).c_str());
        if (pid > 0) o.server_pids.push_back(pid);
        p = e + 1;
      }
    } else if (a == "--label") {
      o.label = next();
    } else if (a == "-h" || a == "--help") {
      Usage("help");
    } else {
      Usage(("unknown flag " + a).c_str());
    }
  }
  if (o.port <= 0 || o.port > 65535) Usage("--port is required");
  if (o.connections < 1 || o.connections > 20000) {
    Usage("--connections must be 1..20000");
  }
  if (o.threads < 1 || o.threads > 16) Usage("--threads must be 1..16");
  if (o.duration <= 0 || o.duration > 300) Usage("--duration must be 0..300");
  if (o.rate <= 0 || o.rate > 10'000'000) Usage("--rate out of range");
  if (o.users < 1) Usage("--users must be >= 1");
  if (o.rotate_from < 0) Usage("--rotate-from must be >= 0");
  if (o.warmup_only && !o.warmup) Usage("--warmup-only with --no-warmup");
  if (o.write_fraction < 0 || o.write_fraction > 1) {
    Usage("--write-fraction must be 0..1");
  }
  if (o.watchers < 1 || o.watchers > 20000) Usage("--watchers 1..20000");
  if (o.rounds < 1 || o.rounds > 100) Usage("--rounds 1..100");
  if (o.cold_first < 0) o.cold_first = o.users;
  if (o.trigger_first < 0) o.trigger_first = o.watch_first + o.watchers;
  return o;
}

// ---------------------------------------------------------------- helpers

std::string Base64(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    std::uint32_t v = (std::uint8_t(in[i]) << 16) |
                      (std::uint8_t(in[i + 1]) << 8) | std::uint8_t(in[i + 2]);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  if (i + 1 == in.size()) {
    std::uint32_t v = std::uint8_t(in[i]) << 16;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out += "==";
  } else if (i + 2 == in.size()) {
    std::uint32_t v =
        (std::uint8_t(in[i]) << 16) | (std::uint8_t(in[i + 1]) << 8);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back('=');
  }
  return out;
}

std::string AuthHeader(std::int64_t user) {
  return "Authorization: Basic " +
         Base64(BenchEmail(user) + ":" + BenchKey(user)) + "\r\n";
}

void AppendInt(std::string& out, std::int64_t v) {
  char buf[24];
  out.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}

std::string UrlEncode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

// Value of the first `"key":<integer>` in body; nullopt if absent.
std::optional<std::int64_t> JsonInt(std::string_view body,
                                    std::string_view quoted_key) {
  auto p = body.find(quoted_key);
  if (p == std::string_view::npos) return std::nullopt;
  p += quoted_key.size();
  if (p >= body.size() || body[p] != ':') return std::nullopt;
  return wire::LeadingInt(body.substr(p + 1), 0);
}

std::optional<std::string> JsonString(std::string_view body,
                                      std::string_view quoted_key) {
  auto p = body.find(quoted_key);
  if (p == std::string_view::npos) return std::nullopt;
  p += quoted_key.size();
  if (p + 1 >= body.size() || body[p] != ':' || body[p + 1] != '"') {
    return std::nullopt;
  }
  p += 2;
  auto e = body.find('"', p);
  if (e == std::string_view::npos) return std::nullopt;
  return std::string(body.substr(p, e - p));
}

std::size_t CountOf(std::string_view hay, std::string_view needle) {
  std::size_t n = 0;
  for (auto p = hay.find(needle); p != std::string_view::npos;
       p = hay.find(needle, p + needle.size())) {
    ++n;
  }
  return n;
}

// Stops the program: used when a bounded wait runs out, since pending
// handlers would otherwise outlive the state they point to.
[[noreturn]] void Fatal(const char* what) {
  std::fprintf(stderr, "loadgen: %s\n", what);
  std::fflush(stdout);
  std::_Exit(1);
}

long ReadRssBytes(int pid);

// CPU time (ns) the processes have run so far: the sum over their threads
// of /proc/PID/task/TID/schedstat's first field. -1 if none can be read.
Ns ProcessesCpuNs(const std::vector<int>& pids) {
  Ns total = 0;
  bool any = false;
  for (int pid : pids) {
    const std::string dir = "/proc/" + std::to_string(pid) + "/task";
    std::error_code ec;
    for (const auto& task : std::filesystem::directory_iterator(dir, ec)) {
      std::ifstream in(task.path() / "schedstat");
      long long ns = 0;
      if (in >> ns) {
        total += ns;
        any = true;
      }
    }
  }
  return any ? total : -1;
}

// User and system CPU of processes `pids` (every thread), ns, from
// /proc/PID/stat's utime and stime (clock ticks, scaled by the kernel to the
// precise total): {-1, -1} if one is unreadable.
struct UserSysNs {
  Ns user = -1, sys = -1;
};
UserSysNs ProcessesUserSysNs(const std::vector<int>& pids) {
  static const long hz = sysconf(_SC_CLK_TCK);
  UserSysNs total{0, 0};
  if (pids.empty() || hz <= 0) return {};
  for (int pid : pids) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(in, line)) return {};
    const std::size_t paren = line.rfind(')');
    if (paren == std::string::npos) return {};
    // After "pid (comm)": state is field 3, utime 14, stime 15.
    std::istringstream rest(line.substr(paren + 2));
    std::string field;
    long long utime = -1, stime = -1;
    for (int f = 3; f <= 15 && rest >> field; ++f) {
      if (f == 14) utime = std::atoll(field.c_str());
      if (f == 15) stime = std::atoll(field.c_str());
    }
    if (utime < 0 || stime < 0) return {};
    total.user += utime * 1'000'000'000LL / hz;
    total.sys += stime * 1'000'000'000LL / hz;
  }
  return total;
}

// User and system CPU, ns, of getrusage's `who`: RUSAGE_SELF (this
// process) or RUSAGE_THREAD (the calling thread).
UserSysNs RusageUserSysNs(int who) {
  rusage ru{};
  getrusage(who, &ru);
  auto ns = [](const timeval& t) {
    return t.tv_sec * 1'000'000'000LL + t.tv_usec * 1'000LL;
  };
  return {ns(ru.ru_utime), ns(ru.ru_stime)};
}

UserSysNs SelfUserSysNs() { return RusageUserSysNs(RUSAGE_SELF); }

Ns SelfCpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

UserSysNs ThreadUserSysNs() { return RusageUserSysNs(RUSAGE_THREAD); }

// CPU time (ns) of the calling thread so far.
Ns ThreadCpuNs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

long ReadRssBytes(const std::vector<int>& pids) {
  if (pids.empty()) return -1;
  long total = 0;
  for (int pid : pids) {
    const long r = ReadRssBytes(pid);
    if (r < 0) return -1;
    total += r;
  }
  return total;
}

long ReadRssBytes(int pid) {
  if (pid <= 0) return -1;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return std::strtol(line.c_str() + 6, nullptr, 10) * 1024;
    }
  }
  return -1;
}

// The kernel's TCP buffer memory, bytes (/proc/net/sockstat "TCP: ... mem
// PAGES"); -1 if unreadable.
long TcpBufferBytes() {
  std::ifstream in("/proc/net/sockstat");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("TCP:", 0) != 0) continue;
    const auto p = line.find(" mem ");
    if (p == std::string::npos) return -1;
    return std::strtol(line.c_str() + p + 5, nullptr, 10) * 4096;
  }
  return -1;
}

// Bytes of the slab caches a TCP connection's socket uses (socket, inode,
// file, dentry, epoll entry), the whole machine; -1 if unreadable
// (/proc/slabinfo needs root).
long SocketSlabBytes() {
  std::ifstream in("/proc/slabinfo");
  if (!in) return -1;
  static const char* const kCaches[] = {
      "TCP",    "TCPv6",         "sock_inode_cache", "filp",
      "dentry", "eventpoll_epi", "eventpoll_pwq"};
  std::string line;
  long total = 0;
  bool any = false;
  while (std::getline(in, line)) {
    char name[64];
    long active = 0, objs = 0, size = 0;
    if (std::sscanf(line.c_str(), "%63s %ld %ld %ld", name, &active, &objs,
                    &size) != 4) {
      continue;
    }
    for (const char* c : kCaches) {
      if (std::strcmp(name, c) == 0) {
        total += active * size;
        any = true;
      }
    }
  }
  return any ? total : -1;
}

struct Summary {
  std::int64_t count = 0;
  double mean_us = 0, p50_us = 0, p90_us = 0, p99_us = 0, p999_us = 0,
         max_us = 0;
};

Summary Summarise(std::vector<Ns>& lat) {
  Summary s;
  s.count = static_cast<std::int64_t>(lat.size());
  if (lat.empty()) return s;
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double p) {
    // Nearest rank: the smallest value with at least p of the samples <= it.
    auto rank = static_cast<std::size_t>(std::ceil(p * lat.size()));
    rank = std::clamp<std::size_t>(rank, 1, lat.size());
    return lat[rank - 1] / 1e3;
  };
  double sum = 0;
  for (Ns v : lat) sum += static_cast<double>(v);
  s.mean_us = sum / lat.size() / 1e3;
  s.p50_us = pct(0.50);
  s.p90_us = pct(0.90);
  s.p99_us = pct(0.99);
  s.p999_us = pct(0.999);
  s.max_us = lat.back() / 1e3;
  return s;
}

// ---------------------------------------------------------------- HTTP

using wire::Answer;
using wire::ParseResponse;

// A keep-alive connection with at most one request in flight. Its
// io_context must be run by one thread and constructed with concurrency
// hint 1 (for the drained reads below).
//
// Cheap per request (issue #17: the generator shares the two cores with
// the server): a request is written at once with one send() from the
// caller's stack (Asio's write operation only when the socket's buffer is
// full), and an answer read to its end makes the next read wait for epoll
// instead of trying a recv() that can only say EAGAIN (the server's
// http/drained_socket.h): one send and one recv per request.
class Conn : public std::enable_shared_from_this<Conn> {
 public:
  using Done = std::function<void(Conn&, const Answer*, Ns done_at)>;

  Conn(asio::io_context& ioc, int index)
      : sock_(ioc), reader_(sock_), index_(index) {
    in_.resize(16 * 1024);
  }

  int index() const { return index_; }
  bool open() const { return open_; }
  bool busy() const { return busy_; }
  // Per-request bookkeeping of the owner.
  std::int64_t user = -1;
  Ns stamp = 0;  // when the request counts from
  int tag = 0;

  void Connect(const tcp::endpoint& ep, std::function<void(bool)> done) {
    sock_.async_connect(ep, [self = shared_from_this(), done = std::move(done)](
                                const boost::system::error_code& ec) {
      if (!ec) {
        boost::system::error_code ignored;
        self->open_ = true;
        self->sock_.set_option(tcp::no_delay(true), ignored);
        self->sock_.non_blocking(true, ignored);
      }
      done(!ec);
    });
  }

  // Sends `request` and calls `done` with the answer (nullptr on a failed
  // connection, which is then closed). `done` runs from the io_context,
  // never inside this call.
  void Send(std::string request, Done done) {
    out_ = std::move(request);
    SendBuffered(std::move(done));
  }

  // Sends what was built in request_buffer().
  void SendBuffered(Done done) {
    done_ = std::move(done);
    Write();
  }

  // The buffer of the next request, emptied (its capacity kept): fill it,
  // then SendBuffered(), or Resend() from inside this connection's own
  // completion handler.
  std::string& request_buffer() {
    out_.clear();
    return out_;
  }

  // Sends request_buffer() with the handler that is running now (no copy
  // of it): only from inside this connection's completion handler.
  void Resend() {
    resend_ = true;
    Write();
  }

  void Close() {
    boost::system::error_code ec;
    sock_.close(ec);
    open_ = false;
  }

 private:
  void Write() {
    busy_ = true;
    boost::system::error_code ec;
    const SendNowResult r = SendNow(sock_, out_, sent_, ec);
    if (r == SendNowResult::kSent) {
      // Inside TryParse's call of the handler the buffer is compacted
      // first.
      if (in_handler_) {
        read_after_handler_ = true;
      } else {
        Read();
      }
      return;
    }
    if (r == SendNowResult::kFailed) {
      // Reported from the io_context, as any completion.
      asio::post(sock_.get_executor(),
                 [self = shared_from_this()] { self->Fail(); });
      return;
    }
    asio::async_write(sock_,
                      asio::buffer(out_.data() + sent_, out_.size() - sent_),
                      [self = shared_from_this()](
                          const boost::system::error_code& ec, std::size_t) {
                        if (ec) return self->Fail();
                        self->Read();
                      });
  }

  void Read() {
    if (len_ == in_.size()) in_.resize(in_.size() * 2);
    reader_.async_read_some(
        asio::buffer(in_.data() + len_, in_.size() - len_),
        [self = shared_from_this()](const boost::system::error_code& ec,
                                    std::size_t n) {
          if (ec) return self->Fail();
          self->len_ += n;
          if (!self->TryParse()) self->Read();
        });
  }

  bool TryParse() {
    Answer a;
    long used = ParseResponse(std::string_view(in_.data(), len_), a);
    if (used < 0) {
      Fail();
      return true;
    }
    if (used == 0) return false;
    const Ns now = NowNs();
    busy_ = false;
    resend_ = false;
    Done done = std::move(done_);
    in_handler_ = true;
    done(*this, &a, now);
    in_handler_ = false;
    if (resend_ && !done_) done_ = std::move(done);
    // The body view is dead now; keep what followed (nothing, normally).
    std::memmove(in_.data(), in_.data() + used, len_ - used);
    len_ -= used;
    if (read_after_handler_) {
      read_after_handler_ = false;
      Read();
    }
    return true;
  }

  void Fail() {
    const bool was_busy = busy_;
    Close();
    busy_ = false;
    if (was_busy && done_) {
      Done done = std::move(done_);
      done(*this, nullptr, NowNs());
    }
  }

  tcp::socket sock_;
  http::DrainedSocket reader_;
  int index_;
  bool open_ = false;
  bool busy_ = false;
  bool resend_ = false;
  bool in_handler_ = false;
  bool read_after_handler_ = false;
  std::string out_;
  std::size_t sent_ = 0;
  std::vector<char> in_;
  std::size_t len_ = 0;
  Done done_;
};

// ---------------------------------------------------------------- requests

class Requests {
 public:
  Requests(const Options& o) : o_(o) {
    host_ = "Host: " + o.host + ":" + std::to_string(o.port) + "\r\n";
  }

  std::string Post(std::int64_t user, std::string_view path,
                   std::string_view body) const {
    std::string r;
    r.reserve(256 + body.size());
    AppendPost(r, user, path, body);
    return r;
  }

  // Post's request appended to `r` (a connection's request_buffer(): no
  // allocation for the request itself once the buffer grew).
  void AppendPost(std::string& r, std::int64_t user, std::string_view path,
                  std::string_view body) const {
    r += "POST ";
    r += path;
    r += " HTTP/1.1\r\n";
    r += host_;
    r += AuthHeader(user);
    r += "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: ";
    AppendInt(r, static_cast<std::int64_t>(body.size()));
    r += "\r\n\r\n";
    r += body;
  }

  // A ping of `user` from `cursor` (none if < 0), appended to `r`.
  void AppendPing(std::string& r, std::int64_t user,
                  std::int64_t cursor) const {
    char body[64] = "status=active";
    std::size_t n = std::strlen(body);
    if (cursor >= 0) {
      std::memcpy(body + n, "&last_update_id=", 16);
      n += 16;
      n = static_cast<std::size_t>(
          std::to_chars(body + n, body + sizeof body, cursor).ptr - body);
    }
    AppendPost(r, user, o_.path, std::string_view(body, n));
  }

  std::string Get(std::int64_t user, std::string_view target) const {
    std::string r = "GET ";
    r += target;
    r += " HTTP/1.1\r\n";
    r += host_;
    if (user >= 0) r += AuthHeader(user);
    r += "\r\n";
    return r;
  }

  std::string Ping(std::int64_t user, std::int64_t cursor) const {
    std::string body = "status=active";
    if (cursor >= 0) body += "&last_update_id=" + std::to_string(cursor);
    return Post(user, o_.path, body);
  }

  std::string PingOnly(std::int64_t user) const {
    return Post(user, o_.path, "status=active&ping_only=true");
  }

 private:
  const Options& o_;
  std::string host_;
};

// The GET /events request of every watcher, pre-formatted but for its
// last_event_id: Append writes one into a buffer without allocating once
// the buffer has grown.
class PollRequests {
 public:
  PollRequests(const Requests& req, const std::vector<std::string>& queue_ids,
               std::int64_t first_user) {
    prefix_.reserve(queue_ids.size());
    suffix_.reserve(queue_ids.size());
    for (std::size_t i = 0; i < queue_ids.size(); ++i) {
      prefix_.push_back("/api/v1/events?queue_id=" + queue_ids[i] +
                        "&last_event_id=");
      // req.Get with an empty target: "GET  HTTP/1.1\r\n..."; keep what
      // follows the target.
      std::string full = req.Get(first_user + static_cast<std::int64_t>(i), "");
      suffix_.push_back(full.substr(4));
    }
  }

  void Append(std::string& out, std::int64_t i, std::int64_t last_event_id) {
    const auto k = static_cast<std::size_t>(i);
    out += "GET ";
    out += prefix_[k];
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, last_event_id);
    out.append(buf, r.ptr);
    out += suffix_[k];
  }

 private:
  std::vector<std::string> prefix_;
  std::vector<std::string> suffix_;  // " HTTP/1.1\r\nHost...\r\n\r\n"
};

// What a GET /events answer brought.
struct PollEvents {
  std::int64_t max_id = -1;  // -1: no event
  std::int64_t presence = 0;
  std::int64_t heartbeats = 0;
};

// One pass over a GET /events answer's body (bench/http_wire.h). False if
// the body is not well-formed JSON, has no "events" array or its "result"
// is not "success".
bool ReadPollEvents(std::string_view body, PollEvents& out) {
  out = PollEvents{};
  wire::EventsSummary sum;
  const bool ok = wire::ScanEvents(body, sum, [&](const wire::Event& e) {
    if (wire::Is(e.type, "presence")) {
      ++out.presence;
    } else if (wire::Is(e.type, "heartbeat")) {
      ++out.heartbeats;
    }
  });
  out.max_id = sum.max_id;
  return ok && sum.has_events && wire::Is(sum.result, "success");
}

tcp::endpoint Endpoint(const Options& o) {
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(o.host, ec);
  if (ec) Usage("--host must be a numeric address");
  return tcp::endpoint(addr, static_cast<unsigned short>(o.port));
}

// Opens `n` connections, at most `parallel` connecting at once. Returns the
// open ones.
std::vector<std::shared_ptr<Conn>> OpenConnections(asio::io_context& ioc,
                                                   const tcp::endpoint& ep,
                                                   int n, int parallel,
                                                   int first_index = 0) {
  std::vector<std::shared_ptr<Conn>> conns;
  for (int i = 0; i < n; ++i) {
    conns.push_back(std::make_shared<Conn>(ioc, first_index + i));
  }
  int next = 0, inflight = 0, failed = 0;
  std::function<void()> pump = [&] {
    while (inflight < parallel && next < n) {
      ++inflight;
      conns[next++]->Connect(ep, [&](bool ok) {
        --inflight;
        if (!ok) ++failed;
        pump();
      });
    }
  };
  pump();
  ioc.restart();
  const Ns deadline = NowNs() + 60'000'000'000;
  while (inflight > 0 || next < n) {
    ioc.run_one_for(std::chrono::milliseconds(100));
    if (NowNs() > deadline) Fatal("connecting took more than 60 s");
  }
  if (failed) std::fprintf(stderr, "loadgen: %d connections failed\n", failed);
  std::vector<std::shared_ptr<Conn>> open;
  for (auto& c : conns) {
    if (c->open()) open.push_back(c);
  }
  return open;
}

// ---------------------------------------------------------------- ping load

// Shared between the threads of one run.
struct Shared {
  std::atomic<std::int64_t> next_hot{0};  // online requests issued
  std::atomic<std::int64_t> next_cold{0};
  std::atomic<std::int64_t> issued{0};
  std::atomic<std::int64_t> max_cursor{-1};
  std::atomic<std::int64_t> cold_exhausted{0};
  std::vector<std::atomic<std::int64_t>> cursors;  // per online user
  explicit Shared(std::size_t users) : cursors(users) {
    for (auto& c : cursors) c.store(-1, std::memory_order_relaxed);
  }
};

struct ThreadResult {
  std::vector<Ns> latencies;
  std::int64_t ok = 0, errors = 0, dropped = 0;
  std::int64_t rows = 0, bytes = 0, writes = 0;
  std::int64_t rate_limited = 0;  // 429 answers (also in errors)
  Ns first_send = 0, last_done = 0;
};

// One thread's share of a closed- or open-loop run.
class PingWorker {
 public:
  PingWorker(const Options& o, const Requests& req, Shared& shared, double rate)
      : o_(o), req_(req), shared_(shared), rate_(rate), timer_(ioc_) {}

  // The measured window: requests are issued in [t0, t_end).
  void SetSchedule(Ns t0, Ns t_end) {
    t0_ = t0;
    t_end_ = t_end;
  }

  asio::io_context& ioc() { return ioc_; }
  std::vector<std::shared_ptr<Conn>>& conns() { return conns_; }

  void Run() {
    const bool open_loop = o_.mode == "open";
    result_.latencies.reserve(
        open_loop ? static_cast<std::size_t>(rate_ * o_.duration * 1.1) + 16
                  : 1 << 20);
    ioc_.restart();
    // Wait for the common start, so that every thread begins together.
    while (NowNs() < t0_)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    if (open_loop) {
      OnTick();
    } else {
      ticking_ = false;
      for (auto& c : conns_) Issue(*c, NowNs());
    }
    // Hard deadline: whatever is still pending 10 s after the end is dropped.
    asio::steady_timer hard(ioc_);
    hard.expires_at(Clock::time_point(std::chrono::nanoseconds(t_end_)) +
                    std::chrono::seconds(10));
    hard.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) ioc_.stop();
    });
    ioc_.run();
    hard.cancel();
    // Open loop: due requests never answered count with the time they waited.
    const Ns stop = NowNs();
    for (auto& c : conns_) {
      if (c->busy()) {
        ++result_.dropped;
        result_.latencies.push_back(stop - c->stamp);
      }
    }
    for (Ns due : pending_) {
      ++result_.dropped;
      result_.latencies.push_back(stop - due);
    }
  }

  ThreadResult& result() { return result_; }

 private:
  // Picks the user of the next request and builds it into `r`.
  void Next(std::int64_t& user, std::string& r) {
    const std::int64_t k = shared_.issued.fetch_add(1);
    bool cold = false;
    if (o_.write_fraction > 0) {
      const auto every =
          static_cast<std::int64_t>(std::llround(1.0 / o_.write_fraction));
      cold = every > 0 && k % every == every - 1;
    }
    if (cold) {
      const std::int64_t c = shared_.next_cold.fetch_add(1);
      if (c < o_.cold_count) {
        user = o_.cold_first + c;
        ++result_.writes;
        req_.AppendPing(r, user, shared_.max_cursor.load());
        return;
      }
      shared_.cold_exhausted.fetch_add(1);
    }
    const std::int64_t h =
        (o_.rotate_from + shared_.next_hot.fetch_add(1)) % o_.users;
    user = h;
    std::int64_t cursor = shared_.cursors[h].load(std::memory_order_relaxed);
    if (cursor < 0) cursor = shared_.max_cursor.load();
    req_.AppendPing(r, user, cursor);
  }

  // False if nothing was sent (closed connection, request budget spent).
  bool Issue(Conn& c, Ns stamp) {
    if (!c.open()) return false;
    if (shared_.issued.load(std::memory_order_relaxed) >= o_.max_requests) {
      return false;
    }
    std::int64_t user = 0;
    Next(user, c.request_buffer());
    c.user = user;
    c.stamp = stamp;
    if (result_.first_send == 0) result_.first_send = NowNs();
    c.SendBuffered([this](Conn& conn, const Answer* a, Ns done) {
      OnAnswer(conn, a, done);
    });
    return true;
  }

  void OnAnswer(Conn& c, const Answer* a, Ns done) {
    if (a == nullptr) {
      ++result_.errors;
    } else {
      result_.latencies.push_back(done - c.stamp);
      result_.last_done = done;
      result_.bytes += static_cast<std::int64_t>(a->body.size());
      if (a->status == 200) {
        ++result_.ok;
        result_.rows +=
            static_cast<std::int64_t>(CountOf(a->body, "\"active_timestamp\""));
        if (auto id = JsonInt(a->body, "\"presence_last_update_id\"")) {
          if (c.user < o_.users) {
            shared_.cursors[c.user].store(*id, std::memory_order_relaxed);
          }
          std::int64_t seen = shared_.max_cursor.load();
          while (*id > seen &&
                 !shared_.max_cursor.compare_exchange_weak(seen, *id)) {
          }
        }
      } else {
        ++result_.errors;
        if (a->status == 429) ++result_.rate_limited;
        if (result_.errors <= 3) {
          std::fprintf(
              stderr, "loadgen: HTTP %d: %.*s\n", a->status,
              static_cast<int>(std::min<std::size_t>(a->body.size(), 200)),
              a->body.data());
        }
      }
    }
    if (o_.mode == "open") {
      if (!pending_.empty() && c.open()) {
        const Ns due = pending_.front();
        pending_.pop_front();
        Issue(c, due);
      } else {
        idle_.push_back(&c);
        MaybeFinish();
      }
      return;
    }
    if (done < t_end_ && Issue(c, NowNs())) return;
    MaybeFinish();
  }

  // Open loop: releases every request due by now, then sleeps until the
  // next one is due.
  void OnTick() {
    const Ns now = NowNs();
    const Ns interval = static_cast<Ns>(1e9 / rate_);
    while (next_due_k_ * interval + t0_ <= now &&
           next_due_k_ * interval + t0_ < t_end_) {
      pending_.push_back(t0_ + next_due_k_ * interval);
      ++next_due_k_;
    }
    if (idle_.empty() && issued_first_ == false) {
      for (auto& c : conns_) idle_.push_back(c.get());
      issued_first_ = true;
    }
    while (!pending_.empty() && !idle_.empty()) {
      Conn* c = idle_.back();
      idle_.pop_back();
      if (!c->open()) continue;
      const Ns due = pending_.front();
      pending_.pop_front();
      Issue(*c, due);
    }
    const Ns next = t0_ + next_due_k_ * interval;
    if (next >= t_end_) {
      ticking_ = false;
      MaybeFinish();
      return;
    }
    timer_.expires_at(Clock::time_point(std::chrono::nanoseconds(next)));
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) OnTick();
    });
  }

  void MaybeFinish() {
    if (ticking_ || !pending_.empty()) return;
    for (auto& c : conns_) {
      if (c->busy()) return;
    }
    ioc_.stop();
  }

  const Options& o_;
  const Requests& req_;
  Shared& shared_;
  double rate_;
  Ns t0_ = 0, t_end_ = 0;
  asio::io_context ioc_{1};
  asio::steady_timer timer_;
  std::vector<std::shared_ptr<Conn>> conns_;
  std::vector<Conn*> idle_;
  std::deque<Ns> pending_;
  std::int64_t next_due_k_ = 0;
  bool issued_first_ = false;
  bool ticking_ = true;
  ThreadResult result_;
};

// Sends one request per item on `conns` (at most one in flight each) and
// waits for all answers. Returns how many answers were 200.
std::int64_t Batch(
    asio::io_context& ioc, std::vector<std::shared_ptr<Conn>>& conns,
    std::int64_t items, const std::function<std::string(std::int64_t)>& make,
    const std::function<void(std::int64_t, const Answer&)>& on_answer,
    double timeout_s) {
  std::int64_t next = 0, ok = 0, outstanding = 0, complaints = 0;
  std::function<void(Conn&)> issue = [&](Conn& c) {
    if (next >= items || !c.open()) return;
    const std::int64_t item = next++;
    ++outstanding;
    c.tag = static_cast<int>(item);
    c.Send(make(item), [&, item](Conn& conn, const Answer* a, Ns) {
      --outstanding;
      if (a && a->status == 200) {
        ++ok;
        if (on_answer) on_answer(item, *a);
      } else if (a && ++complaints <= 3) {
        std::fprintf(
            stderr, "loadgen: item %lld: HTTP %d %.*s\n",
            static_cast<long long>(item), a->status,
            static_cast<int>(std::min<std::size_t>(a->body.size(), 200)),
            a->body.data());
      }
      issue(conn);
    });
  };
  ioc.restart();
  for (auto& c : conns) issue(*c);
  const Ns deadline = NowNs() + static_cast<Ns>(timeout_s * 1e9);
  while (outstanding > 0) {
    ioc.run_one_for(std::chrono::milliseconds(100));
    if (NowNs() > deadline) Fatal("a batch of requests timed out");
  }
  return ok;
}

void PrintPingJson(const Options& o, const Summary& s, const ThreadResult& t,
                   double seconds, const Shared& shared, Ns server_cpu,
                   Ns client_cpu) {
  const std::int64_t cold_exhausted = shared.cold_exhausted.load();
  // The online users' share of the rate limit: the rotation gives each the
  // same number of requests, give or take one (a cold user makes one).
  const std::int64_t hot = shared.next_hot.load();
  const std::int64_t user_max = (hot + o.users - 1) / o.users;
  const double user_per_min =
      seconds > 0 ? static_cast<double>(hot) / seconds * 60 / o.users : 0;
  if (o.user_limit > 0 && user_per_min >= o.user_limit) {
    std::fprintf(stderr,
                 "loadgen: warning: sustained, this load is %.0f requests per "
                 "user per minute, over the server's limit of %lld: rotate "
                 "over more users (--users)\n",
                 user_per_min, static_cast<long long>(o.user_limit));
  }
  const double rps = seconds > 0 ? t.ok / seconds : 0;
  const double answered =
      static_cast<double>(std::max<std::int64_t>(1, t.ok + t.errors));
  const double server_us = server_cpu >= 0 ? server_cpu / 1e3 / answered : -1;
  const double client_us = client_cpu / 1e3 / answered;
  const double rows = t.ok ? static_cast<double>(t.rows) / t.ok : 0.0;
  const double bytes = t.ok ? static_cast<double>(t.bytes) / t.ok : 0.0;
  std::printf(
      "{\"label\":\"%s\",\"mode\":\"%s\",\"connections\":%d,\"threads\":%d,"
      "\"users\":%lld,\"rate\":%.1f,\"seconds\":%.3f,\"ok\":%lld,"
      "\"errors\":%lld,\"dropped\":%lld,\"rps\":%.1f,\"mean_us\":%.1f,"
      "\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
      "\"max_us\":%.1f,\"rows_per_answer\":%.3f,\"bytes_per_answer\":%.1f,"
      "\"writes\":%lld,\"cold_exhausted\":%lld,\"rate_limited\":%lld,"
      "\"rotate_from\":%lld,\"user_requests_max\":%lld,"
      "\"user_rate_per_min\":%.1f,"
      "\"server_cpu_us_per_req\":%.2f,\"client_cpu_us_per_req\":%.2f}\n",
      o.label.c_str(), o.mode.c_str(), o.connections, o.threads,
      static_cast<long long>(o.users), o.mode == "open" ? o.rate : 0.0, seconds,
      static_cast<long long>(t.ok), static_cast<long long>(t.errors),
      static_cast<long long>(t.dropped), rps, s.mean_us, s.p50_us, s.p90_us,
      s.p99_us, s.p999_us, s.max_us, rows, bytes,
      static_cast<long long>(t.writes), static_cast<long long>(cold_exhausted),
      static_cast<long long>(t.rate_limited),
      static_cast<long long>(o.rotate_from), static_cast<long long>(user_max),
      user_per_min, server_us, client_us);
  std::fprintf(
      stderr,
      "loadgen %s %s: %lld ok, %lld errors, %lld dropped in %.2f s "
      "= %.0f req/s; latency us p50 %.0f p99 %.0f p99.9 %.0f max "
      "%.0f; %.2f rows/answer; %lld writes; %lld answers 429; "
      "%.1f requests/user/min; CPU us/request server %.1f loadgen "
      "%.1f\n",
      o.label.c_str(), o.mode.c_str(), static_cast<long long>(t.ok),
      static_cast<long long>(t.errors), static_cast<long long>(t.dropped),
      seconds, rps, s.p50_us, s.p99_us, s.p999_us, s.max_us, rows,
      static_cast<long long>(t.writes), static_cast<long long>(t.rate_limited),
      user_per_min, server_us, client_us);
}

int RunPingLoad(const Options& o) {
  const tcp::endpoint ep = Endpoint(o);
  Requests req(o);
  Shared shared(static_cast<std::size_t>(o.users));

  // Warm-up and cursor: on one thread, before anything is measured.
  {
    asio::io_context ioc(1);
    auto conns = OpenConnections(ioc, ep, std::min(o.connections, 64), 64);
    if (conns.empty()) {
      std::fprintf(stderr, "loadgen: cannot connect to %s:%d\n", o.host.c_str(),
                   o.port);
      return 1;
    }
    if (o.warmup) {
      const Ns t = NowNs();
      std::int64_t ok = Batch(
          ioc, conns, o.users,
          [&](std::int64_t i) {
            // Backwards from the rotation's start: the users the run pings
            // first are the last warmed, so none of them is 55 s past its
            // warm-up before the rotation reaches it (a million users take
            // most of a minute to warm).
            return req.PingOnly((o.rotate_from + o.users - 1 - i) % o.users);
          },
          nullptr, 240);
      std::fprintf(stderr, "loadgen: warm-up %lld/%lld pings in %.2f s\n",
                   static_cast<long long>(ok), static_cast<long long>(o.users),
                   (NowNs() - t) / 1e9);
      if (ok != o.users) return 1;
      if (o.warmup_only) {
        std::printf(
            "{\"label\":\"%s\",\"mode\":\"warmup\",\"users\":%lld,"
            "\"ok\":%lld,\"seconds\":%.3f}\n",
            o.label.c_str(), static_cast<long long>(o.users),
            static_cast<long long>(ok), (NowNs() - t) / 1e9);
        for (auto& c : conns) c->Close();
        ioc.restart();
        ioc.poll();
        return 0;
      }
    }
    if (o.base_cursor >= 0) {
      std::int64_t cursor = -1;
      Batch(
          ioc, conns, 1,
          [&](std::int64_t) { return req.Ping(0, o.base_cursor); },
          [&](std::int64_t, const Answer& a) {
            if (auto id = JsonInt(a.body, "\"presence_last_update_id\"")) {
              cursor = *id;
            }
          },
          120);
      if (cursor < 0) {
        std::fprintf(stderr, "loadgen: no presence_last_update_id\n");
        return 1;
      }
      shared.max_cursor = cursor;
      for (auto& c : shared.cursors) c.store(cursor);
    }
    for (auto& c : conns) c->Close();
    ioc.restart();
    ioc.poll();
  }

  // The measured run: connections first, then a common start time.
  const int threads = std::min(o.threads, o.connections);
  std::vector<std::unique_ptr<PingWorker>> workers;
  for (int i = 0; i < threads; ++i) {
    const int n = o.connections / threads + (i < o.connections % threads);
    workers.push_back(
        std::make_unique<PingWorker>(o, req, shared, o.rate / threads));
    auto open = OpenConnections(workers.back()->ioc(), ep, n, 256, i * 100000);
    if (static_cast<int>(open.size()) != n) {
      std::fprintf(stderr, "loadgen: only %zu of %d connections opened\n",
                   open.size(), n);
      return 1;
    }
    workers.back()->conns() = std::move(open);
  }
  const Ns t0 = NowNs() + 20'000'000;  // 20 ms from now, every thread alike
  const Ns t_end = t0 + static_cast<Ns>(o.duration * 1e9);
  for (auto& w : workers) w->SetSchedule(t0, t_end);
  const Ns server_cpu0 = ProcessesCpuNs(o.server_pids);
  const Ns client_cpu0 = SelfCpuNs();
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i) {
    pool.emplace_back([w = workers[i].get()] { w->Run(); });
  }
  workers[0]->Run();
  for (auto& t : pool) t.join();
  const Ns server_cpu1 = ProcessesCpuNs(o.server_pids);
  const Ns client_cpu = SelfCpuNs() - client_cpu0;
  const Ns server_cpu =
      (server_cpu0 >= 0 && server_cpu1 >= 0) ? server_cpu1 - server_cpu0 : -1;

  ThreadResult all;
  Ns first = 0, last = 0;
  for (auto& w : workers) {
    ThreadResult& r = w->result();
    all.latencies.insert(all.latencies.end(), r.latencies.begin(),
                         r.latencies.end());
    all.ok += r.ok;
    all.errors += r.errors;
    all.dropped += r.dropped;
    all.rows += r.rows;
    all.bytes += r.bytes;
    all.writes += r.writes;
    all.rate_limited += r.rate_limited;
    if (r.first_send && (!first || r.first_send < first)) first = r.first_send;
    last = std::max(last, r.last_done);
  }
  // Throughput over the scheduled window (open) or first send to last
  // answer (closed).
  const double seconds =
      o.mode == "open" ? o.duration : (last > first ? (last - first) / 1e9 : 0);
  Summary s = Summarise(all.latencies);
  PrintPingJson(o, s, all, seconds, shared, server_cpu, client_cpu);
  for (auto& w : workers) {
    for (auto& c : w->conns()) c->Close();
    w->ioc().restart();
    w->ioc().poll();
  }
  return all.errors == 0 ? 0 : 3;
}

// ---------------------------------------------------------------- fanout

// Says why request `i` of kind `what` did not get its 200.
void Complain(const char* what, std::int64_t i, const Answer* a) {
  if (a == nullptr) {
    std::fprintf(stderr, "loadgen: %s %lld: connection closed\n", what,
                 static_cast<long long>(i));
    return;
  }
  std::fprintf(stderr, "loadgen: %s %lld: HTTP %d %.*s\n", what,
               static_cast<long long>(i), a->status,
               static_cast<int>(std::min<std::size_t>(a->body.size(), 300)),
               a->body.data());
}

int RunFanout(const Options& o) {
  const tcp::endpoint ep = Endpoint(o);
  Requests req(o);
  asio::io_context ioc(1);
  const std::int64_t w = o.watchers;
  const long rss_before = ReadRssBytes(o.server_pids);
  const long tcp_before = TcpBufferBytes();
  const long slab_before = SocketSlabBytes();
  long rss_held = -1, tcp_held = -1, slab_held = -1;

  const Ns t_connect = NowNs();
  auto watchers = OpenConnections(ioc, ep, static_cast<int>(w), 256);
  tcp::endpoint trigger_ep = ep;
  if (o.trigger_port > 0) {
    trigger_ep.port(static_cast<unsigned short>(o.trigger_port));
  }
  auto trigger = OpenConnections(ioc, trigger_ep, 1, 1, 1'000'000);
  if (static_cast<std::int64_t>(watchers.size()) != w || trigger.empty()) {
    std::fprintf(stderr, "loadgen: only %zu of %lld watchers connected\n",
                 watchers.size(), static_cast<long long>(w));
    return 1;
  }
  // One queue per watcher, modern presence events, no initial snapshot.
  const std::string reg_body =
      "event_types=" + UrlEncode("[\"presence\"]") +
      "&fetch_event_types=" + UrlEncode("[]") + "&client_capabilities=" +
      UrlEncode("{\"simplified_presence_events\":true}");
  std::vector<std::string> queue_ids(static_cast<std::size_t>(w));
  std::int64_t registered = Batch(
      ioc, watchers, w,
      [&](std::int64_t i) {
        return req.Post(o.watch_first + i, "/api/v1/register", reg_body);
      },
      [&](std::int64_t i, const Answer& a) {
        if (auto q = JsonString(a.body, "\"queue_id\"")) queue_ids[i] = *q;
      },
      300);
  std::fprintf(stderr, "loadgen: %lld connections, %lld queues in %.2f s\n",
               static_cast<long long>(w), static_cast<long long>(registered),
               (NowNs() - t_connect) / 1e9);
  if (registered != w) return 1;

  std::vector<std::int64_t> last_event(static_cast<std::size_t>(w), -1);
  std::vector<Ns> delivered_at(static_cast<std::size_t>(w), 0);
  PollRequests polls(req, queue_ids, o.watch_first);
  std::int64_t delivered = 0, early = 0, empty = 0, failed = 0;
  Ns trigger_sent = 0;
  std::vector<Ns> all;        // every delivery of every round
  std::vector<double> maxes;  // per round, ms
  long rss_parked = -1;
  double trigger_ms_sum = 0;
  // CPU time of the delivery phases (trigger sent -> last answer), ns.
  Ns server_cpu_sum = 0, client_cpu_sum = 0;
  bool server_cpu_known = true;
  // The same split into user and system time (coarser: clock ticks).
  Ns server_user_sum = 0, server_sys_sum = 0, client_user_sum = 0,
     client_sys_sum = 0;
  bool server_split_known = true;

  for (int round = 0; round < o.rounds; ++round) {
    std::fill(delivered_at.begin(), delivered_at.end(), 0);
    delivered = 0;
    trigger_sent = 0;
    for (std::int64_t i = 0; i < w; ++i) {
      std::string r;
      polls.Append(r, i, last_event[i]);
      watchers[i]->Send(std::move(r), [&, i](Conn&, const Answer* a, Ns done) {
        PollEvents ev;
        if (a == nullptr || a->status != 200 || !ReadPollEvents(a->body, ev)) {
          if (++failed <= 3) Complain("poll", i, a);
          return;
        }
        if (trigger_sent == 0) ++early;
        if (ev.max_id < 0) ++empty;
        last_event[i] = std::max(last_event[i], ev.max_id);
        delivered_at[i] = done;
        ++delivered;
      });
    }
    // Let the server read and park every poll.
    ioc.restart();
    const Ns settle_end = NowNs() + o.settle_ms * 1'000'000LL;
    while (NowNs() < settle_end) {
      ioc.run_one_for(std::chrono::milliseconds(10));
    }
    if (round == 0) {
      rss_parked = ReadRssBytes(o.server_pids);
      if (o.hold_ms > 0) {
        const Ns hold_end = NowNs() + o.hold_ms * 1'000'000LL;
        while (NowNs() < hold_end) {
          ioc.run_one_for(std::chrono::milliseconds(10));
        }
        rss_held = ReadRssBytes(o.server_pids);
        tcp_held = TcpBufferBytes();
        slab_held = SocketSlabBytes();
      }
    }
    if (early) {
      std::fprintf(stderr, "loadgen: %lld polls answered before the event\n",
                   static_cast<long long>(early));
    }
    // One user comes online.
    double trigger_ms = -1;
    const Ns server_cpu0 = ProcessesCpuNs(o.server_pids);
    const Ns client_cpu0 = SelfCpuNs();
    const UserSysNs server_split0 = ProcessesUserSysNs(o.server_pids);
    const UserSysNs client_split0 = SelfUserSysNs();
    trigger_sent = NowNs();
    trigger[0]->Send(req.PingOnly(o.trigger_first + round),
                     [&](Conn&, const Answer* a, Ns done) {
                       if (a == nullptr || a->status != 200) {
                         ++failed;
                         Complain("trigger", round, a);
                       }
                       trigger_ms = (done - trigger_sent) / 1e6;
                     });
    const Ns deadline = NowNs() + 30'000'000'000LL;
    while ((delivered < w || trigger_ms < 0) && failed == 0) {
      ioc.run_one_for(std::chrono::milliseconds(100));
      if (NowNs() > deadline) Fatal("fan-out round timed out after 30 s");
    }
    const Ns server_cpu1 = ProcessesCpuNs(o.server_pids);
    client_cpu_sum += SelfCpuNs() - client_cpu0;
    const UserSysNs server_split1 = ProcessesUserSysNs(o.server_pids);
    const UserSysNs client_split1 = SelfUserSysNs();
    client_user_sum += client_split1.user - client_split0.user;
    client_sys_sum += client_split1.sys - client_split0.sys;
    if (server_split0.user < 0 || server_split1.user < 0) {
      server_split_known = false;
    } else {
      server_user_sum += server_split1.user - server_split0.user;
      server_sys_sum += server_split1.sys - server_split0.sys;
    }
    if (server_cpu0 < 0 || server_cpu1 < 0) {
      server_cpu_known = false;
    } else {
      server_cpu_sum += server_cpu1 - server_cpu0;
    }
    if (failed) {
      std::fprintf(stderr, "loadgen: %lld polls failed\n",
                   static_cast<long long>(failed));
      return 1;
    }
    Ns round_max = 0;
    for (std::int64_t i = 0; i < w; ++i) {
      const Ns d = delivered_at[i] - trigger_sent;
      all.push_back(d);
      round_max = std::max(round_max, d);
    }
    maxes.push_back(round_max / 1e6);
    trigger_ms_sum += trigger_ms;
    std::fprintf(stderr,
                 "loadgen: round %d: %lld deliveries, max %.1f ms, trigger "
                 "answered in %.2f ms\n",
                 round + 1, static_cast<long long>(w), round_max / 1e6,
                 trigger_ms);
  }
  Summary s = Summarise(all);
  const double n = static_cast<double>(std::max<std::int64_t>(1, s.count));
  const double server_us = server_cpu_known ? server_cpu_sum / 1e3 / n : -1;
  const double client_us = client_cpu_sum / 1e3 / n;
  const double server_user_us =
      server_split_known ? server_user_sum / 1e3 / n : -1;
  const double server_sys_us =
      server_split_known ? server_sys_sum / 1e3 / n : -1;
  const double per_poll = (rss_before > 0 && rss_parked > 0)
                              ? static_cast<double>(rss_parked - rss_before) / w
                              : -1;
  std::string round_list;
  for (double m : maxes) {
    if (!round_list.empty()) round_list += ",";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", m);
    round_list += buf;
  }
  std::printf(
      "{\"label\":\"%s\",\"mode\":\"fanout\",\"watchers\":%lld,\"rounds\":%d,"
      "\"deliveries\":%lld,\"empty\":%lld,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
      "\"max_ms\":%.3f,\"mean_ms\":%.3f,\"round_max_ms\":[%s],"
      "\"trigger_ms\":%.3f,\"rss_before\":%ld,\"rss_parked\":%ld,"
      "\"rss_per_parked_poll\":%.1f,\"server_cpu_us_per_delivery\":%.2f,"
      "\"client_cpu_us_per_delivery\":%.2f,\"hold_ms\":%d,"
      "\"rss_held\":%ld,\"rss_per_parked_poll_held\":%.1f,"
      "\"tcp_buffer_bytes_before\":%ld,\"tcp_buffer_bytes_held\":%ld,"
      "\"socket_slab_bytes_before\":%ld,\"socket_slab_bytes_held\":%ld,"
      "\"server_user_us_per_delivery\":%.2f,"
      "\"server_sys_us_per_delivery\":%.2f,"
      "\"client_user_us_per_delivery\":%.2f,"
      "\"client_sys_us_per_delivery\":%.2f}\n",
      o.label.c_str(), static_cast<long long>(w), o.rounds,
      static_cast<long long>(s.count), static_cast<long long>(empty),
      s.p50_us / 1e3, s.p99_us / 1e3, s.max_us / 1e3, s.mean_us / 1e3,
      round_list.c_str(), trigger_ms_sum / o.rounds, rss_before, rss_parked,
      per_poll, server_us, client_us, o.hold_ms, rss_held,
      (rss_before > 0 && rss_held > 0)
          ? static_cast<double>(rss_held - rss_before) / w
          : -1.0,
      tcp_before, tcp_held, slab_before, slab_held, server_user_us,
      server_sys_us, client_user_sum / 1e3 / n, client_sys_sum / 1e3 / n);
  std::fprintf(stderr,
               "loadgen fanout %lld watchers: delivery p50 %.2f ms p99 %.2f "
               "ms max %.2f ms; %.0f resident bytes per parked poll; CPU "
               "us/delivery server %.1f loadgen %.1f\n",
               static_cast<long long>(w), s.p50_us / 1e3, s.p99_us / 1e3,
               s.max_us / 1e3, per_poll, server_us, client_us);
  for (auto& c : watchers) c->Close();
  trigger[0]->Close();
  ioc.restart();
  ioc.poll();
  return empty == 0 ? 0 : 3;
}

// ---------------------------------------------------------------- churn

// Per-second figures of a churn run.
struct ChurnSecond {
  std::int64_t answers = 0, events = 0;
  std::vector<Ns> delivery;  // latencies of the events delivered
};

int RunChurn(const Options& o) {
  const tcp::endpoint ep = Endpoint(o);
  Requests req(o);
  const std::int64_t w = o.watchers;

  // 1. The ping users come online first, so that within the run their
  // pings do not write (and send no event to the watchers).
  std::int64_t cursor = -1;
  {
    asio::io_context ioc(1);
    auto conns = OpenConnections(ioc, ep, 64, 64);
    if (conns.empty()) {
      std::fprintf(stderr, "loadgen: cannot connect\n");
      return 1;
    }
    const Ns t = NowNs();
    std::int64_t ok = Batch(
        ioc, conns, o.users, [&](std::int64_t i) { return req.PingOnly(i); },
        nullptr, 240);
    std::fprintf(stderr, "loadgen: warm-up %lld/%lld pings in %.2f s\n",
                 static_cast<long long>(ok), static_cast<long long>(o.users),
                 (NowNs() - t) / 1e9);
    if (ok != o.users) return 1;
    // Every ping user starts from the current cursor (bench_populate's
    // last_update_id as --base-cursor), as a client that pinged before.
    if (o.base_cursor >= 0) {
      Batch(
          ioc, conns, 1,
          [&](std::int64_t) { return req.Ping(0, o.base_cursor); },
          [&](std::int64_t, const Answer& a) {
            if (auto id = JsonInt(a.body, "\"presence_last_update_id\"")) {
              cursor = *id;
            }
          },
          120);
    }
    for (auto& c : conns) c->Close();
    ioc.restart();
    ioc.poll();
  }
  if (cursor < 0) {
    std::fprintf(stderr, "loadgen: churn needs --base-cursor\n");
    return 1;
  }

  // 2. The watchers' queues. The online pings have a thread and an
  // io_context of their own (4.), so that they go out when due whatever
  // the watchers' reads leave of the watcher thread.
  asio::io_context ioc(1);
  asio::io_context tioc(1);
  auto watchers = OpenConnections(ioc, ep, static_cast<int>(w), 256);
  constexpr int kTriggerConns = 16;
  auto trigger =
      OpenConnections(tioc, ep, kTriggerConns, kTriggerConns, 1'000'000);
  if (static_cast<std::int64_t>(watchers.size()) != w ||
      static_cast<int>(trigger.size()) != kTriggerConns) {
    std::fprintf(stderr, "loadgen: only %zu of %lld watchers connected\n",
                 watchers.size(), static_cast<long long>(w));
    return 1;
  }
  const std::string reg_body =
      "event_types=" + UrlEncode("[\"presence\"]") +
      "&fetch_event_types=" + UrlEncode("[]") + "&client_capabilities=" +
      UrlEncode("{\"simplified_presence_events\":true}");
  std::vector<std::string> queue_ids(static_cast<std::size_t>(w));
  std::int64_t registered = Batch(
      ioc, watchers, w,
      [&](std::int64_t i) {
        return req.Post(o.watch_first + i, "/api/v1/register", reg_body);
      },
      [&](std::int64_t i, const Answer& a) {
        if (auto q = JsonString(a.body, "\"queue_id\"")) queue_ids[i] = *q;
      },
      300);
  if (registered != w) return 1;

  // 3. The ping load, on its own thread, open loop.
  Options po = o;
  po.mode = "open";
  Shared shared(static_cast<std::size_t>(o.users));
  shared.max_cursor = cursor;
  for (auto& c : shared.cursors) c.store(cursor);
  PingWorker pinger(po, req, shared, o.rate);
  {
    auto open =
        OpenConnections(pinger.ioc(), ep, o.connections, 256, 2'000'000);
    if (static_cast<int>(open.size()) != o.connections) return 1;
    pinger.conns() = std::move(open);
  }
  const Ns t0 = NowNs() + 50'000'000;
  const Ns t_end = t0 + static_cast<Ns>(o.duration * 1e9);
  pinger.SetSchedule(t0, t_end);

  // 4. Watchers re-poll on every answer; users come online on a timer.
  const std::size_t seconds = static_cast<std::size_t>(o.duration) + 12;
  std::vector<ChurnSecond> per_second(seconds);
  auto second_of = [&](Ns t) {
    const Ns i = (t - t0) / 1'000'000'000;
    return static_cast<std::size_t>(
        std::clamp<Ns>(i, 0, static_cast<Ns>(seconds) - 1));
  };
  // The k-th user's online ping: when it was due, sent and its answer read
  // (0: not yet), the last two the generator's own lateness and the
  // server's ping turn, apart from the fan-out's. Written by the online
  // thread; the watcher thread reads due_at[k] and answered_at[k] for
  // k < came_online (published with release after due_at[k]).
  const std::size_t max_online =
      static_cast<std::size_t>(std::ceil(o.trigger_rate * o.duration)) + 16;
  std::unique_ptr<std::atomic<Ns>[]> due_at(new std::atomic<Ns>[max_online]);
  std::unique_ptr<std::atomic<Ns>[]> sent_at(new std::atomic<Ns>[max_online]);
  std::unique_ptr<std::atomic<Ns>[]> answered_at(
      new std::atomic<Ns>[max_online]);
  for (std::size_t k = 0; k < max_online; ++k) {
    due_at[k].store(0, std::memory_order_relaxed);
    sent_at[k].store(0, std::memory_order_relaxed);
    answered_at[k].store(0, std::memory_order_relaxed);
  }
  std::atomic<std::int64_t> came_online{0};
  std::vector<Ns> after_answer;  // delivery minus the trigger's answer
  std::vector<std::int64_t> last_event(static_cast<std::size_t>(w), -1);
  std::vector<std::int64_t> seen(static_cast<std::size_t>(w), 0);
  std::int64_t poll_errors = 0, trigger_errors = 0, overflowed = 0;
  std::int64_t answers = 0, events = 0, heartbeats = 0;
  bool stopping = false;
  PollRequests polls(req, queue_ids, o.watch_first);
  // The first poll of each watcher; its handler re-polls with the same
  // connection's buffer and handler (Resend), allocating nothing.
  for (std::int64_t i = 0; i < w; ++i) {
    std::string r;
    polls.Append(r, i, last_event[i]);
    watchers[i]->Send(std::move(r), [&, i](Conn& conn, const Answer* a,
                                           Ns done) {
      if (stopping) return;  // closed by us at the end
      PollEvents ev;
      if (a == nullptr || a->status != 200 || !ReadPollEvents(a->body, ev)) {
        if (a && a->status != 200 &&
            a->body.find("BAD_EVENT_QUEUE_ID") != std::string::npos) {
          ++overflowed;
        } else if (++poll_errors <= 3) {
          Complain("poll", i, a);
        }
        return;
      }
      last_event[i] = std::max(last_event[i], ev.max_id);
      const std::int64_t n = ev.presence;
      heartbeats += ev.heartbeats;
      ChurnSecond& sec = per_second[second_of(done)];
      ++sec.answers;
      sec.events += n;
      ++answers;
      events += n;
      const std::int64_t online =
          std::min(seen[i] + n, came_online.load(std::memory_order_acquire));
      for (std::int64_t k = seen[i]; k < online; ++k) {
        const auto kk = static_cast<std::size_t>(k);
        sec.delivery.push_back(done -
                               due_at[kk].load(std::memory_order_relaxed));
        const Ns answered = answered_at[kk].load(std::memory_order_relaxed);
        after_answer.push_back(answered ? std::max<Ns>(0, done - answered) : 0);
      }
      seen[i] += n;
      if (stopping) return;
      polls.Append(conn.request_buffer(), i, last_event[i]);
      conn.Resend();
    });
  }

  // The online pings, on the online thread (tioc) only.
  std::deque<std::int64_t> trigger_due;  // users whose ping is due, unsent
  std::vector<Conn*> trigger_idle;
  for (auto& c : trigger) trigger_idle.push_back(c.get());
  std::int64_t next_user = 0;
  std::int64_t triggers_outstanding = 0;
  std::function<void()> send_triggers = [&] {
    while (!trigger_due.empty() && !trigger_idle.empty()) {
      Conn* c = trigger_idle.back();
      trigger_idle.pop_back();
      const std::int64_t k = trigger_due.front();
      trigger_due.pop_front();
      sent_at[static_cast<std::size_t>(k)].store(NowNs(),
                                                 std::memory_order_relaxed);
      ++triggers_outstanding;
      c->Send(req.PingOnly(o.trigger_first + k),
              [&, k](Conn& conn, const Answer* a, Ns done) {
                if (stopping) return;  // closed by us at the end
                --triggers_outstanding;
                answered_at[static_cast<std::size_t>(k)].store(
                    done, std::memory_order_relaxed);
                if (a == nullptr || a->status != 200) {
                  if (++trigger_errors <= 3) Complain("online", 0, a);
                }
                if (conn.open()) trigger_idle.push_back(&conn);
                send_triggers();
              });
    }
  };
  asio::steady_timer tick(tioc);
  const Ns interval = static_cast<Ns>(1e9 / o.trigger_rate);
  std::function<void()> on_tick = [&] {
    const Ns now = NowNs();
    while (t0 + next_user * interval <= now &&
           t0 + next_user * interval < t_end &&
           next_user < static_cast<std::int64_t>(max_online)) {
      due_at[static_cast<std::size_t>(next_user)].store(
          t0 + next_user * interval, std::memory_order_relaxed);
      came_online.store(next_user + 1, std::memory_order_release);
      trigger_due.push_back(next_user++);
    }
    send_triggers();
    const Ns next = t0 + next_user * interval;
    if (next >= t_end) return;
    tick.expires_at(Clock::time_point(std::chrono::nanoseconds(next)));
    tick.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) on_tick();
    });
  };
  tick.expires_at(Clock::time_point(std::chrono::nanoseconds(t0)));
  tick.async_wait([&](const boost::system::error_code& ec) {
    if (!ec) on_tick();
  });

  const Ns server_cpu0 = ProcessesCpuNs(o.server_pids);
  const UserSysNs server_split0 = ProcessesUserSysNs(o.server_pids);
  const Ns client_cpu0 = SelfCpuNs();
  const Ns watch_cpu0 = ThreadCpuNs();
  const UserSysNs client_split0 = SelfUserSysNs();
  const UserSysNs watch_split0 = ThreadUserSysNs();
  std::vector<long> rss;  // per second
  std::thread ping_thread([&] { pinger.Run(); });
  // The run, then up to 10 s for the last deliveries.
  const Ns drain_end = t_end + 10'000'000'000LL;
  // The online thread: until the watcher thread is done and the last
  // online ping's answer was read (a second more at most).
  std::atomic<bool> watch_done{false};
  std::thread online_thread([&] {
    tioc.restart();
    while (true) {
      tioc.run_one_for(std::chrono::milliseconds(20));
      if (watch_done.load() &&
          (triggers_outstanding == 0 || NowNs() >= drain_end + 1'000'000'000)) {
        break;
      }
    }
  });
  ioc.restart();
  Ns next_sample = t0;
  while (true) {
    ioc.run_one_for(std::chrono::milliseconds(20));
    const Ns now = NowNs();
    if (now >= next_sample) {
      rss.push_back(ReadRssBytes(o.server_pids));
      next_sample += 1'000'000'000;
    }
    if (now >= t_end) {
      bool all = true;
      const std::int64_t online = came_online.load();
      for (std::int64_t i = 0; i < w && all; ++i) {
        all = seen[i] >= online || !watchers[i]->open();
      }
      if (all || now >= drain_end) break;
    }
  }
  const Ns t_stop = NowNs();
  const Ns server_cpu1 = ProcessesCpuNs(o.server_pids);
  const UserSysNs server_split1 = ProcessesUserSysNs(o.server_pids);
  const Ns client_cpu = SelfCpuNs() - client_cpu0;
  const Ns watch_cpu = ThreadCpuNs() - watch_cpu0;
  const UserSysNs client_split1 = SelfUserSysNs();
  const UserSysNs watch_split1 = ThreadUserSysNs();
  watch_done.store(true);
  online_thread.join();
  ping_thread.join();
  stopping = true;
  const std::size_t online_count = static_cast<std::size_t>(came_online.load());
  // The online pings: due -> sent (the generator's lateness), sent ->
  // answered (the server's turn for a ping under the fan-out).
  std::vector<Ns> trigger_late, trigger_rtt;
  for (std::size_t k = 0; k < online_count; ++k) {
    const Ns sent = sent_at[k].load(), answered = answered_at[k].load();
    if (sent == 0 || answered == 0) continue;
    trigger_late.push_back(sent - due_at[k].load());
    trigger_rtt.push_back(answered - sent);
  }
  Summary tl = Summarise(trigger_late);
  Summary tr = Summarise(trigger_rtt);
  Summary aa = Summarise(after_answer);

  const std::int64_t requested = static_cast<std::int64_t>(online_count) * w;
  std::int64_t missing = 0;
  for (std::int64_t i = 0; i < w; ++i) {
    missing += std::max<std::int64_t>(
        0, static_cast<std::int64_t>(online_count) - seen[i]);
  }
  ThreadResult& pr = pinger.result();
  Summary ps = Summarise(pr.latencies);
  // Every delivery, from the per-second lists (kept once while running).
  std::vector<Ns> all_delivery;
  {
    std::size_t n = 0;
    for (const ChurnSecond& sec : per_second) n += sec.delivery.size();
    all_delivery.reserve(n);
    for (const ChurnSecond& sec : per_second) {
      all_delivery.insert(all_delivery.end(), sec.delivery.begin(),
                          sec.delivery.end());
    }
  }
  Summary ds = Summarise(all_delivery);
  const double run_s = (t_stop - t0) / 1e9;
  const double server_cores = (server_cpu0 >= 0 && server_cpu1 >= 0)
                                  ? (server_cpu1 - server_cpu0) / 1e9 / run_s
                                  : -1;
  std::string timeline;
  for (std::size_t i = 0; i < seconds; ++i) {
    ChurnSecond& sec = per_second[i];
    if (sec.answers == 0 && i >= static_cast<std::size_t>(o.duration)) break;
    Summary s = Summarise(sec.delivery);
    char buf[256];
    std::snprintf(
        buf, sizeof buf,
        "%s{\"t\":%zu,\"answers\":%lld,\"events\":%lld,"
        "\"p50_ms\":%.1f,\"p99_ms\":%.1f,\"max_ms\":%.1f,"
        "\"rss\":%ld}",
        timeline.empty() ? "" : ",", i, static_cast<long long>(sec.answers),
        static_cast<long long>(sec.events), s.p50_us / 1e3, s.p99_us / 1e3,
        s.max_us / 1e3, i < rss.size() ? rss[i] : -1L);
    timeline += buf;
  }
  std::printf(
      "{\"label\":\"%s\",\"mode\":\"churn\",\"watchers\":%lld,"
      "\"trigger_rate\":%.1f,\"ping_rate\":%.1f,\"duration\":%.1f,"
      "\"came_online\":%zu,\"requested\":%lld,\"delivered\":%lld,"
      "\"missing\":%lld,\"overflowed\":%lld,\"answers\":%lld,"
      "\"events_per_answer\":%.2f,\"deliveries_per_s\":%.0f,"
      "\"answers_per_s\":%.0f,\"delivery_p50_ms\":%.1f,"
      "\"delivery_p99_ms\":%.1f,\"delivery_max_ms\":%.1f,"
      "\"pings\":%lld,\"ping_errors\":%lld,\"pings_dropped\":%lld,"
      "\"ping_p50_ms\":%.2f,\"ping_p99_ms\":%.2f,\"ping_max_ms\":%.2f,"
      "\"poll_errors\":%lld,\"online_errors\":%lld,\"server_cores\":%.2f,"
      "\"loadgen_cores\":%.2f,\"loadgen_watch_cores\":%.2f,"
      "\"online_late_p50_ms\":%.2f,\"online_late_p99_ms\":%.2f,"
      "\"online_rtt_p50_ms\":%.2f,\"online_rtt_p99_ms\":%.2f,"
      "\"after_online_p50_ms\":%.1f,\"after_online_p99_ms\":%.1f,"
      "\"loadgen_user_cores\":%.3f,\"loadgen_sys_cores\":%.3f,"
      "\"loadgen_watch_user_cores\":%.3f,\"loadgen_watch_sys_cores\":%.3f,"
      "\"loadgen_us_per_answer\":%.2f,\"loadgen_watch_us_per_answer\":%.2f,"
      "\"server_user_cores\":%.3f,\"server_sys_cores\":%.3f,"
      "\"per_second\":[%s]}\n",
      o.label.c_str(), static_cast<long long>(w), o.trigger_rate, o.rate,
      o.duration, online_count, static_cast<long long>(requested),
      static_cast<long long>(events), static_cast<long long>(missing),
      static_cast<long long>(overflowed), static_cast<long long>(answers),
      answers ? static_cast<double>(events) / answers : 0.0, events / run_s,
      answers / run_s, ds.p50_us / 1e3, ds.p99_us / 1e3, ds.max_us / 1e3,
      static_cast<long long>(pr.ok), static_cast<long long>(pr.errors),
      static_cast<long long>(pr.dropped), ps.p50_us / 1e3, ps.p99_us / 1e3,
      ps.max_us / 1e3, static_cast<long long>(poll_errors),
      static_cast<long long>(trigger_errors), server_cores,
      client_cpu / 1e9 / run_s, watch_cpu / 1e9 / run_s, tl.p50_us / 1e3,
      tl.p99_us / 1e3, tr.p50_us / 1e3, tr.p99_us / 1e3, aa.p50_us / 1e3,
      aa.p99_us / 1e3, (client_split1.user - client_split0.user) / 1e9 / run_s,
      (client_split1.sys - client_split0.sys) / 1e9 / run_s,
      (watch_split1.user - watch_split0.user) / 1e9 / run_s,
      (watch_split1.sys - watch_split0.sys) / 1e9 / run_s,
      answers ? client_cpu / 1e3 / answers : 0.0,
      answers ? watch_cpu / 1e3 / answers : 0.0,
      server_split0.user >= 0 && server_split1.user >= 0
          ? (server_split1.user - server_split0.user) / 1e9 / run_s
          : -1.0,
      server_split0.sys >= 0 && server_split1.sys >= 0
          ? (server_split1.sys - server_split0.sys) / 1e9 / run_s
          : -1.0,
      timeline.c_str());
  std::fprintf(
      stderr,
      "loadgen churn %lld watchers, %.0f online/s: %lld of %lld "
      "delivered (%lld overflowed queues), %.2f events/answer, "
      "delivery p50 %.0f p99 %.0f max %.0f ms; pings %lld ok p50 "
      "%.2f p99 %.2f max %.2f ms; server %.2f cores\n",
      static_cast<long long>(w), o.trigger_rate, static_cast<long long>(events),
      static_cast<long long>(requested), static_cast<long long>(overflowed),
      answers ? static_cast<double>(events) / answers : 0.0, ds.p50_us / 1e3,
      ds.p99_us / 1e3, ds.max_us / 1e3, static_cast<long long>(pr.ok),
      ps.p50_us / 1e3, ps.p99_us / 1e3, ps.max_us / 1e3, server_cores);
  (void)heartbeats;
  for (auto& c : watchers) c->Close();
  for (auto& c : trigger) c->Close();
  for (auto& c : pinger.conns()) c->Close();
  ioc.restart();
  ioc.poll();
  tioc.restart();
  tioc.poll();
  return (pr.errors == 0 && poll_errors == 0 && trigger_errors == 0) ? 0 : 3;
}

// ---------------------------------------------------------------- ping

int RunPing(const Options& o) {
  const tcp::endpoint ep = Endpoint(o);
  Requests req(o);
  asio::io_context ioc(1);
  auto conns = OpenConnections(ioc, ep, 1, 1);
  if (conns.empty()) {
    std::fprintf(stderr, "loadgen: cannot connect\n");
    return 1;
  }
  const std::int64_t user =
      o.auth_user.empty() ? -1 : std::strtoll(o.auth_user.c_str(), nullptr, 10);
  int status = 0;
  Batch(
      ioc, conns, 1,
      [&](std::int64_t) {
        if (o.method == "GET") return req.Get(user, o.path);
        return req.Post(user < 0 ? 0 : user, o.path, o.body);
      },
      [&](std::int64_t, const Answer& a) {
        status = a.status;
        std::printf("%.*s\n", static_cast<int>(a.body.size()), a.body.data());
      },
      30);
  conns[0]->Close();
  ioc.restart();
  ioc.poll();
  return status == 200 ? 0 : 1;
}

}  // namespace
}  // namespace presence::bench

int main(int argc, char** argv) {
  using namespace presence::bench;
  Options o = ParseOptions(argc, argv);
  if (o.mode == "closed" || o.mode == "open") return RunPingLoad(o);
  if (o.mode == "fanout") return RunFanout(o);
  if (o.mode == "churn") return RunChurn(o);
  if (o.mode == "ping") return RunPing(o);
  Usage("unknown --mode");
}
