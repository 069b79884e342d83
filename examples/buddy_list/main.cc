// A buddy list on the presenced SDK: signs in, keeps presence live and
// prints everyone as active / idle / offline whenever it changes.
//   buddy_list URL EMAIL API_KEY_FILE [--once]
// --once prints the first list with anyone in it and exits (0): a smoke test.
#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <fstream>
#include <string>

#include "client/asio_scheduler.h"
#include "client/buddy_list.h"
#include "client/http_transport.h"
#include "client/presence_client.h"

namespace pc = presence::client;

class Printer final : public pc::PresenceClient::Observer {
 public:
  Printer(pc::PresenceClient& client, boost::asio::io_context& ioc, bool once)
      : client_(client), ioc_(ioc), once_(once) {}
  void OnPresenceChanged() override {
    if (client_.state() != pc::ConnectionState::kConnected) return;
    const auto rows =
        pc::BuddyList::Build(client_.table(), client_.ServerNow(), 0);
    if (rows.empty()) return;
    std::printf("--\n");
    for (const pc::BuddyRow& row : rows) {
      const std::string status(pc::StatusName(row.status));
      std::printf("%-8s %-24s %s\n", status.c_str(), row.name.c_str(),
                  row.last_active.c_str());
    }
    std::fflush(stdout);
    if (once_) ioc_.stop();
  }
  void OnStateChanged(pc::ConnectionState state,
                      const std::string& detail) override {
    const std::string name(pc::ConnectionStateName(state));
    std::fprintf(stderr, "state: %s %s\n", name.c_str(), detail.c_str());
    if (state == pc::ConnectionState::kFailed) ioc_.stop();
  }

 private:
  pc::PresenceClient& client_;
  boost::asio::io_context& ioc_;
  bool once_;
};

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s URL EMAIL API_KEY_FILE [--once]\n",
                 argv[0]);
    return 2;
  }
  pc::ClientOptions options;
  options.email = argv[2];
  std::ifstream key_file(argv[3]);
  if (!std::getline(key_file, options.api_key)) return 2;
  boost::asio::io_context ioc;
  auto transport = pc::HttpTransport::Create(ioc.get_executor(), argv[1]);
  if (!transport) return 2;
  pc::AsioScheduler scheduler(ioc.get_executor());
  pc::ManualInputSource input;  // a real app records key presses here
  pc::PresenceClient client(options, transport->get(), &scheduler, &input);
  Printer printer(client, ioc, argc > 4 && std::string(argv[4]) == "--once");
  client.set_observer(&printer);
  client.Start();
  ioc.run();
  return client.state() == pc::ConnectionState::kFailed ? 1 : 0;
}
