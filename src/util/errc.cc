#include "util/errc.h"

#include <string>

namespace presence {
namespace {

class Category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "presence"; }
  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::kOk:
        return "ok";
      case Errc::kInvalidArgument:
        return "invalid argument";
      case Errc::kNotFound:
        return "not found";
      case Errc::kAlreadyExists:
        return "already exists";
      case Errc::kPermissionDenied:
        return "permission denied";
      case Errc::kUnauthenticated:
        return "unauthenticated";
      case Errc::kStoreFailed:
        return "store failed";
      case Errc::kCorrupt:
        return "corrupt data";
      case Errc::kIoError:
        return "i/o error";
      case Errc::kUnavailable:
        return "unavailable";
    }
    return "unknown presence error";
  }
};

}  // namespace

const boost::system::error_category& ErrcCategory() noexcept {
  static const Category category;
  return category;
}

}  // namespace presence
