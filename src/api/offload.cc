#include "api/offload.h"

#include "api/api_error.h"
#include "api/zulip_api.h"

namespace presence::api {

Response Offloaded(const ApiOptions& options,
                   std::function<Resumed()> blocking) {
  Response out;
  out.deferred = [offload = options.offload,
                  blocking = std::move(blocking)](Continue resume) {
    auto task = [blocking, resume] {
      Resumed next = blocking();
      resume(std::move(next));
    };
    if (!offload(std::move(task))) {
      resume([] {
        return ErrorResponse(FromErrc(
            Errc::kUnavailable, "Presence store busy: too many requests wait"));
      });
    }
  };
  return out;
}

Response OffloadedAnswer(const ApiOptions& options,
                         std::function<Response()> blocking) {
  return Offloaded(options, [blocking = std::move(blocking)]() -> Resumed {
    // Shared, not copied: the answer may be large (a user list).
    auto answer = std::make_shared<Response>(blocking());
    return [answer] { return std::move(*answer); };
  });
}

}  // namespace presence::api
