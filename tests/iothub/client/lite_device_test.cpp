// lite_device over tls_channel against the real iothub-emulator program: CBS login, telemetry
// with outcomes (the hub's 256 KB rule), token renewal, a refused key, certificate
// verification, and a run on a fixed arena with no heap behind it.
#include <array>
#include <chrono>
#include <memory_resource>
#include <string>

#include <doctest/doctest.h>

#include "amqp/error.hpp"
#include "amqp/iothub/connection_string.hpp"
#include "amqp/iothub/lite_device.hpp"
#include "amqp/iothub/tls_channel.hpp"
#include "iothub/client/emulator_process.hpp"

using namespace amqp;
using namespace amqp::iothub;

namespace {

std::uint64_t unix_now() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

struct device_setup {
  explicit device_setup(const test::emulator_process& emu, const std::string& id = "dev-1") {
    auto parsed = parse_connection_string(emu.devices.at(id));
    REQUIRE(parsed);
    cs = *parsed;
    channel_options.host = "localhost";
    channel_options.port = emu.amqps_port;
    channel_options.ca_file = emu.ca;
    options.hub_host = cs.host_name;
    options.identity = {cs.device_id, {}};
    options.key = cs.shared_access_key;
  }
  connection_string cs;
  tls_channel_options channel_options;
  lite_device_options options;
};

} // namespace

TEST_CASE("iothub lite device: CBS login, telemetry outcomes, renewal, close") {
  test::emulator_process emu({.devices = {"dev-1"}});
  device_setup s(emu);
  std::string why;
  auto ch = tls_channel::connect(s.channel_options, &why);
  REQUIRE_MESSAGE(ch, why);
  auto d = lite_device::connect(**ch, s.options, unix_now(), &why);
  REQUIRE_MESSAGE(d, why);
  CHECK(d->token_expiry() > unix_now());
  const std::string body(1024, 'x');
  const value data[1] = {
      value(binary_view(reinterpret_cast<const std::byte*>(body.data()), body.size()))};
  message_parts m;
  m.properties = properties{};
  m.properties->message_id = value(std::string_view("m-1"));
  m.body = body_kind::data;
  m.body_sections = data;
  for (int i = 0; i < 3; ++i) {
    auto r = d->send_event(m, &why);
    REQUIRE_MESSAGE(r, why);
    CHECK(*r == state_kind::accepted);
  }
  // Above 256 KB: the hub's rejected outcome, its condition in `why`.
  const std::string big(256 * 1024 + 1, 'y');
  const value big_data[1] = {
      value(binary_view(reinterpret_cast<const std::byte*>(big.data()), big.size()))};
  m.body_sections = big_data;
  auto r = d->send_event(m, &why);
  REQUIRE(r);
  CHECK(*r == state_kind::rejected);
  CHECK(why.find("amqp:link:message-size-exceeded") != std::string::npos);
  // Renewal on the same links; sends go on.
  const auto before = d->token_expiry();
  REQUIRE(d->renew_token(unix_now() + 10, &why));
  CHECK(d->token_expiry() > before);
  m.body_sections = data;
  auto again = d->send_event(m, &why);
  REQUIRE_MESSAGE(again, why);
  CHECK(*again == state_kind::accepted);
  CHECK(d->close());
  CHECK(d->send_event(m, &why).error() == make_error_code(amqp::errc::invalid_state));
  CHECK((*ch)->bytes_written() > 0);
  CHECK((*ch)->bytes_read() > 0);
}

TEST_CASE("iothub lite device: a wrong key is refused with the hub's status") {
  test::emulator_process emu({.devices = {"dev-1"}});
  device_setup s(emu);
  s.options.key = "c2VjcmV0LWtleS10aGF0LWlzLXdyb25nIQ==";
  std::string why;
  auto ch = tls_channel::connect(s.channel_options, &why);
  REQUIRE_MESSAGE(ch, why);
  auto d = lite_device::connect(**ch, s.options, unix_now(), &why);
  REQUIRE_FALSE(d);
  CHECK(d.error() == make_error_code(amqp::errc::unauthorized));
  CHECK(why.find("401") != std::string::npos);
}

TEST_CASE("iothub lite device: the certificate must verify and name the host") {
  test::emulator_process emu({.devices = {"dev-1"}});
  device_setup s(emu);
  std::string why;
  s.channel_options.ca_file = {}; // the system's store does not trust the emulator's CA
  auto ch = tls_channel::connect(s.channel_options, &why);
  REQUIRE_FALSE(ch);
  CHECK(ch.error() == make_error_code(amqp::errc::unauthorized));
  s.channel_options.ca_file = emu.ca;
  s.channel_options.server_name = "not-the-emulator.example";
  ch = tls_channel::connect(s.channel_options, &why);
  REQUIRE_FALSE(ch);
  CHECK(ch.error() == make_error_code(amqp::errc::unauthorized));
}

TEST_CASE("iothub lite device: runs on a fixed arena, no heap behind it") {
  test::emulator_process emu({.devices = {"dev-1"}});
  device_setup s(emu);
  static std::array<std::byte, 64 * 1024> buffer;
  std::pmr::monotonic_buffer_resource arena(buffer.data(), buffer.size(),
                                            std::pmr::null_memory_resource());
  s.options.memory = &arena;
  s.options.max_frame_size = 4096;
  std::string why;
  auto ch = tls_channel::connect(s.channel_options, &why);
  REQUIRE_MESSAGE(ch, why);
  auto d = lite_device::connect(**ch, s.options, unix_now(), &why);
  REQUIRE_MESSAGE(d, why);
  const value body[1] = {value(std::string_view("on the arena"))};
  message_parts m;
  m.body = body_kind::amqp_value;
  m.body_sections = body;
  for (int i = 0; i < 20; ++i) {
    auto r = d->send_event(m, &why);
    REQUIRE_MESSAGE(r, why);
    CHECK(*r == state_kind::accepted);
  }
  CHECK(d->close());
}
