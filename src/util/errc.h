// Error codes for expected failures, returned as values (see Result<T>).
//
// Every layer reports expected failures as a presence::Errc wrapped in a
// boost::system::error_code. The API layer maps each code to an HTTP status and
// a Zulip error body in exactly one place (src/api/api_error.cc).
//
// Thread safety: the category is a stateless singleton; safe from any thread.
#ifndef PRESENCE_UTIL_ERRC_H_
#define PRESENCE_UTIL_ERRC_H_

#include <boost/system/error_code.hpp>
#include <type_traits>

namespace presence {

enum class Errc {
  kOk = 0,
  kInvalidArgument = 1,  // a caller passed a value the operation refuses
  kNotFound,             // the named realm, user or queue does not exist
  kAlreadyExists,        // a unique name (subdomain, email) is taken
  kPermissionDenied,     // the caller may not do or see this
  kUnauthenticated,      // credentials missing or wrong
  kStoreFailed,          // the durable store failed; sticky until restart
  kCorrupt,              // stored data could not be understood
  kIoError,              // an operating-system call failed
  kUnavailable,          // temporarily refused (shutting down, overloaded)
};

const boost::system::error_category& ErrcCategory() noexcept;

inline boost::system::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), ErrcCategory()};
}

}  // namespace presence

namespace boost::system {
template <>
struct is_error_code_enum<presence::Errc> : std::true_type {};
}  // namespace boost::system

#endif  // PRESENCE_UTIL_ERRC_H_
