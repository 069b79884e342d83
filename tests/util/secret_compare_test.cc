// Secrets are compared only in constant time (issue #15): a plain == or !=
// stops at the first differing byte, so its timing tells an attacker how
// much of a guess was right. ConstantTimeEqual (util/crypto.h) is the one
// helper (its own tests are in crypto_test.cc); this test reads every source
// of the server and its tools and fails on a plain comparison one of whose
// operands is named like a secret (an API key, its digest, a token, a
// secret, a cached Authorization header, a MAC).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "util/crypto.h"

namespace presence {
namespace {

namespace fs = std::filesystem;

// Operands that look like secrets but are not (a MIME type's token).
bool Allowed(const std::string& operand) { return operand == "type.token"; }

std::vector<std::string> PlainSecretCompares() {
  const std::regex compare(
      R"(([A-Za-z_][\w.\->\[\]()*]*)\s*(==|!=)\s*([A-Za-z_][\w.\->\[\]()*]*))");
  const std::regex secret(
      R"((api_key|token|secret|digest|_hash\b|authorization|signature|\bmac\b|\bheader\b|password))",
      std::regex::icase);
  std::vector<std::string> found;
  for (const char* dir : {"src", "tools"}) {
    for (const auto& entry : fs::recursive_directory_iterator(
             fs::path(PRESENCE_SOURCE_DIR) / dir)) {
      const std::string ext = entry.path().extension().string();
      if (ext != ".h" && ext != ".cc") continue;
      std::ifstream in(entry.path());
      std::string line;
      for (int n = 1; std::getline(in, line); ++n) {
        const std::string code = line.substr(0, line.find("//"));
        for (std::sregex_iterator m(code.begin(), code.end(), compare), end;
             m != end; ++m) {
          const std::string a = (*m)[1], b = (*m)[3];
          if (Allowed(a) || Allowed(b)) continue;
          if (std::regex_search(a, secret) || std::regex_search(b, secret)) {
            found.push_back(entry.path().string() + ":" + std::to_string(n) +
                            ": " + line);
          }
        }
      }
    }
  }
  return found;
}

TEST(SecretCompareTest, Issue15_SourcesCompareSecretsOnlyInConstantTime) {
  const std::vector<std::string> found = PlainSecretCompares();
  std::string all;
  for (const auto& f : found) all += f + "\n";
  EXPECT_TRUE(found.empty()) << "use ConstantTimeEqual:\n" << all;
}

TEST(SecretCompareTest, TheHelperComparesEveryByteOfEqualLengths) {
  // The cached Authorization headers the auth cache compares: equal length,
  // differing in the last byte only, or the first.
  const std::string a = "Basic YWxpY2VAZXhhbXBsZS5jb206a2V5MTIzNDU2Nzg5MA==";
  std::string b = a;
  b.back() = '!';
  EXPECT_FALSE(ConstantTimeEqual(a, b));
  b = a;
  b.front() = 'b';
  EXPECT_FALSE(ConstantTimeEqual(a, b));
  EXPECT_TRUE(ConstantTimeEqual(a, std::string(a)));
  EXPECT_FALSE(ConstantTimeEqual(a, a.substr(0, a.size() - 1)));
}

}  // namespace
}  // namespace presence
