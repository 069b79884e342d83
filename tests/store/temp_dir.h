// TempDir: a fresh directory for one test, removed with everything in it
// when the object goes away.
#ifndef PRESENCE_TESTS_STORE_TEMP_DIR_H_
#define PRESENCE_TESTS_STORE_TEMP_DIR_H_

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace presence::store {

class TempDir {
 public:
  TempDir() {
    std::string templ =
        (std::filesystem::path(::testing::TempDir()) / "presence-store-XXXXXX")
            .string();
    if (::mkdtemp(templ.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp failed for " << templ;
    }
    path_ = templ;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace presence::store

#endif  // PRESENCE_TESTS_STORE_TEMP_DIR_H_
