// Event Hubs pieces of the built-in endpoint (doc §6): the selector filter that sets where a
// receiver starts, the redirect info map of `amqp:link:redirect`, and `$management` READ
// requests and their response maps.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "amqp/iothub/errors.hpp"
#include "amqp/message.hpp"
#include "amqp/result.hpp"
#include "amqp/value.hpp"

namespace amqp::iothub {

// ---- selector filter (doc §6.2) ------------------------------------------------------------

// The filter-set key and symbolic descriptor (uAMQP-Python constants.STRING_FILTER), and the
// numeric descriptor (go-amqp LinkSelectorFilter, RabbitMQ DESCRIPTOR_CODE_SELECTOR_FILTER).
inline constexpr std::string_view selector_filter_name = "apache.org:selector-filter:string";
inline constexpr std::uint64_t selector_filter_code = 0x0000468C00000004;

// The longest selector text parse_selector accepts.
inline constexpr std::size_t max_selector_length = 1024;

enum class position_field : std::uint8_t { offset, sequence_number, enqueued_time };
enum class position_operator : std::uint8_t { greater, greater_or_equal, equal };

// `amqp.annotation.x-opt-offset > '123'` and its variants.
struct selector {
  position_field field = position_field::offset;
  position_operator op = position_operator::greater;
  // The value as text: an offset ("-1" = start, "@latest" = end, else opaque), a sequence
  // number, or milliseconds since the epoch.
  std::string value;
  friend bool operator==(const selector&, const selector&) = default;
};

// The start of the stream (`x-opt-offset > '-1'`) and its end (`> '@latest'`) (EH-PY).
[[nodiscard]] selector start_of_stream();
[[nodiscard]] selector end_of_stream();

// The filter text as the Event Hubs SDKs write it (EH-PY _utils.event_position_selector):
// `amqp.annotation.<name> <op> '<value>'`, the value single-quoted.
[[nodiscard]] std::string to_string(const selector& s);

// Parses `amqp.annotation.<name> (>|>=|=) <value>`: the name x-opt-offset,
// x-opt-sequence-number or x-opt-enqueued-time (any case), spaces around the operator
// optional, the value single-quoted (a quote inside doubled, as in SQL), or unquoted digits
// with an optional '-' as the old docs write them (doc §10). A sequence number must be an
// integer, an enqueued time a non-negative integer; an offset is any text without control
// characters. Errors (reason in `why`): errc::limit_exceeded (longer than
// max_selector_length), errc::not_supported (another annotation, operator or form),
// errc::invalid_value (an unterminated quote, a value of the wrong form, trailing text).
[[nodiscard]] result<selector> parse_selector(std::string_view text, std::string* why = nullptr);

enum class descriptor_form : std::uint8_t { numeric, symbolic };

// The filter-set entry value: a described string with the numeric or symbolic descriptor.
// Errors: errc::invalid_value (a value that is not valid UTF-8).
[[nodiscard]] result<amqp::owned_value>
selector_filter(const selector& s, descriptor_form form = descriptor_form::numeric);

// A filter-set map (symbol key apache.org:selector-filter:string) holding selector_filter(s).
[[nodiscard]] result<amqp::owned_value>
selector_filter_set(const selector& s, descriptor_form form = descriptor_form::numeric);

// Parses a filter-set entry value: a described string whose descriptor is the numeric or the
// symbolic one. Errors: errc::not_supported (another descriptor, not a described value),
// errc::invalid_value (not a string), and those of parse_selector.
[[nodiscard]] result<selector> parse_selector_filter(const value& v, std::string* why = nullptr);

// Parses a source's filter-set (a map, or null): the selector if there is one, nullopt for
// a null or empty map. Errors: errc::not_supported (an entry that is not a selector filter),
// errc::invalid_value (not a map, two selector filters), those of parse_selector_filter.
[[nodiscard]] result<std::optional<selector>> parse_filter_set(const value& filter_set,
                                                               std::string* why = nullptr);

// ---- redirect (doc §6.1) -------------------------------------------------------------------

// The `info` of an `amqp:link:redirect` detach (TRACE iothub-explorer#57, azure-event-hubs#167).
struct redirect_info {
  std::string hostname;     // the Event Hubs namespace FQDN
  std::string network_host; // the same host name
  std::uint16_t port = 5671;
  std::string address;                    // amqps://{ns}:5671/{eventHub}/...
  std::optional<std::string> tracking_id; // com.microsoft:tracking-id
  friend bool operator==(const redirect_info&, const redirect_info&) = default;
};

// The info map: symbol keys hostname, network-host, port (int), address, and
// com.microsoft:tracking-id when set.
[[nodiscard]] amqp::owned_value build_redirect_info(const redirect_info& r);

// Parses the info map: keys symbols or strings; hostname, port and address required,
// network-host optional (empty when absent); strings or symbols; port any integer type from
// 1 to 65535. Unknown keys (uAMQP looks for scheme and path) are ignored. Errors (reason in
// `why`): errc::missing_field, errc::invalid_value.
[[nodiscard]] result<redirect_info> parse_redirect_info(const value& info,
                                                        std::string* why = nullptr);

// ---- $management (doc §6.4) ----------------------------------------------------------------

namespace management_key {
inline constexpr std::string_view operation = "operation";
inline constexpr std::string_view type = "type";
inline constexpr std::string_view name = "name";
inline constexpr std::string_view partition = "partition";
inline constexpr std::string_view security_token = "security_token";
} // namespace management_key

inline constexpr std::string_view read_operation = "READ";
inline constexpr std::string_view eventhub_type = "com.microsoft:eventhub";
inline constexpr std::string_view partition_type = "com.microsoft:partition";

struct management_request {
  amqp::owned_value message_id;
  std::optional<std::string> reply_to;
  std::string event_hub;                // `name`
  std::optional<std::string> partition; // set: a com.microsoft:partition request
  std::optional<std::string> security_token;
  friend bool operator==(const management_request&, const management_request&) = default;
};

// The READ request: application-properties operation READ, type com.microsoft:eventhub (or
// com.microsoft:partition with `partition`), name, security_token when set; body amqp-value
// null.
[[nodiscard]] amqp::message build_management_request(const management_request& r);

// Parses a READ request (EH-NET AmqpManagement.cs). Errors (reason in `why`):
// errc::missing_field (message-id, operation, type, name, or partition for a partition
// request), errc::invalid_value (wrong types, empty name), errc::not_supported (another
// operation or type).
[[nodiscard]] result<management_request> parse_management_request(const amqp::message& m,
                                                                  std::string* why = nullptr);

// The eventhub response map (doc §6.4; EH-NET AmqpManagement.ResponseMap).
struct eventhub_info {
  std::string name;
  amqp::timestamp created_at{};
  std::vector<std::string> partition_ids; // array of strings
  friend bool operator==(const eventhub_info&, const eventhub_info&) = default;
};

// The partition response map (doc §6.4).
struct partition_info {
  std::string name; // the event hub
  std::string partition;
  std::int64_t begin_sequence_number = 0;
  std::int64_t last_enqueued_sequence_number = 0;
  std::string last_enqueued_offset;
  amqp::timestamp last_enqueued_time_utc{};
  bool is_partition_empty = true;
  friend bool operator==(const partition_info&, const partition_info&) = default;
};

// The most partition ids parse_eventhub_info accepts (Event Hubs allows at most 1024).
inline constexpr std::size_t max_partition_ids = 1024;

// The response to `request` (correlation-id = its message-id, same type): status-code 200,
// status-description "OK", body amqp-value map with string keys: name, type
// com.microsoft:eventhub, created_at (timestamp), partition_count (int), partition_ids
// (array of string).
[[nodiscard]] amqp::message build_eventhub_response(const amqp::owned_value& correlation_id,
                                                    const eventhub_info& info);
// The same for a partition: name, type com.microsoft:partition, partition,
// begin_sequence_number and last_enqueued_sequence_number (long), last_enqueued_offset
// (string), last_enqueued_time_utc (timestamp), is_partition_empty (bool).
[[nodiscard]] amqp::message build_partition_response(const amqp::owned_value& correlation_id,
                                                     const partition_info& info);

// Parses the body map of an eventhub response (map keys strings or symbols; name a string,
// created_at a timestamp, partition_ids an array or list of strings; other keys ignored).
// Errors: errc::missing_field, errc::invalid_value, errc::limit_exceeded (more than
// max_partition_ids ids).
[[nodiscard]] result<eventhub_info> parse_eventhub_info(const value& body,
                                                        std::string* why = nullptr);
// Parses the body map of a partition response (the sequence numbers any integer type that
// fits a long; is_partition_empty, a newer key, false when absent). The status of a
// $management response is read with parse_cbs_response (same status-code and
// status-description keys). Errors: errc::missing_field, errc::invalid_value.
[[nodiscard]] result<partition_info> parse_partition_info(const value& body,
                                                          std::string* why = nullptr);

} // namespace amqp::iothub
