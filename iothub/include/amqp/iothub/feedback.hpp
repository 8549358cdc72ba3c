// Cloud-to-device delivery feedback (doc §5.1; DOC-C2D; CS-SVC AmqpFeedbackReceiver.cs,
// FeedbackRecord): batches of records the hub sends on /messages/serviceBound/feedback, as
// a UTF-8 JSON array in one data section.
//
//   [{"originalMessageId":"m1","deviceGenerationId":"636...","deviceId":"d1",
//     "enqueuedTimeUtc":"2015-07-28T16:24:48.789Z","statusCode":"Success",
//     "description":"Success"}]
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "amqp/iothub/errors.hpp"
#include "amqp/message.hpp"
#include "amqp/result.hpp"

namespace amqp::iothub {

// The content type of a feedback message (.NET rejects any other).
inline constexpr std::string_view feedback_content_type =
    "application/vnd.microsoft.iothub.feedback.json";
// The content type of a file-upload notification (doc §5.2).
inline constexpr std::string_view file_notification_content_type =
    "application/vnd.microsoft.iothub.filenotification.json";

// Bounds on what parse_feedback accepts. The hub sends at most 64 records a batch (DOC-C2D).
inline constexpr std::size_t max_feedback_bytes = std::size_t{256} * 1024;
inline constexpr std::size_t max_feedback_records = 1000;

// statusCode (DOC-C2D; .NET maps them to 0..4 in this order).
enum class feedback_status : std::uint8_t {
  success,
  expired,
  delivery_count_exceeded,
  rejected,
  purged,
};

// "Success", "Expired", "DeliveryCountExceeded", "Rejected", "Purged".
[[nodiscard]] std::string_view to_string(feedback_status s) noexcept;
// The status named `text`, matched exactly; nullopt otherwise.
[[nodiscard]] std::optional<feedback_status> feedback_status_from(std::string_view text) noexcept;

// One feedback record (DOC-C2D, CS-SVC FeedbackRecord).
struct feedback_record {
  std::string original_message_id;  // originalMessageId
  std::string device_id;            // deviceId
  std::string device_generation_id; // deviceGenerationId
  feedback_status status_code = feedback_status::success;
  // The hub's doc example sets it equal to statusCode; the C service SDK reads only this.
  std::string description;
  amqp::timestamp enqueued_time_utc{}; // enqueuedTimeUtc, millisecond precision
  friend bool operator==(const feedback_record&, const feedback_record&) = default;
};

// The JSON array of the records, members in the order of the doc example, times as
// format_utc_time writes them.
[[nodiscard]] std::string encode_feedback(std::span<const feedback_record> records);

// Parses a JSON array of records. Strict about types, tolerant of unknown members: each
// element is an object; deviceId, statusCode and enqueuedTimeUtc are required strings;
// originalMessageId, deviceGenerationId and description are strings, null or absent (both
// read as empty); statusCode one of the five names; enqueuedTimeUtc as parse_utc_time.
// Errors (reason in `why`): errc::limit_exceeded (more than max_feedback_bytes or
// max_feedback_records, or JSON nested deeper than 16), errc::invalid_value (not JSON, not
// UTF-8, not an array of objects, a member of the wrong type or value),
// errc::missing_field (a required member absent).
[[nodiscard]] result<std::vector<feedback_record>> parse_feedback(std::string_view json,
                                                                  std::string* why = nullptr);

// The feedback message as the hub sends it: body one data section with encode_feedback,
// content-type feedback_content_type, user-id = the hub name (bytes), message annotation
// iothub-enqueuedtime = `enqueued_time`.
[[nodiscard]] amqp::message build_feedback_message(std::span<const feedback_record> records,
                                                   std::string_view hub_name,
                                                   amqp::timestamp enqueued_time);

// Parses a feedback message: content-type must be feedback_content_type (as .NET checks),
// the body data sections (joined) or an amqp-value binary or string. Errors: those of
// parse_feedback, errc::invalid_value (another content type, another body).
[[nodiscard]] result<std::vector<feedback_record>>
parse_feedback_message(const amqp::message& m, std::string* why = nullptr);

// `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC, milliseconds). Times before the year 0000 or after 9999
// are written as the nearest end of that range.
[[nodiscard]] std::string format_utc_time(amqp::timestamp t);

// Parses `YYYY-MM-DDTHH:MM:SS[.f...]Z`: UTC only, 0 to 9 fraction digits (read to the
// millisecond, the rest dropped: .NET writes 7), fields in range (day within its month, leap
// years, no leap second). Errors: errc::invalid_value.
[[nodiscard]] result<amqp::timestamp> parse_utc_time(std::string_view text,
                                                     std::string* why = nullptr);

} // namespace amqp::iothub
