#include "store/redis_client.h"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <signal.h>
#include <sys/time.h>

#include <algorithm>
#include <charconv>
#include <thread>

#include "util/io_thread.h"

namespace presence::store {
namespace {

timeval ToTimeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

}  // namespace

RedisReply ConvertRedisReply(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i) {
        out.elements.push_back(ConvertRedisReply(r->element[i]));
      }
      break;
    default:
      out.type = RedisReply::Type::kNil;
      break;
  }
  return out;
}

namespace {

// Owns a hiredis reply.
struct ReplyFree {
  void operator()(void* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyFree>;

// The bit-by-bit CRC16/XMODEM (polynomial 0x1021, initial value 0, no
// reflection): the checksum Redis Cluster hashes keys with.
std::uint16_t Crc16Xmodem(std::string_view data) {
  std::uint16_t crc = 0;
  for (unsigned char byte : data) {
    crc ^= static_cast<std::uint16_t>(byte << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) != 0
                ? static_cast<std::uint16_t>((crc << 1) ^ 0x1021)
                : static_cast<std::uint16_t>(crc << 1);
    }
  }
  return crc;
}

// hiredis writes with write(2), which raises SIGPIPE when the server has
// gone; that would kill the process. For the duration of a write this blocks
// SIGPIPE in the calling thread and then discards one that the write caused
// (SIGPIPE from a socket write is sent to the writing thread).
class ScopedSigpipeBlock {
 public:
  ScopedSigpipeBlock() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    blocked_ = pthread_sigmask(SIG_BLOCK, &pipe_, &old_) == 0;
  }
  ScopedSigpipeBlock(const ScopedSigpipeBlock&) = delete;
  ScopedSigpipeBlock& operator=(const ScopedSigpipeBlock&) = delete;
  ~ScopedSigpipeBlock() {
    if (!blocked_) return;
    if (!was_pending_) {
      sigset_t pending;
      sigemptyset(&pending);
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        timespec zero{};
        sigtimedwait(&pipe_, nullptr, &zero);
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  sigset_t pipe_;
  sigset_t old_;
  bool was_pending_ = false;
  bool blocked_ = false;
};

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

}  // namespace

std::optional<RedisAddress> RedirectTarget(std::string_view error) {
  std::size_t space = error.rfind(' ');
  if (space == std::string_view::npos) return std::nullopt;
  return ParseRedisAddress(error.substr(space + 1));
}

std::optional<RedisAddress> ParseRedisAddress(std::string_view text) {
  std::size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  std::string_view host = text.substr(0, colon);
  std::string_view port_text = text.substr(colon + 1);
  int port = 0;
  auto [end, ec] = std::from_chars(port_text.data(),
                                   port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() ||
      port < 1 || port > 65535) {
    return std::nullopt;
  }
  return RedisAddress{.host = std::string(host), .port = port};
}

namespace {

// The addresses of "HOST:PORT[,HOST:PORT...]" in a url; `usage` starts the
// error message.
StoreResult<std::vector<RedisAddress>> ParseAddressList(
    std::string_view list, std::string_view url, const std::string& usage) {
  std::vector<RedisAddress> seeds;
  std::string_view rest = list;
  for (;;) {
    std::size_t comma = rest.find(',');
    std::string_view part = rest.substr(0, comma);
    auto addr = ParseRedisAddress(part);
    if (!addr || part.find_first_of("/?@#[] ") != std::string_view::npos) {
      return Error(Errc::kInvalidArgument, usage + ": bad address '" +
                                               std::string(part) + "' in '" +
                                               std::string(url) + "'");
    }
    seeds.push_back(std::move(*addr));
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return seeds;
}

}  // namespace

StoreResult<std::vector<RedisAddress>> ParseRedisUrl(std::string_view url) {
  const std::string usage =
      "redis url must be redis://HOST:PORT[,HOST:PORT...]";
  constexpr std::string_view kScheme = "redis://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return Error(Errc::kInvalidArgument,
                 usage + " (got '" + std::string(url) + "')");
  }
  return ParseAddressList(url.substr(kScheme.size()), url, usage);
}

StoreResult<RedisSentinelUrl> ParseRedisSentinelUrl(std::string_view url) {
  const std::string usage =
      "redis sentinel url must be "
      "redis-sentinel://HOST:PORT[,HOST:PORT...]/MASTERNAME";
  if (url.substr(0, kRedisSentinelScheme.size()) != kRedisSentinelScheme) {
    return Error(Errc::kInvalidArgument,
                 usage + " (got '" + std::string(url) + "')");
  }
  std::string_view rest = url.substr(kRedisSentinelScheme.size());
  const std::size_t slash = rest.find('/');
  if (slash == std::string_view::npos) {
    return Error(Errc::kInvalidArgument,
                 usage + ": no /MASTERNAME in '" + std::string(url) + "'");
  }
  auto sentinels = ParseAddressList(rest.substr(0, slash), url, usage);
  if (!sentinels) return sentinels.error();
  std::string_view name = rest.substr(slash + 1);
  if (name.empty()) {
    return Error(Errc::kInvalidArgument,
                 usage + ": empty master name in '" + std::string(url) + "'");
  }
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f ||
        std::string_view("/,?#@").find(c) != std::string_view::npos) {
      return Error(Errc::kInvalidArgument, usage + ": bad master name '" +
                                               std::string(name) + "' in '" +
                                               std::string(url) + "'");
    }
  }
  return RedisSentinelUrl{.sentinels = std::move(*sentinels),
                          .master_name = std::string(name)};
}

bool IsRedisStoreUrl(std::string_view url) {
  return url.substr(0, 8) == "redis://" ||
         url.substr(0, kRedisSentinelScheme.size()) == kRedisSentinelScheme;
}

int RedisKeySlot(std::string_view key) {
  std::size_t open = key.find('{');
  if (open != std::string_view::npos) {
    std::size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return Crc16Xmodem(key) % 16384;
}

// --- RedisConnection --------------------------------------------------------

RedisConnection::RedisConnection(RedisAddress address, RedisTimeouts timeouts)
    : address_(std::move(address)), timeouts_(timeouts) {}

RedisConnection::~RedisConnection() { Close(); }

void RedisConnection::Close() {
  if (ctx_ != nullptr) {
    redisFree(ctx_);
    ctx_ = nullptr;
  }
}

int RedisConnection::fd() const { return ctx_ != nullptr ? ctx_->fd : -1; }

Error RedisConnection::Fail(std::string_view why) {
  Error error(Errc::kStoreFailed,
              "redis " + address_.ToString() + ": " + std::string(why));
  Close();
  return error;
}

StoreStatus RedisConnection::Connect() {
  if (ctx_ != nullptr) {
    // An idle connection has nothing to read unless the server closed it
    // (EOF) or reset it: then reconnect instead of failing the next command.
    pollfd p{.fd = ctx_->fd, .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, 0) == 0) return {};
    Close();
  }
  ctx_ = redisConnectWithTimeout(address_.host.c_str(), address_.port,
                                 ToTimeval(timeouts_.connect));
  if (ctx_ == nullptr) return Fail("cannot allocate a connection");
  if (ctx_->err != 0) return Fail(ctx_->errstr);
  if (redisSetTimeout(ctx_, ToTimeval(timeouts_.io)) != REDIS_OK) {
    return Fail(ctx_->errstr[0] != '\0' ? ctx_->errstr : "cannot set timeout");
  }
  // Notices a peer that vanished without closing (the feed connection
  // waits for data indefinitely).
  if (redisEnableKeepAlive(ctx_) != REDIS_OK) {
    return Fail(ctx_->errstr[0] != '\0' ? ctx_->errstr : "cannot keep alive");
  }
  return {};
}

StoreStatus RedisConnection::Send(std::span<const std::string> argv) {
  if (StoreStatus st = Connect(); !st) return st;
  std::vector<const char*> ptrs;
  std::vector<std::size_t> lens;
  ptrs.reserve(argv.size());
  lens.reserve(argv.size());
  for (const std::string& a : argv) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
  if (redisAppendCommandArgv(ctx_, static_cast<int>(argv.size()), ptrs.data(),
                             lens.data()) != REDIS_OK) {
    return Fail(ctx_->errstr);
  }
  ScopedSigpipeBlock no_sigpipe;
  int done = 0;
  while (done == 0) {
    if (redisBufferWrite(ctx_, &done) != REDIS_OK) return Fail(ctx_->errstr);
  }
  return {};
}

StoreResult<RedisReply> RedisConnection::Command(
    std::span<const std::string> argv, bool* sent) {
  if (sent != nullptr) *sent = false;
  timed_out_ = false;
  // A failed write leaves an incomplete command, which the server never
  // runs (the connection is closed right after): not sent.
  if (StoreStatus st = Send(argv); !st) return st.error();
  if (sent != nullptr) *sent = true;
  void* raw = nullptr;
  if (redisGetReply(ctx_, &raw) != REDIS_OK || raw == nullptr) {
    std::string why = ctx_->errstr;
    if (why == "Resource temporarily unavailable") {
      why = "read timed out";
      timed_out_ = true;
    }
    return Fail(why.empty() ? "no reply" : why);
  }
  ReplyPtr reply(static_cast<redisReply*>(raw));
  return ConvertRedisReply(reply.get());
}

StoreResult<std::optional<RedisReply>> RedisConnection::Buffered() {
  if (ctx_ == nullptr) return Fail("not connected");
  void* raw = nullptr;
  if (redisGetReplyFromReader(ctx_, &raw) != REDIS_OK) {
    return Fail(ctx_->errstr);
  }
  if (raw == nullptr) return std::optional<RedisReply>();
  ReplyPtr reply(static_cast<redisReply*>(raw));
  return std::optional<RedisReply>(ConvertRedisReply(reply.get()));
}

StoreStatus RedisConnection::ReadSome() {
  if (ctx_ == nullptr) return Fail("not connected");
  if (redisBufferRead(ctx_) != REDIS_OK) return Fail(ctx_->errstr);
  return {};
}

// --- RedisClient ------------------------------------------------------------

RedisClient::RedisClient(std::vector<RedisAddress> seeds,
                         RedisTimeouts timeouts, std::string master_name)
    : seeds_(std::move(seeds)),
      timeouts_(timeouts),
      master_name_(std::move(master_name)) {}

RedisClient::~RedisClient() = default;

StoreResult<std::unique_ptr<RedisClient>> RedisClient::Connect(
    std::vector<RedisAddress> seeds, RedisTimeouts timeouts) {
  if (seeds.empty()) {
    return Error(Errc::kInvalidArgument, "no redis address");
  }
  std::unique_ptr<RedisClient> client(new RedisClient(seeds, timeouts));
  std::lock_guard<std::mutex> lock(client->mu_);
  const std::string cluster_slots[] = {"CLUSTER", "SLOTS"};
  std::string why;
  for (const RedisAddress& seed : seeds) {
    RedisConnection* conn = client->ConnectionTo(seed);
    auto reply = conn->Command(cluster_slots);
    if (!reply) {
      why = std::move(reply.error().detail());
      continue;
    }
    if (reply->type == RedisReply::Type::kArray) {
      client->cluster_ = true;
      if (!client->ParseSlots(*reply, seed)) {
        return Error(Errc::kStoreFailed, "redis " + seed.ToString() +
                                             ": malformed CLUSTER SLOTS reply");
      }
      return client;
    }
    if (reply->is_error() &&
        reply->str.find("cluster support disabled") != std::string::npos) {
      if (seeds.size() > 1) {
        return Error(Errc::kInvalidArgument,
                     "redis " + seed.ToString() +
                         " is not a cluster node: give exactly one "
                         "address for a standalone server");
      }
      return client;
    }
    return Error(Errc::kStoreFailed, "redis " + seed.ToString() +
                                         ": unexpected answer to CLUSTER "
                                         "SLOTS: " +
                                         reply->str);
  }
  return Error(Errc::kStoreFailed, why);
}

StoreResult<std::unique_ptr<RedisClient>> RedisClient::ConnectSentinel(
    std::vector<RedisAddress> sentinels, std::string master_name,
    RedisTimeouts timeouts) {
  if (sentinels.empty()) {
    return Error(Errc::kInvalidArgument, "no redis sentinel address");
  }
  if (master_name.empty()) {
    return Error(Errc::kInvalidArgument, "no redis sentinel master name");
  }
  std::unique_ptr<RedisClient> client(
      new RedisClient(std::move(sentinels), timeouts, std::move(master_name)));
  std::lock_guard<std::mutex> lock(client->mu_);
  if (StoreStatus st = client->ResolveMaster(); !st) return st.error();
  return client;
}

StoreStatus RedisClient::ResolveMaster() {
  const std::string ask[] = {"SENTINEL", "get-master-addr-by-name",
                             master_name_};
  const std::string role[] = {"ROLE"};
  Error error(Errc::kStoreFailed, "redis sentinel: no sentinel answered");
  for (const RedisAddress& sentinel : seeds_) {
    auto reply = ConnectionTo(sentinel)->Command(ask);
    if (!reply) {
      error = reply.error();
      continue;
    }
    if (reply->is_nil()) {
      error = Error(Errc::kStoreFailed,
                    "redis sentinel " + sentinel.ToString() +
                        " knows no master named '" + master_name_ + "'");
      continue;
    }
    std::optional<RedisAddress> master;
    if (reply->type == RedisReply::Type::kArray &&
        reply->elements.size() == 2) {
      master = ParseRedisAddress(reply->elements[0].str + ":" +
                                 reply->elements[1].str);
    }
    if (!master) {
      error = Error(Errc::kStoreFailed,
                    "redis sentinel " + sentinel.ToString() +
                        ": unexpected answer to SENTINEL "
                        "get-master-addr-by-name" +
                        (reply->is_error() ? ": " + reply->str : ""));
      continue;
    }
    // A sentinel may still name a master that died or was demoted (it has
    // not noticed yet, or the failover is under way): ask the node itself.
    auto said = ConnectionTo(*master)->Command(role);
    if (!said) {
      error = said.error();
      continue;
    }
    if (said->type != RedisReply::Type::kArray || said->elements.empty() ||
        said->elements[0].str != "master") {
      error = Error(
          Errc::kStoreFailed,
          "redis " + master->ToString() + ": sentinel " + sentinel.ToString() +
              " names it master of '" + master_name_ + "' but its ROLE is " +
              (said->elements.empty() ? said->str : said->elements[0].str));
      continue;
    }
    master_ = *master;
    last_master_ = *master;
    return {};
  }
  return error;
}

StoreResult<RedisReply> RedisClient::RunSentinelLocked(
    std::span<const std::string> argv, Rerun rerun, RedisConnection** used) {
  std::string why;  // the last failure, for the message of giving up
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    if (attempt > 0) {
      // A failover takes the sentinels a while: pause, growing, instead of
      // asking them again at once.
      std::this_thread::sleep_for(std::chrono::milliseconds(50) * attempt);
    }
    if (!master_) {
      if (StoreStatus st = ResolveMaster(); !st) {
        why = st.error().detail();
        continue;
      }
    }
    const RedisAddress target = *master_;
    RedisConnection* conn = ConnectionTo(target);
    bool sent = false;
    StoreResult<RedisReply> reply = conn->Command(argv, &sent);
    if (!reply) {
      master_.reset();  // ask the sentinels before the next command
      // A command that may have run is not sent again unless running it
      // twice is harmless (a read) and its connection broke (a master that
      // answers slowly would hold the caller kMaxAttempts I/O timeouts):
      // the caller sees the failure.
      if (sent && (rerun != Rerun::kSafe || conn->timed_out())) {
        return reply.error();
      }
      why = std::move(reply.error().detail());
      continue;
    }
    if (reply->is_error() && (StartsWith(reply->str, "READONLY") ||
                              StartsWith(reply->str, "LOADING"))) {
      // A demoted master, or one still loading its data: the command was
      // refused, so sending it to the new master cannot run it twice.
      master_.reset();
      conn->Close();
      why = "redis " + target.ToString() + ": " + reply->str;
      continue;
    }
    *used = conn;
    return reply;
  }
  return Error(
      Errc::kStoreFailed,
      why + " (gave up after " + std::to_string(kMaxAttempts) + " attempts)");
}

RedisConnection* RedisClient::ConnectionTo(const RedisAddress& address) {
  std::unique_ptr<RedisConnection>& conn = conns_[address.ToString()];
  if (conn == nullptr) {
    conn = std::make_unique<RedisConnection>(address, timeouts_);
  }
  return conn.get();
}

bool RedisClient::ParseSlots(const RedisReply& reply,
                             const RedisAddress& from) {
  if (reply.type != RedisReply::Type::kArray) return false;
  std::vector<SlotRange> slots;
  for (const RedisReply& range : reply.elements) {
    if (range.type != RedisReply::Type::kArray || range.elements.size() < 3 ||
        range.elements[0].type != RedisReply::Type::kInteger ||
        range.elements[1].type != RedisReply::Type::kInteger ||
        range.elements[2].type != RedisReply::Type::kArray ||
        range.elements[2].elements.size() < 2 ||
        range.elements[2].elements[1].type != RedisReply::Type::kInteger) {
      return false;
    }
    const RedisReply& node = range.elements[2];
    RedisAddress master{.host = node.elements[0].str,
                        .port = static_cast<int>(node.elements[1].integer)};
    // An empty or "?" endpoint means "the address you asked".
    if (master.host.empty() || master.host == "?") master.host = from.host;
    slots.push_back(
        SlotRange{.first = static_cast<int>(range.elements[0].integer),
                  .last = static_cast<int>(range.elements[1].integer),
                  .master = std::move(master)});
  }
  std::sort(
      slots.begin(), slots.end(),
      [](const SlotRange& a, const SlotRange& b) { return a.first < b.first; });
  slots_ = std::move(slots);
  return true;
}

StoreStatus RedisClient::RefreshSlots() {
  std::vector<RedisAddress> candidates;
  for (const SlotRange& r : slots_) {
    if (std::find(candidates.begin(), candidates.end(), r.master) ==
        candidates.end()) {
      candidates.push_back(r.master);
    }
  }
  for (const RedisAddress& s : seeds_) {
    if (std::find(candidates.begin(), candidates.end(), s) ==
        candidates.end()) {
      candidates.push_back(s);
    }
  }
  const std::string cluster_slots[] = {"CLUSTER", "SLOTS"};
  Error error(Errc::kStoreFailed, "redis: no node to ask for slots");
  for (const RedisAddress& a : candidates) {
    RedisConnection* conn = ConnectionTo(a);
    auto reply = conn->Command(cluster_slots);
    if (!reply) {
      error = reply.error();
      continue;
    }
    if (ParseSlots(*reply, a)) return {};
    error = Error(Errc::kStoreFailed,
                  "redis " + a.ToString() + ": malformed CLUSTER SLOTS reply");
  }
  return error;
}

RedisAddress RedisClient::Route(std::string_view route_key) const {
  if (!cluster_ || slots_.empty()) return seeds_.front();
  if (route_key.empty()) {
    // Keyless: prefer a node we are already connected to.
    for (const SlotRange& r : slots_) {
      auto it = conns_.find(r.master.ToString());
      if (it != conns_.end() && it->second->connected()) return r.master;
    }
    return slots_.front().master;
  }
  const int slot = RedisKeySlot(route_key);
  auto it =
      std::upper_bound(slots_.begin(), slots_.end(), slot,
                       [](int s, const SlotRange& r) { return s < r.first; });
  if (it != slots_.begin()) {
    --it;
    if (slot >= it->first && slot <= it->last) return it->master;
  }
  return seeds_.front();
}

StoreResult<RedisReply> RedisClient::Run(std::span<const std::string> argv,
                                         std::string_view route_key,
                                         Rerun rerun) {
  AssertMayBlock("a blocking Redis command");
  std::lock_guard<std::mutex> lock(mu_);
  RedisConnection* used = nullptr;
  return RunLocked(argv, route_key, rerun, &used);
}

StoreResult<RedisReply> RedisClient::RunOnEachMaster(
    std::span<const std::string> argv) {
  AssertMayBlock("a blocking Redis command");
  std::lock_guard<std::mutex> lock(mu_);
  if (!cluster_) {
    RedisConnection* used = nullptr;
    return RunLocked(argv, "", Rerun::kNever, &used);
  }
  std::vector<RedisAddress> masters;
  for (const SlotRange& r : slots_) {
    if (std::find(masters.begin(), masters.end(), r.master) == masters.end()) {
      masters.push_back(r.master);
    }
  }
  if (masters.empty()) {
    return Error(Errc::kStoreFailed, "redis cluster: no master in slot map");
  }
  StoreResult<RedisReply> first = RedisReply{};
  for (std::size_t i = 0; i < masters.size(); ++i) {
    auto reply = ConnectionTo(masters[i])->Command(argv);
    if (!reply) return reply.error();
    if (reply->is_error()) {
      return Error(Errc::kStoreFailed,
                   "redis " + masters[i].ToString() + ": " + reply->str);
    }
    if (i == 0) first = std::move(*reply);
  }
  return first;
}

StoreResult<RedisReply> RedisClient::RunDurable(
    std::span<const std::string> argv, std::string_view route_key,
    const RedisWait& wait) {
  AssertMayBlock("a blocking Redis command");
  std::lock_guard<std::mutex> lock(mu_);
  RedisConnection* used = nullptr;
  auto reply = RunLocked(argv, route_key, Rerun::kNever, &used);
  if (!reply || reply->is_error() || wait.replicas <= 0 || used == nullptr) {
    return reply;
  }
  // On the connection that ran the command: WAIT counts the replicas that
  // acknowledged this connection's last write.
  const std::string wait_cmd[] = {"WAIT", std::to_string(wait.replicas),
                                  std::to_string(wait.timeout.count())};
  auto acked = used->Command(wait_cmd);
  if (!acked) {
    if (sentinel()) master_.reset();
    return acked.error();
  }
  if (acked->type != RedisReply::Type::kInteger) {
    return Error(Errc::kStoreFailed,
                 "redis " + used->address().ToString() +
                     ": unexpected answer to WAIT" +
                     (acked->is_error() ? ": " + acked->str : ""));
  }
  if (acked->integer < wait.replicas) {
    return Error(Errc::kStoreFailed,
                 "redis " + used->address().ToString() +
                     ": WAIT: " + std::to_string(acked->integer) + " of " +
                     std::to_string(wait.replicas) +
                     " replicas acknowledged the write within " +
                     std::to_string(wait.timeout.count()) + " ms");
  }
  return reply;
}

StoreResult<RedisReply> RedisClient::RunLocked(
    std::span<const std::string> argv, std::string_view route_key, Rerun rerun,
    RedisConnection** used) {
  if (!master_name_.empty()) return RunSentinelLocked(argv, rerun, used);
  std::string why;  // the last failure, for the message of giving up
  // A failed refresh of the slot map is what the next attempt runs into.
  auto refresh = [&] {
    if (StoreStatus st = RefreshSlots(); !st) why = st.error().detail();
  };
  std::optional<RedisAddress> redirect;  // MOVED or ASK target
  bool asking = false;
  const std::string asking_cmd[] = {"ASKING"};
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    const RedisAddress target = redirect ? *redirect : Route(route_key);
    RedisConnection* conn = ConnectionTo(target);
    bool sent = false;
    StoreResult<RedisReply> reply = RedisReply{};
    if (asking) {
      reply = conn->Command(asking_cmd, &sent);
      // ASKING itself changes nothing: retrying after it failed is safe.
      sent = false;
    }
    if (reply) reply = conn->Command(argv, &sent);
    redirect.reset();
    asking = false;
    if (!reply) {
      // A command that may have run is not sent again (it might not be
      // idempotent; Rerun is for Sentinel only): the caller sees the
      // failure, the next call reconnects.
      if (sent || !cluster_) {
        if (cluster_) (void)RefreshSlots();
        return reply.error();
      }
      why = std::move(reply.error().detail());
      refresh();
      continue;
    }
    if (cluster_ && reply->is_error()) {
      const std::string& e = reply->str;
      if (StartsWith(e, "MOVED ") || StartsWith(e, "ASK ")) {
        redirect = RedirectTarget(e);
        if (!redirect) {
          return Error(Errc::kStoreFailed,
                       "redis " + target.ToString() + ": bad redirect: " + e);
        }
        asking = StartsWith(e, "ASK ");
        if (!asking) refresh();
        continue;
      }
      if (StartsWith(e, "TRYAGAIN") || StartsWith(e, "CLUSTERDOWN")) {
        why = "redis " + target.ToString() + ": " + e;
        std::this_thread::sleep_for(std::chrono::milliseconds(50) *
                                    (attempt + 1));
        refresh();
        continue;
      }
    }
    *used = conn;
    return reply;
  }
  return Error(
      Errc::kStoreFailed,
      why + " (gave up after " + std::to_string(kMaxAttempts) + " attempts)");
}

RedisAddress RedisClient::MasterFor(std::string_view route_key) const {
  std::lock_guard<std::mutex> lock(mu_);
  // Sentinel: the master last found (Nodes and failed commands ask the
  // sentinels again); no round trip here.
  if (!master_name_.empty()) return master_ ? *master_ : last_master_;
  return Route(route_key);
}

std::vector<RedisAddress> RedisClient::Nodes() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!master_name_.empty()) {
    // Asked afresh: a caller wants the node to (re)connect to now.
    (void)ResolveMaster();
    return {master_ ? *master_ : last_master_};
  }
  if (!cluster_) return seeds_;
  std::vector<RedisAddress> out;
  for (const SlotRange& r : slots_) {
    if (std::find(out.begin(), out.end(), r.master) == out.end()) {
      out.push_back(r.master);
    }
  }
  for (const RedisAddress& s : seeds_) {
    if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
  }
  return out;
}

}  // namespace presence::store
