#include "store/redis_feed.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "store/redis_codec.h"

namespace presence::store {

using redis_codec::DecodeClientRows;
using redis_codec::DecodeIdList;
using redis_codec::DecodeRealmField;
using redis_codec::DecodeRowValue;
using redis_codec::DecodeUser;
using redis_codec::NsReader;
using redis_codec::ParseFlag;
using redis_codec::ParseInt;

std::optional<FeedEntry> DecodeFeedEntry(std::string_view message) {
  FeedEntry e;
  bool have_realm = false;
  bool have_seq = false;
  while (!message.empty()) {
    const char tag = message.front();
    NsReader r(message.substr(1));
    auto value = r.Next();
    if (!value) return std::nullopt;
    message.remove_prefix(1 + (value->data() - (message.data() + 1)) +
                          value->size());
    switch (tag) {
      case 'r': {
        auto v = ParseInt(*value);
        if (!v) return std::nullopt;
        e.realm_id = *v;
        have_realm = true;
        break;
      }
      case 's': {
        auto v = ParseInt(*value);
        if (!v) return std::nullopt;
        e.seq = *v;
        have_seq = true;
        break;
      }
      case 'R': {
        auto v = DecodeRealmField(*value);
        if (!v) return std::nullopt;
        e.realm = std::move(*v);
        break;
      }
      case 'U': {
        auto v = DecodeUser(*value);
        if (!v) return std::nullopt;
        e.user = std::move(*v);
        break;
      }
      case 'A': {
        std::size_t bar = value->find('|');
        if (bar == std::string_view::npos) return std::nullopt;
        auto viewer = ParseInt(value->substr(0, bar));
        auto ids = DecodeIdList(value->substr(bar + 1));
        if (!viewer || !ids) return std::nullopt;
        e.access = AccessRecord{
            .realm_id = 0, .viewer = *viewer, .visible = std::move(*ids)};
        break;
      }
      case 'P': {
        std::size_t comma = value->find(',');
        if (comma == std::string_view::npos) return std::nullopt;
        auto uid = ParseInt(value->substr(0, comma));
        if (!uid) return std::nullopt;
        auto row = DecodeRowValue(*uid, 0, value->substr(comma + 1));
        if (!row) return std::nullopt;
        e.row = *row;
        break;
      }
      case 'd':
      case 'f':
      case 'c': {
        auto v = ParseFlag(*value);
        if (!v) return std::nullopt;
        (tag == 'd'   ? e.event_due
         : tag == 'f' ? e.forced
                      : e.client_event_due) = *v;
        break;
      }
      case 'C': {
        NsReader ids(*value);
        auto uid_text = ids.Next();
        auto uid = uid_text ? ParseInt(*uid_text) : std::nullopt;
        if (!uid) return std::nullopt;
        const std::size_t head =
            uid_text->data() + uid_text->size() - value->data();
        auto rows = DecodeClientRows(0, *uid, value->substr(head));
        if (!rows) return std::nullopt;
        e.client_user = *uid;
        e.clients = std::move(*rows);
        break;
      }
      case 't': {
        auto v = ParseInt(*value);
        if (!v) return std::nullopt;
        e.written_at = *v;
        break;
      }
      case 'F': {
        auto v = ParseInt(*value);
        if (!v || *v <= 0) return std::nullopt;
        e.fences = *v;
        break;
      }
      default:
        return std::nullopt;
    }
  }
  if (!have_realm || !have_seq) return std::nullopt;
  if (e.access) e.access->realm_id = e.realm_id;
  if (e.row) e.row->realm_id = e.realm_id;
  if (e.clients) {
    for (auto& c : *e.clients) c.realm_id = e.realm_id;
  }
  return e;
}

// --- RedisFeed --------------------------------------------------------------

RedisFeed::RedisFeed(Options options, FeedSink* sink)
    : options_(std::move(options)),
      sink_(sink),
      wake_fd_(::eventfd(0, EFD_CLOEXEC)) {}

RedisFeed::~RedisFeed() {
  Stop();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

StoreStatus RedisFeed::Start() {
  if (wake_fd_ < 0) {
    return Error(Errc::kStoreFailed, "feed: eventfd failed");
  }
  if (StoreStatus st = ConnectAndSubscribe(); !st) return st;
  thread_ = std::thread([this] { Run(); });
  return {};
}

void RedisFeed::Stop() {
  if (!thread_.joinable()) return;
  stop_.store(true);
  std::uint64_t one = 1;
  ssize_t n = ::write(wake_fd_, &one, sizeof one);
  (void)n;
  thread_.join();
}

StoreStatus RedisFeed::ConnectAndSubscribe() {
  const std::vector<std::string> subscribe = {"SUBSCRIBE", options_.channel};
  std::string why = "feed: no redis node";
  for (const RedisAddress& node : options_.nodes()) {
    conn_ = std::make_unique<RedisConnection>(node, options_.timeouts);
    if (StoreStatus st = conn_->Send(subscribe); !st) {
      why = st.error().detail();
      continue;
    }
    auto reply = ReadOne(options_.timeouts.io);
    if (reply && reply->type == RedisReply::Type::kArray &&
        !reply->elements.empty() && reply->elements[0].str == "subscribe") {
      return {};
    }
    why = reply ? "redis " + node.ToString() + ": SUBSCRIBE refused"
                : reply.error().detail();
    conn_->Close();
  }
  return Error(Errc::kStoreFailed, why);
}

StoreResult<RedisReply> RedisFeed::ReadOne(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto buffered = conn_->Buffered();
    if (!buffered) return buffered.error();
    if (*buffered) return std::move(**buffered);
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      conn_->Close();
      return Error(Errc::kStoreFailed, "redis " + conn_->address().ToString() +
                                           ": no answer to SUBSCRIBE in time");
    }
    pollfd p{.fd = conn_->fd(), .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) > 0) {
      if (StoreStatus st = conn_->ReadSome(); !st) return st.error();
    }
  }
}

bool RedisFeed::Wait(std::chrono::milliseconds d) {
  pollfd p{.fd = wake_fd_, .events = POLLIN, .revents = 0};
  ::poll(&p, 1, static_cast<int>(d.count()));
  return !stop_.load();
}

bool RedisFeed::Drain() {
  for (;;) {
    auto reply = conn_->Buffered();
    if (!reply) {
      options_.on_error(
          Error(Errc::kStoreFailed, "feed: " + reply.error().detail()));
      return false;
    }
    if (!*reply) return true;
    const RedisReply& r = **reply;
    if (r.type != RedisReply::Type::kArray || r.elements.size() != 3 ||
        r.elements[0].str != "message") {
      continue;  // a (re)subscribe confirmation
    }
    std::optional<FeedEntry> entry = DecodeFeedEntry(r.elements[2].str);
    if (!entry) {
      // An entry we cannot read is an entry lost: the sink must resync.
      options_.on_error(Error(Errc::kCorrupt, "feed: malformed message"));
      sink_->OnFeedLost();
      continue;
    }
    sink_->OnFeedEntry(*entry);
  }
}

void RedisFeed::Run() {
  while (!stop_.load()) {
    if (Drain()) {
      pollfd p[2] = {{.fd = conn_->fd(), .events = POLLIN, .revents = 0},
                     {.fd = wake_fd_, .events = POLLIN, .revents = 0}};
      int n = ::poll(p, 2, -1);
      if (stop_.load()) return;
      if (n < 0) continue;  // EINTR
      if (p[0].revents == 0) continue;
      StoreStatus st = conn_->ReadSome();
      if (st) continue;
      options_.on_error(
          Error(Errc::kStoreFailed, "feed: " + st.error().detail()));
    }
    // The subscription broke: reconnect with backoff, then tell the sink
    // that entries may have been lost meanwhile.
    conn_->Close();
    auto backoff = options_.min_backoff;
    for (;;) {
      if (!Wait(backoff)) return;
      StoreStatus st = ConnectAndSubscribe();
      if (st) break;
      options_.on_error(st.error());
      backoff = std::min(backoff * 2, options_.max_backoff);
    }
    sink_->OnFeedLost();
  }
}

}  // namespace presence::store
