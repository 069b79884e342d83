#include "util/error.h"

#include <boost/system/system_error.hpp>
#include <boost/throw_exception.hpp>
#include <ostream>

namespace presence {

std::ostream& operator<<(std::ostream& out, const Error& e) {
  out << e.code().message();
  if (!e.detail().empty()) out << ": " << e.detail();
  return out;
}

void throw_exception_from_error(const Error& e,
                                const boost::source_location& loc) {
  boost::throw_exception(boost::system::system_error(e.code(), e.detail()),
                         loc);
}

}  // namespace presence
