// Error: an error code that carries its own message.
//
// Expected failures that an operator may need to read about (the store
// failed, and why) travel as an Error: the code callers branch on (usually a
// presence::Errc) and the reason in words, made where the failure happened
// ("WritePresence: database or disk is full (sqlite code 13)"), as leveldb's
// Status::IOError(msg) does. Nothing is kept beside the object that failed,
// so two threads failing at once each get their own reason.
//
// The success path costs what boost::system::result costs: no string is
// built unless a call fails with a message.
//
//   StoreResult<RealmId> id = store.InsertRealm(record);
//   if (!id && id.error() == Errc::kAlreadyExists) ...
//   if (!id) log(id.error().message());
//
// Thread safety: values; no shared state.
#ifndef PRESENCE_UTIL_ERROR_H_
#define PRESENCE_UTIL_ERROR_H_

#include <boost/assert/source_location.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <iosfwd>
#include <string>
#include <utility>

#include "util/errc.h"

namespace presence {

class Error {
 public:
  // No error (what result::error() of a value returns).
  Error() = default;
  // Implicit from a code alone, without words: for outcomes the caller
  // expects and handles (kNotFound, kAlreadyExists).
  Error(Errc code)  // NOLINT(google-explicit-constructor)
      : code_(code) {}
  Error(const boost::system::error_code& code)  // NOLINT
      : code_(code) {}
  Error(Errc code, std::string detail)
      : code_(code), detail_(std::move(detail)) {}
  Error(const boost::system::error_code& code, std::string detail)
      : code_(code), detail_(std::move(detail)) {}

  // What callers branch on.
  const boost::system::error_code& code() const noexcept { return code_; }
  // The reason given where the failure happened; "" if none was.
  const std::string& detail() const noexcept { return detail_; }
  // The reason in words: detail() if there is one, else the code's own text
  // ("store failed").
  std::string message() const {
    return detail_.empty() ? code_.message() : detail_;
  }

  // An Error compares equal to a code by its code alone.
  friend bool operator==(const Error& e, Errc code) noexcept {
    return e.code_ == code;
  }
  friend bool operator==(const Error& e,
                         const boost::system::error_code& code) noexcept {
    return e.code_ == code;
  }

 private:
  boost::system::error_code code_;
  std::string detail_;
};

// "store failed: WritePresence: disk full" (for logs and test failures).
std::ostream& operator<<(std::ostream& out, const Error& e);

// Used by boost::system::result::value() on an error (found by ADL): throws
// boost::system::system_error with the code and the message.
[[noreturn]] void throw_exception_from_error(const Error& e,
                                             const boost::source_location& loc);

// What every Store / SharedStore method returns.
template <class T>
using StoreResult = boost::system::result<T, Error>;
using StoreStatus = boost::system::result<void, Error>;

}  // namespace presence

#endif  // PRESENCE_UTIL_ERROR_H_
