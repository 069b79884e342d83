#include "app/open_files.h"

#include <sys/resource.h>

#include <algorithm>
#include <fstream>

namespace presence::app {

std::optional<OpenFileLimit> RaiseOpenFileLimit() {
  struct rlimit rl {};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return std::nullopt;
  OpenFileLimit out;
  out.soft_before = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : rl.rlim_cur;
  out.hard = rl.rlim_max == RLIM_INFINITY ? UINT64_MAX : rl.rlim_max;
  out.soft = out.soft_before;
  rlim_t target = rl.rlim_max;
  if (target == RLIM_INFINITY) {
    // The kernel refuses more than nr_open descriptors per process.
    std::uint64_t nr_open = 0;
    std::ifstream in("/proc/sys/fs/nr_open");
    if (in >> nr_open && nr_open > 0) target = nr_open;
  }
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < target) {
    struct rlimit raised = rl;
    raised.rlim_cur = target;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) {
      out.soft = target == RLIM_INFINITY ? UINT64_MAX : target;
    } else {
      out.raise_failed = true;
    }
  }
  return out;
}

std::size_t ConnectionsAllowed(std::uint64_t soft, unsigned threads) {
  const std::uint64_t reserved =
      kReservedFiles + std::uint64_t{kReservedFilesPerThread} * threads;
  if (soft <= reserved) return 1;
  const std::uint64_t allowed = soft - reserved;
  return allowed > SIZE_MAX ? SIZE_MAX : static_cast<std::size_t>(allowed);
}

std::size_t DefaultMaxConnections(std::uint64_t soft, unsigned threads) {
  return std::min(ConnectionsAllowed(soft, threads),
                  kDefaultMaxConnectionsCeiling);
}

}  // namespace presence::app
