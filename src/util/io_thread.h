// Which threads must never wait on another service: the I/O threads, each
// of which serves many connections (CONVENTIONS: "No I/O thread ever
// blocks on the network or the disk of another service"). The composition
// root marks them; a blocking client (store/redis_client.h) checks, so that
// a blocking call that reaches an I/O thread is found by the tests instead
// of stalling every connection of that thread in production.
//
// Thread safety: each thread's mark is its own (thread_local).
#ifndef PRESENCE_UTIL_IO_THREAD_H_
#define PRESENCE_UTIL_IO_THREAD_H_

namespace presence {

// Marks (or unmarks) the calling thread as an I/O thread.
void MarkIoThread(bool io);
// Whether the calling thread is marked.
bool OnIoThread();
// Debug builds: aborts, naming `what`, if the calling thread is an I/O
// thread. Release builds: nothing.
void AssertMayBlock(const char* what);

}  // namespace presence

#endif  // PRESENCE_UTIL_IO_THREAD_H_
