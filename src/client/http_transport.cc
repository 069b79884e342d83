#include "client/http_transport.h"

#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/scheme.hpp>
#include <boost/url/url_view.hpp>
#include <charconv>
#include <chrono>
#include <optional>

namespace presence::client {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// Errors on a kept-alive connection that mean "the server had closed it":
// worth one more try on a fresh connection.
bool IsStaleConnection(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == asio::error::not_connected ||
         ec == asio::error::connection_aborted;
}

beast::error_code Aborted() { return asio::error::operation_aborted; }

}  // namespace

// One TCP connection running one request at a time:
// [resolve -> connect ->] write -> read -> Finish.
class HttpTransport::Connection
    : public std::enable_shared_from_this<Connection> {
 public:
  Connection(HttpTransport* owner, asio::any_io_executor executor)
      : owner_(owner), stream_(executor), resolver_(executor) {}

  void Start(HttpRequest request, Callback done) {
    request_ = std::move(request);
    done_ = std::move(done);
    closed_ = false;
    retried_ = false;
    Begin();
  }

  // Aborts what is in flight (its callback runs with operation_aborted).
  void Close() {
    closed_ = true;
    resolver_.cancel();
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.close();
    connected_ = false;
  }

  // The transport is gone: finish silently.
  void Detach() {
    owner_ = nullptr;
    Close();
  }

 private:
  void Begin() {
    const ServerUrl& server = owner_->server_;
    req_ = {};
    req_.method_string(request_.method);
    req_.target(server.base_path + request_.target);
    req_.version(11);
    req_.set(http::field::host, server.host_header);
    req_.set(http::field::user_agent, owner_->options_.user_agent);
    for (const auto& [name, value] : request_.headers) req_.set(name, value);
    req_.body() = request_.body;
    req_.keep_alive(true);
    if (!request_.body.empty() || request_.method == "POST" ||
        request_.method == "PATCH" || request_.method == "PUT") {
      req_.prepare_payload();
    }
    stream_.expires_after(std::chrono::microseconds(request_.timeout));
    if (connected_) {
      reused_ = true;
      DoWrite();
      return;
    }
    reused_ = false;
    resolver_.async_resolve(
        server.host, server.port,
        [self = shared_from_this()](const beast::error_code& ec,
                                    tcp::resolver::results_type results) {
          self->OnResolve(ec, std::move(results));
        });
  }

  void OnResolve(const beast::error_code& ec,
                 tcp::resolver::results_type results) {
    if (closed_) return Finish(Aborted());
    if (ec) return Finish(ec);
    if (owner_ != nullptr) ++owner_->connects_;
    stream_.async_connect(
        results, [self = shared_from_this()](const beast::error_code& ec,
                                             const tcp::endpoint&) {
          self->OnConnect(ec);
        });
  }

  void OnConnect(const beast::error_code& ec) {
    if (closed_) return Finish(Aborted());
    if (ec) return Finish(ec);
    connected_ = true;
    beast::error_code ignored;
    stream_.socket().set_option(tcp::no_delay(true), ignored);
    DoWrite();
  }

  void DoWrite() {
    http::async_write(
        stream_, req_,
        [self = shared_from_this()](const beast::error_code& ec, std::size_t) {
          self->OnWrite(ec);
        });
  }

  void OnWrite(const beast::error_code& ec) {
    if (closed_) return Finish(Aborted());
    if (ec) return RetryOrFinish(ec);
    parser_.emplace();
    parser_->body_limit(owner_ != nullptr ? owner_->options_.body_limit
                                          : std::uint64_t{64} << 20);
    buffer_.clear();
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](const beast::error_code& ec, std::size_t) {
          self->OnRead(ec);
        });
  }

  void OnRead(const beast::error_code& ec) {
    if (closed_) return Finish(Aborted());
    if (ec) {
      if (!parser_->got_some()) return RetryOrFinish(ec);
      return Finish(ec);
    }
    auto& msg = parser_->get();
    HttpResponse response;
    response.status = msg.result_int();
    for (const auto& field : msg) {
      response.headers.emplace_back(std::string(field.name_string()),
                                    std::string(field.value()));
    }
    response.body = std::move(msg.body());
    keep_alive_ = msg.keep_alive();
    Finish(std::move(response));
  }

  void RetryOrFinish(const beast::error_code& ec) {
    if (reused_ && !retried_ && IsStaleConnection(ec) && owner_ != nullptr) {
      retried_ = true;
      beast::error_code ignored;
      stream_.socket().close(ignored);
      connected_ = false;
      Begin();
      return;
    }
    Finish(ec);
  }

  void Finish(Result<HttpResponse> result) {
    const bool reusable = result.has_value() && keep_alive_ && !closed_;
    if (!reusable) {
      beast::error_code ignored;
      stream_.socket().close(ignored);
      connected_ = false;
    }
    keep_alive_ = false;
    Callback done = std::move(done_);
    done_ = nullptr;
    HttpTransport* owner = owner_;
    if (owner == nullptr) return;  // the transport is gone: call nothing
    auto self = shared_from_this();
    owner->Release(self, reusable);
    if (done) done(std::move(result));
  }

  HttpTransport* owner_;
  beast::tcp_stream stream_;
  tcp::resolver resolver_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> req_;
  std::optional<http::response_parser<http::string_body>> parser_;
  HttpRequest request_;
  Callback done_;
  bool connected_ = false;
  bool reused_ = false;
  bool retried_ = false;
  bool closed_ = false;
  bool keep_alive_ = false;
};

Result<ServerUrl> HttpTransport::ParseUrl(std::string_view text) {
  const auto bad = make_error_code(Errc::kInvalidArgument);
  auto parsed = boost::urls::parse_uri(text);
  if (!parsed) return bad;
  const boost::urls::url_view& url = *parsed;
  if (url.scheme_id() != boost::urls::scheme::http) return bad;
  if (!url.has_authority() || url.encoded_host().empty()) return bad;
  if (url.has_userinfo() || url.has_query() || url.has_fragment()) return bad;
  ServerUrl out;
  out.host = url.host_address();
  out.host_header = std::string(url.encoded_host());
  if (url.has_port() && !url.port().empty()) {
    const std::string_view port = url.port();
    unsigned value = 0;
    auto [end, err] =
        std::from_chars(port.data(), port.data() + port.size(), value);
    if (err != std::errc() || end != port.data() + port.size() || value == 0 ||
        value > 65535) {
      return bad;
    }
    out.port = std::to_string(value);
    out.host_header += ":" + out.port;
  } else {
    out.port = "80";
  }
  out.base_path = std::string(url.encoded_path());
  if (!out.base_path.empty() && out.base_path.front() != '/') return bad;
  while (!out.base_path.empty() && out.base_path.back() == '/') {
    out.base_path.pop_back();
  }
  return out;
}

Result<std::unique_ptr<HttpTransport>> HttpTransport::Create(
    asio::any_io_executor executor, std::string_view server_url,
    Options options) {
  auto server = ParseUrl(server_url);
  if (!server) return server.error();
  if (options.max_connections == 0) options.max_connections = 1;
  return std::unique_ptr<HttpTransport>(
      new HttpTransport(std::move(executor), std::move(*server), options));
}

HttpTransport::HttpTransport(asio::any_io_executor executor, ServerUrl server,
                             Options options)
    : executor_(std::move(executor)),
      server_(std::move(server)),
      options_(std::move(options)) {}

HttpTransport::~HttpTransport() {
  *alive_ = false;
  for (auto& c : idle_) c->Detach();
  for (auto& c : busy_) c->Detach();
}

void HttpTransport::Send(HttpRequest request, Callback done) {
  Waiting w{std::move(request), std::move(done)};
  if (!idle_.empty()) {
    auto conn = std::move(idle_.back());
    idle_.pop_back();
    StartOn(conn, std::move(w));
    return;
  }
  if (busy_.size() < options_.max_connections) {
    StartOn(std::make_shared<Connection>(this, executor_), std::move(w));
    return;
  }
  waiting_.push_back(std::move(w));
}

void HttpTransport::StartOn(const std::shared_ptr<Connection>& conn,
                            Waiting w) {
  busy_.insert(conn);
  // Start posts nothing itself, but every completion comes from an Asio
  // handler, so `done` never runs inside Send.
  conn->Start(std::move(w.request), std::move(w.done));
}

void HttpTransport::Release(const std::shared_ptr<Connection>& conn,
                            bool reusable) {
  busy_.erase(conn);
  if (!waiting_.empty()) {
    Waiting w = std::move(waiting_.front());
    waiting_.pop_front();
    StartOn(reusable ? conn : std::make_shared<Connection>(this, executor_),
            std::move(w));
    return;
  }
  if (reusable) idle_.push_back(conn);
}

void HttpTransport::CancelAll() {
  std::deque<Waiting> waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& w : waiting) {
    asio::post(executor_,
               [alive = std::weak_ptr<bool>(alive_), done = std::move(w.done)] {
                 auto a = alive.lock();
                 if (!a || !*a) return;
                 done(make_error_code(asio::error::operation_aborted));
               });
  }
  // Copy: Close() does not call back synchronously, but keep it simple.
  std::vector<std::shared_ptr<Connection>> busy(busy_.begin(), busy_.end());
  for (auto& c : busy) c->Close();
}

}  // namespace presence::client
