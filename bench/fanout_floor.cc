// fanout_floor: the machine's floor for "one event to W parked long polls"
// (issue #17). Not a presence server: a stand-in that does the least a
// server must do for bench/loadgen.cc's fan-out mode, so that the same
// generator, driven by the same script (bench/fanout-ab.sh), measures what
// the kernel's loopback TCP path and the client cost on this machine with
// no presence work at all. presenced's figures minus these are its own.
//
// What it does, with plain epoll and no allocation on the answer path:
//   - accepts connections on --listen (loopback), spread round-robin over
//     --threads I/O threads, each with its own epoll set;
//   - answers POST /api/v1/register with a queue id (loadgen reads only
//     "queue_id");
//   - parks every GET /api/v1/events (any query) on its thread's list;
//   - on any other POST (loadgen's trigger: a "ping_only" presence ping of
//     a user who was offline), answers it, then every I/O thread writes
//     one pre-formatted answer of --answer-bytes bytes (head and body; by
//     default 290, the size of presenced's answer for that event, read
//     off its sendmsg calls with strace) to each of its
//     parked connections, one send(2) per socket (or one sendmsg(2) of
//     head and body with --gather, as presenced writes), and forgets them:
//     each connection's next GET parks it again, as presenced's sessions
//     read on after an answer.
// The answer is one modern presence event with the round's event id
// (0, 1, ...), padded in a field loadgen ignores, so loadgen's checks hold.
//
// --churn: the sustained cycle of loadgen's churn mode (bench/churn.sh)
// instead of rounds of one event. Every "ping_only" ping (a user coming
// online) is one event for every queue registered before it; a parked poll
// is answered at once with every event its queue has not had, and a GET of
// a queue that missed events while its re-poll was in flight is answered at
// once with all of them in one answer (as presenced's queues do). Each
// answer is formatted per connection, as presenced's bytes are: head
// "HTTP/1.1 200 OK", "Server: presenced", "Content-Type", "Content-Length";
// body {"result","msg","events":[one modern presence event per user, with
// the queue's own event id from 0],"queue_id":36 characters}. The event's
// user id is 10000 + its index mod 90000 (5 digits, as churn.sh's trigger
// users have), its timestamps the second it arrived. Other pings (with
// last_update_id=C) are answered with every event's row since C, the
// update id being the event count, with presenced's rate-limit headers.
// stderr: per second and thread, answers and events sent, partial sends.
//
// Options presenced could also take: --nodelay 0|1 (TCP_NODELAY on the
// accepted sockets; presenced sets it), --sndbuf B (SO_SNDBUF, 0: the
// kernel's default), --slice N (answer N parked polls per turn of the
// event loop and look at what else is ready in between, as presenced's
// AnswerQueue does with 32; 0, the default: all in one loop). --data,
// --max-connections and
// --max-connections-per-address are accepted and ignored, so that
// bench/fanout-ab.sh can start it like presenced.
//
// stdout: "listening on http://127.0.0.1:PORT" (the line the bench scripts
// wait for). stderr, per round and thread: answers sent, when the first and
// the last send finished after the trigger was read, and partial sends.
//
// Thread safety: each Conn belongs to the thread whose epoll set holds it
// (assigned when accepted, never moved); the current answer is published
// by the thread that read the trigger before it signals the others'
// eventfds (release/acquire on round_).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

struct Options {
  std::string listen = "127.0.0.1:0";
  int threads = 2;
  // presenced's answer to one modern presence event of a 5-digit user id
  // (bench/fanout-ab.sh's trigger users at 10,000 watchers): 91 B of head,
  // 199 B of body. 0: the floor's body as formatted, unpadded (249 B).
  std::size_t answer_bytes = 290;
  bool nodelay = true;
  int sndbuf = 0;
  bool gather = false;
  // Answers per turn of the event loop (0: all at once): presenced answers
  // kSlice = 32 at a time, each slice behind whatever else is ready.
  std::size_t slice = 0;
  bool churn = false;
};

[[noreturn]] void Usage(const char* why) {
  std::fprintf(stderr,
               "fanout_floor: %s\n"
               "usage: fanout_floor [--listen 127.0.0.1:0] [--threads N]\n"
               "  [--answer-bytes B] [--nodelay 0|1] [--sndbuf B] [--gather]\n"
               "  [--slice N] [--churn]\n"
               "  (--data X, --max-connections N, "
               "--max-connections-per-address N ignored)\n",
               why);
  std::exit(2);
}

std::int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// One round's answer: `head` + `body`, formatted once and shared read-only
// by every thread.
struct Answer {
  std::string head;
  std::string body;
  std::string whole;  // head + body, for the one-buffer send
};

std::unique_ptr<Answer> FormatAnswer(std::int64_t id, std::size_t total) {
  auto a = std::make_unique<Answer>();
  // The shape of presenced's answer to a woken poll: one modern presence
  // event ("presences" keyed by user id).
  const std::string prefix =
      "{\"result\":\"success\",\"msg\":\"\",\"events\":[{\"type\":"
      "\"presence\",\"presences\":{\"10010\":{\"active_timestamp\":"
      "1765000000,\"idle_timestamp\":1765000000}},\"id\":" +
      std::to_string(id) + ",\"pad\":\"";
  const std::string suffix = "\"}],\"queue_id\":\"floor\"}";
  auto head_for = [](std::size_t body_size) {
    return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
           "Content-Length: " +
           std::to_string(body_size) + "\r\n\r\n";
  };
  std::size_t pad = 0;
  std::size_t base = prefix.size() + suffix.size();
  if (total > 0) {
    // The head's length depends on the body's digits: settle it.
    for (int i = 0; i < 3; ++i) {
      const std::size_t head = head_for(base + pad).size();
      pad = total > head + base ? total - head - base : 0;
    }
  }
  a->body = prefix + std::string(pad, 'x') + suffix;
  a->head = head_for(a->body.size());
  a->whole = a->head + a->body;
  return a;
}

struct Conn {
  int fd = -1;
  bool parked = false;
  // --churn: the server's event index of this queue's event id 0, and of
  // the next event it is owed.
  std::int64_t queue_base = 0;
  std::int64_t next_event = 0;
  std::string queue_id;  // --churn: 36 characters, as presenced's
  std::string in;
  std::string out;  // the rest of a partial send
};

// --churn: one event's row, "UUUUU":{"active_timestamp":T,"idle_timestamp":T}
// with a 5-digit user id and 10-digit timestamps: every row has this size.
constexpr std::size_t kRow = 67;
constexpr std::int64_t kMaxEvents = std::int64_t{1} << 20;

// presenced's head of an answer to a ping (rate-limit headers on, its
// default), for a body of `body_size` bytes.
std::string PingHead(std::size_t body_size) {
  const auto reset = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count() +
                     60;
  return "HTTP/1.1 200 OK\r\nServer: presenced\r\nContent-Type: "
         "application/json\r\nX-RateLimit-Limit: 200\r\n"
         "X-RateLimit-Remaining: 199\r\nX-RateLimit-Reset: " +
         std::to_string(reset) +
         "\r\nContent-Length: " + std::to_string(body_size) + "\r\n\r\n";
}

class Server;

class Worker {
 public:
  Worker(Server& s, int index);
  void Run();
  void Adopt(int fd);
  void Wake();

 private:
  void OnReadable(Conn* c);
  void OnWritable(Conn* c);
  bool HandleRequests(Conn* c);  // false: the connection is gone
  bool Reply(Conn* c, const std::string& bytes);  // false: closed
  // Sends `a` to `c` (what does not fit waits for EPOLLOUT). False: `c`
  // was closed (and freed unless parked).
  bool Send(Conn* c, const Answer& a);
  // --churn: every event `c`'s queue is owed up to `count`, formatted into
  // own_ (and c->next_event moved past them).
  const Answer& FormatEvents(Conn* c, std::int64_t count);
  // --churn: the answer to a ping that is not ping_only: the rows since
  // the body's last_update_id.
  std::string PingAnswer(std::string_view body) const;
  void LogSecond();
  void FanOut();
  // Answers up to `limit` of answering_; logs the round when it is done.
  void SendSlice(std::size_t limit);
  void Close(Conn* c);

  Server& server_;
  int index_;
  int ep_ = -1;
  int event_fd_ = -1;
  std::vector<Conn*> parked_;
  // The round being answered: answering_[next_...] are still owed.
  std::vector<Conn*> answering_;
  std::size_t next_ = 0;
  const Answer* answer_ = nullptr;
  std::int64_t first_ns_ = 0, partial_ = 0;
  std::size_t sent_ = 0;
  // --churn: the answer being formatted, and this second's figures.
  Answer own_;
  std::int64_t second_answers_ = 0, second_events_ = 0, second_partial_ = 0;
  std::int64_t next_log_ns_ = 0;
};

class Server {
 public:
  explicit Server(const Options& o) : o_(o) {}
  int Start();  // binds, returns the port
  void Run();
  void AcceptAll();
  // Called on the thread that read a trigger: publishes the next answer
  // and wakes every other worker. Returns the trigger's read time.
  void Trigger(int from);
  // --churn: appends one event (a user came online) and wakes every other
  // worker.
  void AddEvent(int from);
  std::int64_t event_count() const {
    return events_.load(std::memory_order_acquire);
  }
  // Event k's row (k < event_count()): written once, before the count
  // that publishes it.
  std::string_view Row(std::int64_t k) const {
    return {rows_.get() + static_cast<std::size_t>(k) * kRow, kRow};
  }

  const Options& options() const { return o_; }
  int listen_fd() const { return listen_fd_; }
  const Answer* answer() const {
    return answers_[round_.load(std::memory_order_acquire) % kAnswers].get();
  }
  std::int64_t trigger_ns() const {
    return trigger_ns_.load(std::memory_order_acquire);
  }
  std::int64_t round() const { return round_.load(std::memory_order_acquire); }
  std::int64_t NextQueue() { return next_queue_++; }

 private:
  Options o_;
  int listen_fd_ = -1;
  std::vector<std::unique_ptr<Worker>> workers_;
  // The answers of the last rounds, by round % kAnswers: a thread may
  // still be sending round k-1's while round k is formatted (never older:
  // loadgen triggers a round when every answer of the last one arrived).
  static constexpr std::int64_t kAnswers = 4;
  std::unique_ptr<Answer> answers_[kAnswers];
  std::atomic<std::int64_t> round_{0};
  std::atomic<std::int64_t> trigger_ns_{0};
  std::atomic<std::int64_t> next_queue_{0};
  std::size_t next_worker_ = 0;
  // --churn: the events' rows, kRow bytes each (allocated, not touched:
  // only the rows written become resident). events_mu_ orders writers.
  std::unique_ptr<char[]> rows_;
  std::mutex events_mu_;
  std::atomic<std::int64_t> events_{0};
};

Worker::Worker(Server& s, int index) : server_(s), index_(index) {
  ep_ = epoll_create1(EPOLL_CLOEXEC);
  event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (ep_ < 0 || event_fd_ < 0) Usage("epoll/eventfd failed");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // nullptr: the eventfd
  epoll_ctl(ep_, EPOLL_CTL_ADD, event_fd_, &ev);
  if (index == 0) {
    ev.data.ptr = &server_;  // the listener, on worker 0
    epoll_ctl(ep_, EPOLL_CTL_ADD, server_.listen_fd(), &ev);
  }
}

void Worker::Adopt(int fd) {
  const Options& o = server_.options();
  int one = 1;
  if (o.nodelay) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (o.sndbuf > 0) {
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &o.sndbuf, sizeof o.sndbuf);
  }
  auto* c = new Conn;
  c->fd = fd;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = c;
  // epoll_ctl may be called for another thread's set; the kernel
  // serialises it with that thread's epoll_wait.
  if (epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    close(fd);
    delete c;
  }
}

void Worker::Wake() {
  const std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(event_fd_, &one, sizeof one);
}

void Worker::Run() {
  std::vector<epoll_event> events(512);
  for (;;) {
    // While a round is owed in slices, only look at what is ready.
    const bool churn = server_.options().churn;
    const int n =
        epoll_wait(ep_, events.data(), static_cast<int>(events.size()),
                   !answering_.empty() ? 0 : (churn ? 1000 : -1));
    if (n < 0) {
      if (errno == EINTR) continue;
      std::perror("fanout_floor: epoll_wait");
      std::exit(1);
    }
    for (int i = 0; i < n; ++i) {
      void* p = events[i].data.ptr;
      if (p == nullptr) {
        std::uint64_t v;
        [[maybe_unused]] ssize_t r = read(event_fd_, &v, sizeof v);
        FanOut();
      } else if (p == &server_) {
        server_.AcceptAll();
      } else {
        auto* c = static_cast<Conn*>(p);
        if (events[i].events & EPOLLOUT) {
          OnWritable(c);
        } else {
          OnReadable(c);
        }
      }
    }
    if (!answering_.empty()) SendSlice(server_.options().slice);
    if (churn) LogSecond();
  }
}

void Worker::LogSecond() {
  const std::int64_t now = NowNs();
  if (next_log_ns_ == 0) next_log_ns_ = now + 1'000'000'000;
  if (now < next_log_ns_) return;
  if (second_answers_ > 0) {
    std::fprintf(stderr,
                 "fanout_floor: thread %d: %lld answers, %lld events, %lld "
                 "partial in %.3f s\n",
                 index_, static_cast<long long>(second_answers_),
                 static_cast<long long>(second_events_),
                 static_cast<long long>(second_partial_),
                 (now - next_log_ns_ + 1'000'000'000) / 1e9);
  }
  second_answers_ = second_events_ = second_partial_ = 0;
  next_log_ns_ = now + 1'000'000'000;
}

void Worker::Close(Conn* c) {
  epoll_ctl(ep_, EPOLL_CTL_DEL, c->fd, nullptr);
  close(c->fd);
  c->fd = -1;
  // A parked connection is still on parked_: FanOut frees it.
  if (!c->parked) delete c;
}

void Worker::OnReadable(Conn* c) {
  char buf[16384];
  const ssize_t n = recv(c->fd, buf, sizeof buf, 0);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    Close(c);
    return;
  }
  if (n < 0) return;
  c->in.append(buf, static_cast<std::size_t>(n));
  HandleRequests(c);
}

// The value of header `name` (lower case, with its colon) in `head`, or -1.
std::int64_t HeaderInt(std::string_view head, std::string_view name) {
  for (std::size_t pos = head.find("\r\n"); pos != std::string_view::npos;
       pos = head.find("\r\n", pos + 2)) {
    const std::string_view line = head.substr(pos + 2);
    if (line.size() < name.size()) break;
    bool same = true;
    for (std::size_t i = 0; i < name.size() && same; ++i) {
      char ch = line[i];
      if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
      same = ch == name[i];
    }
    if (!same) continue;
    std::size_t i = name.size();
    while (i < line.size() && line[i] == ' ') ++i;
    std::int64_t v = -1;
    std::from_chars(line.data() + i, line.data() + line.size(), v);
    return v;
  }
  return -1;
}

bool Worker::HandleRequests(Conn* c) {
  for (;;) {
    const std::size_t end = c->in.find("\r\n\r\n");
    if (end == std::string::npos) return true;
    const std::string_view head(c->in.data(), end + 2);
    const std::int64_t length =
        std::max<std::int64_t>(0, HeaderInt(head, "content-length:"));
    const std::size_t total = end + 4 + static_cast<std::size_t>(length);
    if (c->in.size() < total) return true;
    const bool churn = server_.options().churn;
    const std::string_view body_in(c->in.data() + end + 4,
                                   static_cast<std::size_t>(length));
    if (churn && c->queue_id.empty()) {
      // The connection's queue (loadgen registers and polls on one
      // connection; a poll on an unregistered one starts a queue).
      char id[40];
      std::snprintf(id, sizeof id, "00000000-0000-4000-8000-%012llx",
                    static_cast<long long>(server_.NextQueue()));
      c->queue_id = id;
      c->queue_base = c->next_event = server_.event_count();
    }
    if (head.starts_with("GET /api/v1/events")) {
      const std::int64_t count = churn ? server_.event_count() : 0;
      if (churn && c->next_event < count) {
        // Events arrived while this re-poll was in flight: all of them now.
        c->in.erase(0, total);
        if (!Send(c, FormatEvents(c, count))) return false;
        continue;
      }
      c->parked = true;
      parked_.push_back(c);
    } else if (head.starts_with("POST /api/v1/register")) {
      const std::string body =
          "{\"result\":\"success\",\"msg\":\"\",\"queue_id\":\"" +
          (churn ? c->queue_id
                 : "floor-" + std::to_string(server_.NextQueue())) +
          "\",\"last_event_id\":-1}";
      if (!Reply(c,
                 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 "Content-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n" + body)) {
        return false;
      }
    } else if (churn && head.starts_with("POST ") &&
               body_in.find("ping_only=true") == std::string_view::npos) {
      // A plain ping: no event, the rows since its cursor.
      if (!Reply(c, PingAnswer(body_in))) return false;
    } else if (churn && head.starts_with("POST ")) {
      // A user came online: answered first, then every parked poll.
      const std::string body = "{\"result\":\"success\",\"msg\":\"\"}";
      const bool open = Reply(c, PingHead(body.size()) + body);
      if (open) c->in.erase(0, total);
      server_.AddEvent(index_);
      FanOut();
      if (!open) return false;
      continue;
    } else if (head.starts_with("POST ")) {
      // The trigger: answered first, then every parked poll.
      const std::string body =
          "{\"result\":\"success\",\"msg\":\"\",\"presences\":{}}";
      const bool open =
          Reply(c,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                "Content-Length: " +
                    std::to_string(body.size()) + "\r\n\r\n" + body);
      if (open) c->in.erase(0, total);
      server_.Trigger(index_);
      FanOut();
      if (!open) return false;
      continue;
    } else if (!Reply(c,
                      "HTTP/1.1 404 Not Found\r\nContent-Length: "
                      "0\r\n\r\n")) {
      return false;
    }
    c->in.erase(0, total);
  }
}

bool Worker::Reply(Conn* c, const std::string& bytes) {
  const ssize_t n = send(c->fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  if (n == static_cast<ssize_t>(bytes.size())) return true;
  if (n < 0 && errno != EAGAIN) {
    Close(c);
    return false;
  }
  c->out.assign(bytes, n < 0 ? 0 : static_cast<std::size_t>(n));
  epoll_event ev{};
  ev.events = EPOLLOUT;
  ev.data.ptr = c;
  epoll_ctl(ep_, EPOLL_CTL_MOD, c->fd, &ev);
  return true;
}

void Worker::OnWritable(Conn* c) {
  const ssize_t n = send(c->fd, c->out.data(), c->out.size(), MSG_NOSIGNAL);
  if (n < 0 && errno != EAGAIN) return Close(c);
  if (n > 0) c->out.erase(0, static_cast<std::size_t>(n));
  if (!c->out.empty()) return;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = c;
  epoll_ctl(ep_, EPOLL_CTL_MOD, c->fd, &ev);
}

bool Worker::Send(Conn* c, const Answer& a) {
  ssize_t n;
  if (server_.options().gather) {
    iovec iov[2] = {{const_cast<char*>(a.head.data()), a.head.size()},
                    {const_cast<char*>(a.body.data()), a.body.size()}};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = 2;
    n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
  } else {
    n = send(c->fd, a.whole.data(), a.whole.size(), MSG_NOSIGNAL);
  }
  ++second_answers_;
  if (n == static_cast<ssize_t>(a.whole.size())) return true;
  ++partial_;
  ++second_partial_;
  if (n < 0 && errno != EAGAIN) {
    Close(c);
    return false;
  }
  // What did not fit waits for EPOLLOUT.
  c->out.assign(a.whole, n < 0 ? 0 : static_cast<std::size_t>(n));
  epoll_event ev{};
  ev.events = EPOLLOUT;
  ev.data.ptr = c;
  epoll_ctl(ep_, EPOLL_CTL_MOD, c->fd, &ev);
  return true;
}

const Answer& Worker::FormatEvents(Conn* c, std::int64_t count) {
  std::string& b = own_.body;
  b.assign("{\"result\":\"success\",\"msg\":\"\",\"events\":[");
  char id[24];
  for (std::int64_t k = c->next_event; k < count; ++k) {
    if (k > c->next_event) b += ',';
    b += "{\"type\":\"presence\",\"presences\":{";
    b += server_.Row(k);
    b += "},\"id\":";
    b.append(id, std::to_chars(id, id + sizeof id, k - c->queue_base).ptr);
    b += '}';
  }
  b += "],\"queue_id\":\"";
  b += c->queue_id;
  b += "\"}";
  second_events_ += count - c->next_event;
  c->next_event = count;
  std::string& h = own_.head;
  h.assign(
      "HTTP/1.1 200 OK\r\nServer: presenced\r\nContent-Type: "
      "application/json\r\nContent-Length: ");
  h.append(id, std::to_chars(id, id + sizeof id, b.size()).ptr);
  h += "\r\n\r\n";
  own_.whole.assign(h);
  own_.whole += b;
  return own_;
}

std::string Worker::PingAnswer(std::string_view body) const {
  std::int64_t cursor = -1;
  const std::size_t at = body.find("last_update_id=");
  if (at != std::string_view::npos) {
    const std::string_view v = body.substr(at + 15);
    std::from_chars(v.data(), v.data() + v.size(), cursor);
  }
  const std::int64_t count = server_.event_count();
  std::string b = "{\"result\":\"success\",\"msg\":\"\",\"presences\":{";
  for (std::int64_t k = std::max<std::int64_t>(cursor, 0);
       cursor >= 0 && k < count; ++k) {
    if (b.back() != '{') b += ',';
    b += server_.Row(k);
  }
  char tail[96];
  const double now = std::chrono::duration<double>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  std::snprintf(tail, sizeof tail,
                "},\"server_timestamp\":%.6f,\"presence_last_update_id\":%lld}",
                now, static_cast<long long>(count));
  b += tail;
  return PingHead(b.size()) + b;
}

void Worker::FanOut() {
  // A round still owed (loadgen never triggers before every answer of the
  // last one arrived, so only in theory) is finished first.
  while (!answering_.empty()) SendSlice(answering_.size());
  answering_.swap(parked_);
  next_ = 0;
  sent_ = 0;
  partial_ = 0;
  first_ns_ = 0;
  answer_ = server_.answer();
  const std::size_t slice = server_.options().slice;
  SendSlice(slice > 0 ? slice : answering_.size());
}

void Worker::SendSlice(std::size_t limit) {
  if (limit == 0) limit = answering_.size();
  const bool churn = server_.options().churn;
  const std::size_t end = std::min(answering_.size(), next_ + limit);
  for (; next_ < end; ++next_) {
    Conn* c = answering_[next_];
    c->parked = false;
    if (c->fd < 0) {
      delete c;
      continue;
    }
    if (churn) {
      const std::int64_t count = server_.event_count();
      if (c->next_event >= count) {  // nothing owed (not in practice)
        c->parked = true;
        parked_.push_back(c);
        continue;
      }
      if (!Send(c, FormatEvents(c, count))) continue;
    } else if (!Send(c, *answer_)) {
      continue;
    }
    if (++sent_ == 1) first_ns_ = NowNs();
  }
  if (next_ < answering_.size()) return;
  answering_.clear();
  next_ = 0;
  if (churn) return;  // LogSecond reports
  const std::int64_t t0 = server_.trigger_ns();
  std::fprintf(stderr,
               "fanout_floor: round %lld thread %d: %zu answers of %zu B, "
               "first sent +%.3f ms, last +%.3f ms, %lld partial\n",
               static_cast<long long>(server_.round()), index_, sent_,
               answer_->whole.size(), sent_ ? (first_ns_ - t0) / 1e6 : 0.0,
               (NowNs() - t0) / 1e6, static_cast<long long>(partial_));
}

void Server::AddEvent(int from) {
  {
    std::lock_guard<std::mutex> lock(events_mu_);
    const std::int64_t n = events_.load(std::memory_order_relaxed);
    if (n >= kMaxEvents) {
      std::fprintf(stderr, "fanout_floor: more than %lld events\n",
                   static_cast<long long>(kMaxEvents));
      std::exit(1);
    }
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    char row[kRow + 1];
    const int len = std::snprintf(
        row, sizeof row,
        "\"%05lld\":{\"active_timestamp\":%lld,\"idle_timestamp\":%lld}",
        static_cast<long long>(10000 + n % 90000), static_cast<long long>(now),
        static_cast<long long>(now));
    if (len != static_cast<int>(kRow)) {
      std::fprintf(stderr, "fanout_floor: a row of %d bytes\n", len);
      std::exit(1);
    }
    std::memcpy(rows_.get() + static_cast<std::size_t>(n) * kRow, row, kRow);
    events_.store(n + 1, std::memory_order_release);
  }
  for (int i = 0; i < o_.threads; ++i) {
    if (i != from) workers_[i]->Wake();
  }
}

int Server::Start() {
  const std::size_t colon = o_.listen.rfind(':');
  if (colon == std::string::npos) Usage("--listen wants ADDRESS:PORT");
  const std::string host = o_.listen.substr(0, colon);
  const int port = std::atoi(o_.listen.c_str() + colon + 1);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    Usage("--listen wants a numeric IPv4 address");
  }
  if ((ntohl(addr.sin_addr.s_addr) >> 24) != 127) {
    Usage("loopback addresses only");
  }
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listen_fd_, 4096) != 0) {
    std::perror("fanout_floor: bind/listen");
    std::exit(1);
  }
  socklen_t len = sizeof addr;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  answers_[0] = FormatAnswer(0, o_.answer_bytes);
  if (o_.churn) rows_.reset(new char[kMaxEvents * kRow]);
  for (int i = 0; i < o_.threads; ++i) {
    workers_.push_back(std::make_unique<Worker>(*this, i));
  }
  return ntohs(addr.sin_port);
}

void Server::AcceptAll() {
  for (;;) {
    const int fd =
        accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or out of files: the next event retries
    workers_[next_worker_]->Adopt(fd);
    next_worker_ = (next_worker_ + 1) % workers_.size();
  }
}

void Server::Trigger(int from) {
  // Round k (from 1) answers with event id k - 1.
  const std::int64_t next = round_.load(std::memory_order_relaxed) + 1;
  answers_[next % kAnswers] = FormatAnswer(next - 1, o_.answer_bytes);
  trigger_ns_.store(NowNs(), std::memory_order_release);
  round_.store(next, std::memory_order_release);
  for (int i = 0; i < o_.threads; ++i) {
    if (i != from) workers_[i]->Wake();
  }
}

void Server::Run() {
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < workers_.size(); ++i) {
    threads.emplace_back([w = workers_[i].get()] { w->Run(); });
  }
  workers_[0]->Run();
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) Usage("an option lacks its value");
      return argv[++i];
    };
    if (a == "--listen") {
      o.listen = value();
    } else if (a == "--threads") {
      o.threads = std::atoi(value());
    } else if (a == "--answer-bytes") {
      o.answer_bytes = static_cast<std::size_t>(std::atoll(value()));
    } else if (a == "--nodelay") {
      o.nodelay = std::atoi(value()) != 0;
    } else if (a == "--sndbuf") {
      o.sndbuf = std::atoi(value());
    } else if (a == "--gather") {
      o.gather = true;
    } else if (a == "--slice") {
      o.slice = static_cast<std::size_t>(std::atoll(value()));
    } else if (a == "--churn") {
      o.churn = true;
    } else if (a == "--data" || a == "--max-connections" ||
               a == "--max-connections-per-address") {
      value();
    } else if (a == "--help" || a == "-h") {
      std::printf(
          "usage: fanout_floor [--listen 127.0.0.1:0] [--threads N]\n"
          "  [--answer-bytes B] [--nodelay 0|1] [--sndbuf B] [--gather]\n"
          "  [--slice N] [--churn]\n"
          "  (--data X, --max-connections N, --max-connections-per-address "
          "N: ignored)\n");
      return 0;
    } else {
      Usage("unknown option");
    }
  }
  if (o.threads < 1 || o.threads > 64) Usage("--threads must be 1..64");
  Server server(o);
  const int port = server.Start();
  std::printf("listening on http://127.0.0.1:%d\n", port);
  std::fflush(stdout);
  server.Run();
}
