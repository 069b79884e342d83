// FaultInjector: the port through which tests make the store fail on demand.
//
// presenced started with --test-faults wraps its store in a decorator that
// implements this interface; POST /admin/v1/faults drives it. The API layer
// sees only this interface, never the decorator.
//
// Thread safety: implementations must accept calls from any thread while
// other threads use the store.
#ifndef PRESENCE_CORE_FAULT_INJECTOR_H_
#define PRESENCE_CORE_FAULT_INJECTOR_H_

namespace presence {

class FaultInjector {
 public:
  virtual ~FaultInjector() = default;

  // While `fail` is true, every store write fails with Errc::kStoreFailed
  // and nothing of it is persisted.
  virtual void SetFailWrites(bool fail) = 0;
};

}  // namespace presence

#endif  // PRESENCE_CORE_FAULT_INJECTOR_H_
