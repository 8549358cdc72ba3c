// Tests of feedback records (iothub/src/feedback.cpp; doc §5.1, DOC-C2D).
#include <array>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "amqp/iothub/feedback.hpp"
#include "amqp/iothub/messages.hpp"

using namespace amqp::iothub;

namespace {

std::vector<feedback_record> parsed(std::string_view json) {
  std::string why;
  auto r = parse_feedback(json, &why);
  REQUIRE_MESSAGE(r.has_value(), why);
  return *r;
}

std::string record(std::string_view members) {
  return "[{" + std::string(members) + "}]";
}

constexpr std::string_view ok_members =
    R"("deviceId":"d1","statusCode":"Success","enqueuedTimeUtc":"2015-07-28T16:24:48.789Z")";

} // namespace

TEST_CASE("parse_feedback: the DOC-C2D example") {
  const auto r = parsed(R"([{
    "originalMessageId": "0987654321",
    "enqueuedTimeUtc": "2015-07-28T16:24:48.789Z",
    "statusCode": "Success",
    "description": "Success",
    "deviceId": "123",
    "deviceGenerationId": "abcdefghijklmnopqrstuvwxyz"
  }])");
  REQUIRE(r.size() == 1);
  CHECK(r[0].original_message_id == "0987654321");
  CHECK(r[0].device_id == "123");
  CHECK(r[0].device_generation_id == "abcdefghijklmnopqrstuvwxyz");
  CHECK(r[0].status_code == feedback_status::success);
  CHECK(r[0].description == "Success");
  CHECK(r[0].enqueued_time_utc.ms == 1438100688789);
}

TEST_CASE("encode_feedback: members in the example's order; parse gives the records back") {
  std::vector<feedback_record> recs;
  for (feedback_status s : {feedback_status::success, feedback_status::expired,
                            feedback_status::delivery_count_exceeded, feedback_status::rejected,
                            feedback_status::purged}) {
    feedback_record r;
    r.original_message_id = "m\"1\\";
    r.device_id = "d1";
    r.device_generation_id = "636";
    r.status_code = s;
    r.description = std::string(to_string(s));
    r.enqueued_time_utc = amqp::timestamp{1438100688789};
    recs.push_back(r);
  }
  const std::string json = encode_feedback(recs);
  CHECK(json.starts_with(
      R"([{"originalMessageId":"m\"1\\","deviceGenerationId":"636","deviceId":"d1",)"
      R"("enqueuedTimeUtc":"2015-07-28T16:24:48.789Z","statusCode":"Success","description":"Success"},)"));
  CHECK(parsed(json) == recs);
  CHECK(encode_feedback({}) == "[]");
  CHECK(parsed("[]").empty());
}

TEST_CASE("parse_feedback: tolerant of unknown members, null and absent optional members") {
  const auto r = parsed(
      record(std::string(ok_members) + R"(,"originalMessageId":null,"extra":{"a":[1,2]},"x":1)"));
  CHECK(r[0].original_message_id.empty());
  CHECK(r[0].device_generation_id.empty());
  CHECK(r[0].description.empty());
}

TEST_CASE("parse_feedback: strict about types and values") {
  struct bad {
    std::string json;
    errc code;
    std::string_view says;
  };
  const std::array<bad, 14> cases = {{
      {"{}", errc::invalid_value, "is a JSON object, not an array"},
      {"[1]", errc::invalid_value, "feedback record 0 is a number, not an object"},
      {"[", errc::invalid_value, "not JSON"},
      {"[\"\xff\"]", errc::invalid_value, "not JSON (or not UTF-8)"},
      {record(R"("statusCode":"Success","enqueuedTimeUtc":"2015-07-28T16:24:48.789Z")"),
       errc::missing_field, "feedback record 0 has no 'deviceId'"},
      {record(R"("deviceId":"d","enqueuedTimeUtc":"2015-07-28T16:24:48.789Z")"),
       errc::missing_field, "has no 'statusCode'"},
      {record(R"("deviceId":"d","statusCode":"Success")"), errc::missing_field,
       "has no 'enqueuedTimeUtc'"},
      {record(R"("deviceId":7,"statusCode":"Success","enqueuedTimeUtc":"2015-07-28T16:24:48Z")"),
       errc::invalid_value, "'deviceId' is a number, not a string"},
      {record(std::string(ok_members) + R"(,"description":false)"), errc::invalid_value,
       "'description' is a boolean, not a string"},
      {record(std::string(ok_members) + R"(,"originalMessageId":[])"), errc::invalid_value,
       "'originalMessageId' is a array"},
      {record(std::string(ok_members) + R"(,"deviceGenerationId":{})"), errc::invalid_value,
       "'deviceGenerationId' is a object"},
      {record(R"("deviceId":"d","statusCode":"success","enqueuedTimeUtc":"2015-07-28T16:24:48Z")"),
       errc::invalid_value, "unknown statusCode 'success'"},
      {record(R"("deviceId":"d","statusCode":"Success","enqueuedTimeUtc":"2015-07-28 16:24:48Z")"),
       errc::invalid_value, "enqueuedTimeUtc: not a UTC time"},
      {"[" + std::string(17, '[') + std::string(17, ']') + "]", errc::limit_exceeded,
       "nested too deeply"},
  }};
  for (const bad& b : cases) {
    CAPTURE(b.json);
    std::string why;
    auto r = parse_feedback(b.json, &why);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == b.code);
    CHECK_MESSAGE(why.find(b.says) != std::string::npos, why);
  }
}

TEST_CASE("parse_feedback: limits on size, count and depth") {
  SUBCASE("depth 16 is fine, 17 is not") {
    const std::string ok = "[{" + std::string(ok_members) + R"(,"x":)" + std::string(14, '[') +
                           std::string(14, ']') + "}]";
    CHECK(parsed(ok).size() == 1);
    const std::string deep = "[{" + std::string(ok_members) + R"(,"x":)" + std::string(15, '[') +
                             std::string(15, ']') + "}]";
    CHECK(parse_feedback(deep).error() == errc::limit_exceeded);
    // Brackets inside strings do not count.
    CHECK(parsed(record(std::string(ok_members) + R"(,"x":"[[[[[[[[[[[[[[[[[[[[\"[[[")")).size() ==
          1);
  }
  SUBCASE("records") {
    std::string json = "[";
    for (std::size_t k = 0; k < max_feedback_records; ++k) {
      json += (k == 0 ? "{" : ",{") + std::string(ok_members) + "}";
    }
    CHECK(parsed(json + "]").size() == 1000);
    std::string why;
    CHECK(parse_feedback(json + ",{" + std::string(ok_members) + "}]", &why).error() ==
          errc::limit_exceeded);
    CHECK(why == "more than 1000 feedback records");
  }
  SUBCASE("bytes") {
    std::string json = "[" + std::string(max_feedback_bytes - 2, ' ') + "]";
    CHECK(parsed(json).empty());
    json.insert(1, " ");
    std::string why;
    CHECK(parse_feedback(json, &why).error() == errc::limit_exceeded);
    CHECK(why == "the feedback body is larger than 262144 bytes");
  }
}

TEST_CASE("utc time: ISO 8601 with milliseconds and Z") {
  CHECK(format_utc_time(amqp::timestamp{0}) == "1970-01-01T00:00:00.000Z");
  CHECK(format_utc_time(amqp::timestamp{1438100688789}) == "2015-07-28T16:24:48.789Z");
  CHECK(format_utc_time(amqp::timestamp{951782400000}) == "2000-02-29T00:00:00.000Z");
  CHECK(format_utc_time(amqp::timestamp{-1}) == "1969-12-31T23:59:59.999Z");
  CHECK(format_utc_time(amqp::timestamp{INT64_MAX}) == "9999-12-31T23:59:59.999Z");
  CHECK(format_utc_time(amqp::timestamp{INT64_MIN}) == "0000-01-01T00:00:00.000Z");
  CHECK(parse_utc_time("2015-07-28T16:24:48.789Z")->ms == 1438100688789);
  CHECK(parse_utc_time("2021-04-21T11:30:16Z")->ms == 1619004616000);
  CHECK(parse_utc_time("2015-07-28T16:24:48.7891234Z")->ms == 1438100688789); // .NET, 7 digits
  CHECK(parse_utc_time("2015-07-28T16:24:48.7Z")->ms == 1438100688700);
  CHECK(parse_utc_time("2000-02-29T00:00:00Z").has_value());
  CHECK(parse_utc_time("0000-01-01T00:00:00.000Z")->ms == INT64_C(-62167219200000));
  CHECK(parse_utc_time("9999-12-31T23:59:59.999Z")->ms == INT64_C(253402300799999));
  std::string why;
  for (const char* bad :
       {"1900-02-29T00:00:00Z", "2015-13-01T00:00:00Z", "2015-00-01T00:00:00Z",
        "2015-04-31T00:00:00Z", "2015-01-01T24:00:00Z", "2015-01-01T00:60:00Z",
        "2015-01-01T00:00:60Z", "2015-01-01T00:00:00", "2015-01-01T00:00:00+00:00",
        "2015-01-01T00:00:00.Z", "2015-01-01T00:00:00.1234567890Z", "2015-01-01T00:00:00,1Z",
        "15-01-01T00:00:00Z", "2015-01-01t00:00:00Z", "2015-1-01T00:00:00Z", ""}) {
    CAPTURE(bad);
    CHECK(parse_utc_time(bad, &why).error() == errc::invalid_value);
  }
  CHECK(why == "not a UTC time YYYY-MM-DDTHH:MM:SS[.fff]Z: ''");
}

TEST_CASE("feedback messages: as the hub sends them, and as .NET checks them") {
  const std::vector<feedback_record> recs = {
      {"m1", "d1", "g1", feedback_status::rejected, "Rejected", amqp::timestamp{5}}};
  const auto m = build_feedback_message(recs, "myhub", amqp::timestamp{1700000000000});
  CHECK(m.properties.content_type == "application/vnd.microsoft.iothub.feedback.json");
  const std::vector<std::byte> hub = {std::byte{'m'}, std::byte{'y'}, std::byte{'h'},
                                      std::byte{'u'}, std::byte{'b'}};
  CHECK(m.properties.user_id == hub);
  CHECK(m.message_annotations.get(annotation::enqueued_time)->as_timestamp().ms == 1700000000000);
  CHECK(m.body_kind() == amqp::body_kind::data);
  auto wire = amqp::message::decode(*m.encode());
  REQUIRE(wire.has_value());
  CHECK(*parse_feedback_message(*wire) == recs);

  std::string why;
  auto other = *wire;
  other.properties.content_type = "application/json";
  CHECK(parse_feedback_message(other, &why).error() == errc::invalid_value);
  CHECK(why == "the feedback content-type is 'application/json', not "
               "application/vnd.microsoft.iothub.feedback.json");
  other.properties.content_type.reset();
  CHECK(parse_feedback_message(other, &why).error() == errc::invalid_value);
  CHECK(why.find("is absent") != std::string::npos);
  other = *wire;
  REQUIRE(other.set_body_value(amqp::value(std::int32_t{1})).has_value());
  CHECK(parse_feedback_message(other, &why).error() == errc::invalid_value);
  CHECK(why == "the feedback message has no data body");
  // An amqp-value string body is read too.
  other.set_body(std::string_view(encode_feedback(recs)));
  CHECK(*parse_feedback_message(other) == recs);
}

TEST_CASE("feedback status names") {
  CHECK(to_string(feedback_status::delivery_count_exceeded) == "DeliveryCountExceeded");
  CHECK(feedback_status_from("Purged") == feedback_status::purged);
  CHECK_FALSE(feedback_status_from("purged").has_value());
}
