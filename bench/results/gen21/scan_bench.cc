// How long bench/http_wire.h's ScanEvents takes over a GET /events answer
// of the churn run's shape (six modern "came online" events), on one core.
// Build: g++ -O2 -std=c++20 -I SRC scan_bench.cc -o scan_bench
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench/http_wire.h"

int main(int argc, char** argv) {
  std::string body = R"({"result":"success","msg":"","events":[)";
  for (int i = 0; i < 6; ++i) {
    if (i) body += ",";
    body +=
        R"({"type":"presence","presences":{")" + std::to_string(31000 + i) +
        R"(":{"active_timestamp":1765000000,"idle_timestamp":1765000000}},"id":)" +
        std::to_string(4000 + i) + "}";
  }
  body += R"(],"queue_id":"1765000000.123456:42"})";
  using presence::bench::wire::Event;
  using presence::bench::wire::EventsSummary;
  const int n = argc > 1 ? std::atoi(argv[1]) : 2'000'000;
  long sink = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    EventsSummary sum;
    const bool ok = presence::bench::wire::ScanEvents(
        body, sum, [&](const Event& e) { sink += e.type == "presence"; });
    sink += ok + sum.max_id;
  }
  const double ns = std::chrono::duration<double, std::nano>(
                        std::chrono::steady_clock::now() - t0)
                        .count() /
                    n;
  std::printf("%zu-byte body, 6 events: %.0f ns per scan (sink %ld)\n",
              body.size(), ns, sink);
}
