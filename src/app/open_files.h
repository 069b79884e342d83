// The open-file limit (RLIMIT_NOFILE) and the connections it allows.
//
// Every connection is a file descriptor. At start presenced raises its soft
// limit to the hard one (the most an unprivileged process may), so that a
// default soft limit (often 1024) does not cap it below --max-connections;
// then it lowers --max-connections, with a log line, to what the limit
// leaves after the server's own files (kReservedFiles plus
// kReservedFilesPerThread per I/O thread: listeners, event loops, the
// store, Redis and relay connections).
//
// By default (--max-connections 0) the cap is what the limit allows, so that
// the operator's one knob is the open-file limit (`ulimit -n`, systemd's
// LimitNOFILE=), at most kDefaultMaxConnectionsCeiling: a container whose
// hard limit is a million would otherwise let a flood of connections hold
// gigabytes (about 6 KB of server memory each, plus the kernel's buffers).
//
// Thread safety: call once at start, before any thread.
#ifndef PRESENCE_APP_OPEN_FILES_H_
#define PRESENCE_APP_OPEN_FILES_H_

#include <cstddef>
#include <cstdint>
#include <optional>

namespace presence::app {

inline constexpr std::size_t kReservedFiles = 64;
inline constexpr std::size_t kReservedFilesPerThread = 8;
// The default cap's ceiling (what the shipped systemd unit's LimitNOFILE
// allows), and the default when the limit cannot be read.
inline constexpr std::size_t kDefaultMaxConnectionsCeiling = 65'536;
inline constexpr std::size_t kDefaultMaxConnectionsUnknownLimit = 10'000;

struct OpenFileLimit {
  std::uint64_t soft_before = 0;
  std::uint64_t soft = 0;  // after raising; UINT64_MAX: unlimited
  std::uint64_t hard = 0;
  bool raise_failed = false;
};

// Raises the soft RLIMIT_NOFILE towards the hard limit (capped by
// /proc/sys/fs/nr_open where the hard limit is unlimited). nullopt if the
// limit cannot be read.
std::optional<OpenFileLimit> RaiseOpenFileLimit();

// The most connections `soft` open files allow with `threads` I/O threads
// (at least 1).
std::size_t ConnectionsAllowed(std::uint64_t soft, unsigned threads);

// The default --max-connections: ConnectionsAllowed(soft, threads), at most
// kDefaultMaxConnectionsCeiling.
std::size_t DefaultMaxConnections(std::uint64_t soft, unsigned threads);

}  // namespace presence::app

#endif  // PRESENCE_APP_OPEN_FILES_H_
