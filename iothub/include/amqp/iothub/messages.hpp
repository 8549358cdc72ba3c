// IoT Hub message names, the batch format 0x80013700, and the annotations the hub stamps on
// device-to-cloud messages (doc §3, §4, §6.6, §9.4).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "amqp/iothub/address.hpp"
#include "amqp/iothub/errors.hpp"
#include "amqp/message.hpp"
#include "amqp/result.hpp"

namespace amqp::iothub {

// ---- names ---------------------------------------------------------------------------------

// Message-annotation keys (symbols) the hub sets (doc §3.4, §4.3, DOC-MSG; CS-DEV
// AmqpIotMessageConverter.cs; EDGE Constants.cs).
namespace annotation {
inline constexpr std::string_view connection_device_id = "iothub-connection-device-id";
inline constexpr std::string_view connection_module_id = "iothub-connection-module-id";
inline constexpr std::string_view connection_auth_generation_id =
    "iothub-connection-auth-generation-id";
// A JSON string, see auth_method_json.
inline constexpr std::string_view connection_auth_method = "iothub-connection-auth-method";
inline constexpr std::string_view enqueued_time = "iothub-enqueuedtime"; // timestamp
inline constexpr std::string_view message_source = "iothub-message-source";
inline constexpr std::string_view delivery_count = "iothub-deliverycount"; // ubyte (C2D)
inline constexpr std::string_view interface_id = "iothub-interface-id";
inline constexpr std::string_view dt_dataschema = "dt-dataschema";
inline constexpr std::string_view dt_subject = "dt-subject";
// Event Hubs annotations (doc §6.6; EH-PY).
inline constexpr std::string_view sequence_number = "x-opt-sequence-number"; // long
inline constexpr std::string_view offset = "x-opt-offset";                   // string
inline constexpr std::string_view enqueued_time_eh = "x-opt-enqueued-time";  // timestamp
inline constexpr std::string_view partition_key = "x-opt-partition-key";     // string
inline constexpr std::string_view lock_token = "x-opt-lock-token";           // string (C2D)
inline constexpr std::string_view input_name = "x-opt-input-name";           // Edge
// Twin (doc §7.2, §7.3).
inline constexpr std::string_view operation = "operation";
inline constexpr std::string_view resource = "resource";
inline constexpr std::string_view status = "status";   // int
inline constexpr std::string_view version = "version"; // long
} // namespace annotation

// Application-property keys (strings) (doc §3.2, §4.1, §8.1).
namespace app_property {
inline constexpr std::string_view creation_time_utc = "iothub-creation-time-utc";
inline constexpr std::string_view output_name = "iothub-outputname";
inline constexpr std::string_view ack = "iothub-ack";
inline constexpr std::string_view message_schema = "iothub-message-schema";
inline constexpr std::string_view method_name = "IoThub-methodname";
inline constexpr std::string_view method_status = "IoThub-status"; // int
} // namespace app_property

// Values of iothub-ack (DOC-C2D).
namespace ack {
inline constexpr std::string_view none = "none";
inline constexpr std::string_view positive = "positive";
inline constexpr std::string_view negative = "negative";
inline constexpr std::string_view full = "full";
} // namespace ack

// Values of iothub-message-source (doc §3.4).
namespace message_source {
inline constexpr std::string_view telemetry = "Telemetry";
inline constexpr std::string_view twin_change_events = "twinChangeEvents";
inline constexpr std::string_view device_lifecycle_events = "deviceLifecycleEvents";
inline constexpr std::string_view device_connection_state_events = "deviceConnectionStateEvents";
} // namespace message_source

// Link attach property keys (symbols) (doc §1.5, §6.3).
namespace link_property {
inline constexpr std::string_view client_version = "com.microsoft:client-version";
inline constexpr std::string_view api_version = "com.microsoft:api-version";
inline constexpr std::string_view channel_correlation_id = "com.microsoft:channel-correlation-id";
inline constexpr std::string_view model_id = "com.microsoft:model-id";
inline constexpr std::string_view timeout = "com.microsoft:timeout";
inline constexpr std::string_view epoch = "com.microsoft:epoch";
inline constexpr std::string_view receiver_runtime_metric =
    "com.microsoft:enable-receiver-runtime-metric";
} // namespace link_property

// Fault-injection application properties and values (doc §9.4; C-SDK
// tests/common_e2e/iothubclient_common_e2e.c).
namespace fault {
inline constexpr std::string_view operation_type = "AzIoTHub_FaultOperationType";
inline constexpr std::string_view close_reason = "AzIoTHub_FaultOperationCloseReason";
inline constexpr std::string_view delay_in_secs = "AzIoTHub_FaultOperationDelayInSecs";
inline constexpr std::string_view duration_in_secs = "AzIoTHub_FaultOperationDurationInSecs";
inline constexpr std::string_view kill_tcp = "KillTcp";
inline constexpr std::string_view kill_amqp_connection = "KillAmqpConnection";
inline constexpr std::string_view kill_amqp_session = "KillAmqpSession";
inline constexpr std::string_view kill_amqp_cbs_link_req = "KillAmqpCBSLinkReq";
inline constexpr std::string_view kill_amqp_cbs_link_resp = "KillAmqpCBSLinkResp";
inline constexpr std::string_view kill_amqp_d2c_link = "KillAmqpD2CLink";
inline constexpr std::string_view kill_amqp_c2d_link = "KillAmqpC2DLink";
inline constexpr std::string_view kill_amqp_twin_link_req = "KillAmqpTwinLinkReq";
inline constexpr std::string_view kill_amqp_twin_link_resp = "KillAmqpTwinLinkResp";
inline constexpr std::string_view kill_amqp_method_req_link = "KillAmqpMethodReqLink";
inline constexpr std::string_view kill_amqp_method_resp_link = "KillAmqpMethodRespLink";
inline constexpr std::string_view invoke_throttling = "InvokeThrottling";
inline constexpr std::string_view invoke_max_message_quota = "InvokeMaxMessageQuota";
inline constexpr std::string_view invoke_auth_error = "InvokeAuthError";
inline constexpr std::string_view shut_down_amqp = "ShutDownAmqp";
inline constexpr std::string_view shut_down_mqtt = "ShutDownMqtt";
} // namespace fault

// Size limits (doc §3.5, §4.1, DOC-QUOTA).
inline constexpr std::size_t max_d2c_message_size =
    std::size_t{256} * 1024; // 262144, as the hub says
inline constexpr std::size_t max_c2d_message_size = std::size_t{64} * 1024;
// The max-message-size the hub announces on attach (doc §1.4).
inline constexpr std::uint64_t hub_max_message_size = std::uint64_t{1024} * 1024;

// ---- batches (doc §3.3) --------------------------------------------------------------------

// The message-format of a batch transfer (C-SDK AMQP_BATCHING_FORMAT_CODE; TRACE c#1386
// shows 2147563264). The envelope's transfers carry it; amqp::message does not.
inline constexpr std::uint32_t batch_message_format = 0x80013700;

// Bounds of a batch (DOC-QUOTA: 256 KB in total, at most 500 messages).
struct batch_limits {
  std::size_t max_messages = 500;
  std::size_t max_bytes = std::size_t{256} * 1024; // the encoded envelope
};

// Packs messages into a batch envelope: one data section per message, holding that message's
// encoding, as many messages from the front of `messages` as fit in `max_size` bytes of
// envelope (exact encoded sizes) and `max_messages` messages. Sets `envelope` (its other
// sections untouched, its body replaced) and returns how many were packed (at least 1); on
// error the envelope's body is left empty.
// Errors: errc::limit_exceeded (the first message alone does not fit, or max_messages is 0),
// errc::invalid_value (a message that does not encode; `why` says which field).
[[nodiscard]] result<std::size_t> build_batch(std::span<const amqp::message> messages,
                                              std::size_t max_size, amqp::message& envelope,
                                              std::size_t max_messages = 500,
                                              std::string* why = nullptr);

// The encoded size of the data section holding a payload of `n` bytes (3 bytes of
// descriptor, then a vbin8 or vbin32).
[[nodiscard]] constexpr std::size_t data_section_size(std::size_t n) noexcept {
  return 3 + (n <= 255 ? 2 : 5) + n;
}

// Splits a received batch (the whole transfer payload of a message with format
// batch_message_format) into its inner messages. The envelope must be a valid message whose
// body is data sections; each data section must hold exactly one inner message, whose
// sections may come in ANY order (the C SDK writes properties, application-properties,
// message-annotations, data), each at most once (body: data sections, amqp-sequence
// sections, or one amqp-value). Errors (reason in `why`): errc::limit_exceeded (payload above
// limits.max_bytes, more than limits.max_messages), errc::invalid_value (a malformed envelope
// or inner message, a repeated section, a body that is not data sections).
[[nodiscard]] result<std::vector<amqp::message>> split_batch(std::span<const std::byte> payload,
                                                             const batch_limits& limits = {},
                                                             std::string* why = nullptr);

// Decodes one message whose sections may be in any order (each at most once; body sections
// of one kind), as inner batch messages are. The message must also encode again
// (amqp::message::check), so that it can be forwarded. No bytes make the empty message, as
// for amqp::message::decode. Errors: errc::invalid_value.
[[nodiscard]] result<amqp::message> decode_any_order(std::span<const std::byte> bytes,
                                                     std::string* why = nullptr);

// ---- stamping (doc §3.4) -------------------------------------------------------------------

// What the hub stamps on a D2C message. The views must outlive the stamping call (the hub
// stamps every message it ingests: no copy of what its registry and links hold).
struct d2c_stamp {
  device_identity identity;
  std::string_view auth_generation_id; // e.g. "637983364741039849"
  std::string_view auth_method;        // JSON text, see auth_method_json
  amqp::timestamp enqueued_time{};
  std::string_view message_source = message_source::telemetry;
  std::string_view model_id; // the link's com.microsoft:model-id; empty: none
  // The Event Hubs position of the message in its partition (doc §6.6).
  std::int64_t sequence_number = 0;
  std::string offset;
};

// The iothub-connection-auth-method value: `{"scope":"device","type":"sas","issuer":"iothub",
// "acceptingIpFilterRule":null}` (DOC-MSG sample). `scope` is hub, device or module; `type`
// symkey, sas or x509 (written as given, JSON-escaped).
[[nodiscard]] std::string auth_method_json(std::string_view scope, std::string_view type);

// Stamps the hub's annotations on `m`, overwriting any a device supplied (DOC-MSG: these
// "anti-spoofing properties" are always the hub's): iothub-connection-device-id,
// -module-id (removed for a device), -auth-generation-id, -auth-method, iothub-enqueuedtime,
// iothub-message-source, dt-dataschema (removed when there is no model id),
// x-opt-sequence-number (long), x-opt-offset (string), x-opt-enqueued-time (timestamp).
void stamp_d2c(amqp::message& m, const d2c_stamp& stamp);
// The same stamp on a decoded message, appended to `out` as its encoding: the message
// annotations are those stamp_d2c(message&) leaves (a device's entries in their order, the
// hub's values in place of any it supplied, the hub's other keys after them); every other
// section is its original bytes. No decoded copy of the message is made, as the hub's ingest
// needs. Errors: those of amqp::encode_append (a device's annotation that cannot be encoded
// again).
[[nodiscard]] result<void> stamp_d2c(const message_view& m, const d2c_stamp& stamp,
                                     std::vector<std::byte>& out);

} // namespace amqp::iothub
