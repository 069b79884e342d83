// The load generators' wire parsing (bench/http_wire.h): framing of an
// answer and the one-pass scan of a GET /events body, on the shapes
// presenced sends and on broken ones.
#include "bench/http_wire.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace presence::bench::wire {
namespace {

TEST(ParseResponseTest, FramesByContentLength) {
  const std::string buf =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
      "content-LENGTH: 5\r\n\r\nhelloHTTP/1.1";
  Answer a;
  EXPECT_EQ(ParseResponse(buf, a), static_cast<long>(buf.size()) - 8);
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.body, "hello");
}

TEST(ParseResponseTest, IncompleteHeadOrBodyWaitsForMore) {
  Answer a;
  EXPECT_EQ(ParseResponse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", a), 0);
  EXPECT_EQ(ParseResponse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", a),
            0);
}

TEST(ParseResponseTest, RejectsMissingLengthAndBadStatusLine) {
  Answer a;
  EXPECT_EQ(ParseResponse("HTTP/1.1 200 OK\r\nX: y\r\n\r\n", a), -1);
  EXPECT_EQ(ParseResponse("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", a),
            -1);
  EXPECT_EQ(ParseResponse("SMTP ready here\r\n\r\n", a), -1);
  EXPECT_EQ(ParseResponse("HTTP/1.1 204 No Content\r\n\r\n", a), 27);
  EXPECT_EQ(a.status, 204);
}

TEST(ParseResponseTest, ErrorStatusKeepsItsBody) {
  const std::string body =
      R"({"result":"error","msg":"Bad event queue id: x","code":"BAD_EVENT_QUEUE_ID","queue_id":"x"})";
  const std::string buf = "HTTP/1.1 400 Bad Request\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\n\r\n" + body;
  Answer a;
  EXPECT_EQ(ParseResponse(buf, a), static_cast<long>(buf.size()));
  EXPECT_EQ(a.status, 400);
  EXPECT_EQ(a.body, body);
}

TEST(ScanEventsTest, FindsEveryEventsFields) {
  // The shapes presenced writes (api/event_encoder.cc): a modern came-online
  // event, a transition with its server_timestamp, a heartbeat.
  const std::string body =
      R"({"result":"success","msg":"","events":[)"
      R"({"type":"presence","presences":{"1234":{"active_timestamp":1700000000,"idle_timestamp":1700000000}},"id":7},)"
      R"({"type":"presence","presences":{"55":{"active_timestamp":1699999000,"idle_timestamp":1700000100}},"server_timestamp":1700000300.25,"transition":"idle","id":8},)"
      R"({"type":"heartbeat","id":9}],"queue_id":"q-1"})";
  std::vector<Event> seen;
  EventsSummary sum;
  ASSERT_TRUE(
      ScanEvents(body, sum, [&](const Event& e) { seen.push_back(e); }));
  EXPECT_EQ(sum.result, "success");
  EXPECT_TRUE(sum.has_events);
  EXPECT_EQ(sum.events, 3);
  EXPECT_EQ(sum.max_id, 9);
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].type, "presence");
  EXPECT_EQ(seen[0].id, 7);
  EXPECT_EQ(seen[0].user, 1234);
  EXPECT_TRUE(seen[0].transition.empty());
  EXPECT_EQ(seen[0].server_timestamp, -1);
  EXPECT_EQ(seen[1].user, 55);
  EXPECT_EQ(seen[1].transition, "idle");
  EXPECT_DOUBLE_EQ(seen[1].server_timestamp, 1700000300.25);
  EXPECT_EQ(seen[2].type, "heartbeat");
  EXPECT_EQ(seen[2].user, -1);
}

TEST(ScanEventsTest, OnlyTopLevelEventFieldsCount) {
  // An "id" or "type" nested inside an event's value, or inside a string,
  // is not the event's: the old substring search counted them.
  const std::string body =
      R"({"result":"success","events":[{"type":"presence","presences":)"
      R"({"3":{"id":99,"type":"x","note":"\"id\":100"}},"id":4}],)"
      R"("queue_id":"\"id\":77"})";
  std::vector<Event> seen;
  EventsSummary sum;
  ASSERT_TRUE(
      ScanEvents(body, sum, [&](const Event& e) { seen.push_back(e); }));
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].id, 4);
  EXPECT_EQ(seen[0].type, "presence");
  EXPECT_EQ(sum.max_id, 4);
}

TEST(ScanEventsTest, EmptyEventsAndErrorResult) {
  EventsSummary sum;
  int n = 0;
  auto count = [&](const Event&) { ++n; };
  ASSERT_TRUE(ScanEvents(R"({"result":"success","events":[]})", sum, count));
  EXPECT_TRUE(sum.has_events);
  EXPECT_EQ(sum.max_id, -1);
  ASSERT_TRUE(
      ScanEvents(R"({"result":"error","msg":"x","code":"BAD_EVENT_QUEUE_ID"})",
                 sum, count));
  EXPECT_EQ(sum.result, "error");
  EXPECT_FALSE(sum.has_events);
  EXPECT_EQ(n, 0);
}

TEST(IntegerValueTest, PlainIntegersOnly) {
  EXPECT_EQ(IntegerValue("0", -1), 0);
  EXPECT_EQ(IntegerValue("1234", -1), 1234);
  EXPECT_EQ(IntegerValue("-42", 7), -42);
  EXPECT_EQ(IntegerValue("999999999999999999", -1), 999999999999999999);
  // Not an integer, or more digits than an int64 always holds.
  for (const char* not_int :
       {"", "-", "1.5", "1e3", "12a", "1000000000000000000"}) {
    EXPECT_EQ(IntegerValue(not_int, -1), -1) << not_int;
  }
}

TEST(ScanEventsTest, EventIdsAndUsersAreReadAsIntegers) {
  // A fractional id or a user key that is no number keeps the default.
  const std::string body =
      R"({"result":"success","events":[)"
      R"({"type":"presence","presences":{"abc":{}},"id":2.5},)"
      R"({"type":"presence","presences":{"-3":{}},"id":123456789012}]})";
  std::vector<Event> seen;
  EventsSummary sum;
  ASSERT_TRUE(
      ScanEvents(body, sum, [&](const Event& e) { seen.push_back(e); }));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].id, -1);
  EXPECT_EQ(seen[0].user, -1);
  EXPECT_EQ(seen[1].id, 123456789012);
  EXPECT_EQ(seen[1].user, -3);
  EXPECT_EQ(sum.max_id, 123456789012);
}

TEST(ScanEventsTest, RejectsMalformedBodies) {
  EventsSummary sum;
  auto none = [](const Event&) {};
  for (const char* bad : {
           "",
           "[]",
           R"({"result":"success","events":[{"type":"presence","id":1})",
           R"({"result":"success","events":[{"type":"presence","id":1}]}x)",
           R"({"result":"success","events":[{"type":"presence","id":}]})",
           R"({"result":"success","events":[7]})",
           R"({"result":"succ)",
           R"({"result":"a\qb"})",
           R"({"a":tru})",
           R"({"a":1.})",
           R"({"a":-})",
       }) {
    EXPECT_FALSE(ScanEvents(bad, sum, none)) << bad;
  }
  // A body cut short (a short read framed as complete) loses its end.
  const std::string whole =
      R"({"result":"success","events":[{"type":"heartbeat","id":3}],"queue_id":"q"})";
  for (std::size_t cut = 0; cut < whole.size(); ++cut) {
    EXPECT_FALSE(ScanEvents(whole.substr(0, cut), sum, none)) << cut;
  }
  EXPECT_TRUE(ScanEvents(whole, sum, none));
}

TEST(ScanEventsTest, AcceptsWhitespaceEscapesAndLiterals) {
  const std::string body =
      "{ \"result\" : \"success\" ,\n \"x\" : [true, false, null, -1.5e3,"
      " \"a\\u00e9\\\"b\"],\n \"events\" : [ { \"type\" : \"presence\" ,"
      " \"id\" : 12 } ] }";
  EventsSummary sum;
  int n = 0;
  ASSERT_TRUE(ScanEvents(body, sum, [&](const Event&) { ++n; }));
  EXPECT_EQ(n, 1);
  EXPECT_EQ(sum.max_id, 12);
}

}  // namespace
}  // namespace presence::bench::wire
