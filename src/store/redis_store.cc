#include "store/redis_store.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>
#include <utility>

#include "store/redis_async.h"
#include "store/redis_codec.h"
#include "store/redis_keys.h"
#include "store/redis_scripts.h"
#include "util/ascii.h"
#include "util/crypto.h"

namespace presence::store {

using namespace redis_codec;  // NOLINT(build/namespaces): this file's codec
using redis_keys::RealmKeys;

namespace {

using redis_keys::kNextNode;
using redis_keys::kNodeDeadlines;
using redis_keys::kNodes;
using redis_keys::kSubdomains;

// The commands Call sends that only read: with Sentinel, one cut off by a
// broken connection (a demoted master kills its clients) is sent again to
// the master the sentinels name (Rerun::kSafe) instead of failing.
Rerun RerunOf(std::string_view command) {
  for (std::string_view read : {"HGET", "HMGET", "HKEYS", "PING"}) {
    if (command == read) return Rerun::kSafe;
  }
  return Rerun::kNever;
}

}  // namespace

// --- Plumbing ---------------------------------------------------------------

RedisStore::RedisStore(std::vector<std::unique_ptr<RedisClient>> clients,
                       Options options, std::vector<Script> scripts)
    : clients_(std::move(clients)),
      options_(options),
      scripts_(std::move(scripts)) {}

RedisClient& RedisStore::client() {
  // Threads take pool slots in turn the first time they call (per store);
  // a thread keeps its slot, so its commands never wait for another's.
  thread_local const RedisStore* owner = nullptr;
  thread_local std::size_t slot = 0;
  if (owner != this) {
    owner = this;
    slot =
        next_client_.fetch_add(1, std::memory_order_relaxed) % clients_.size();
  }
  return *clients_[slot % clients_.size()];
}

RedisStore::~RedisStore() { Unsubscribe(); }

StoreResult<std::unique_ptr<RedisStore>> RedisStore::Open(
    std::string_view url) {
  return Open(url, Options{});
}

StoreResult<std::unique_ptr<RedisStore>> RedisStore::Open(
    std::string_view url, const Options& options) {
  std::optional<RedisSentinelUrl> sentinel;
  std::vector<RedisAddress> seeds;
  if (url.substr(0, kRedisSentinelScheme.size()) == kRedisSentinelScheme) {
    auto parsed = ParseRedisSentinelUrl(url);
    if (!parsed) return parsed.error();
    sentinel = std::move(*parsed);
  } else {
    auto parsed = ParseRedisUrl(url);
    if (!parsed) return parsed.error();
    seeds = std::move(*parsed);
  }
  if (options.wait.replicas < 0 || options.wait.timeout.count() < 0) {
    return Error(Errc::kInvalidArgument, "redis WAIT: negative setting");
  }
  auto scripts = BuildScripts(kFeedChannel);
  if (!scripts) return scripts.error();
  std::vector<std::unique_ptr<RedisClient>> clients;
  for (int i = 0; i < std::max(1, options.connections); ++i) {
    auto client = sentinel ? RedisClient::ConnectSentinel(sentinel->sentinels,
                                                          sentinel->master_name,
                                                          options.timeouts)
                           : RedisClient::Connect(seeds, options.timeouts);
    if (!client) return client.error();
    clients.push_back(std::move(*client));
  }
  std::unique_ptr<RedisStore> store(
      new RedisStore(std::move(clients), options, std::move(*scripts)));
  for (Script& s : store->scripts_) {
    // On every master of a cluster: a script runs on its keys' shard, and
    // a shard without it would answer NOSCRIPT (one more round trip).
    const std::string argv[] = {"SCRIPT", "LOAD", s.body};
    auto reply = store->clients_.front()->RunOnEachMaster(argv);
    if (!reply) {
      return Error(Errc::kStoreFailed, "loading script " + s.name + ": " +
                                           std::move(reply.error().detail()));
    }
    if (reply->is_error()) {
      return Error(Errc::kStoreFailed,
                   "loading script " + s.name + ": redis: " + reply->str);
    }
    s.sha = reply->str;
  }
  return store;
}

StoreResult<RedisReply> RedisStore::Call(std::span<const std::string> argv,
                                         std::string_view route_key) {
  const std::string op = argv.empty() ? std::string() : argv[0];
  auto reply = client().Run(argv, route_key, RerunOf(op));
  if (!reply) {
    return Error(Errc::kStoreFailed, op + ": " + reply.error().detail());
  }
  if (reply->is_error()) {
    return Error(Errc::kStoreFailed, "redis " + op + ": " + reply->str);
  }
  return reply;
}

StoreResult<RedisReply> RedisStore::Eval(const Script& script,
                                         std::span<const std::string> keys,
                                         std::span<const std::string> args) {
  std::vector<std::string> argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.push_back("EVALSHA");
  argv.push_back(script.sha);
  argv.push_back(std::to_string(keys.size()));
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  const std::string route = keys.empty() ? std::string() : keys.front();
  RedisClient& c = client();
  // Reads and the rate limit's count need no replica's acknowledgement;
  // nor does a fence (made when a failover lost writes, often while the
  // new master has no replica yet): one lost again is made again.
  const std::ptrdiff_t id = &script - scripts_.data();
  // These scripts only read: with Sentinel, one cut off by a broken
  // connection is sent again (Rerun::kSafe, as in RerunOf).
  const bool reads = id == kReadRealm || id == kCheckUser ||
                     id == kNodeAddress || id == kLiveNodes;
  const bool durable = options_.wait.replicas > 0 && !reads &&
                       id != kCountRequest && id != kFence;
  auto run = [&] {
    return durable ? c.RunDurable(argv, route, options_.wait)
                   : c.Run(argv, route, reads ? Rerun::kSafe : Rerun::kNever);
  };
  auto reply = run();
  if (reply && reply->is_error() && reply->str.substr(0, 8) == "NOSCRIPT") {
    // A restarted or flushed node (or a promoted replica that never ran
    // SCRIPT LOAD): EVAL runs it and caches it again.
    argv[0] = "EVAL";
    argv[1] = script.body;
    reply = run();
  }
  const bool writes = !reads && id != kCountRequest;
  if (!reply) {
    Error e(Errc::kStoreFailed, script.name + ": " + reply.error().detail());
    // Redis ran the write, but too few replicas acknowledged it. (A lost
    // connection is not remembered: /healthz's PING sees that itself.)
    if (writes && e.detail().find("WAIT") != std::string::npos) NoteWrite(e);
    return e;
  }
  if (reply->is_error()) {
    Error e(Errc::kStoreFailed,
            "redis script " + script.name + ": " + reply->str);
    if (writes) NoteWrite(e);
    return e;
  }
  if (writes) NoteWrite({});
  return reply;
}

// --- Feed
// ---------------------------------------------------------------------

StoreResult<RealmState> RedisStore::ReadRealm(RealmId realm, UpdateId since) {
  return ReadRealmImpl(realm, since);
}

StoreStatus RedisStore::Subscribe(FeedSink* sink) {
  std::lock_guard<std::mutex> lock(feed_mu_);
  if (feed_ != nullptr) {
    return Error(Errc::kInvalidArgument, "Subscribe: already subscribed");
  }
  RedisFeed::Options options{
      .channel = std::string(kFeedChannel),
      .timeouts = options_.timeouts,
      .min_backoff = options_.min_backoff,
      .max_backoff = options_.max_backoff,
      .nodes = [this] { return clients_.front()->Nodes(); },
      // Nobody waits on the feed thread: its failures go to the log.
      .on_error =
          [](const Error& e) {
            std::fprintf(stderr, "presenced: %s\n", e.message().c_str());
          }};
  auto feed = std::make_unique<RedisFeed>(std::move(options), sink);
  if (StoreStatus st = feed->Start(); !st) return st;
  feed_ = std::move(feed);
  return {};
}

void RedisStore::Unsubscribe() {
  std::lock_guard<std::mutex> lock(feed_mu_);
  if (feed_ == nullptr) return;
  feed_->Stop();
  feed_.reset();
}

// --- The presence steps -----------------------------------------------------

StoreResult<WriteResult> RedisStore::Report(RealmId realm, UserId user,
                                            Micros now, ReportStatus status,
                                            const ReportClient& client) {
  const std::string args[] = {
      std::to_string(realm),
      std::to_string(user),
      std::to_string(now),
      status == ReportStatus::kActive ? "1" : "0",
      std::string(client.name),
      std::to_string(std::max<std::size_t>(1, client.max_rows))};
  auto reply = Eval(scripts_[kReport], RealmKeys(realm), args);
  if (!reply) return reply.error();
  if (reply->type != RedisReply::Type::kArray || reply->elements.size() < 2) {
    return Error(Errc::kCorrupt, "report: bad reply");
  }
  auto code = IntOf(reply->elements[0]);
  auto seq = IntOf(reply->elements[1]);
  if (!code || !seq) return Error(Errc::kCorrupt, "report: bad reply");
  if (*code < 0) return Errc::kNotFound;
  return WriteResult{.wrote = *code == 1, .seq = *seq};
}

StoreResult<WriteResult> RedisStore::SetPresenceEnabled(RealmId realm,
                                                        UserId user,
                                                        bool enabled,
                                                        Micros now) {
  const std::string args[] = {std::to_string(realm), std::to_string(user),
                              Flag(enabled), std::to_string(now)};
  auto reply = Eval(scripts_[kSetPresenceEnabled], RealmKeys(realm), args);
  if (!reply) return reply.error();
  if (reply->type != RedisReply::Type::kArray || reply->elements.size() < 2) {
    return Error(Errc::kCorrupt, "set_presence_enabled: bad reply");
  }
  auto code = IntOf(reply->elements[0]);
  auto seq = IntOf(reply->elements[1]);
  if (!code || !seq) return Error(Errc::kCorrupt, "set_presence_enabled: bad");
  if (*code < 0) return Errc::kNotFound;
  return WriteResult{.wrote = *code == 1, .seq = *seq};
}

StoreResult<UpdateId> RedisStore::CurrentSeq(RealmId realm) {
  const std::string key = RealmKeys(realm)[redis_keys::kMeta];
  // 'seq' exists in every realm; 'log' once its first change was made.
  const std::string argv[] = {"HMGET", key, "seq", "log"};
  auto reply = Call(argv, key);
  if (!reply) return reply.error();
  if (reply->type != RedisReply::Type::kArray || reply->elements.size() != 2) {
    return Error(Errc::kCorrupt, "CurrentSeq: bad reply");
  }
  if (reply->elements[0].is_nil()) return Errc::kNotFound;
  if (reply->elements[1].is_nil()) return UpdateId{0};
  auto log = ParseInt(reply->elements[1].str);
  if (!log) return Error(Errc::kCorrupt, "CurrentSeq: bad log");
  return *log;
}

StoreResult<UpdateId> RedisStore::Fence(RealmId realm, UpdateId log,
                                        UpdateId update_id) {
  const std::string args[] = {std::to_string(realm), std::to_string(log),
                              std::to_string(update_id)};
  auto reply = Eval(scripts_[kFence], RealmKeys(realm), args);
  if (!reply) return reply.error();
  if (reply->type != RedisReply::Type::kArray || reply->elements.size() < 2) {
    return Error(Errc::kCorrupt, "fence: bad reply");
  }
  auto taken = IntOf(reply->elements[0]);
  if (!taken) return Error(Errc::kCorrupt, "fence: bad reply");
  if (*taken < 0) return Errc::kNotFound;
  return *taken;
}

StoreResult<std::optional<RealmId>> RedisStore::FindRealmId(
    std::string_view subdomain) {
  const std::string argv[] = {"HGET", kSubdomains, AsciiLower(subdomain)};
  auto reply = Call(argv, kSubdomains);
  if (!reply) return reply.error();
  if (reply->is_nil()) return std::optional<RealmId>();
  auto id = ParseInt(reply->str);
  if (!id) return Error(Errc::kCorrupt, "FindRealmId: bad id");
  return std::optional<RealmId>(*id);
}

StoreResult<std::int64_t> RedisStore::RegisterNode(
    std::string_view address, std::chrono::milliseconds ttl) {
  const std::string keys[] = {kNextNode, kNodes, kNodeDeadlines};
  const std::string args[] = {"0", std::string(address),
                              std::to_string(ttl.count())};
  auto reply = Eval(scripts_[kRegisterNode], keys, args);
  if (!reply) return reply.error();
  auto id = IntOf(*reply);
  if (!id) return Error(Errc::kCorrupt, "register_node: bad reply");
  return static_cast<std::int64_t>(*id);
}

StoreStatus RedisStore::RefreshNode(std::int64_t node, std::string_view address,
                                    std::chrono::milliseconds ttl) {
  const std::string keys[] = {kNextNode, kNodes, kNodeDeadlines};
  const std::string args[] = {std::to_string(node), std::string(address),
                              std::to_string(ttl.count())};
  auto reply = Eval(scripts_[kRegisterNode], keys, args);
  if (!reply) return reply.error();
  if (IntOf(*reply).value_or(-1) != node) {
    return Error(Errc::kCorrupt, "register_node: bad reply");
  }
  return {};
}

StoreResult<RateCount> RedisStore::CountRequest(UserId user, Micros now,
                                                std::int64_t limit,
                                                Micros window) {
  const std::vector<std::string> keys = redis_keys::RateKeys(user);
  const std::string args[] = {std::to_string(now), std::to_string(limit),
                              std::to_string(window)};
  auto reply = Eval(scripts_[kCountRequest], keys, args);
  if (!reply) return reply.error();
  if (reply->type != RedisReply::Type::kArray || reply->elements.size() != 3) {
    return Error(Errc::kCorrupt, "count_request: bad reply");
  }
  auto allowed = IntOf(reply->elements[0]);
  auto count = IntOf(reply->elements[1]);
  std::optional<long long> oldest;
  if (reply->elements[2].type == RedisReply::Type::kString) {
    if (auto v = ParseInt(reply->elements[2].str)) oldest = *v;
  } else {
    oldest = IntOf(reply->elements[2]);
  }
  if (!allowed || !count || !oldest) {
    return Error(Errc::kCorrupt, "count_request: bad reply");
  }
  return RateCount{.allowed = *allowed == 1,
                   .in_window = *count,
                   .oldest = static_cast<Micros>(*oldest)};
}

namespace {

// This thread's asynchronous connections and the store they belong to.
struct ThreadAsync {
  const RedisStore* store = nullptr;
  std::unique_ptr<RedisAsync> async;
  // The gate batches' tokens (Sentinel): unique to this thread of this
  // process, then numbered.
  std::string token_prefix;
  std::uint64_t batches = 0;
};
thread_local ThreadAsync tls_async;

}  // namespace

void RedisStore::AttachIoThread(boost::asio::io_context& io) {
  tls_async.async = std::make_unique<RedisAsync>(io, clients_.front().get(),
                                                 options_.timeouts);
  tls_async.store = this;
  tls_async.token_prefix = RandomAlnum(16) + ":";
}

void RedisStore::DetachIoThread() {
  if (tls_async.store != this) return;
  // Closed while the thread is still marked: a step sent from a callback of
  // a failing command (the gate batcher sends the batch that waited) fails
  // at once instead of blocking the thread.
  auto closing = std::move(tls_async.async);
  closing.reset();
  tls_async.store = nullptr;
}

StoreResult<GateResult> RedisStore::ParseGate(const RedisReply& reply) {
  if (reply.is_error()) {
    return Error(Errc::kStoreFailed, "redis script gate_batch: " + reply.str);
  }
  if (reply.type != RedisReply::Type::kArray || reply.elements.size() != 7) {
    return Error(Errc::kCorrupt, "gate: bad reply");
  }
  const auto& e = reply.elements;
  auto allowed = IntOf(e[0]);
  auto count = IntOf(e[1]);
  std::optional<long long> oldest;
  if (e[2].type == RedisReply::Type::kString) {
    if (auto v = ParseInt(e[2].str)) oldest = *v;
  } else {
    oldest = IntOf(e[2]);
  }
  auto code = IntOf(e[3]);
  auto seq = IntOf(e[4]);
  auto charged = IntOf(e[6]);
  if (!allowed || !count || !oldest || !code || !seq || !charged) {
    return Error(Errc::kCorrupt, "gate: bad reply");
  }
  if (*code < 0) return Errc::kNotFound;
  return GateResult{.rate = {.allowed = *allowed == 1,
                             .in_window = *count,
                             .oldest = static_cast<Micros>(*oldest),
                             .charged = *charged},
                    .write = {.wrote = *code == 1, .seq = *seq}};
}

GateBatchResult RedisStore::ParseGateBatch(StoreResult<RedisReply> reply,
                                           std::size_t requests) {
  if (!reply) return reply.error();
  if (reply->type != RedisReply::Type::kArray ||
      reply->elements.size() != requests) {
    return Error(Errc::kCorrupt, "gate_batch: bad reply");
  }
  std::vector<StoreResult<GateResult>> out;
  out.reserve(requests);
  for (const RedisReply& one : reply->elements) out.push_back(ParseGate(one));
  return out;
}

std::vector<std::string> RedisStore::GateBatchArgv(
    RealmId realm, std::span<const GateRequest> requests, bool by_body,
    std::string_view token) const {
  const Script& script = scripts_[kGateBatch];
  const std::size_t answer = token.empty() ? 0 : 1;
  std::vector<std::string> argv;
  argv.reserve(3 + 7 + 2 * requests.size() + answer + 1 + 9 * requests.size());
  argv.push_back(by_body ? "EVAL" : "EVALSHA");
  argv.push_back(by_body ? script.body : script.sha);
  std::vector<std::string> keys = RealmKeys(realm);
  argv.push_back(std::to_string(keys.size() + 2 * requests.size() + answer));
  for (std::string& k : keys) argv.push_back(std::move(k));
  for (const GateRequest& r : requests) {
    for (std::string& k : redis_keys::RealmRateKeys(realm, r.user)) {
      argv.push_back(std::move(k));
    }
  }
  if (answer != 0) argv.push_back(redis_keys::GateAnswerKey(realm, token));
  argv.push_back(std::to_string(realm));
  for (const GateRequest& r : requests) {
    const char* report = "-";
    if (r.report) report = *r.report == ReportStatus::kActive ? "a" : "i";
    argv.push_back(std::to_string(r.user));
    argv.push_back(std::to_string(r.now));
    argv.push_back(report);
    argv.push_back(std::to_string(r.rate_now));
    argv.push_back(std::to_string(r.rate_limit));
    argv.push_back(std::to_string(r.rate_window));
    argv.push_back(r.client);
    argv.push_back(std::to_string(r.max_clients));
    argv.push_back(std::to_string(r.rate_charge));
  }
  return argv;
}

void RedisStore::Gate(RealmId realm, const GateRequest& request,
                      GateCallback done) {
  // A batch of one: the request is kept until the answer (GateBatch's
  // contract).
  auto held = std::make_shared<const GateRequest>(request);
  GateBatch(realm, std::span<const GateRequest>(held.get(), 1),
            [held, done = std::move(done)](GateBatchResult r) {
              if (!r) return done(r.error());
              done(std::move(r->front()));
            });
}

void RedisStore::GateBatch(RealmId realm, std::span<const GateRequest> requests,
                           GateBatchCallback done) {
  if (requests.empty()) return done(std::vector<StoreResult<GateResult>>{});
  const std::size_t n = requests.size();
  if (tls_async.store != this) {
    // The blocking path (a thread without asynchronous connections).
    std::vector<std::string> argv = GateBatchArgv(realm, requests, false, {});
    const std::size_t nkeys = 7 + 2 * n;
    std::span<const std::string> all(argv);
    done(ParseGateBatch(Eval(scripts_[kGateBatch], all.subspan(3, nkeys),
                             all.subspan(3 + nkeys)),
                        n));
    return;
  }
  RedisAsync* async = tls_async.async.get();
  if (async == nullptr) {
    // The thread is closing its connections (DetachIoThread).
    return done(Error(Errc::kStoreFailed, "gate: I/O thread stopping"));
  }
  std::string route = RealmKeys(realm).front();
  auto finish = [this](StoreResult<RedisReply> reply) {
    if (!reply) {
      return StoreResult<RedisReply>(
          Error(Errc::kStoreFailed, "gate_batch: " + reply.error().detail()));
    }
    if (reply->is_error()) {
      // Redis answered and refused (OOM, MISCONF, READONLY...).
      Error e(Errc::kStoreFailed, "redis script gate_batch: " + reply->str);
      NoteWrite(e);
      return StoreResult<RedisReply>(std::move(e));
    }
    return reply;
  };
  // --redis-wait-replicas: a step that wrote is acknowledged only once
  // that many replicas have it (one WAIT per batch, on the connection that
  // ran it); a WAIT that fails fails the requests that wrote. So is a ping
  // whose step wrote nothing: it acknowledges the user's row as stored,
  // which an earlier attempt may have written and failed to replicate
  // (the blocking path's RunDurable waits after every step too). The
  // outcome feeds /healthz (NoteWrite).
  auto acknowledges = [requests](const GateBatchResult& r, std::size_t i) {
    const auto& one = (*r)[i];
    return one && (one->write.wrote ||
                   (i < requests.size() && requests[i].report.has_value() &&
                    one->rate.allowed));
  };
  auto durable = [this, async, route, wait = options_.wait, acknowledges,
                  done = std::move(done)](GateBatchResult r) mutable {
    const bool wrote =
        r && std::any_of(r->begin(), r->end(), [](const auto& one) {
          return one && one->write.wrote;
        });
    bool acks = false;
    for (std::size_t i = 0; r && i < r->size() && !acks; ++i) {
      acks = acknowledges(r, i);
    }
    if (!acks || wait.replicas <= 0) {
      if (wrote) NoteWrite({});
      return done(std::move(r));
    }
    async->Run({"WAIT", std::to_string(wait.replicas),
                std::to_string(wait.timeout.count())},
               route,
               [this, r = std::move(r), wait, acknowledges,
                done = std::move(done)](StoreResult<RedisReply> acked) mutable {
                 std::optional<Error> failed;
                 if (!acked || acked->type != RedisReply::Type::kInteger) {
                   failed =
                       Error(Errc::kStoreFailed,
                             "gate: WAIT failed: " +
                                 (acked ? acked->str : acked.error().detail()));
                 } else if (acked->integer < wait.replicas) {
                   failed = Error(Errc::kStoreFailed,
                                  "gate: written, but only " +
                                      std::to_string(acked->integer) + " of " +
                                      std::to_string(wait.replicas) +
                                      " replicas acknowledged it in time");
                 }
                 if (failed) {
                   NoteWrite(*failed);
                   std::vector<bool> fail(r->size());
                   for (std::size_t i = 0; i < r->size(); ++i) {
                     fail[i] = acknowledges(r, i);
                   }
                   for (std::size_t i = 0; i < r->size(); ++i) {
                     if (fail[i]) (*r)[i] = *failed;
                   }
                 } else {
                   NoteWrite({});
                 }
                 done(std::move(r));
               });
  };
  // With Sentinel, the batch carries a token (lua/gate_batch.lua keeps its
  // answer under it) and is sent again if its connection breaks in flight:
  // a failover's demoted master kills its clients, and the batch then
  // reaches the new master instead of failing its requests.
  std::string token;
  RedisAsync::Rerun rerun = RedisAsync::Rerun::kNever;
  if (clients_.front()->sentinel()) {
    token = tls_async.token_prefix + std::to_string(++tls_async.batches);
    rerun = RedisAsync::Rerun::kSafe;
  }
  // EVALSHA on this thread's pipelined connection; on NOSCRIPT (a restart,
  // SCRIPT FLUSH) the command is built again with the script's body (the
  // requests outlive the call, GateBatch's contract), so nothing of it is
  // kept per call for that rare case.
  async->Run(
      GateBatchArgv(realm, requests, false, token), route,
      [this, async, realm, requests, route, finish, token, rerun,
       durable = std::move(durable)](StoreResult<RedisReply> reply) mutable {
        const std::size_t n = requests.size();
        if (reply && reply->is_error() &&
            reply->str.substr(0, 8) == "NOSCRIPT") {
          async->Run(
              GateBatchArgv(realm, requests, true, token), std::move(route),
              [n, finish, durable = std::move(durable)](
                  StoreResult<RedisReply> again) mutable {
                durable(ParseGateBatch(finish(std::move(again)), n));
              },
              rerun);
          return;
        }
        durable(ParseGateBatch(finish(std::move(reply)), n));
      },
      rerun);
}

StoreStatus RedisStore::Ping() {
  // Routed like the global keys: in a cluster, the shard every node needs.
  const std::string argv[] = {"PING"};
  auto reply = Call(argv, kNodes);
  if (!reply) return reply.error();
  return {};
}

void RedisStore::PingAsync(std::function<void(StoreStatus)> done) {
  if (tls_async.store != this) return done(Ping());
  tls_async.async->Run(
      {"PING"}, kNodes, [done = std::move(done)](StoreResult<RedisReply> r) {
        if (!r) {
          return done(Error(Errc::kStoreFailed, "PING: " + r.error().detail()));
        }
        if (r->is_error()) {
          return done(Error(Errc::kStoreFailed, "redis PING: " + r->str));
        }
        done(StoreStatus{});
      });
}

void RedisStore::NoteWrite(const StoreStatus& outcome) {
  std::lock_guard<std::mutex> lock(health_mu_);
  if (outcome) {
    write_failure_.reset();
    return;
  }
  write_failure_ = outcome.error().message();
  write_failed_at_ = std::chrono::steady_clock::now();
}

std::optional<std::string> RedisStore::RecentWriteFailure() const {
  std::lock_guard<std::mutex> lock(health_mu_);
  if (!write_failure_ || std::chrono::steady_clock::now() - write_failed_at_ >
                             kWriteFailureMemory) {
    return std::nullopt;
  }
  return "writes fail: " + *write_failure_;
}

std::optional<std::string> RedisStore::ReplicasShort(
    const RedisReply& info) const {
  // INFO replication: one "slaveN:ip=...,state=online,offset=...,lag=..."
  // line per replica; only an online one acknowledges writes.
  int online = 0;
  std::string_view text = info.str;
  while (!text.empty()) {
    const std::size_t eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view()
                                         : text.substr(eol + 1);
    if (line.starts_with("slave") &&
        line.find("state=online") != std::string_view::npos) {
      ++online;
    }
  }
  if (online >= options_.wait.replicas) return std::nullopt;
  return "--redis-wait-replicas " + std::to_string(options_.wait.replicas) +
         ": the master has " + std::to_string(online) +
         " replica(s) online, so every write fails (reads are served)";
}

void RedisStore::HealthAsync(std::function<void(StoreHealth)> done) {
  PingAsync([this, done = std::move(done)](StoreStatus ping) mutable {
    if (!ping) return done(StoreHealth{std::move(ping), std::nullopt});
    if (auto why = RecentWriteFailure()) {
      return done(StoreHealth{{}, std::move(why)});
    }
    if (options_.wait.replicas <= 0) {
      return done(StoreHealth{{}, std::nullopt});
    }
    auto judge = [this, done](StoreResult<RedisReply> info) {
      if (!info || info->is_error() || info->type == RedisReply::Type::kArray) {
        // Reachable a moment ago; what the replicas do is not known.
        return done(StoreHealth{{}, std::nullopt});
      }
      done(StoreHealth{{}, ReplicasShort(*info)});
    };
    if (tls_async.store == this) {
      tls_async.async->Run({"INFO", "replication"}, kNodes, std::move(judge));
      return;
    }
    const std::string argv[] = {"INFO", "replication"};
    judge(client().Run(argv, kNodes));
  });
}

StoreResult<std::optional<std::string>> RedisStore::NodeAddress(
    std::int64_t node) {
  const std::string keys[] = {kNodes, kNodeDeadlines};
  const std::string args[] = {std::to_string(node)};
  auto reply = Eval(scripts_[kNodeAddress], keys, args);
  if (!reply) return reply.error();
  if (reply->is_nil()) return std::optional<std::string>();
  if (reply->type != RedisReply::Type::kString) {
    return Error(Errc::kCorrupt, "node_address: bad reply");
  }
  return std::optional<std::string>(reply->str);
}

StoreResult<std::vector<std::pair<std::int64_t, std::string>>>
RedisStore::LiveNodes() {
  const std::string keys[] = {kNodes, kNodeDeadlines};
  auto reply = Eval(scripts_[kLiveNodes], keys, {});
  if (!reply) return reply.error();
  if (reply->type != RedisReply::Type::kArray ||
      reply->elements.size() % 2 != 0) {
    return Error(Errc::kCorrupt, "live_nodes: bad reply");
  }
  std::vector<std::pair<std::int64_t, std::string>> nodes;
  for (std::size_t i = 0; i < reply->elements.size(); i += 2) {
    auto id = ParseInt(reply->elements[i].str);
    if (!id) return Error(Errc::kCorrupt, "live_nodes: bad id");
    nodes.emplace_back(*id, reply->elements[i + 1].str);
  }
  std::sort(nodes.begin(), nodes.end());
  return nodes;
}

}  // namespace presence::store
