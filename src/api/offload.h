// Offloaded: a request whose handling may wait on the shared store (a
// directory write and its read barrier, a realm read, a node-registry
// read) is suspended like a parked poll: the work runs on a thread that may
// wait (ApiOptions::offload, app/store_workers.h in scale-out), and the
// request is resumed on its connection's own thread with the answer. The
// I/O thread serves its other connections meanwhile.
//
// Thread safety: `blocking` runs on a worker thread, so it may touch only
// what is safe from any thread (PresenceService, the hooks of ApiOptions);
// what it returns runs on the connection's thread.
#ifndef PRESENCE_API_OFFLOAD_H_
#define PRESENCE_API_OFFLOAD_H_

#include <functional>
#include <memory>
#include <utility>

#include "api/api_options.h"
#include "api/http_types.h"

namespace presence::api {

// The rest of a request, to run on its connection's thread.
using Resumed = std::function<Response()>;

// A deferred Response (Response::deferred) that runs `blocking` through
// options.offload, then resumes the request with what `blocking` returned.
// If the offload refuses the work (its queue is full), the request is
// answered 503 at once. Precondition: options.offload is set.
Response Offloaded(const ApiOptions& options,
                   std::function<Resumed()> blocking);

// The same for work that computes the whole answer on the worker.
Response OffloadedAnswer(const ApiOptions& options,
                         std::function<Response()> blocking);

}  // namespace presence::api

#endif  // PRESENCE_API_OFFLOAD_H_
