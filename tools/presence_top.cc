// presence-top: one organisation's presence, live, in a terminal.
//
//   presence-top --server http://127.0.0.1:9991
//                --email alice@example.com --api-key KEY   (one command)
//   (or PRESENCE_SERVER, PRESENCE_EMAIL, PRESENCE_API_KEY in the
//   environment; --api-key-file reads the key from a file)
//
// Built on the client SDK (src/client): it logs in as that user, reports
// the user's presence like any client (a key press in presence-top counts as
// input), and shows everyone sorted active, idle, offline, then by name,
// with "last active" times and what each user says (their user status,
// do-not-disturb marked with a ⊘ beside the dot). It redraws when the SDK
// merges new data (events arrive at once) and every second. 'q' quits; so do
// Ctrl-C and SIGTERM.
//
// Full-screen plain ANSI on the alternate screen, no curses. Everything runs
// on one thread: an Asio io_context drives the SDK, the keyboard (stdin as
// a stream_descriptor), the redraw timer and the signals.
//
// Exit status: 0 after 'q' or a signal, 1 when the server refuses the
// credentials, 2 for bad arguments.
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>

#include "client/asio_scheduler.h"
#include "client/buddy_list.h"
#include "client/http_transport.h"
#include "client/presence_client.h"
#include "client/status_text.h"
#include "presence_version.h"
#include "tools/presence_top_screen.h"

namespace presence::tools {
namespace {

namespace asio = boost::asio;
using client::ConnectionState;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

// The terminal in raw mode on the alternate screen while it lives.
class Terminal {
 public:
  Terminal() {
    tty_ = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_) == 0;
    if (tty_) {
      termios raw = saved_;
      // No line editing, no echo; keep ISIG so that Ctrl-C is a SIGINT.
      raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
      raw.c_cc[VMIN] = 1;
      raw.c_cc[VTIME] = 0;
      tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    }
    Write("\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J");
  }
  ~Terminal() {
    Write("\x1b[0m\x1b[?25h\x1b[?1049l");
    if (tty_) tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }

  static void Write(std::string_view s) {
    while (!s.empty()) {
      const ssize_t n = write(STDOUT_FILENO, s.data(), s.size());
      if (n <= 0) return;
      s.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  static std::pair<int, int> Size() {
    winsize ws{};
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 &&
        ws.ws_row > 0) {
      return {ws.ws_col, ws.ws_row};
    }
    return {80, 24};
  }

 private:
  bool tty_ = false;
  termios saved_{};
};

class PresenceTop : public client::PresenceClient::Observer {
 public:
  PresenceTop(asio::io_context& ioc, std::string server,
              client::ClientOptions options,
              std::unique_ptr<client::HttpTransport> transport)
      : ioc_(ioc),
        server_(std::move(server)),
        email_(options.email),
        scheduler_(ioc.get_executor()),
        transport_(std::move(transport)),
        stdin_(ioc, dup(STDIN_FILENO)),
        signals_(ioc, SIGINT, SIGTERM, SIGHUP),
        winch_(ioc, SIGWINCH),
        tick_(ioc),
        redraw_(ioc),
        color_(Env("NO_COLOR").empty()) {
    // Starting presence-top is input: the person is here.
    input_.RecordInput(scheduler_.Now());
    client_ = std::make_unique<client::PresenceClient>(
        std::move(options), transport_.get(), &scheduler_, &input_);
    client_->set_observer(this);
  }

  int Run() {
    client_->Start();
    ReadKeys();
    WaitSignals();
    WaitWinch();
    Tick();
    ioc_.run();
    return exit_code_;
  }

  // Observer.
  void OnPresenceChanged() override { ScheduleDraw(); }
  void OnStateChanged(ConnectionState state,
                      const std::string& detail) override {
    if (state == ConnectionState::kFailed) {
      failure_ = detail;
      Quit(1);
      return;
    }
    ScheduleDraw();
  }

  const std::string& failure() const { return failure_; }

 private:
  void ReadKeys() {
    stdin_.async_read_some(asio::buffer(keys_),
                           [this](boost::system::error_code ec, std::size_t n) {
                             if (ec || quitting_)
                               return;  // EOF: no keyboard, keep showing
                             for (std::size_t i = 0; i < n; ++i) {
                               if (keys_[i] == 'q' || keys_[i] == 'Q')
                                 return Quit(0);
                             }
                             input_.RecordInput(scheduler_.Now());
                             client_->NotifyInput();
                             ScheduleDraw();
                             ReadKeys();
                           });
  }

  void WaitSignals() {
    signals_.async_wait([this](boost::system::error_code ec, int) {
      if (!ec) Quit(0);
    });
  }

  void WaitWinch() {
    winch_.async_wait([this](boost::system::error_code ec, int) {
      if (ec || quitting_) return;
      Draw();
      WaitWinch();
    });
  }

  void Tick() {
    Draw();
    tick_.expires_after(std::chrono::seconds(1));
    tick_.async_wait([this](boost::system::error_code ec) {
      if (!ec && !quitting_) Tick();
    });
  }

  // Many changes in one burst of events draw once.
  void ScheduleDraw() {
    if (draw_pending_ || quitting_) return;
    draw_pending_ = true;
    redraw_.expires_after(std::chrono::milliseconds(20));
    redraw_.async_wait([this](boost::system::error_code ec) {
      draw_pending_ = false;
      if (!ec && !quitting_) Draw();
    });
  }

  void Draw() {
    if (quitting_) return;
    ScreenModel m;
    m.server = server_;
    m.email = email_;
    m.state = std::string(client::ConnectionStateName(client_->state()));
    if (client_->state() == ConnectionState::kReconnecting) {
      m.state += ": " + client_->state_detail();
    }
    const std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    char clock[16];
    std::strftime(clock, sizeof clock, "%H:%M:%S", &local);
    m.clock = clock;
    m.presence_disabled = client_->table().realm_presence_disabled();
    m.rows =
        client::BuddyList::Build(client_->table(), client_->ServerNow(),
                                 client::StatusText::LocalUtcOffsetSeconds());
    const auto [w, h] = Terminal::Size();
    Terminal::Write(PresenceTopScreen::Render(m, w, h, color_));
  }

  void Quit(int code) {
    if (quitting_) return;
    quitting_ = true;
    exit_code_ = code;
    // Stop() frees the server's queue with a last request; give it a
    // moment, then leave whatever the server says.
    client_->Stop();
    tick_.cancel();
    redraw_.cancel();
    signals_.cancel();
    winch_.cancel();
    boost::system::error_code ignored;
    stdin_.cancel(ignored);
    tick_.expires_after(std::chrono::milliseconds(500));
    tick_.async_wait([this](boost::system::error_code) { ioc_.stop(); });
  }

  asio::io_context& ioc_;
  const std::string server_;
  const std::string email_;
  client::AsioScheduler scheduler_;
  std::unique_ptr<client::HttpTransport> transport_;
  client::ManualInputSource input_;
  std::unique_ptr<client::PresenceClient> client_;
  asio::posix::stream_descriptor stdin_;
  asio::signal_set signals_;
  asio::signal_set winch_;
  asio::steady_timer tick_;
  asio::steady_timer redraw_;
  std::array<char, 64> keys_{};
  bool color_;
  bool draw_pending_ = false;
  bool quitting_ = false;
  int exit_code_ = 0;
  std::string failure_;
};

int Main(int argc, char** argv) {
  std::string server = Env("PRESENCE_SERVER");
  std::string email = Env("PRESENCE_EMAIL");
  std::string api_key = Env("PRESENCE_API_KEY");
  std::string api_key_file;
  CLI::App cli{
      "presence-top: one organisation's presence, live, in a terminal "
      "('q' quits)"};
  cli.footer(
      "Beside the dot, \xe2\x8a\x98 marks someone in do-not-disturb; the "
      "SAYS column shows each user's status (emoji, text, \"until ...\" "
      "for a scheduled end).");
  cli.set_version_flag("--version", VersionLine("presence-top"));
  cli.add_option("--server", server,
                 "server URL, http://HOST:PORT (env PRESENCE_SERVER)");
  cli.add_option("--email", email, "your login email (env PRESENCE_EMAIL)");
  cli.add_option("--api-key", api_key,
                 "your API key (env PRESENCE_API_KEY; visible in ps, prefer "
                 "the environment or --api-key-file)");
  cli.add_option("--api-key-file", api_key_file,
                 "file whose first line is your API key");
  try {
    cli.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return cli.exit(e) == 0 ? 0 : 2;
  }
  if (!api_key_file.empty()) {
    std::ifstream in(api_key_file);
    if (!in || !std::getline(in, api_key)) {
      std::fprintf(stderr, "presence-top: cannot read %s\n",
                   api_key_file.c_str());
      return 2;
    }
    while (!api_key.empty() &&
           std::isspace(static_cast<unsigned char>(api_key.back()))) {
      api_key.pop_back();
    }
  }
  if (server.empty() || email.empty() || api_key.empty()) {
    std::fprintf(stderr,
                 "presence-top: need --server, --email and --api-key (or "
                 "PRESENCE_SERVER, PRESENCE_EMAIL, PRESENCE_API_KEY)\n");
    return 2;
  }
  asio::io_context ioc;
  auto transport = client::HttpTransport::Create(ioc.get_executor(), server);
  if (!transport) {
    std::fprintf(
        stderr, "presence-top: bad server URL '%s' (want http://HOST[:PORT])\n",
        server.c_str());
    return 2;
  }
  client::ClientOptions options;
  options.email = email;
  options.api_key = api_key;
  // A year of history, as Zulip's web app asks for its buddy list: users
  // away for weeks still show when they were last here.
  options.history_limit_days = 365;
  int code;
  std::string failure;
  {
    Terminal terminal;
    PresenceTop top(ioc, server, std::move(options), std::move(*transport));
    code = top.Run();
    failure = top.failure();
  }
  if (!failure.empty()) {
    std::fprintf(stderr, "presence-top: %s\n", failure.c_str());
  }
  return code;
}

}  // namespace
}  // namespace presence::tools

int main(int argc, char** argv) { return presence::tools::Main(argc, argv); }
