#include "store/redis_async.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <utility>

namespace presence::store {

namespace {

using Clock = std::chrono::steady_clock;

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// Drives one redisAsyncContext from an io_context: the ev hooks of hiredis
// say what the connection waits for; this waits for it on the socket and
// hands the event back to hiredis. Owned by its Connection and by the
// waits in progress (shared_ptr), so a wait that completes after hiredis
// let go of the context finds ac == nullptr and does nothing.
struct Watch : std::enable_shared_from_this<Watch> {
  Watch(boost::asio::io_context& io, redisAsyncContext* context)
      : sd(io, context->c.fd), ac(context) {}

  boost::asio::posix::stream_descriptor sd;
  redisAsyncContext* ac;  // null once hiredis cleaned up
  bool want_read = false;
  bool want_write = false;
  bool reading = false;  // a read wait is pending
  bool writing = false;  // a write wait is pending

  void ArmRead() {
    reading = true;
    sd.async_wait(
        boost::asio::posix::descriptor_base::wait_read,
        [self = shared_from_this()](boost::system::error_code ec) {
          self->reading = false;
          if (ec || self->ac == nullptr || !self->want_read) return;
          redisAsyncHandleRead(self->ac);
          if (self->ac != nullptr && self->want_read && !self->reading) {
            self->ArmRead();
          }
        });
  }
  void ArmWrite() {
    writing = true;
    sd.async_wait(
        boost::asio::posix::descriptor_base::wait_write,
        [self = shared_from_this()](boost::system::error_code ec) {
          self->writing = false;
          if (ec || self->ac == nullptr || !self->want_write) return;
          redisAsyncHandleWrite(self->ac);
          if (self->ac != nullptr && self->want_write && !self->writing) {
            self->ArmWrite();
          }
        });
  }

  // The ev hooks (privdata: the Watch).
  static void AddRead(void* p) {
    auto* w = static_cast<Watch*>(p);
    w->want_read = true;
    if (!w->reading) w->ArmRead();
  }
  static void DelRead(void* p) { static_cast<Watch*>(p)->want_read = false; }
  static void AddWrite(void* p) {
    auto* w = static_cast<Watch*>(p);
    w->want_write = true;
    if (!w->writing) w->ArmWrite();
  }
  static void DelWrite(void* p) { static_cast<Watch*>(p)->want_write = false; }
  // hiredis lets go of the context (and closes the socket right after).
  static void Cleanup(void* p) {
    auto* w = static_cast<Watch*>(p);
    w->ac = nullptr;
    w->want_read = w->want_write = false;
    boost::system::error_code ignored;
    w->sd.cancel(ignored);
    (void)w->sd.release();  // hiredis closes the socket, not Asio
  }
};

}  // namespace

struct RedisAsync::Command {
  std::vector<std::string> argv;
  std::string route_key;
  Callback done;
  int redirects = 0;
  Rerun rerun = Rerun::kNever;
};

struct RedisAsync::Connection {
  Connection(RedisAsync* o, RedisAddress a, boost::asio::io_context& io)
      : owner(o), address(std::move(a)), watchdog(io) {}
  RedisAsync* owner;
  RedisAddress address;
  redisAsyncContext* ac = nullptr;  // null once closed
  std::shared_ptr<Watch> watch;
  std::string failure;  // why it closed, for the commands it fails
  boost::asio::steady_timer watchdog;
  bool watchdog_armed = false;
  std::size_t pending = 0;  // commands sent and not answered
  bool connected = false;   // the connect completed (a command may run)
  Clock::time_point last_progress{};
};

namespace {

// What a reply callback needs (hiredis privdata).
struct Pending {
  RedisAsync* self;
  std::shared_ptr<void> cmd;  // RedisAsync::Command
  void* conn;                 // RedisAsync::Connection
};

}  // namespace

RedisAsync::RedisAsync(boost::asio::io_context& io, const RedisClient* topology,
                       RedisTimeouts timeouts)
    : io_(io),
      topology_(topology),
      timeouts_(timeouts),
      alive_(std::make_shared<bool>(true)) {}

RedisAsync::~RedisAsync() {
  *alive_ = false;
  for (auto& [name, conn] : conns_) {
    if (conn->ac != nullptr) {
      conn->failure = "redis " + name + ": client shut down";
      redisAsyncContext* ac = conn->ac;
      conn->ac = nullptr;
      redisAsyncFree(ac);  // fails what is in flight on it
    }
    conn->watchdog.cancel();
  }
}

RedisAsync::Connection* RedisAsync::ConnectionTo(const RedisAddress& address) {
  const std::string name = address.ToString();
  auto it = conns_.find(name);
  if (it != conns_.end()) {
    if (it->second->ac != nullptr) return it->second.get();
    if (it->second->pending > 0) {
      // Closed, its commands not all failed yet (they fail right after):
      // keep it until then, and use a new one under a new name slot.
      auto old = std::move(it->second);
      conns_.erase(it);
      auto* raw = old.release();
      boost::asio::post(io_, [raw] { delete raw; });
    } else {
      conns_.erase(it);
    }
  }
  auto conn = std::make_unique<Connection>(this, address, io_);
  redisAsyncContext* ac = redisAsyncConnect(address.host.c_str(), address.port);
  if (ac == nullptr) return nullptr;
  if (ac->err != 0) {
    conn->failure = "redis " + name + ": " + ac->errstr;
    redisAsyncFree(ac);
    return nullptr;
  }
  conn->ac = ac;
  conn->watch = std::make_shared<Watch>(io_, ac);
  ac->data = conn.get();
  ac->ev.data = conn->watch.get();
  ac->ev.addRead = &Watch::AddRead;
  ac->ev.delRead = &Watch::DelRead;
  ac->ev.addWrite = &Watch::AddWrite;
  ac->ev.delWrite = &Watch::DelWrite;
  ac->ev.cleanup = &Watch::Cleanup;
  auto closed = [](const redisAsyncContext* c, int status) {
    auto* cn = static_cast<Connection*>(c->data);
    if (cn == nullptr) return;
    if (status != REDIS_OK || cn->failure.empty()) {
      cn->failure = "redis " + cn->address.ToString() + ": " +
                    (c->err != 0 ? c->errstr : "connection closed");
    }
    cn->ac = nullptr;  // hiredis frees the context after this returns
  };
  redisAsyncSetDisconnectCallback(ac, closed);
  redisAsyncSetConnectCallback(ac, [](const redisAsyncContext* c, int status) {
    auto* cn = static_cast<Connection*>(c->data);
    if (cn == nullptr) return;
    if (status == REDIS_OK) {
      cn->connected = true;
      return;
    }
    cn->failure = "redis " + cn->address.ToString() + ": " +
                  (c->err != 0 ? c->errstr : "connect failed");
    cn->ac = nullptr;
  });
  Connection* raw = conn.get();
  conns_[name] = std::move(conn);
  return raw;
}

void RedisAsync::Run(std::vector<std::string> argv, std::string route_key,
                     Callback done, Rerun rerun) {
  auto cmd = std::make_shared<Command>();
  cmd->argv = std::move(argv);
  cmd->route_key = std::move(route_key);
  cmd->done = std::move(done);
  cmd->rerun = rerun;
  RedisAddress to;
  if (topology_->sentinel() && master_) {
    to = *master_;
  } else if (topology_->cluster() && !cmd->route_key.empty()) {
    auto moved = moved_.find(RedisKeySlot(cmd->route_key));
    to = moved != moved_.end() ? moved->second
                               : topology_->MasterFor(cmd->route_key);
  } else {
    to = topology_->MasterFor(cmd->route_key);
  }
  Send(std::move(cmd), to, /*asking=*/false);
}

void RedisAsync::Send(std::shared_ptr<Command> cmd, const RedisAddress& to,
                      bool asking) {
  Connection* conn = ConnectionTo(to);
  if (conn == nullptr) {
    cmd->done(Error(Errc::kStoreFailed,
                    "redis " + to.ToString() + ": cannot connect"));
    return;
  }
  if (asking) {
    const char* a = "ASKING";
    const std::size_t alen = 6;
    // The reply (+OK) is not needed: no callback.
    redisAsyncCommandArgv(conn->ac, nullptr, nullptr, 1, &a, &alen);
  }
  std::vector<const char*> ptrs;
  std::vector<std::size_t> lens;
  ptrs.reserve(cmd->argv.size());
  lens.reserve(cmd->argv.size());
  for (const std::string& a : cmd->argv) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* pending = new Pending{this, cmd, conn};
  auto thunk = [](redisAsyncContext* ac, void* reply, void* priv) {
    std::unique_ptr<Pending> p(static_cast<Pending*>(priv));
    auto c = std::static_pointer_cast<Command>(p->cmd);
    auto* cn = static_cast<Connection*>(p->conn);
    if (reply == nullptr && cn->failure.empty()) {
      cn->failure =
          "redis " + cn->address.ToString() + ": " +
          (ac != nullptr && ac->err != 0 ? ac->errstr : "connection closed");
    }
    p->self->OnReply(c, cn, reply);
  };
  if (redisAsyncCommandArgv(conn->ac, thunk, pending,
                            static_cast<int>(ptrs.size()), ptrs.data(),
                            lens.data()) != REDIS_OK) {
    delete pending;
    cmd->done(
        Error(Errc::kStoreFailed, "redis " + to.ToString() + ": cannot send"));
    return;
  }
  if (conn->pending++ == 0) conn->last_progress = Clock::now();
  ++in_flight_;
  ArmWatchdog(conn);
}

void RedisAsync::OnReply(const std::shared_ptr<Command>& cmd, Connection* conn,
                         const void* raw) {
  --conn->pending;
  --in_flight_;
  conn->last_progress = Clock::now();
  if (raw == nullptr) {
    if (*alive_ && topology_->sentinel() &&
        (!conn->connected || cmd->rerun == Rerun::kSafe) &&
        cmd->redirects < kMaxRedirects) {
      // Never connected, so never sent; or broken in flight (a demoted
      // master's clients are killed) with a command safe to run again: the
      // master may have moved.
      Rediscover(cmd, conn->failure);
      return;
    }
    // The connection closed with the command in flight: it may have run.
    if (*alive_) {
      // Routes through it are read again from the topology.
      for (auto it = moved_.begin(); it != moved_.end();) {
        it = it->second == conn->address ? moved_.erase(it) : std::next(it);
      }
    }
    cmd->done(Error(Errc::kStoreFailed, conn->failure));
    return;
  }
  RedisReply reply = ConvertRedisReply(static_cast<const redisReply*>(raw));
  if (*alive_ && reply.is_error() && cmd->redirects < kMaxRedirects &&
      (StartsWith(reply.str, "MOVED ") || StartsWith(reply.str, "ASK "))) {
    if (auto target = RedirectTarget(reply.str)) {
      ++cmd->redirects;
      const bool ask = StartsWith(reply.str, "ASK ");
      if (!ask) moved_[RedisKeySlot(cmd->route_key)] = *target;
      // Not from inside hiredis's read loop: the target may be this very
      // connection.
      boost::asio::post(io_, [this, alive = alive_, cmd, t = *target, ask] {
        if (*alive) Send(cmd, t, ask);
      });
      return;
    }
  }
  if (*alive_ && reply.is_error() && topology_->cluster() &&
      cmd->redirects < kMaxRedirects &&
      (StartsWith(reply.str, "TRYAGAIN") ||
       StartsWith(reply.str, "CLUSTERDOWN"))) {
    // Not run (a slot in the middle of a move): again after a pause that
    // grows with the attempts, routed afresh.
    ++cmd->redirects;
    auto timer = std::make_shared<boost::asio::steady_timer>(
        io_, std::chrono::milliseconds(50) * cmd->redirects);
    timer->async_wait(
        [this, alive = alive_, timer, cmd](boost::system::error_code ec) {
          if (ec || !*alive) {
            return cmd->done(Error(Errc::kStoreFailed, "redis: shutting down"));
          }
          auto moved = moved_.find(RedisKeySlot(cmd->route_key));
          Send(cmd,
               moved != moved_.end() ? moved->second
                                     : topology_->MasterFor(cmd->route_key),
               /*asking=*/false);
        });
    return;
  }
  if (*alive_ && reply.is_error() && topology_->sentinel() &&
      cmd->redirects < kMaxRedirects &&
      (StartsWith(reply.str, "READONLY") || StartsWith(reply.str, "LOADING"))) {
    // Refused, not run: a demoted master or one still loading.
    Rediscover(cmd, "redis " + conn->address.ToString() + ": " + reply.str);
    return;
  }
  cmd->done(std::move(reply));
}

void RedisAsync::Rediscover(std::shared_ptr<Command> cmd, std::string why) {
  ++cmd->redirects;
  master_.reset();
  const auto& sentinels = topology_->sentinels();
  const RedisAddress sentinel = sentinels[next_sentinel_++ % sentinels.size()];
  auto ask = std::make_shared<Command>();
  ask->argv = {"SENTINEL", "get-master-addr-by-name", topology_->master_name()};
  ask->redirects = kMaxRedirects;  // asked of this sentinel only
  ask->done = [this, alive = alive_, cmd,
               why = std::move(why)](StoreResult<RedisReply> r) {
    if (!*alive) return cmd->done(Error(Errc::kStoreFailed, why));
    std::optional<RedisAddress> named;
    if (r && r->type == RedisReply::Type::kArray && r->elements.size() == 2) {
      named = ParseRedisAddress(r->elements[0].str + ":" + r->elements[1].str);
    }
    if (!named) {
      // This sentinel does not know: the next one, while attempts remain.
      if (cmd->redirects < kMaxRedirects) return Rediscover(cmd, why);
      return cmd->done(
          Error(Errc::kStoreFailed, why + " (no sentinel named a master)"));
    }
    master_ = *named;
    Send(cmd, *named, /*asking=*/false);
  };
  // A pause first, growing with the attempts: a failover takes a moment.
  auto timer = std::make_shared<boost::asio::steady_timer>(
      io_, std::chrono::milliseconds(50) * cmd->redirects);
  timer->async_wait([this, alive = alive_, timer, ask,
                     sentinel](boost::system::error_code ec) {
    if (ec || !*alive) {
      return ask->done(Error(Errc::kStoreFailed, "redis: shutting down"));
    }
    Send(ask, sentinel, /*asking=*/false);
  });
}

void RedisAsync::ArmWatchdog(Connection* conn) {
  if (conn->watchdog_armed) return;
  conn->watchdog_armed = true;
  conn->watchdog.expires_at(conn->last_progress + timeouts_.io);
  conn->watchdog.async_wait(
      [this, alive = alive_, conn,
       name = conn->address.ToString()](boost::system::error_code ec) {
        if (ec || !*alive) return;
        auto it = conns_.find(name);
        if (it == conns_.end() || it->second.get() != conn) return;
        conn->watchdog_armed = false;
        if (conn->pending == 0 || conn->ac == nullptr) return;
        if (Clock::now() - conn->last_progress >= timeouts_.io) {
          Drop(conn);
          return;
        }
        ArmWatchdog(conn);
      });
}

void RedisAsync::Drop(Connection* conn) {
  if (conn->ac == nullptr) return;
  conn->failure = "redis " + conn->address.ToString() + ": timed out after " +
                  std::to_string(timeouts_.io.count()) + " ms";
  redisAsyncContext* ac = conn->ac;
  conn->ac = nullptr;
  ac->data = nullptr;
  redisAsyncFree(ac);  // fails the commands in flight (OnReply)
}

}  // namespace presence::store
