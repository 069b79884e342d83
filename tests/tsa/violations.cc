// Code the clang-tsa build must reject, one mistake per VIOLATION number,
// and (VIOLATION 0) the same code used correctly, which it must accept.
// tests/tsa/check.sh compiles each with clang-14 -Werror=thread-safety: if
// the macros in util/thread_annotations.h or the wrappers in util/mutex.h
// stopped carrying their attributes, the build would stay green while
// checking nothing; this test then fails.
#include "util/mutex.h"
#include "util/thread_annotations.h"

namespace presence {

class Account {
 public:
  void Deposit(int n) EXCLUDES(mu_) {
#if VIOLATION == 1  // writes guarded data without the lock
    balance_ += n;
#else
    MutexLock lock(mu_);
    AddLocked(n);
#endif
  }

  int Balance() const EXCLUDES(mu_) {
#if VIOLATION == 2  // calls a REQUIRES function without the lock
    return BalanceLocked();
#else
    MutexLock lock(mu_);
    return BalanceLocked();
#endif
  }

  void Twice() EXCLUDES(mu_) {
    MutexLock lock(mu_);
#if VIOLATION == 3  // takes a lock it already holds
    MutexLock again(mu_);
#endif
    AddLocked(1);
  }

  int Audit() const EXCLUDES(audit_mu_) {
#if VIOLATION == 4  // writes shared-guarded data under a reader lock
    ReaderLock lock(audit_mu_);
    ++audits_;
    return audits_;
#else
    WriterLock lock(audit_mu_);
    ++audits_;
    return audits_;
#endif
  }

  void WaitForFunds() EXCLUDES(mu_) {
    MutexLock lock(mu_);
    funded_.Wait(mu_, [this]() REQUIRES(mu_) { return balance_ > 0; });
  }

  void WaitUnlocked() {
#if VIOLATION == 5  // waits on a condition variable without its mutex
    funded_.Wait(mu_);
#endif
  }

 private:
  void AddLocked(int n) REQUIRES(mu_) { balance_ += n; }
  int BalanceLocked() const REQUIRES(mu_) { return balance_; }

  mutable Mutex mu_;  // guards balance_
  CondVar funded_;
  int balance_ GUARDED_BY(mu_) = 0;
  mutable SharedMutex audit_mu_;  // guards audits_
  mutable int audits_ GUARDED_BY(audit_mu_) = 0;
};

int Use() {
  Account a;
  a.Deposit(1);
  a.Twice();
  a.WaitForFunds();
  a.WaitUnlocked();
  return a.Balance() + a.Audit();
}

}  // namespace presence
