#include "http/drained_socket.h"

#include <boost/asio/io_context.hpp>
#include <boost/version.hpp>

// The reactor this reaches into: Linux's epoll one, as Boost 1.81 has it.
#if defined(BOOST_ASIO_HAS_EPOLL) &&                \
    !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT) && \
    !defined(BOOST_ASIO_DISABLE_EPOLL) && BOOST_VERSION >= 108100
#define PRESENCE_DRAINED_SOCKET 1
#include <boost/asio/detail/epoll_reactor.hpp>
#include <boost/asio/detail/scheduler.hpp>
#else
#define PRESENCE_DRAINED_SOCKET 0
#endif

namespace presence::http {

#if PRESENCE_DRAINED_SOCKET
namespace {

namespace asio = boost::asio;
using State = asio::detail::epoll_reactor::descriptor_state;
using Socket = asio::ip::tcp::socket;

// Names of private members, taken where the language allows it: access is
// not checked in the arguments of an explicit instantiation.
template <typename Tag, typename Tag::type Member>
struct Expose {
  friend typename Tag::type MemberOf(Tag) { return Member; }
};

struct ImplTag {
  using type = asio::detail::io_object_impl<
      asio::detail::reactive_socket_service<asio::ip::tcp>,
      asio::any_io_executor>
      asio::basic_socket<asio::ip::tcp, asio::any_io_executor>::*;
  friend type MemberOf(ImplTag);
};
struct TryTag {
  using type = bool (State::*)[asio::detail::epoll_reactor::max_ops];
  friend type MemberOf(TryTag);
};
struct QueueTag {
  using type = asio::detail::op_queue<asio::detail::reactor_op> (
      State::*)[asio::detail::epoll_reactor::max_ops];
  friend type MemberOf(QueueTag);
};
struct MutexTag {
  using type = asio::detail::conditionally_enabled_mutex State::*;
  friend type MemberOf(MutexTag);
};

template struct Expose<ImplTag, &Socket::impl_>;
template struct Expose<TryTag, &State::try_speculative_>;
template struct Expose<QueueTag, &State::op_queue_>;
template struct Expose<MutexTag, &State::mutex_>;

constexpr int kRead = asio::detail::epoll_reactor::read_op;

State* StateOf(Socket& socket) {
  return (socket.*MemberOf(ImplTag{})).get_implementation().reactor_data_;
}

}  // namespace

bool ReadSpeculation::Supported(Socket& socket) {
  // A plain io_context executor (a strand's could share a context that
  // several threads run).
  const auto* io =
      socket.get_executor().target<asio::io_context::executor_type>();
  if (io == nullptr) return false;
  return asio::use_service<asio::detail::scheduler>(io->context())
             .concurrency_hint() == 1;
}

bool ReadSpeculation::NoReadQueued(Socket& socket) {
  State* state = StateOf(socket);
  if (state == nullptr) return false;
  asio::detail::conditionally_enabled_mutex::scoped_lock lock(
      state->*MemberOf(MutexTag{}));
  return (state->*MemberOf(QueueTag{}))[kRead].empty();
}

void ReadSpeculation::MarkDrained(Socket& socket) {
  State* state = StateOf(socket);
  if (state == nullptr) return;
  asio::detail::conditionally_enabled_mutex::scoped_lock lock(
      state->*MemberOf(MutexTag{}));
  (state->*MemberOf(TryTag{}))[kRead] = false;
}

bool ReadSpeculation::WouldTry(Socket& socket) {
  State* state = StateOf(socket);
  if (state == nullptr) return false;
  asio::detail::conditionally_enabled_mutex::scoped_lock lock(
      state->*MemberOf(MutexTag{}));
  return (state->*MemberOf(TryTag{}))[kRead];
}

#else

bool ReadSpeculation::Supported(boost::asio::ip::tcp::socket&) { return false; }
bool ReadSpeculation::NoReadQueued(boost::asio::ip::tcp::socket&) {
  return false;
}
void ReadSpeculation::MarkDrained(boost::asio::ip::tcp::socket&) {}
bool ReadSpeculation::WouldTry(boost::asio::ip::tcp::socket&) { return true; }

#endif

}  // namespace presence::http
