#include "http/forwarder.h"

#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <optional>

namespace presence::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

// One keep-alive connection to a target, used on the I/O context that
// opened it. `generation` and `idle` are touched on that context's thread
// only.
class Forwarder::Connection
    : public std::enable_shared_from_this<Forwarder::Connection> {
 public:
  explicit Connection(asio::any_io_executor ex) : stream(std::move(ex)) {}

  // Keeps a one-byte read pending while idle: any completion of it but a
  // cancellation means the peer closed the connection (or sent what it
  // should not have): the connection leaves the pool and is closed.
  void Watch(Forwarder* owner, PoolKey key) {
    idle = true;
    stream.expires_never();
    stream.socket().async_read_some(
        asio::buffer(peek),
        [self = shared_from_this(), owner, key = std::move(key),
         gen = generation](beast::error_code ec, std::size_t) {
          if (ec == asio::error::operation_aborted) return;
          if (!self->idle || self->generation != gen) return;
          self->idle = false;
          owner->DropIdle(key, self.get());
          self->Close();
        });
  }

  // Taken from the pool for a relay: stops watching.
  void Take() {
    idle = false;
    ++generation;
    beast::error_code ignored;
    stream.socket().cancel(ignored);
  }

  void Close() {
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream.socket().close(ignored);
  }

  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  std::array<char, 1> peek{};
  bool idle = false;
  std::uint64_t generation = 0;
};

class Forwarder::Relay : public std::enable_shared_from_this<Forwarder::Relay> {
 public:
  Relay(Forwarder* owner, asio::any_io_executor ex, PoolKey key,
        ForwardRequest request, std::chrono::milliseconds timeout,
        std::function<void(Result<ForwardResponse>)> done)
      : owner_(owner),
        executor_(std::move(ex)),
        resolver_(executor_),
        key_(std::move(key)),
        request_(std::move(request)),
        deadline_(std::chrono::steady_clock::now() + timeout),
        done_(std::move(done)) {
    request_.version(11);
    request_.keep_alive(true);
    request_.set(kForwardedHeader,
                 owner_->auth_.Sign(request_.method_string(), request_.target(),
                                    request_.body(), RelayAuth::NowUnix()));
    request_.prepare_payload();
  }

  void Start() {
    if (auto idle = owner_->TakeIdle(key_)) {
      conn_ = std::move(idle);
      conn_->Take();
      reused_ = true;
      return Send();
    }
    Connect();
  }

 private:
  void Connect() {
    reused_ = false;
    conn_ = std::make_shared<Connection>(executor_);
    const std::string& address = key_.second;
    auto colon = address.rfind(':');
    if (colon == std::string::npos) return Fail();
    std::string host = address.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
      host = host.substr(1, host.size() - 2);
    }
    resolver_.async_resolve(
        host, address.substr(colon + 1),
        beast::bind_front_handler(&Relay::OnResolve, shared_from_this()));
  }

  void OnResolve(beast::error_code ec, tcp::resolver::results_type results) {
    if (ec) return Fail();
    conn_->stream.expires_at(deadline_);
    conn_->stream.async_connect(
        results,
        beast::bind_front_handler(&Relay::OnConnect, shared_from_this()));
  }

  void OnConnect(beast::error_code ec, const tcp::endpoint&) {
    if (ec) return Fail();
    owner_->Opened();
    Send();
  }

  void Send() {
    conn_->stream.expires_at(deadline_);
    bhttp::async_write(
        conn_->stream, request_,
        beast::bind_front_handler(&Relay::OnWrite, shared_from_this()));
  }

  void OnWrite(beast::error_code ec, std::size_t) {
    if (ec) return Retry(ec, 0);
    parser_.emplace();
    bhttp::async_read(
        conn_->stream, conn_->buffer, *parser_,
        beast::bind_front_handler(&Relay::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, std::size_t bytes) {
    if (ec) return Retry(ec, bytes);
    ForwardResponse response = parser_->release();
    if (response.keep_alive()) {
      owner_->PutIdle(key_, std::move(conn_));
    } else {
      conn_->Close();
    }
    Finish(std::move(response));
  }

  // A reused connection the peer had closed fails before any byte of the
  // answer: the request is sent once more, on a new connection.
  void Retry(beast::error_code ec, std::size_t answer_bytes) {
    conn_->Close();
    if (reused_ && answer_bytes == 0 && ec != beast::error::timeout) {
      return Connect();
    }
    Fail();
  }

  void Fail() {
    if (conn_) conn_->Close();
    Finish(Errc::kIoError);
  }

  void Finish(Result<ForwardResponse> answer) {
    owner_->Finished(key_.second);
    auto done = std::move(done_);
    done(std::move(answer));
  }

  Forwarder* const owner_;
  asio::any_io_executor executor_;
  tcp::resolver resolver_;
  const PoolKey key_;
  ForwardRequest request_;
  // One deadline for the whole relay: connect, write and read, a retry on a
  // new connection included.
  const std::chrono::steady_clock::time_point deadline_;
  std::function<void(Result<ForwardResponse>)> done_;
  std::shared_ptr<Connection> conn_;
  bool reused_ = false;
  std::optional<bhttp::response_parser<bhttp::string_body>> parser_;
};

Forwarder::Forwarder(const RelayAuth& auth, Options options)
    : auth_(auth), options_(options) {}

Forwarder::~Forwarder() {
  MutexLock lock(mu_);
  for (auto& [key, list] : idle_) {
    for (auto& c : list) c->Close();
  }
}

void Forwarder::Forward(asio::any_io_executor executor,
                        const std::string& address, ForwardRequest request,
                        std::chrono::milliseconds timeout,
                        std::function<void(Result<ForwardResponse>)> done) {
  bool refused = false;
  {
    MutexLock lock(mu_);
    std::size_t& n = in_flight_[address];
    if (n >= options_.max_in_flight_per_target) {
      refused = true;
      ++counters_.refused;
      if (options_.metrics != nullptr) options_.metrics->RecordRelayRefused();
    } else {
      ++n;
      ++counters_.in_flight;
    }
  }
  if (refused) {
    // Answered on the executor, as every other outcome, never inside this
    // call.
    asio::post(executor, [done = std::move(done)]() mutable {
      done(Result<ForwardResponse>(Errc::kUnavailable));
    });
    return;
  }
  const void* context = &asio::query(executor, asio::execution::context);
  std::make_shared<Relay>(this, executor, PoolKey(context, address),
                          std::move(request), timeout, std::move(done))
      ->Start();
}

Forwarder::Counters Forwarder::counters() const {
  MutexLock lock(mu_);
  return counters_;
}

std::shared_ptr<Forwarder::Connection> Forwarder::TakeIdle(const PoolKey& key) {
  MutexLock lock(mu_);
  auto it = idle_.find(key);
  if (it == idle_.end() || it->second.empty()) return nullptr;
  std::shared_ptr<Connection> c = std::move(it->second.back());
  it->second.pop_back();
  --counters_.idle;
  ++counters_.connections_reused;
  return c;
}

void Forwarder::PutIdle(const PoolKey& key, std::shared_ptr<Connection> c) {
  {
    MutexLock lock(mu_);
    auto& list = idle_[key];
    if (list.size() < options_.max_idle_per_target) {
      list.push_back(c);
      ++counters_.idle;
      c->Watch(this, key);
      return;
    }
  }
  c->Close();
}

void Forwarder::DropIdle(const PoolKey& key, const Connection* c) {
  MutexLock lock(mu_);
  auto it = idle_.find(key);
  if (it == idle_.end()) return;
  auto& list = it->second;
  for (auto i = list.begin(); i != list.end(); ++i) {
    if (i->get() == c) {
      list.erase(i);
      --counters_.idle;
      return;
    }
  }
}

void Forwarder::Opened() {
  MutexLock lock(mu_);
  ++counters_.connections_opened;
  if (options_.metrics != nullptr) {
    options_.metrics->RecordRelayConnectionOpened();
  }
}

void Forwarder::Finished(const std::string& address) {
  MutexLock lock(mu_);
  auto it = in_flight_.find(address);
  if (it != in_flight_.end() && --it->second == 0) in_flight_.erase(it);
  --counters_.in_flight;
}

}  // namespace presence::http
