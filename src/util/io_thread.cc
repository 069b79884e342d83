#include "util/io_thread.h"

#include <cstdio>
#include <cstdlib>

namespace presence {
namespace {

thread_local bool tls_io_thread = false;

}  // namespace

void MarkIoThread(bool io) { tls_io_thread = io; }

bool OnIoThread() { return tls_io_thread; }

void AssertMayBlock(const char* what) {
#ifndef NDEBUG
  if (tls_io_thread) {
    std::fprintf(stderr,
                 "presenced: BUG: %s would block an I/O thread (run it off "
                 "the thread: api/offload.h, or asynchronously)\n",
                 what);
    std::abort();
  }
#else
  (void)what;
#endif
}

}  // namespace presence
