// The synthetic users of the benchmarks, shared by bench_populate (which
// writes them into a SQLite file), loadgen (which logs in as them) and
// core_bench (which builds them in memory).
//
// User number i (0-based) has the email "u<i>@bench.example" and the API key
// "bk" followed by i in 30 decimal digits: 32 alphanumerics, as presenced
// requires, and derivable by every tool without a file of keys.
#ifndef PRESENCE_BENCH_BENCH_USERS_H_
#define PRESENCE_BENCH_BENCH_USERS_H_

#include <cstdint>
#include <cstdio>
#include <string>

namespace presence::bench {

// (snprintf rather than "u" + std::to_string(i): g++ 12 -O3 warns about
// the latter, a false positive, PR105651.)
inline std::string BenchEmail(std::int64_t i) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "u%lld@bench.example",
                static_cast<long long>(i));
  return buf;
}

inline std::string BenchKey(std::int64_t i) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "bk%030lld", static_cast<long long>(i));
  return buf;
}

inline std::string BenchName(std::int64_t i) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "Bench User %lld", static_cast<long long>(i));
  return buf;
}

}  // namespace presence::bench

#endif  // PRESENCE_BENCH_BENCH_USERS_H_
