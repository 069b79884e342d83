// RedisError: an error of the Redis store's own code, carrying its message.
//
// Inside src/store/redis_* a failure travels as a value that says both what
// callers may branch on (an Errc) and why, in words for the operator
// ("redis 127.0.0.1:7001: Connection refused"), as leveldb's Status does.
// Only RedisStore's public methods turn it into the plain Result of the
// Store interfaces (recording the message for LastError()).
//
// Thread safety: values; no shared state.
#ifndef PRESENCE_STORE_REDIS_ERROR_H_
#define PRESENCE_STORE_REDIS_ERROR_H_

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>
#include <boost/system/system_error.hpp>
#include <boost/throw_exception.hpp>
#include <string>
#include <utility>

#include "util/errc.h"

namespace presence::store {

struct RedisError {
  RedisError() = default;  // no error (what result::error() of a value is)
  // Implicit from an Errc, without a message: for outcomes the caller
  // expects and handles (kNotFound, kAlreadyExists), which need no words.
  RedisError(Errc c) : code(c) {}  // NOLINT(google-explicit-constructor)
  RedisError(Errc c, std::string why) : code(c), message(std::move(why)) {}

  Errc code = Errc::kOk;
  std::string message;  // "" for an expected outcome
};

// Used by boost::system::result::value() on an error (found by ADL).
[[noreturn]] inline void throw_exception_from_error(
    const RedisError& e, const boost::source_location& loc) {
  boost::throw_exception(boost::system::system_error(e.code, e.message), loc);
}

template <class T>
using RedisResult = boost::system::result<T, RedisError>;
using RedisStatus = boost::system::result<void, RedisError>;

}  // namespace presence::store

#endif  // PRESENCE_STORE_REDIS_ERROR_H_
