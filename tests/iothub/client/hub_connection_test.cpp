// hub_connection against the real iothub-emulator program: CBS put-token before the links,
// renewal, many identities with isolated failures, SASL PLAIN, reconnect after the emulator
// is killed and restarted, giving up; endpoint_from for each kind of connection string.
#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include <asio/io_context.hpp>
#include <doctest/doctest.h>

#include "amqp/error.hpp"
#include "amqp/iothub/address.hpp"
#include "amqp/iothub/hub_connection.hpp"
#include "iothub/client/client_support.hpp"
#include "iothub/client/emulator_process.hpp"

using namespace amqp;
using namespace amqp::iothub;
using namespace std::chrono_literals;

namespace {

using test::run_until;

hub_endpoint device_endpoint(const test::emulator_process& emu, const std::string& id,
                             hub_protocol p = hub_protocol::amqps) {
  return test::endpoint(emu, emu.devices.at(id), p);
}

struct connected {
  std::optional<std::error_code> ec;
  hub_connection conn;
};

connected connect(asio::io_context& io, hub_connection_options o, std::vector<token_source> ids) {
  connected c;
  hub_connection::async_connect(io, std::move(o), std::move(ids),
                                [&](std::error_code ec, hub_connection h) {
                                  c.ec = ec;
                                  c.conn = std::move(h);
                                });
  REQUIRE(run_until(
      io, [&] { return c.ec.has_value(); }, 30s));
  return c;
}

// The telemetry sender of `device` on `conn`, attached.
transport::sender open_telemetry(asio::io_context& io, hub_connection& conn,
                                 const std::string& device) {
  transport::sender s;
  std::optional<std::error_code> opened;
  conn.client().async_open_sender(telemetry_address({device, {}}), {},
                                  [&](std::error_code ec, transport::sender sn) {
                                    opened = ec;
                                    s = std::move(sn);
                                  });
  REQUIRE(run_until(io, [&] { return opened.has_value(); }));
  REQUIRE_MESSAGE(!*opened, conn.client().last_error());
  return s;
}

// Sends one telemetry message as `device` on `conn` and returns its outcome.
transport::delivery_outcome send_telemetry(asio::io_context& io, hub_connection& conn,
                                           const std::string& device, std::string_view text) {
  auto s = open_telemetry(io, conn, device);
  std::optional<transport::delivery_outcome> out;
  s.async_send(amqp::message(text), [&](std::error_code ec, transport::delivery_outcome o) {
    CHECK_FALSE(ec);
    out = o;
  });
  REQUIRE(run_until(io, [&] { return out.has_value(); }));
  return *out;
}

} // namespace

TEST_CASE("iothub client: endpoint_from reads each kind of connection string") {
  std::string why;
  auto d = endpoint_from("HostName=h1.azure-devices.net;DeviceId=d1;SharedAccessKey=AAAA;"
                         "GatewayHostName=localhost:1234",
                         hub_protocol::amqps, &why);
  REQUIRE_MESSAGE(d, why);
  CHECK(d->kind == connection_string_kind::device);
  CHECK(d->options.host == "localhost:1234");               // dialed
  CHECK(d->options.virtual_host == "h1.azure-devices.net"); // the open's hostname
  CHECK(d->options.sasl_user == "d1@sas.h1");
  REQUIRE(d->identity);
  CHECK(d->identity->audience() == "h1.azure-devices.net/devices/d1");
  CHECK(d->identity->renewable());

  auto m =
      endpoint_from("HostName=h1.azure-devices.net;DeviceId=d1;ModuleId=m1;SharedAccessKey=AAAA");
  REQUIRE(m);
  CHECK(m->identity->audience() == "h1.azure-devices.net/devices/d1/modules/m1");
  CHECK(m->options.host == "h1.azure-devices.net");

  auto s = endpoint_from(
      "HostName=h1.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey=AAAA",
      hub_protocol::amqp_websockets);
  REQUIRE(s);
  CHECK(s->kind == connection_string_kind::service);
  CHECK(s->identity->audience() == "h1.azure-devices.net");
  CHECK(s->options.sasl_user == "service@sas.root.h1");
  CHECK(s->options.websocket_path == "/$iothub/websocket");

  auto e = endpoint_from("Endpoint=sb://localhost:5671/;SharedAccessKeyName=service;"
                         "SharedAccessKey=AAAA;EntityPath=h1");
  REQUIRE(e);
  CHECK(e->kind == connection_string_kind::event_hubs);
  CHECK(e->options.host == "localhost:5671");
  CHECK(e->identity->audience() == "sb://localhost/h1");
  CHECK(e->options.websocket_path == "/$servicebus/websocket");

  auto x = endpoint_from("HostName=h1.azure-devices.net;DeviceId=d1;x509=true");
  REQUIRE(x);
  CHECK(x->options.auth == hub_auth::x509);
  CHECK_FALSE(x->identity);

  // A given token: its audience is its sr, decoded; it is not renewed; expired, it fails.
  auto made = make_sas_token("h1.azure-devices.net/devices/d1", "AAAA", 100);
  REQUIRE(made);
  auto t =
      endpoint_from("HostName=h1.azure-devices.net;DeviceId=d1;SharedAccessSignature=" + *made);
  REQUIRE_MESSAGE(t, "");
  CHECK(t->identity->audience() == "h1.azure-devices.net/devices/d1");
  CHECK_FALSE(t->identity->renewable());
  CHECK(t->identity->make(99));
  CHECK(t->identity->make(100).error() == make_error_code(iothub::errc::token_expired));

  CHECK_FALSE(
      endpoint_from("HostName=h1.azure-devices.net;DeviceId=d1", hub_protocol::amqps, &why));
  CHECK(why.find("SharedAccessKey") != std::string::npos);
}

TEST_CASE("iothub client: CBS put-token before the links; a wrong key is unauthorized") {
  test::emulator_process emu({.devices = {"dev-1"}});
  asio::io_context io;
  auto ep = device_endpoint(emu, "dev-1");
  auto c = connect(io, ep.options, {*ep.identity});
  REQUIRE_MESSAGE(!*c.ec, c.conn.last_error());
  CHECK(c.conn.tokens_put() == 1);
  CHECK(send_telemetry(io, c.conn, "dev-1", "hello").state == state_kind::accepted);

  // The same device with another key: the hub answers 401, the connect fails, not retried.
  auto bad =
      token_source::from_key(ep.identity->audience(), "c2VjcmV0LWtleS10aGF0LWlzLXdyb25nIQ==");
  auto r = connect(io, ep.options, {bad});
  CHECK(*r.ec == make_error_code(amqp::errc::unauthorized));
  CHECK(r.conn.last_error().find("401") != std::string::npos);
  bool closed = false;
  c.conn.async_close([&](std::error_code) { closed = true; });
  run_until(io, [&] { return closed; });
}

TEST_CASE("iothub client: tokens renewed on the same links before they expire") {
  // Tokens of 3 s, renewed at the default 75% of their life; the emulator allows no grace:
  // without the renewals the hub would detach the link after 3 s. (The renewal is timed on
  // the life left to the millisecond: timed on whole seconds, it came after the expiry.)
  test::emulator_process emu({.devices = {"dev-1"}, .args = {"--token-grace", "0"}});
  asio::io_context io;
  auto ep = device_endpoint(emu, "dev-1");
  auto source =
      token_source::from_key(ep.identity->audience(), ep.parsed.shared_access_key, {}, 3s);
  auto c = connect(io, ep.options, {source});
  REQUIRE_MESSAGE(!*c.ec, c.conn.last_error());
  std::vector<std::error_code> identity_errors;
  c.conn.on_identity_error(
      [&](const std::string&, std::error_code ec) { identity_errors.push_back(ec); });
  auto s = open_telemetry(io, c.conn, "dev-1");
  // Eight seconds of sends, one every 250 ms: every one accepted.
  // (A loaded machine makes fewer turns: every one sent is waited for.)
  std::size_t sent = 0;
  std::size_t accepted = 0;
  std::size_t failed = 0;
  const auto end = std::chrono::steady_clock::now() + 8s;
  while (std::chrono::steady_clock::now() < end) {
    ++sent;
    s.async_send(amqp::message("tick"), [&](std::error_code ec, transport::delivery_outcome o) {
      (!ec && o.state == state_kind::accepted ? accepted : failed) += 1;
    });
    io.run_for(250ms);
  }
  REQUIRE(run_until(io, [&] { return accepted + failed == sent; }));
  CHECK(sent >= 16);
  CHECK(failed == 0);
  CHECK(accepted == sent);
  // 1 + one renewal per 1.5 to 2.25 s: a token's expiry is in whole seconds, so its life
  // left is 2 to 3 s, and 75% of that. Eight seconds hold three renewals at least.
  CHECK(c.conn.tokens_put() >= 4);
  CHECK(identity_errors.empty());
  CHECK(c.conn.reconnects() == 0);
}

TEST_CASE("iothub client: many devices on one connection, a refused one isolated") {
  test::emulator_process emu({.devices = {"dev-1", "dev-2", "dev-3"}});
  asio::io_context io;
  auto e1 = device_endpoint(emu, "dev-1");
  auto e2 = device_endpoint(emu, "dev-2");
  auto e3 = device_endpoint(emu, "dev-3");
  auto c = connect(io, e1.options, {*e1.identity});
  REQUIRE_MESSAGE(!*c.ec, c.conn.last_error());
  std::optional<std::error_code> added2;
  std::optional<std::error_code> added3;
  c.conn.async_add_identity(*e2.identity, [&](std::error_code ec) { added2 = ec; });
  // dev-3 with dev-1's key: refused, the others unaffected.
  c.conn.async_add_identity(
      token_source::from_key(e3.identity->audience(), e1.parsed.shared_access_key),
      [&](std::error_code ec) { added3 = ec; });
  REQUIRE(run_until(io, [&] { return added2 && added3; }));
  CHECK_FALSE(*added2);
  CHECK(*added3 == make_error_code(amqp::errc::unauthorized));
  CHECK(c.conn.tokens_put() == 2);
  CHECK(send_telemetry(io, c.conn, "dev-1", "one").state == state_kind::accepted);
  CHECK(send_telemetry(io, c.conn, "dev-2", "two").state == state_kind::accepted);
  // dev-3 has no token on this connection: the hub refuses its link.
  std::optional<std::error_code> opened;
  c.conn.client().async_open_sender(telemetry_address({"dev-3", {}}), {},
                                    [&](std::error_code ec, transport::sender) { opened = ec; });
  REQUIRE(run_until(io, [&] { return opened.has_value(); }));
  CHECK(*opened);
  CHECK(send_telemetry(io, c.conn, "dev-1", "still").state == state_kind::accepted);
}

TEST_CASE("iothub client: SASL PLAIN with a SAS token as the password") {
  test::emulator_process emu({.devices = {"dev-1"}});
  asio::io_context io;
  auto ep = device_endpoint(emu, "dev-1");
  ep.options.auth = hub_auth::sasl_plain;
  auto c = connect(io, ep.options, {*ep.identity});
  REQUIRE_MESSAGE(!*c.ec, c.conn.last_error());
  CHECK(c.conn.tokens_put() == 0); // no CBS
  CHECK(send_telemetry(io, c.conn, "dev-1", "plain").state == state_kind::accepted);
  // A wrong key: the login is refused.
  auto bad =
      token_source::from_key(ep.identity->audience(), "c2VjcmV0LWtleS10aGF0LWlzLXdyb25nIQ==");
  auto r = connect(io, ep.options, {bad});
  CHECK(*r.ec == make_error_code(amqp::errc::unauthorized));
}

TEST_CASE("iothub client: the emulator killed and restarted: tokens put again, links back") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("hub-conn-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  test::emulator_process emu({.devices = {"dev-1"}, .state = dir.string()});
  asio::io_context io;
  auto ep = device_endpoint(emu, "dev-1");
  ep.options.reconnect.initial_delay = 100ms;
  ep.options.reconnect.max_delay = 500ms;
  auto c = connect(io, ep.options, {*ep.identity});
  REQUIRE_MESSAGE(!*c.ec, c.conn.last_error());
  auto s = open_telemetry(io, c.conn, "dev-1");
  emu.kill();
  // Sent while the hub is down: waits, then goes on the new connection after the new put.
  std::optional<transport::delivery_outcome> out;
  s.async_send(amqp::message("after"), [&](std::error_code ec, transport::delivery_outcome o) {
    CHECK_FALSE(ec);
    out = o;
  });
  io.run_for(300ms);
  CHECK_FALSE(out);
  emu.start();
  REQUIRE(run_until(
      io, [&] { return out.has_value(); }, 30s));
  CHECK(out->state == state_kind::accepted);
  CHECK(c.conn.reconnects() >= 1);
  CHECK(c.conn.tokens_put() >= 2);
  emu.stop(SIGTERM);
  std::filesystem::remove_all(dir);
}

TEST_CASE("iothub client: reconnect gives up after give_up_after") {
  test::emulator_process emu({.devices = {"dev-1"}});
  asio::io_context io;
  auto ep = device_endpoint(emu, "dev-1");
  ep.options.reconnect.initial_delay = 50ms;
  ep.options.reconnect.max_delay = 200ms;
  ep.options.reconnect.give_up_after = 1s;
  auto c = connect(io, ep.options, {*ep.identity});
  REQUIRE_MESSAGE(!*c.ec, c.conn.last_error());
  auto s = open_telemetry(io, c.conn, "dev-1");
  emu.kill();
  std::optional<std::error_code> failed;
  s.async_send(amqp::message("lost"),
               [&](std::error_code ec, transport::delivery_outcome) { failed = ec; });
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(run_until(
      io, [&] { return failed.has_value(); }, 20s));
  CHECK(*failed);
  CHECK(std::chrono::steady_clock::now() - t0 < 10s);
}
