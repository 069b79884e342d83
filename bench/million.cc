// million: "a million-person organisation" for presenced (issue #17 item 5).
//
// Workload, all against one realm whose users came from `presencectl import`
// (their keys read from its --keys-file, `email,user_id,api_key`):
//
//   pings     Every user pings POST /api/v1/users/me/presence once a
//             --ping-interval (60 s, as Zulip clients do), at its own phase
//             of the interval, so the pings are spread evenly (1,000,000
//             users: about 16,700 a second) and consecutive pings come from
//             different users (the authentication cache is cold). Pings are
//             `status=active&ping_only=true`, over keep-alive connections;
//             they are scheduled open-loop: a ping's latency runs from when
//             it was DUE, so a generator that falls behind shows it.
//   watchers  The first --watchers users also register an event queue
//             (presence events, modern shape, the presence_transitions
//             capability, no initial snapshot) once everyone's first
//             report was answered (one ping interval into the warm-up, or
//             when it ends if sooner), and hold one parked GET
//             /api/v1/events each, re-polled at once on
//             every answer with the largest event id seen, as Zulip's clients
//             do. One connection per watcher.
//   churn     The last --churn * cycle users cycle, each at its own offset,
//             through five intervals of idle reports (the server announces
//             "idle" 200 s after the last active one), five without any
//             report (it announces "offline" at 200 s plus its grace), then
//             active reports again: the first of them is a "came online"
//             event. So, in steady state, --churn users a second go idle,
//             --churn go offline and --churn come online, and each event is
//             requested for every watcher.
//             Churners whose cycle starts in its idle reports report active
//             until that phase ends (see ReportOf), so that every churner's
//             announcements fall where its cycle puts them once the warm-up
//             (default 300 s: the first round, the watchers' registration
//             and the 230 s an offline announcement needs) is over.
//
// Delivery latency: a "came online" event is timed from when its ping was
// written (the pinging process records it in memory shared by all the
// generator's processes, by user id); a transition event ("idle",
// "offline") from its server_timestamp, when the server found it. Events
// with neither (none expected) are counted as unattributed.
//
// Processes: the parent forks --procs children, each with its own open-file
// limit, its own single-threaded event loop, an even share of the pingers
// and watchers; they report through shared memory (counters and latency
// histograms) and the parent writes one CSV row every --interval seconds:
// rates, percentiles over the interval, the server's CPU (from
// /proc/PID/stat) and resident memory, the generator's own CPU and the load
// average. Connections are made from several loopback source addresses
// (127.0.0.2, .3, ...) so that no address holds more than
// --conns-per-address, below the server's default per-address cap.
//
// Only numeric loopback addresses are accepted. Every loop is bounded by
// --duration (plus the warm-up) and a hard deadline.
#include <signal.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
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
#include <deque>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bench/http_wire.h"
#include "bench/send_now.h"
#include "http/drained_socket.h"

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Ns = std::int64_t;

Ns SteadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
Ns RealNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

[[noreturn]] void Fatal(const char* what) {
  std::fprintf(stderr, "million: %s\n", what);
  std::exit(2);
}

// ------------------------------------------------------------------ options

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string keys_file;
  std::int64_t users = 0;  // 0: every row of the keys file
  std::int64_t watchers = 9'400;
  double churn = 20;  // users a second per kind of transition
  int ping_interval_s = 60;
  // The churners' announcements are steady from 230 s on (see ReportOf),
  // and the watchers register after the first round: five minutes.
  int warmup_s = 300;
  int max_warmup_s = 420;
  int duration_s = 600;
  int interval_s = 5;
  int procs = 0;         // 0: chosen from the connection count
  int ping_conns = 256;  // per process
  int conns_per_address = 1500;
  // The server's --max-connections and --idle-timeout-seconds (defaults).
  std::int64_t max_connections = 10'000;
  int server_idle_s = 60;
  int server_pid = 0;
  std::string csv = "million.csv";
};

void Usage() {
  std::fprintf(
      stderr,
      "usage: million --server 127.0.0.1:PORT --keys KEYS.csv\n"
      "  [--users N] [--watchers W] [--churn R] [--ping-interval S]\n"
      "  [--warmup S] [--max-warmup S] [--duration S] [--interval S] "
      "[--procs P]\n"
      "  [--ping-conns C] [--conns-per-address C] [--server-pid PID]\n"
      "  [--max-connections N] [--server-idle-timeout S] [--csv FILE]\n");
}

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "-h" || a == "--help") {
      Usage();
      std::exit(0);
    }
    if (i + 1 >= argc) {
      Usage();
      Fatal("missing value");
    }
    std::string v = argv[++i];
    if (a == "--server") {
      auto colon = v.rfind(':');
      if (colon == std::string::npos) Fatal("--server wants HOST:PORT");
      o.host = v.substr(0, colon);
      o.port = std::atoi(v.c_str() + colon + 1);
    } else if (a == "--keys") {
      o.keys_file = v;
    } else if (a == "--users") {
      o.users = std::atoll(v.c_str());
    } else if (a == "--watchers") {
      o.watchers = std::atoll(v.c_str());
    } else if (a == "--churn") {
      o.churn = std::atof(v.c_str());
    } else if (a == "--ping-interval") {
      o.ping_interval_s = std::atoi(v.c_str());
    } else if (a == "--warmup") {
      o.warmup_s = std::atoi(v.c_str());
    } else if (a == "--max-warmup") {
      o.max_warmup_s = std::atoi(v.c_str());
    } else if (a == "--duration") {
      o.duration_s = std::atoi(v.c_str());
    } else if (a == "--interval") {
      o.interval_s = std::atoi(v.c_str());
    } else if (a == "--procs") {
      o.procs = std::atoi(v.c_str());
    } else if (a == "--ping-conns") {
      o.ping_conns = std::atoi(v.c_str());
    } else if (a == "--max-connections") {
      o.max_connections = std::atoll(v.c_str());
    } else if (a == "--server-idle-timeout") {
      o.server_idle_s = std::atoi(v.c_str());
    } else if (a == "--conns-per-address") {
      o.conns_per_address = std::atoi(v.c_str());
    } else if (a == "--server-pid") {
      o.server_pid = std::atoi(v.c_str());
    } else if (a == "--csv") {
      o.csv = v;
    } else {
      Usage();
      Fatal("unknown option");
    }
  }
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(o.host, ec);
  if (ec || !addr.is_loopback()) Fatal("--server must be a loopback address");
  if (o.port <= 0 || o.port > 65535) Fatal("--server port out of range");
  if (o.keys_file.empty()) Fatal("--keys is required");
  if (o.ping_interval_s < 1 || o.interval_s < 1 || o.duration_s < 1 ||
      o.warmup_s < 0 || o.max_warmup_s < o.warmup_s || o.ping_conns < 1 ||
      o.conns_per_address < 1 || o.server_idle_s < 2) {
    Fatal("bad interval, duration, warm-up or connection count");
  }
  if (o.duration_s > 7200) Fatal("--duration is at most 7200 s");
  return o;
}

// --------------------------------------------------------------- the users

// Fixed-width records, loaded once by the parent and shared copy-on-write
// with the children.
struct Users {
  std::vector<std::string> auth;  // "Authorization: Basic ...\r\n"
  std::vector<std::int64_t> id;   // the server's user id
  std::int64_t max_id = 0;
};

std::string Base64(std::string_view in) {
  static const char* k =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                 (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    out.push_back(k[(v >> 18) & 63]);
    out.push_back(k[(v >> 12) & 63]);
    out.push_back(k[(v >> 6) & 63]);
    out.push_back(k[v & 63]);
  }
  if (i < in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out.push_back(k[(v >> 18) & 63]);
    out.push_back(k[(v >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? k[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

Users LoadUsers(const Options& o) {
  std::ifstream in(o.keys_file);
  if (!in) Fatal("cannot read --keys");
  Users u;
  std::string line;
  while (std::getline(in, line)) {
    if (o.users > 0 && static_cast<std::int64_t>(u.id.size()) >= o.users) {
      break;
    }
    auto c1 = line.find(',');
    auto c2 = line.find(',', c1 == std::string::npos ? c1 : c1 + 1);
    if (c1 == std::string::npos || c2 == std::string::npos) continue;
    std::string email = line.substr(0, c1);
    std::string idtext = line.substr(c1 + 1, c2 - c1 - 1);
    std::string key = line.substr(c2 + 1);
    if (!key.empty() && key.back() == '\r') key.pop_back();
    if (email == "email" || idtext.empty() ||
        idtext.find_first_not_of("0123456789") != std::string::npos) {
      continue;  // the header line
    }
    const std::int64_t id = std::atoll(idtext.c_str());
    u.id.push_back(id);
    u.max_id = std::max(u.max_id, id);
    u.auth.push_back("Authorization: Basic " + Base64(email + ":" + key) +
                     "\r\n");
  }
  return u;
}

// ------------------------------------------------------- shared statistics

// Log-linear histogram of microseconds: exact below 64, then 32 buckets per
// power of two (about 3% wide).
constexpr int kBuckets = 64 + 40 * 32;

int Bucket(std::int64_t us) {
  if (us < 0) us = 0;
  if (us < 64) return static_cast<int>(us);
  const int e = 63 - __builtin_clzll(static_cast<unsigned long long>(us));
  const int sub = static_cast<int>((us >> (e - 5)) & 31);
  return std::min(kBuckets - 1, 64 + (e - 6) * 32 + sub);
}

double BucketMidMs(int b) {
  if (b < 64) return b / 1000.0;
  const int e = (b - 64) / 32 + 6;
  const int sub = (b - 64) % 32;
  const double lo = std::ldexp(32 + sub, e - 5);
  const double hi = std::ldexp(33 + sub, e - 5);
  return (lo + hi) / 2 / 1000.0;
}

enum Counter {
  kPingsDue,
  kPingsOk,
  kPingErrors,
  kCameOnlineSent,
  kAnswers,  // answered polls (200), heartbeats included
  kEvents,   // presence events delivered
  kHeartbeats,
  kCameOnlineRecv,
  kIdleRecv,
  kOfflineRecv,
  kUnattributed,
  kPollErrors,
  kWatchersReady,  // gauge
  kPingBacklog,    // gauge
  kFirstPings,     // users whose first report was answered
  kCounters
};

// Errors by kind (what failed, its HTTP status and Zulip code, or why no
// answer came): a small table per child, filled by the child alone (a name
// is written before its count leaves 0) and read by the parent.
constexpr int kErrorKinds = 48;
struct ErrorKind {
  std::atomic<std::uint64_t> count;
  std::atomic<std::int64_t> first_ms;  // since the warm-up began
  char name[96];
};

struct ChildStats {
  std::atomic<std::uint64_t> c[kCounters];
  ErrorKind errors[kErrorKinds];
  std::atomic<int> error_kinds;
  std::atomic<std::uint64_t> ping_hist[kBuckets];
  std::atomic<std::uint64_t> deliv_hist[kBuckets];
  std::atomic<std::int64_t> ping_max_us;
  std::atomic<std::int64_t> deliv_max_us;
  std::atomic<int> done;
};

struct Shared {
  std::atomic<int> stop;
  std::atomic<Ns> t0;         // steady clock: warm-up starts
  std::atomic<Ns> run_start;  // steady clock: measurement starts (0: not yet)
  // Steady clock: the watchers register (0: not yet). During the warm-up,
  // once everyone's first report was answered, so that 19,000 of them are
  // parked before the first sample.
  std::atomic<Ns> watch_start;
};

// Adds to a counter or histogram bucket of a ChildStats. Each has one
// writer, its own process (the parent only loads them), so a plain load and
// store do: no locked read-modify-write per event (issue #17: the
// generator's CPU per answer).
void Bump(std::atomic<std::uint64_t>& a, std::uint64_t n = 1) {
  a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}
void Add(ChildStats* s, Counter k, std::uint64_t n = 1) { Bump(s->c[k], n); }
void Max(std::atomic<std::int64_t>& m, std::int64_t v) {
  std::int64_t cur = m.load(std::memory_order_relaxed);
  while (v > cur && !m.compare_exchange_weak(cur, v)) {
  }
}

template <typename T>
T* MapShared(std::size_t n) {
  void* p = mmap(nullptr, sizeof(T) * n, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) Fatal("mmap failed");
  return static_cast<T*>(p);  // zero-filled: atomics start at 0
}

// ---------------------------------------------------------- HTTP over Asio

using presence::bench::wire::Answer;

// One keep-alive HTTP/1.1 connection with at most one request in flight.
// Answers are framed by Content-Length (presenced always sends it).
class Conn : public std::enable_shared_from_this<Conn> {
 public:
  using Done = std::function<void(const Answer*)>;  // nullptr: failed

  Conn(asio::io_context& ioc, tcp::endpoint server, asio::ip::address source)
      : sock_(ioc), server_(server), source_(source) {}

  // Opens the socket on its source address. Connect() then connects at
  // once (blocking: only before the run); otherwise the first Send
  // connects asynchronously, so that a server slow to accept does not
  // stall this process's event loop.
  bool Open() {
    boost::system::error_code ec;
    sock_.open(server_.protocol(), ec);
    if (!ec) sock_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) sock_.bind(tcp::endpoint(source_, 0), ec);
    if (ec) {
      sock_.close(ec);
      return false;
    }
    return true;
  }

  bool Connect() {
    boost::system::error_code ec;
    sock_.connect(server_, ec);
    if (!ec) sock_.set_option(tcp::no_delay(true), ec);
    if (!ec) sock_.non_blocking(true, ec);
    if (ec) {
      sock_.close(ec);
      return false;
    }
    connected_ = true;
    return true;
  }

  bool busy() const { return busy_; }
  // Steady time its last request was answered (or it was opened).
  Ns last_used() const { return last_used_; }

  // Why the last request got no answer ("connect: Connection refused").
  const std::string& why() const { return why_; }

  void Send(std::string req, Done done) {
    out_ = std::move(req);
    SendBuffered(std::move(done));
  }

  // The next request's buffer, emptied (its capacity kept), for
  // SendBuffered: a request built in it allocates nothing once it grew.
  std::string& request_buffer() {
    out_.clear();
    return out_;
  }

  void SendBuffered(Done done) {
    busy_ = true;
    done_ = std::move(done);
    auto self = shared_from_this();
    if (!connected_) {
      sock_.async_connect(server_, [self](boost::system::error_code ec) {
        if (ec) return self->Fail("connect", ec);
        self->connected_ = true;
        self->sock_.set_option(tcp::no_delay(true), ec);
        self->sock_.non_blocking(true, ec);
        self->DoWrite();
      });
      return;
    }
    DoWrite();
  }

 private:
  // One send() from here (Asio's write operation only when the socket's
  // buffer is full), then a read that waits for epoll when the previous
  // answer drained the socket (http/drained_socket.h): one send and one
  // recv per request (issue #17, the generator's CPU per answer).
  void DoWrite() {
    boost::system::error_code ec;
    std::size_t sent = 0;
    const auto r = presence::bench::SendNow(sock_, out_, sent, ec);
    auto self = shared_from_this();
    if (r == presence::bench::SendNowResult::kSent) {
      // Inside OnRead's call of the handler: after the buffer is compacted.
      if (in_handler_) {
        read_after_handler_ = true;
      } else {
        DoRead();
      }
      return;
    }
    if (r == presence::bench::SendNowResult::kFailed) {
      // Reported from the io_context, never inside Send.
      asio::post(sock_.get_executor(), [self, ec] { self->Fail("write", ec); });
      return;
    }
    asio::async_write(sock_,
                      asio::buffer(out_.data() + sent, out_.size() - sent),
                      [self](boost::system::error_code ec, std::size_t) {
                        if (ec) return self->Fail("write", ec);
                        self->DoRead();
                      });
  }

  void DoRead() {
    if (in_.size() - used_ < 16384) in_.resize(used_ + 65536);
    auto self = shared_from_this();
    reader_.async_read_some(
        asio::buffer(in_.data() + used_, in_.size() - used_),
        [self](boost::system::error_code ec, std::size_t n) {
          if (ec) {
            return self->Fail(self->used_ == 0 ? "read, nothing yet"
                                               : "read, part of an answer",
                              ec);
          }
          self->used_ += n;
          self->OnRead();
        });
  }

  void OnRead() {
    Answer a;
    const long consumed = presence::bench::wire::ParseResponse(
        std::string_view(in_.data(), used_), a);
    if (consumed < 0) {
      return Fail("read, malformed answer",
                  asio::error::make_error_code(asio::error::invalid_argument));
    }
    if (consumed == 0) return DoRead();
    Done done = std::move(done_);
    busy_ = false;
    last_used_ = SteadyNs();
    in_handler_ = true;
    done(&a);
    in_handler_ = false;
    // Anything after the answer (nothing, with one request in flight).
    std::memmove(in_.data(), in_.data() + consumed, used_ - consumed);
    used_ -= static_cast<std::size_t>(consumed);
    if (read_after_handler_) {
      read_after_handler_ = false;
      DoRead();
    }
  }

  void Fail(const char* stage, const boost::system::error_code& ec) {
    why_ = std::string(stage) + ": " + ec.message();
    boost::system::error_code ignored;
    sock_.close(ignored);
    busy_ = false;
    used_ = 0;
    broken_ = true;
    if (done_) {
      Done done = std::move(done_);
      done(nullptr);
    }
  }

 public:
  bool broken_ = false;

 private:
  tcp::socket sock_;
  presence::http::DrainedSocket reader_{sock_};
  tcp::endpoint server_;
  asio::ip::address source_;
  std::string out_;
  std::vector<char> in_;
  std::size_t used_ = 0;
  bool busy_ = false;
  bool connected_ = false;
  bool in_handler_ = false;
  bool read_after_handler_ = false;
  Done done_;
  std::string why_;
  Ns last_used_ = SteadyNs();
};

// ------------------------------------------------------------ the schedule

// Where a user's phase falls in the ping interval: golden-ratio spacing
// spreads consecutive users evenly.
double Phase(std::int64_t i) {
  double x = static_cast<double>(i) * 0.6180339887498949;
  return x - std::floor(x);
}

constexpr int kIdleIntervals = 5;     // idle reports: > 200 s
constexpr int kOfflineIntervals = 5;  // no report: > 200 s + 30 s grace
constexpr int kActiveIntervals = 5;
constexpr int kCycle = kIdleIntervals + kOfflineIntervals + kActiveIntervals;

enum class Report { kActive, kCameOnline, kIdle, kNone };

struct Plan {
  std::int64_t users = 0;
  std::int64_t watchers = 0;
  std::int64_t churn_first = 0;  // users [churn_first, users) cycle
};

Report ReportOf(const Plan& p, std::int64_t user, std::int64_t k) {
  if (user < p.churn_first) return Report::kActive;
  // A churner whose cycle starts in its idle reports reports active until
  // that phase ends, then follows its cycle (silence, coming online, ...).
  // An imported user that never reported active counts as active since it
  // joined: an idle first report would make it go idle 200 s after the
  // import, together with every other such user (a burst of churn * 300
  // idle announcements at once); staying silent until it comes online
  // (17daf33) left the offline announcements missing for the first nine
  // minutes; reporting active once in the first round made a third of the
  // churners go idle in the same minute, 200 s in (5x the planned rate: at
  // 19,000 watchers the event queues passed their memory cap). This way
  // these churners announce no idle in their first cycle (it was due
  // before 200 s), go offline where their cycle puts them, and from about
  // 230 s on every churner's announcements fall where its cycle puts them,
  // which the default warm-up (300 s) covers.
  const std::int64_t pos0 = (user - p.churn_first) % kCycle;
  if (pos0 < kIdleIntervals && k < kIdleIntervals - pos0) {
    return Report::kActive;
  }
  const std::int64_t pos = (k + (user - p.churn_first)) % kCycle;
  if (pos < kIdleIntervals) return Report::kIdle;
  if (pos < kIdleIntervals + kOfflineIntervals) return Report::kNone;
  if (pos == kIdleIntervals + kOfflineIntervals) return Report::kCameOnline;
  return Report::kActive;
}

// ------------------------------------------------------------------ child

// Reads the events of a GET /events answer in one pass (bench/http_wire.h)
// and records what they bring. False if the body is not well-formed JSON,
// has no "events" array or its "result" is not "success" (the events found
// before the fault are recorded).
bool Digest(std::string_view body, const std::int64_t* caused_at,
            std::int64_t max_id, Ns now_real, ChildStats* s,
            std::int64_t* last_event_id) {
  presence::bench::wire::EventsSummary sum;
  const bool ok = presence::bench::wire::ScanEvents(
      body, sum, [&](const presence::bench::wire::Event& ev) {
        if (presence::bench::wire::Is(ev.type, "heartbeat")) {
          Add(s, kHeartbeats);
          return;
        }
        if (!presence::bench::wire::Is(ev.type, "presence")) return;
        Add(s, kEvents);
        Ns cause = -1;
        if (!ev.transition.empty()) {
          Add(s, ev.transition.starts_with("idle") ? kIdleRecv : kOfflineRecv);
          if (ev.server_timestamp >= 0) {
            cause = static_cast<Ns>(ev.server_timestamp * 1e9);
          }
        } else {
          if (ev.user >= 0 && ev.user <= max_id) {
            const Ns at = caused_at[ev.user];
            // Only a came-online ping of this run, recent enough to be it.
            if (at > 0 && now_real - at < 120'000'000'000LL) cause = at;
          }
          if (cause > 0) Add(s, kCameOnlineRecv);
        }
        if (cause <= 0) {
          Add(s, kUnattributed);
          return;
        }
        const std::int64_t us = std::max<Ns>(0, now_real - cause) / 1000;
        Bump(s->deliv_hist[Bucket(us)]);
        Max(s->deliv_max_us, us);
      });
  *last_event_id = std::max<std::int64_t>(*last_event_id, sum.max_id);
  return ok && sum.has_events &&
         presence::bench::wire::Is(sum.result, "success");
}

class Child {
 public:
  Child(const Options& o, const Users& users, const Plan& plan, int index,
        int procs, ChildStats* stats, Shared* shared, std::int64_t* caused_at)
      : o_(o),
        users_(users),
        plan_(plan),
        index_(index),
        procs_(procs),
        s_(stats),
        shared_(shared),
        caused_at_(caused_at),
        timer_(ioc_),
        tick_(ioc_) {
    server_ = tcp::endpoint(asio::ip::make_address(o.host),
                            static_cast<unsigned short>(o.port));
    host_ = "Host: " + o.host + ":" + std::to_string(o.port) + "\r\n";
  }

  int Run() {
    // My pingers, in phase order.
    for (std::int64_t u = index_; u < plan_.users; u += procs_) {
      schedule_.push_back(u);
    }
    std::sort(
        schedule_.begin(), schedule_.end(),
        [](std::int64_t a, std::int64_t b) { return Phase(a) < Phase(b); });
    for (std::int64_t w = index_; w < plan_.watchers; w += procs_) {
      watchers_.emplace_back();
      watchers_.back().user = w;
    }
    for (int i = 0; i < o_.ping_conns; ++i) {
      auto c = NewConn(true);
      if (!c) Fatal("a pinger could not connect");
      pingers_.push_back(c);
    }
    t0_ = shared_->t0.load();
    // A hard deadline; the parent normally says stop well before it.
    end_ = t0_ + (o_.max_warmup_s + static_cast<Ns>(o_.duration_s) + 30) *
                     1'000'000'000;
    ArmPing();
    ArmTick();
    ioc_.run();
    s_->done.store(1);
    return 0;
  }

 private:
  struct Watcher {
    std::int64_t user;
    std::shared_ptr<Conn> conn;
    std::string queue_id;
    std::string poll_prefix;  // "GET ...&last_event_id="
    std::string poll_suffix;  // " HTTP/1.1\r\n" and the headers
    std::int64_t last_event_id = -1;
    bool registering = false;
  };

  // A connection from the next source address; `now`: connected before
  // returning (pingers, before the run), else by its first request.
  std::shared_ptr<Conn> NewConn(bool now) {
    // Source addresses 127.0.0.2, .3, ...: conns_per_address each, counted
    // over all the children.
    const std::int64_t n = next_conn_++ * procs_ + index_;
    const auto a = static_cast<unsigned>(2 + n / o_.conns_per_address);
    if (a > 250) Fatal("too many connections for the loopback addresses");
    asio::ip::address source = asio::ip::make_address_v4(
        asio::ip::address_v4::uint_type{(127u << 24) | a});
    if (server_.address().is_v6()) source = asio::ip::address_v6::loopback();
    auto c = std::make_shared<Conn>(ioc_, server_, source);
    if (!c->Open() || (now && !c->Connect())) return nullptr;
    return c;
  }

  std::string Post(std::int64_t user, std::string_view path,
                   std::string_view body) const {
    std::string r;
    r.reserve(200 + body.size());
    AppendPost(r, user, path, body);
    return r;
  }

  // Post's request appended to `r` (a connection's request_buffer(): no
  // allocation once it grew).
  void AppendPost(std::string& r, std::int64_t user, std::string_view path,
                  std::string_view body) const {
    r.append("POST ").append(path).append(" HTTP/1.1\r\n").append(host_);
    r.append(users_.auth[user]);
    r.append(
        "User-Agent: ZulipMillionBench/1.0\r\nContent-Type: "
        "application/x-www-form-urlencoded\r\nContent-Length: ");
    char n[24];
    r.append(n, std::to_chars(n, n + sizeof n, body.size()).ptr);
    r.append("\r\n\r\n").append(body);
  }

  // ---- pings

  static constexpr Ns kPingTickNs = 1'000'000;

  struct Due {
    std::int64_t user;
    Ns due;
    Report report;
    bool first = false;  // the user's first report of the run
  };

  void ArmPing() {
    const double interval_ns = o_.ping_interval_s * 1e9;
    for (;;) {
      if (sched_pos_ == schedule_.size()) {
        sched_pos_ = 0;
        ++round_;
      }
      const std::int64_t u = schedule_[sched_pos_];
      const Ns due = t0_ + static_cast<Ns>((round_ + Phase(u)) * interval_ns);
      if (due >= end_) return;
      const Ns now = SteadyNs();
      if (due > now) {
        // Pings are sent in ticks of kPingTickNs, all that are due at once,
        // not each at its own instant: a wake-up per ping (its timer, then
        // its answer) cost the generator 31-38 us a ping in gen21's
        // profile, CPU taken from the server it shares the cores with. A
        // ping goes out up to one tick after it is due; its latency is
        // still timed from when it was due.
        timer_.expires_after(
            std::chrono::nanoseconds(std::max(due - now, kPingTickNs)));
        timer_.async_wait([this](boost::system::error_code ec) {
          if (!ec && !shared_->stop.load()) ArmPing();
        });
        return;
      }
      ++sched_pos_;
      const Report r = ReportOf(plan_, u, round_);
      if (r == Report::kNone) continue;
      Add(s_, kPingsDue);
      backlog_.push_back(Due{u, due, r});
      Pump();
    }
  }

  void Pump() {
    // A connection idle for most of the server's idle timeout is replaced
    // before it is used, as an HTTP client's pool does: the server may
    // close it at any moment, and a ping written as it does gets no answer.
    const Ns stale = SteadyNs() - o_.server_idle_s * 750'000'000LL;
    for (auto& c : pingers_) {
      if (backlog_.empty()) break;
      if (c->busy()) continue;
      if (c->broken_ || c->last_used() < stale) {
        c = NewConn(false);
        if (!c) Fatal("a pinger could not reconnect");
      }
      Due d = backlog_.front();
      backlog_.pop_front();
      SendPing(c, d);
    }
    s_->c[kPingBacklog].store(backlog_.size(), std::memory_order_relaxed);
  }

  void SendPing(const std::shared_ptr<Conn>& c, Due d) {
    const char* body = d.report == Report::kIdle
                           ? "status=idle&ping_only=true"
                           : "status=active&ping_only=true";
    // An imported user has no presence row: its first report, whatever
    // it says, comes online too; so does a report more than 130 s after
    // the user's last answered one (Zulip's rule), e.g. after a failed or
    // a late ping, not only at the end of a churn cycle.
    d.first = !reported_[d.user];
    reported_[d.user] = true;
    const Ns last_ok = last_ok_[d.user / procs_];
    const bool gap = last_ok != 0 && SteadyNs() - last_ok > 130'000'000'000LL;
    if (d.report == Report::kCameOnline || d.first || gap) {
      // Before the write: a watcher may read the event before we return.
      caused_at_[users_.id[d.user]] = RealNs();
      Add(s_, kCameOnlineSent);
    }
    AppendPost(c->request_buffer(), d.user, "/api/v1/users/me/presence", body);
    c->SendBuffered([this, d, conn = c.get()](const Answer* a) {
      const std::int64_t us = (SteadyNs() - d.due) / 1000;
      if (a == nullptr || a->status != 200) {
        Add(s_, kPingErrors);
        CountError("ping", a, conn);
        if (ping_complaints_++ < 3) {
          std::fprintf(
              stderr, "million: ping failed: %d %.*s\n", a ? a->status : -1,
              a ? static_cast<int>(std::min<std::size_t>(a->body.size(), 200))
                : 0,
              a ? a->body.data() : "");
        }
      } else {
        Add(s_, kPingsOk);
        if (d.first) Add(s_, kFirstPings);
        last_ok_[d.user / procs_] = SteadyNs();
      }
      Bump(s_->ping_hist[Bucket(us)]);
      Max(s_->ping_max_us, us);
      asio::post(ioc_, [this] { Pump(); });
    });
  }

  // ---- errors

  // Counts one failed request by kind: `op`, then the HTTP status and Zulip
  // code of `a`, or why `conn` got no answer (no `conn`: no socket could be
  // opened).
  void CountError(const char* op, const Answer* a, const Conn* conn) {
    std::string name = op;
    if (a != nullptr) {
      name += " " + std::to_string(a->status);
      auto c = a->body.find("\"code\":\"");
      if (c != std::string_view::npos) {
        c += 8;
        name += " " + std::string(a->body.substr(c, a->body.find('"', c) - c));
      }
    } else if (conn != nullptr) {
      name += " no answer (" + conn->why() + ")";
    } else {
      name += " no socket";
    }
    name.resize(std::min(name.size(), sizeof(ErrorKind::name) - 1));
    const int n = s_->error_kinds.load();
    int k = 0;
    while (k < n && name != s_->errors[k].name) ++k;
    if (k == n && n == kErrorKinds) k = kErrorKinds - 1;
    if (k == n) {
      // The last slot gathers whatever does not fit.
      if (n == kErrorKinds - 1) name = "other kinds";
      std::memcpy(s_->errors[k].name, name.c_str(), name.size() + 1);
      s_->errors[k].first_ms.store((SteadyNs() - t0_) / 1'000'000);
      s_->error_kinds.store(n + 1);
    }
    s_->errors[k].count.fetch_add(1, std::memory_order_relaxed);
  }

  // ---- watchers

  void ArmTick() {
    tick_.expires_after(std::chrono::milliseconds(100));
    tick_.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      const Ns now = SteadyNs();
      if (shared_->stop.load() || now >= end_ + 2'000'000'000) {
        ioc_.stop();
        return;
      }
      if (shared_->watch_start.load() != 0) StartWatchers();
      ArmTick();
    });
  }

  // Registers (at most 64 at once from this process) the watchers that have
  // no queue yet, and (re)connects broken ones.
  void StartWatchers() {
    for (std::size_t i = next_watcher_;
         i < watchers_.size() && registering_ < 256; ++i) {
      next_watcher_ = i + 1;
      Register(i);
    }
  }

  void Register(std::size_t i) {
    Watcher& w = watchers_[i];
    if (!w.conn || w.conn->broken_) w.conn = NewConn(false);
    if (!w.conn) {
      Add(s_, kPollErrors);
      CountError("register", nullptr, nullptr);
      return Retry(i);
    }
    static const std::string body =
        "event_types=%5B%22presence%22%5D&fetch_event_types=%5B%5D"
        "&client_capabilities=%7B%22simplified_presence_events%22%3Atrue%2C"
        "%22presence_transitions%22%3Atrue%7D";
    ++registering_;
    w.registering = true;
    w.conn->Send(
        Post(w.user, "/api/v1/register", body), [this, i](const Answer* a) {
          --registering_;
          Watcher& w = watchers_[i];
          w.registering = false;
          std::string_view b = a ? a->body : std::string_view();
          auto q = b.find("\"queue_id\":\"");
          if (a == nullptr || a->status != 200 || q == std::string_view::npos) {
            Add(s_, kPollErrors);
            CountError(a != nullptr && a->status == 200
                           ? "register without queue_id"
                           : "register",
                       a, w.conn.get());
            return Retry(i);
          }
          q += 12;
          w.queue_id = std::string(b.substr(q, b.find('"', q) - q));
          w.poll_prefix =
              "GET /api/v1/events?queue_id=" + w.queue_id + "&last_event_id=";
          w.poll_suffix = " HTTP/1.1\r\n" + host_ + users_.auth[w.user] +
                          "User-Agent: ZulipMillionBench/1.0\r\n\r\n";
          w.last_event_id = -1;
          Add(s_, kWatchersReady);
          asio::post(ioc_, [this] { StartWatchers(); });
          Poll(i);
        });
  }

  void Retry(std::size_t i) {
    auto t = std::make_shared<asio::steady_timer>(ioc_);
    t->expires_after(std::chrono::seconds(1));
    t->async_wait([this, i, t](boost::system::error_code ec) {
      if (!ec && !shared_->stop.load()) Register(i);
    });
  }

  void Poll(std::size_t i) {
    Watcher& w = watchers_[i];
    if (!w.conn || w.conn->broken_) w.conn = NewConn(false);
    if (!w.conn) {
      s_->c[kWatchersReady].fetch_sub(1);
      Add(s_, kPollErrors);
      CountError("poll", nullptr, nullptr);
      return Retry(i);
    }
    // Pre-formatted but for the last event id (set at registration).
    std::string& r = w.conn->request_buffer();
    r += w.poll_prefix;
    char id[24];
    r.append(id, std::to_chars(id, id + sizeof id, w.last_event_id).ptr);
    r += w.poll_suffix;
    w.conn->SendBuffered([this, i](const Answer* a) {
      Watcher& w = watchers_[i];
      if (a == nullptr || a->status != 200) {
        Add(s_, kPollErrors);
        CountError("poll", a, w.conn.get());
        if (poll_complaints_++ < 3) {
          std::fprintf(
              stderr, "million: poll failed: %d %.*s\n", a ? a->status : -1,
              a ? static_cast<int>(std::min<std::size_t>(a->body.size(), 200))
                : 0,
              a ? a->body.data() : "");
        }
        s_->c[kWatchersReady].fetch_sub(1);
        if (a != nullptr &&
            a->body.find("BAD_EVENT_QUEUE_ID") != std::string_view::npos) {
          return Retry(i);
        }
        // Same queue, new connection, after a second.
        auto t = std::make_shared<asio::steady_timer>(ioc_);
        t->expires_after(std::chrono::seconds(1));
        t->async_wait([this, i, t](boost::system::error_code ec) {
          if (ec || shared_->stop.load()) return;
          Add(s_, kWatchersReady);
          Poll(i);
        });
        return;
      }
      Add(s_, kAnswers);
      if (!Digest(a->body, caused_at_, users_.max_id, RealNs(), s_,
                  &w.last_event_id)) {
        Add(s_, kPollErrors);
        CountError("poll, malformed events", a, w.conn.get());
      }
      if (!shared_->stop.load()) Poll(i);
    });
  }

  const Options& o_;
  const Users& users_;
  const Plan plan_;
  const int index_;
  const int procs_;
  ChildStats* s_;
  Shared* shared_;
  std::int64_t* caused_at_;
  asio::io_context ioc_{1};  // one thread (the drained reads)
  asio::steady_timer timer_;
  asio::steady_timer tick_;
  tcp::endpoint server_;
  std::string host_;
  Ns t0_ = 0, end_ = 0;
  std::vector<std::int64_t> schedule_;
  std::vector<bool> reported_ = std::vector<bool>(plan_.users);
  // Steady time of each of my users' last answered report (user / procs_).
  std::vector<Ns> last_ok_ = std::vector<Ns>(plan_.users / procs_ + 1);
  std::size_t sched_pos_ = 0;
  std::int64_t round_ = 0;
  std::deque<Due> backlog_;
  std::vector<std::shared_ptr<Conn>> pingers_;
  std::vector<Watcher> watchers_;
  std::size_t next_watcher_ = 0;
  int registering_ = 0;
  std::int64_t next_conn_ = 0;
  int ping_complaints_ = 0;
  int poll_complaints_ = 0;
};

// ----------------------------------------------------------------- parent

// utime + stime of a process, in ns; -1 when it cannot be read.
Ns ProcessCpuNs(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), {});
  auto rp = s.rfind(')');
  if (rp == std::string::npos) return -1;
  // Fields after the command: state is field 3; utime 14, stime 15.
  const char* p = s.c_str() + rp + 2;
  unsigned long long ut = 0, st = 0;
  for (int field = 3; field <= 15 && *p; ++field) {
    if (field == 14) ut = std::strtoull(p, nullptr, 10);
    if (field == 15) st = std::strtoull(p, nullptr, 10);
    p = std::strchr(p, ' ');
    if (!p) break;
    ++p;
  }
  return static_cast<Ns>((ut + st) * (1e9 / sysconf(_SC_CLK_TCK)));
}

long RssBytes(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/statm");
  long size = 0, rss = -1;
  if (!(f >> size >> rss)) return -1;
  return rss * sysconf(_SC_PAGESIZE);
}

double Load1() {
  std::ifstream f("/proc/loadavg");
  double l = -1;
  f >> l;
  return l;
}

struct Snapshot {
  std::uint64_t c[kCounters] = {};
  std::vector<std::uint64_t> ping_hist = std::vector<std::uint64_t>(kBuckets);
  std::vector<std::uint64_t> deliv_hist = std::vector<std::uint64_t>(kBuckets);
  std::int64_t ping_max_us = 0, deliv_max_us = 0;
  Ns server_cpu = -1, gen_cpu = 0;
};

Snapshot Take(ChildStats* stats, int procs, const std::vector<pid_t>& kids,
              int server_pid) {
  Snapshot s;
  for (int k = 0; k < procs; ++k) {
    for (int i = 0; i < kCounters; ++i) s.c[i] += stats[k].c[i].load();
    for (int b = 0; b < kBuckets; ++b) {
      s.ping_hist[b] += stats[k].ping_hist[b].load();
      s.deliv_hist[b] += stats[k].deliv_hist[b].load();
    }
    // The maxima are per interval: taken and reset.
    s.ping_max_us = std::max(s.ping_max_us, stats[k].ping_max_us.exchange(0));
    s.deliv_max_us =
        std::max(s.deliv_max_us, stats[k].deliv_max_us.exchange(0));
  }
  if (server_pid > 0) s.server_cpu = ProcessCpuNs(server_pid);
  for (pid_t p : kids) s.gen_cpu += std::max<Ns>(0, ProcessCpuNs(p));
  return s;
}

double Percentile(const Snapshot& a, const Snapshot& b, bool deliveries,
                  double q) {
  const auto& ha = deliveries ? a.deliv_hist : a.ping_hist;
  const auto& hb = deliveries ? b.deliv_hist : b.ping_hist;
  std::uint64_t total = 0;
  for (int i = 0; i < kBuckets; ++i) total += hb[i] - ha[i];
  if (total == 0) return 0;
  const auto want = static_cast<std::uint64_t>(std::ceil(q * total));
  std::uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += hb[i] - ha[i];
    if (seen >= want && want > 0) return BucketMidMs(i);
  }
  return BucketMidMs(kBuckets - 1);
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = Parse(argc, argv);
  Users users = LoadUsers(o);
  Plan plan;
  plan.users = static_cast<std::int64_t>(users.id.size());
  plan.watchers = std::min(o.watchers, plan.users);
  const auto churn_users = static_cast<std::int64_t>(
      std::llround(o.churn * kCycle * o.ping_interval_s));
  plan.churn_first = std::max(plan.watchers, plan.users - churn_users);
  if (plan.users == 0) Fatal("no users in --keys");

  rlimit fl{};
  getrlimit(RLIMIT_NOFILE, &fl);
  if (fl.rlim_cur < fl.rlim_max) {
    fl.rlim_cur = fl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &fl);
  }
  int procs = o.procs;
  if (procs <= 0) {
    // Keep every child well inside its open-file limit.
    const std::int64_t room = std::max<std::int64_t>(
        1000, static_cast<std::int64_t>(fl.rlim_cur) - 500);
    procs = 1;
    while ((plan.watchers + procs - 1) / procs + o.ping_conns > room) ++procs;
    procs = std::max(procs, 2);
  }

  // Every watcher holds a connection, and so does every pinger: beyond
  // the server's cap, the extra watchers are refused (503
  // TOO_MANY_CONNECTIONS) and retry every second for the whole run. A few
  // stay free for a watcher's reconnection and for /metrics.
  const std::int64_t conns =
      plan.watchers + static_cast<std::int64_t>(procs) * o.ping_conns;
  if (conns > o.max_connections - 8) {
    std::fprintf(stderr,
                 "million: %lld watchers and %d x %d ping connections need "
                 "%lld connections; the server allows %lld (less 8 spare): "
                 "fewer --ping-conns or watchers, or a higher "
                 "--max-connections\n",
                 static_cast<long long>(plan.watchers), procs, o.ping_conns,
                 static_cast<long long>(conns),
                 static_cast<long long>(o.max_connections));
    return 2;
  }

  // The announcements missing because the churners' cycles began before
  // the run (an offline one 230 s after a last report that was never sent)
  // end 230 s in.
  const int steady_s = 230;
  if (o.warmup_s != 0 && o.warmup_s < steady_s &&
      plan.churn_first < plan.users) {
    std::fprintf(stderr,
                 "million: warm-up %d s is shorter than the %d s the "
                 "churners' announcements need to be steady\n",
                 o.warmup_s, steady_s);
  }
  std::fprintf(stderr,
               "million: %lld users (%lld churning: %.1f/s each go idle, go "
               "offline, come online), %lld watchers, %d processes, warm-up "
               "%d s, then %d s\n",
               static_cast<long long>(plan.users),
               static_cast<long long>(plan.users - plan.churn_first),
               (plan.users - plan.churn_first) /
                   static_cast<double>(kCycle * o.ping_interval_s),
               static_cast<long long>(plan.watchers), procs, o.warmup_s,
               o.duration_s);

  auto* stats = MapShared<ChildStats>(procs);
  auto* shared = MapShared<Shared>(1);
  auto* caused_at = MapShared<std::int64_t>(users.max_id + 1);
  shared->t0.store(SteadyNs() + 500'000'000);

  std::vector<pid_t> kids;
  for (int k = 0; k < procs; ++k) {
    const pid_t pid = fork();
    if (pid < 0) Fatal("fork failed");
    if (pid == 0) {
      Child child(o, users, plan, k, procs, &stats[k], shared, caused_at);
      std::exit(child.Run());
    }
    kids.push_back(pid);
  }

  std::FILE* csv = std::fopen(o.csv.c_str(), "w");
  if (!csv) Fatal("cannot write --csv");
  std::fprintf(csv,
               "t_s,phase,watchers,answers_per_s,deliveries_per_s,"
               "events_per_answer,delivery_p50_ms,delivery_p99_ms,"
               "delivery_max_ms,came_online_per_s,idle_events_per_s,"
               "offline_events_per_s,requested_per_s,pings_per_s,ping_p50_ms,"
               "ping_p99_ms,ping_max_ms,ping_backlog,errors,unattributed,"
               "server_cpu_cores,server_rss_mb,generator_cpu_cores,load1\n");
  std::fflush(csv);

  const Ns t0 = shared->t0.load();
  // The warm-up lasts --warmup seconds and until every user that reports in
  // the first interval has had its first report answered (each is a "came
  // online" write, and watchers would see them all as events), or at most
  // --max-warmup seconds; --warmup 0 starts measuring at once.
  std::int64_t expected_first = 0;
  for (std::int64_t u = 0; u < plan.users; ++u) {
    if (ReportOf(plan, u, 0) != Report::kNone) ++expected_first;
  }
  Ns run_start = 0, end = 0;
  auto maybe_start = [&](Ns now) {
    if (run_start != 0) return;
    std::uint64_t first = 0;
    for (int k = 0; k < procs; ++k) first += stats[k].c[kFirstPings].load();
    const bool done = static_cast<std::int64_t>(first) >= expected_first;
    // The watchers register once the first round of reports (a "came
    // online" for every user: a million events each) is over and answered,
    // leaving the rest of the warm-up for them to register and settle.
    if (shared->watch_start.load() == 0 && done &&
        now >= t0 + std::min(o.warmup_s, o.ping_interval_s + 5) *
                        1'000'000'000LL) {
      shared->watch_start.store(now);
      std::fprintf(stderr, "million: watchers register from %.1f s\n",
                   (now - t0) / 1e9);
    }
    if (o.warmup_s == 0 || (now >= t0 + o.warmup_s * 1'000'000'000LL && done) ||
        now >= t0 + o.max_warmup_s * 1'000'000'000LL) {
      run_start = std::max(now, t0);
      end = run_start + o.duration_s * 1'000'000'000LL;
      shared->run_start.store(run_start);
      if (shared->watch_start.load() == 0) shared->watch_start.store(now);
      std::fprintf(stderr,
                   "million: warm-up %s after %.1f s (%llu of %lld first "
                   "reports answered); measuring for %d s\n",
                   o.warmup_s == 0 ? "skipped (--warmup 0)"
                   : done          ? "complete"
                                   : "INCOMPLETE",
                   (run_start - t0) / 1e9,
                   static_cast<unsigned long long>(first),
                   static_cast<long long>(expected_first), o.duration_s);
    }
  };
  maybe_start(t0);
  Snapshot prev = Take(stats, procs, kids, o.server_pid);
  Ns prev_t = SteadyNs();
  Ns next = t0 + o.interval_s * 1'000'000'000LL;
  int rc = 0;
  while (true) {
    const Ns now = SteadyNs();
    maybe_start(now);
    if (now < next) {
      usleep(static_cast<useconds_t>(std::min<Ns>(next - now, 200'000'000) /
                                     1000));
      // A child that died early ends the run.
      int status = 0;
      const pid_t gone = waitpid(-1, &status, WNOHANG);
      if (gone > 0) {
        std::fprintf(stderr, "million: a generator process ended early\n");
        kids.erase(std::remove(kids.begin(), kids.end(), gone), kids.end());
        rc = 1;
        break;
      }
      continue;
    }
    Snapshot cur = Take(stats, procs, kids, o.server_pid);
    const double dt = (now - prev_t) / 1e9;
    auto rate = [&](Counter k) { return (cur.c[k] - prev.c[k]) / dt; };
    const double answers = rate(kAnswers);
    const double events = rate(kEvents);
    const double came = rate(kCameOnlineSent);
    const double watchers = static_cast<double>(cur.c[kWatchersReady]);
    const std::uint64_t errors = (cur.c[kPingErrors] - prev.c[kPingErrors]) +
                                 (cur.c[kPollErrors] - prev.c[kPollErrors]);
    const double t_s = (now - t0) / 1e9;
    const bool warm = run_start == 0 || prev_t < run_start;
    std::fprintf(
        csv,
        "%.1f,%s,%.0f,%.0f,%.0f,%.2f,%.2f,%.2f,%.2f,%.1f,%.1f,%.1f,%.0f,%.0f,"
        "%.3f,%.3f,%.3f,%llu,%llu,%llu,%.3f,%.1f,%.3f,%.2f\n",
        t_s, warm ? "warmup" : "run", watchers, answers, events,
        answers > 0 ? events / answers : 0.0, Percentile(prev, cur, true, 0.5),
        Percentile(prev, cur, true, 0.99), cur.deliv_max_us / 1000.0, came,
        rate(kIdleRecv) / std::max(1.0, watchers),
        rate(kOfflineRecv) / std::max(1.0, watchers),
        (came +
         (rate(kIdleRecv) + rate(kOfflineRecv)) / std::max(1.0, watchers)) *
            watchers,
        rate(kPingsOk), Percentile(prev, cur, false, 0.5),
        Percentile(prev, cur, false, 0.99), cur.ping_max_us / 1000.0,
        static_cast<unsigned long long>(cur.c[kPingBacklog]),
        static_cast<unsigned long long>(errors),
        static_cast<unsigned long long>(cur.c[kUnattributed] -
                                        prev.c[kUnattributed]),
        cur.server_cpu >= 0 && prev.server_cpu >= 0
            ? (cur.server_cpu - prev.server_cpu) / 1e9 / dt
            : -1.0,
        o.server_pid > 0 ? RssBytes(o.server_pid) / 1048576.0 : -1.0,
        (cur.gen_cpu - prev.gen_cpu) / 1e9 / dt, Load1());
    std::fflush(csv);
    prev = std::move(cur);
    prev_t = now;
    next += o.interval_s * 1'000'000'000LL;
    if (run_start != 0 && now >= end - 100'000'000) break;
  }
  shared->stop.store(1);
  const Ns deadline = SteadyNs() + 10'000'000'000LL;
  while (!kids.empty()) {
    int status = 0;
    const pid_t gone = waitpid(-1, &status, WNOHANG);
    if (gone > 0) {
      kids.erase(std::remove(kids.begin(), kids.end(), gone), kids.end());
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) rc = 1;
      continue;
    }
    if (SteadyNs() > deadline) {
      for (pid_t p : kids) kill(p, SIGKILL);
      for (pid_t p : kids) waitpid(p, nullptr, 0);
      std::fprintf(stderr, "million: generator processes killed at the end\n");
      break;
    }
    usleep(50'000);
  }
  std::fclose(csv);
  // Errors by kind, summed over the processes (the same name may come from
  // several).
  struct Kind {
    std::string name;
    std::uint64_t count = 0;
    std::int64_t first_ms = 0;
  };
  std::vector<Kind> kinds;
  for (int k = 0; k < procs; ++k) {
    const int n = std::min(stats[k].error_kinds.load(), kErrorKinds);
    for (int e = 0; e < n; ++e) {
      const ErrorKind& ek = stats[k].errors[e];
      auto it = std::find_if(kinds.begin(), kinds.end(),
                             [&](const Kind& x) { return x.name == ek.name; });
      if (it == kinds.end()) {
        kinds.push_back(Kind{ek.name, 0, ek.first_ms.load()});
        it = kinds.end() - 1;
      }
      it->count += ek.count.load();
      it->first_ms = std::min(it->first_ms, ek.first_ms.load());
    }
  }
  std::sort(kinds.begin(), kinds.end(),
            [](const Kind& a, const Kind& b) { return a.count > b.count; });
  std::fprintf(stderr, "million errors: %zu kinds\n", kinds.size());
  for (const Kind& k : kinds) {
    std::fprintf(stderr, "million errors: %llu x %s (first at %.1f s)\n",
                 static_cast<unsigned long long>(k.count), k.name.c_str(),
                 k.first_ms / 1000.0);
  }
  return rc;
}
