// FakeTransport: a Transport that records requests and lets the test answer
// them by hand, in any order, synchronously.
#ifndef PRESENCE_TESTS_CLIENT_FAKE_TRANSPORT_H_
#define PRESENCE_TESTS_CLIENT_FAKE_TRANSPORT_H_

#include <boost/asio/error.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "client/transport.h"

namespace presence::client::testing {

class FakeTransport final : public Transport {
 public:
  struct Call {
    HttpRequest request;
    Callback done;

    // The path without the query ("/api/v1/events").
    std::string Path() const {
      return request.target.substr(0, request.target.find('?'));
    }
    // Form fields of the body (POST) or the query (GET, DELETE), decoded.
    std::map<std::string, std::string> Form() const {
      std::string text = request.body;
      if (auto q = request.target.find('?'); q != std::string::npos) {
        text = request.target.substr(q + 1);
      }
      std::map<std::string, std::string> out;
      const std::string ref = "/?" + text;  // the view points into it
      auto url = boost::urls::parse_relative_ref(ref);
      if (!url) return out;
      for (auto p : url->params()) out[p.key] = p.value;
      return out;
    }
    void Respond(unsigned status, std::string body, HeaderList headers = {}) {
      HttpResponse r;
      r.status = status;
      r.body = std::move(body);
      r.headers = std::move(headers);
      auto d = std::move(done);
      d(std::move(r));
    }
    void Fail(
        boost::system::error_code ec = boost::asio::error::connection_refused) {
      auto d = std::move(done);
      d(Result<HttpResponse>(boost::system::in_place_error, ec));
    }
  };

  void Send(HttpRequest request, Callback done) override {
    calls_.push_back({std::move(request), std::move(done)});
    ++sent_;
  }

  void CancelAll() override {
    ++cancels_;
    auto calls = std::move(calls_);
    calls_.clear();
    for (auto& c : calls) c.Fail(boost::asio::error::operation_aborted);
  }

  std::size_t pending() const { return calls_.size(); }
  std::size_t sent() const { return sent_; }
  int cancels() const { return cancels_; }
  const std::deque<Call>& calls() const { return calls_; }

  // Whether a request to `path` (e.g. "/api/v1/register") waits.
  bool Has(std::string_view path) const {
    for (const auto& c : calls_) {
      if (c.Path() == path) return true;
    }
    return false;
  }

  // Removes and returns the oldest waiting request to `path`; nullopt if
  // there is none.
  std::optional<Call> Take(std::string_view path) {
    for (auto it = calls_.begin(); it != calls_.end(); ++it) {
      if (it->Path() == path) {
        Call c = std::move(*it);
        calls_.erase(it);
        return c;
      }
    }
    return std::nullopt;
  }

 private:
  std::deque<Call> calls_;
  std::size_t sent_ = 0;
  int cancels_ = 0;
};

}  // namespace presence::client::testing

#endif  // PRESENCE_TESTS_CLIENT_FAKE_TRANSPORT_H_
