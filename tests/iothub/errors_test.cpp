// Tests of the layer's error codes and the hub's texts (iothub/src/errors.cpp).
#include <string>

#include <doctest/doctest.h>

#include "amqp/iothub/errors.hpp"

using namespace amqp::iothub;

TEST_CASE("errc: a category of its own, with a message for every code") {
  const std::error_code ec = errc::signature_mismatch;
  CHECK(ec.category().name() == std::string("amqp.iothub"));
  CHECK(ec != amqp::make_error_code(amqp::errc::decode_error));
  for (int e = 1; e <= static_cast<int>(errc::token_expired); ++e) {
    CAPTURE(e);
    CHECK(make_error_code(static_cast<errc>(e)).message().find("unknown") == std::string::npos);
  }
  CHECK(make_error_code(static_cast<errc>(0)).message() == "unknown amqp.iothub error");
}

TEST_CASE("message_size_description: the hub's exact text (TRACE azure-iot-sdk-c#2233)") {
  CHECK(message_size_description(349372, 262144) ==
        "Message size is 349372 bytes which is greater than the max size 262144 bytes allowed.");
}

TEST_CASE("CBS status codes: success range and the conditions MS.Amqp maps failures to") {
  CHECK(is_success_status(cbs_status::ok));
  CHECK(is_success_status(cbs_status::accepted));
  CHECK(is_success_status(299));
  CHECK_FALSE(is_success_status(199));
  CHECK_FALSE(is_success_status(cbs_status::unauthorized));
  CHECK(condition_of_status(400) == amqp::symbol::invalid_field);
  CHECK(condition_of_status(401) == amqp::symbol::unauthorized_access);
  CHECK(condition_of_status(403) == amqp::symbol::transfer_limit_exceeded);
  CHECK(condition_of_status(404) == amqp::symbol::not_found);
  CHECK(condition_of_status(500) == amqp::symbol::internal_error);
  CHECK(condition_of_status(418) == amqp::symbol::internal_error);
}

TEST_CASE("condition symbols and descriptions: the strings of the protocol reference") {
  CHECK(condition::device_container_throttled == "com.microsoft:device-container-throttled");
  CHECK(condition::message_lock_lost == "com.microsoft:message-lock-lost");
  CHECK(error_info::tracking_id == "com.microsoft:tracking-id");
  CHECK(error_info::is_filtered == "com.microsoft:is-filtered");
  CHECK(description::token_invalid == "Token Invalid.");
  CHECK(description::invalid_signature ==
        "The specified SAS token has an invalid signature. It does not match either the "
        "primary or secondary key.");
}
