// libFuzzer target for RequestParams::Parse() and its typed getters.
//
// Input layout: "<content-type>\n<query>\n<body>". A missing line is empty,
// so any byte string is a valid input. Each input is parsed twice, with the
// default limits and with tiny ones so that every limit is reached often.
//
// Build (by hand, until CMake wires it in):
//   clang++-14 -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined \
//     -Isrc fuzz/request_params_fuzz.cc src/api/request_params.cc \
//     src/api/api_error.cc src/util/errc.cc -lboost_json -lboost_url \
//     -o request_params_fuzz
// Checked invariants (abort on violation): errors are 400 BAD_REQUEST with a
// message; names come back sorted and unique; every name and value is valid
// UTF-8; after every getter has run, UnusedNames() is empty.
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "api/request_params.h"

namespace {

using presence::api::ApiError;
using presence::api::RequestParams;
using presence::api::RequestParamsOptions;

// Aborts with the failed condition, which libFuzzer then reports as a crash.
#define CHECK(cond)                                                           \
  do {                                                                        \
    if (!(cond)) {                                                            \
      std::fprintf(stderr, "CHECK failed at %s:%d: %s\n", __FILE__, __LINE__, \
                   #cond);                                                    \
      std::abort();                                                           \
    }                                                                         \
  } while (false)

// Boost.JSON's parser rejects invalid UTF-8, so a round trip through JSON
// checks that `s` is valid UTF-8.
bool IsValidUtf8(std::string_view s) {
  boost::system::error_code ec;
  boost::json::parse(boost::json::serialize(boost::json::string(s)), ec);
  return !ec;
}

void CheckError(const ApiError& e) {
  CHECK(!e.msg.empty());
  CHECK(IsValidUtf8(e.msg));
  std::string body = boost::json::serialize(e.ToJson());
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(body, ec);
  CHECK(!ec && v.is_object() && v.as_object().at("result") == "error");
}

void Run(std::string_view content_type, std::string_view query,
         std::string_view body, const RequestParamsOptions& options) {
  auto parsed = RequestParams::Parse(query, content_type, body, options);
  if (!parsed) {
    CHECK(parsed.error().http_status == 400);
    CHECK(parsed.error().code == "BAD_REQUEST");
    CheckError(parsed.error());
    return;
  }
  RequestParams& params = *parsed;
  const std::vector<std::string> names = params.Names();
  CHECK(names.size() == params.size());
  CHECK(names.size() <= options.max_parameters);
  CHECK(params.UnusedNames() == names);
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::string& name = names[i];
    CHECK(!name.empty() && name.size() <= options.max_name_length);
    CHECK(i == 0 || names[i - 1] < name);
    CHECK(IsValidUtf8(name));
    CHECK(params.Has(name));

    std::optional<std::string> value = params.GetString(name);
    CHECK(value.has_value());
    CHECK(value->size() <= options.max_value_length);
    CHECK(IsValidUtf8(*value));

    if (auto r = params.GetJsonBool(name); !r) CheckError(r.error());
    if (auto r = params.GetJsonInt(name); !r) CheckError(r.error());
    if (auto r = params.GetJsonValue(name); !r) CheckError(r.error());
    if (auto r = params.GetJsonList(name); !r) CheckError(r.error());
    if (auto r = params.GetJsonStringList(name); !r) CheckError(r.error());
    if (auto r = params.GetJsonObject(name); !r) CheckError(r.error());
    if (auto r = params.RequireJsonInt(name); !r) CheckError(r.error());
  }
  CHECK(params.UnusedNames().empty());
  // A name over the length limit cannot have been parsed.
  auto missing =
      params.RequireString(std::string(options.max_name_length + 1, 'x'));
  CHECK(!missing && missing.error().code == "REQUEST_VARIABLE_MISSING");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data,
                                      std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto next_line = [&input]() {
    std::size_t nl = input.find('\n');
    std::string_view line = input.substr(0, nl);
    input = nl == std::string_view::npos ? std::string_view()
                                         : input.substr(nl + 1);
    return line;
  };
  std::string_view content_type = next_line();
  std::string_view query = next_line();
  std::string_view body = input;

  Run(content_type, query, body, RequestParamsOptions{});

  RequestParamsOptions tiny;
  tiny.max_parameters = 3;
  tiny.max_name_length = 8;
  tiny.max_value_length = 16;
  tiny.max_parts = 2;
  tiny.max_part_header_bytes = 64;
  Run(content_type, query, body, tiny);
  return 0;
}
