// RedisFeed: the subscriber side of the Redis store's feed.
//
// Every change is PUBLISHed on one channel by the Lua script that made it
// (lua/). A message is a list of fields, each one tag byte followed by a
// netstring (redis_codec.h): r realm id, s seq, R realm (a realm field),
// U user (as stored), A access ("viewer|id,id,..."), P row
// ("user,connected,active,update_id"), d event_due, f forced, t written_at,
// C client rows (the user id's netstring, then all the user's client rows as
// stored), c client_event_due, F fences (a fence's announcement: lua/
// fence.lua).
//
// RedisFeed owns one connection and one thread: it subscribes to the first
// node that answers, hands each decoded entry to the sink, and when the
// subscription breaks reconnects with a doubling backoff and then tells the
// sink that entries may have been lost (OnFeedLost). A message it cannot
// decode is an entry lost too.
//
// Thread safety: Start and Stop from one owning thread; the sink and the
// error callback are called on the feed thread, one call at a time.
#ifndef PRESENCE_STORE_REDIS_FEED_H_
#define PRESENCE_STORE_REDIS_FEED_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/shared_store.h"
#include "store/redis_client.h"
#include "util/error.h"

namespace presence::store {

// Decodes one feed message; nullopt for a malformed message (an unknown
// tag, a field that does not decode, no realm id or no seq).
std::optional<FeedEntry> DecodeFeedEntry(std::string_view message);

class RedisFeed {
 public:
  struct Options {
    std::string channel;
    RedisTimeouts timeouts;
    // Reconnects after min_backoff, doubling up to max_backoff.
    std::chrono::milliseconds min_backoff{20};
    std::chrono::milliseconds max_backoff{1000};
    // Where to subscribe: asked again at every (re)connection.
    std::function<std::vector<RedisAddress>()> nodes;
    // Told of every failure of the running feed (for the operator).
    std::function<void(const Error&)> on_error;
  };

  RedisFeed(Options options, FeedSink* sink);
  RedisFeed(const RedisFeed&) = delete;
  RedisFeed& operator=(const RedisFeed&) = delete;
  // Stops the thread.
  ~RedisFeed();

  // Connects and subscribes (confirmed before it returns, so nothing
  // published after the call is missed), then starts the thread.
  // kStoreFailed, saying why, if no node accepts the subscription.
  StoreStatus Start();
  // Stops and joins the thread; idempotent.
  void Stop();

 private:
  StoreStatus ConnectAndSubscribe();
  // Waits for one reply (bounded). kStoreFailed on error or timeout.
  StoreResult<RedisReply> ReadOne(std::chrono::milliseconds timeout);
  // Sleeps `d` unless stopped; false if stopped.
  bool Wait(std::chrono::milliseconds d);
  // Delivers what has been received. False if the connection broke.
  bool Drain();
  void Run();

  const Options options_;
  FeedSink* const sink_;
  const int wake_fd_;
  std::unique_ptr<RedisConnection> conn_;  // used by the feed thread only
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace presence::store

#endif  // PRESENCE_STORE_REDIS_FEED_H_
