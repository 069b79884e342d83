// Result<T>: a value or a boost::system::error_code (usually a presence::Errc).
//
// g++ 12 has no std::expected in C++20, so expected failures travel as
// boost::system::result. Use `if (!r) return r.error();` to propagate.
#ifndef PRESENCE_UTIL_RESULT_H_
#define PRESENCE_UTIL_RESULT_H_

#include <boost/system/result.hpp>

#include "util/errc.h"

namespace presence {

template <class T>
using Result = boost::system::result<T>;

using Status = boost::system::result<void>;

}  // namespace presence

#endif  // PRESENCE_UTIL_RESULT_H_
