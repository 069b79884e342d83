#include "util/error.h"

#include <gtest/gtest.h>

#include <boost/system/system_error.hpp>
#include <sstream>
#include <string>

namespace presence {
namespace {

TEST(ErrorTest, ComparesEqualToItsCodeWhateverTheMessage) {
  Error bare(Errc::kNotFound);
  Error told(Errc::kStoreFailed, "WritePresence: disk I/O error");
  EXPECT_TRUE(bare == Errc::kNotFound);
  EXPECT_FALSE(bare == Errc::kStoreFailed);
  EXPECT_TRUE(told == Errc::kStoreFailed);
  EXPECT_TRUE(told == make_error_code(Errc::kStoreFailed));
  EXPECT_FALSE(told == Errc::kCorrupt);
  EXPECT_EQ(told.code(), make_error_code(Errc::kStoreFailed));
}

TEST(ErrorTest, MessageIsTheDetailOrElseTheCodesText) {
  Error told(Errc::kStoreFailed, "WritePresence: disk I/O error");
  EXPECT_EQ(told.detail(), "WritePresence: disk I/O error");
  EXPECT_EQ(told.message(), "WritePresence: disk I/O error");
  Error bare(Errc::kAlreadyExists);
  EXPECT_EQ(bare.detail(), "");
  EXPECT_EQ(bare.message(), make_error_code(Errc::kAlreadyExists).message());
  EXPECT_FALSE(bare.message().empty());
}

TEST(ErrorTest, StreamsCodeAndDetail) {
  std::ostringstream out;
  out << Error(Errc::kStoreFailed, "Load: locked");
  EXPECT_EQ(out.str(),
            make_error_code(Errc::kStoreFailed).message() + ": Load: locked");
}

TEST(ErrorTest, ResultCarriesTheMessageAndValueThrowsIt) {
  StoreResult<int> failed = Error(Errc::kStoreFailed, "InsertUser: readonly");
  ASSERT_FALSE(failed.has_value());
  EXPECT_EQ(failed.error(), Errc::kStoreFailed);
  EXPECT_EQ(failed.error().message(), "InsertUser: readonly");
  try {
    (void)failed.value();
    ADD_FAILURE() << "value() of an error did not throw";
  } catch (const boost::system::system_error& e) {
    EXPECT_EQ(e.code(), make_error_code(Errc::kStoreFailed));
    EXPECT_NE(std::string(e.what()).find("InsertUser: readonly"),
              std::string::npos);
  }
  StoreStatus ok;
  EXPECT_TRUE(ok.has_value());
  StoreResult<int> fine = 7;
  EXPECT_EQ(*fine, 7);
}

}  // namespace
}  // namespace presence
