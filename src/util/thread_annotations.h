// Macros for Clang's thread-safety analysis (-Wthread-safety).
//
// They let the compiler check the locking rules a header states in prose:
// a member marked GUARDED_BY(mu_) may only be touched while mu_ is held, a
// function marked REQUIRES(mu_) may only be called with mu_ held, and so on.
// Only clang understands the attributes; under any other compiler (g++ for
// the normal builds) every macro expands to nothing, so they cost nothing.
//
// The locks themselves must say what they are (CAPABILITY, ACQUIRE,
// RELEASE): libstdc++'s std::mutex does not, hence util/mutex.h.
//
// The `clang-tsa` CMake preset builds the whole tree with
// -Werror=thread-safety; scripts/test.sh runs it.
#ifndef PRESENCE_UTIL_THREAD_ANNOTATIONS_H_
#define PRESENCE_UTIL_THREAD_ANNOTATIONS_H_

#if defined(__clang__)
#define PRESENCE_TSA_(x) __attribute__((x))
#else
#define PRESENCE_TSA_(x)
#endif

// On a type: objects of it are locks ("capabilities"), named `x` in
// diagnostics.
#define CAPABILITY(x) PRESENCE_TSA_(capability(x))

// On an RAII type: it holds the capability it acquired in its constructor
// until its destructor runs.
#define SCOPED_CAPABILITY PRESENCE_TSA_(scoped_lockable)

// On a data member: reading or writing it requires holding `x`.
#define GUARDED_BY(x) PRESENCE_TSA_(guarded_by(x))

// On a pointer member: the pointed-to data requires holding `x` (the pointer
// itself does not).
#define PT_GUARDED_BY(x) PRESENCE_TSA_(pt_guarded_by(x))

// On a function: callers must hold the capabilities exclusively / at least
// shared.
#define REQUIRES(...) PRESENCE_TSA_(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) \
  PRESENCE_TSA_(requires_shared_capability(__VA_ARGS__))

// On a function: callers must NOT hold them (the function takes them itself;
// catches self-deadlock on non-recursive locks).
#define EXCLUDES(...) PRESENCE_TSA_(locks_excluded(__VA_ARGS__))

// On a function: it takes / gives back the capability (none named: `this`).
#define ACQUIRE(...) PRESENCE_TSA_(acquire_capability(__VA_ARGS__))
#define RELEASE(...) PRESENCE_TSA_(release_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) \
  PRESENCE_TSA_(acquire_shared_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) \
  PRESENCE_TSA_(release_shared_capability(__VA_ARGS__))

// On a function returning bool: it takes the capability only when it
// returns `succeeded`.
#define TRY_ACQUIRE(...) PRESENCE_TSA_(try_acquire_capability(__VA_ARGS__))
#define TRY_ACQUIRE_SHARED(...) \
  PRESENCE_TSA_(try_acquire_shared_capability(__VA_ARGS__))

// On a function: it returns a reference to the capability `x` (a getter).
#define RETURN_CAPABILITY(x) PRESENCE_TSA_(lock_returned(x))

// On a function: it checks at run time that the capability is held, and the
// analysis may assume so afterwards.
#define ASSERT_CAPABILITY(x) PRESENCE_TSA_(assert_capability(x))
#define ASSERT_SHARED_CAPABILITY(x) PRESENCE_TSA_(assert_shared_capability(x))

// On a function: the analysis skips its body. Each use says why in a
// comment next to it.
#define NO_THREAD_SAFETY_ANALYSIS PRESENCE_TSA_(no_thread_safety_analysis)

#endif  // PRESENCE_UTIL_THREAD_ANNOTATIONS_H_
