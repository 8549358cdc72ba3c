// Identities other than a device with keys, against the real iothub-emulator program: a module
// (--module) with its own connection string and SAS key, alone and on a shared connection;
// an X.509 device (--x509-device, --client-ca) connecting with a TLS client certificate made
// here with libcrypto, no SASL and no token (device_client) or SASL EXTERNAL (lite_device);
// the certificates the hub must refuse.
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <asio/io_context.hpp>
#include <doctest/doctest.h>

#include "amqp/error.hpp"
#include "amqp/iothub/address.hpp"
#include "amqp/iothub/device_client.hpp"
#include "amqp/iothub/hub_connection.hpp"
#include "amqp/iothub/lite_device.hpp"
#include "amqp/iothub/messages.hpp"
#include "amqp/iothub/service_client.hpp"
#include "amqp/iothub/telemetry_reader.hpp"
#include "amqp/iothub/tls_channel.hpp"
#include "iothub/client/client_support.hpp"
#include "iothub/client/emulator_process.hpp"
#include "support/test_certs.hpp"

using namespace amqp;
using namespace amqp::iothub;
using namespace std::chrono_literals;

namespace {

using test::connect_device;
using test::endpoint;
using test::opened;
using test::run_until;

std::optional<event_outcome> send(asio::io_context& io, device_client& c, const amqp::message& m) {
  std::optional<std::error_code> ec;
  event_outcome out;
  c.async_send_event(m, [&](std::error_code e, event_outcome o) {
    ec = e;
    out = std::move(o);
  });
  REQUIRE(run_until(io, [&] { return ec.has_value(); }));
  if (*ec) {
    return std::nullopt;
  }
  return out;
}

void close_client(asio::io_context& io, device_client& c) {
  std::optional<std::error_code> closed;
  c.async_close([&](std::error_code ec) { closed = ec; });
  REQUIRE(run_until(io, [&] { return closed.has_value(); }));
  CHECK_FALSE(*closed);
}

amqp::message telemetry(const std::string& id) {
  amqp::message m("{\"id\":\"" + id + "\"}");
  m.properties.message_id = owned_value(id);
  m.properties.content_type = "application/json";
  m.application_properties.set("source", owned_value(id));
  return m;
}

template <class Value> std::string string_of(const Value& v) {
  return v && v->get_string() ? std::string(*v->get_string()) : std::string{};
}

std::string annotation_string(const amqp::message& m, std::string_view key) {
  return string_of(m.message_annotations.get(key));
}

std::string message_id(const amqp::message& m) {
  const auto& v = m.properties.message_id.get();
  return v.get_string() ? std::string(*v.get_string()) : std::string{};
}

// Every event of partition 0 (start the emulator with --partitions 1), from the start, until
// `n` have come or `idle` passes without one.
std::vector<telemetry_event> read_events(const test::emulator_process& emu, std::size_t n,
                                         std::chrono::milliseconds idle = 10s) {
  telemetry_reader_options o;
  o.tls.ca_file = emu.ca;
  std::string why;
  auto r = blocking_telemetry_reader::connect(emu.eventhub, o, &why);
  REQUIRE_MESSAGE(r, why);
  REQUIRE(r->open_partition("0", event_position::earliest()));
  std::vector<telemetry_event> out;
  while (out.size() < n) {
    auto e = r->receive(idle);
    if (!e) {
      break;
    }
    out.push_back(std::move(*e));
  }
  CHECK(r->close());
  return out;
}

// A connection string with its SharedAccessKey replaced by `key`.
std::string with_key(const std::string& cs, const std::string& key) {
  const auto at = cs.find(";SharedAccessKey=") + std::string_view(";SharedAccessKey=").size();
  const auto end = cs.find(';', at);
  return cs.substr(0, at) + key + cs.substr(end);
}

} // namespace

TEST_CASE("identities: a module sends telemetry as itself; a module with a wrong key is refused "
          "alone") {
  test::emulator_process emu(
      {.devices = {}, .args = {"--partitions", "1"}, .modules = {"edge-1/filter", "edge-1/other"}});
  REQUIRE(emu.modules.size() == 2);
  REQUIRE(emu.devices.count("edge-1") == 1); // the module's device, registered with it
  asio::io_context io;

  // On a connection of its own, from the module connection string.
  const auto filter = endpoint(emu, emu.modules.at("edge-1/filter"));
  CHECK(filter.kind == connection_string_kind::module);
  auto m = connect_device(io, filter);
  REQUIRE_MESSAGE(!*m.ec, m.client.last_error());
  CHECK(m.client.identity().device_id == "edge-1");
  CHECK(m.client.identity().module_id == "filter");
  CHECK(m.client.connection().tokens_put() == 1);
  auto out = send(io, m.client, telemetry("own-1"));
  REQUIRE(out);
  CHECK(out->state == state_kind::accepted);
  close_client(io, m.client);

  // The same module with another key (the device's): the hub refuses its token.
  auto wrong = connect_device(
      io,
      endpoint(emu, with_key(emu.modules.at("edge-1/filter"),
                             endpoint(emu, emu.devices.at("edge-1")).parsed.shared_access_key)));
  CHECK(*wrong.ec == amqp::errc::unauthorized);
  CHECK_FALSE(wrong.client);
  CHECK(wrong.client.last_error().find("status 401") != std::string::npos);

  // Two modules on one connection: one signs with its own key, the other with the first's
  // key and is refused; the first goes on.
  const auto other = endpoint(emu, emu.modules.at("edge-1/other"));
  hub_endpoint shared = filter;
  shared.identity.reset();
  std::optional<std::error_code> connected;
  hub_connection conn;
  hub_connection::async_connect(io, shared.options, {}, [&](std::error_code ec, hub_connection h) {
    connected = ec;
    conn = std::move(h);
  });
  REQUIRE(run_until(
      io, [&] { return connected.has_value(); }, 30s));
  REQUIRE_MESSAGE(!*connected, conn.last_error());
  auto open = [&](device_identity who, token_source token) {
    opened r;
    device_client::async_open(conn, std::move(who), std::move(token), {},
                              [&](std::error_code ec, device_client c) {
                                r.ec = ec;
                                r.client = std::move(c);
                              });
    REQUIRE(run_until(
        io, [&] { return r.ec.has_value(); }, 30s));
    return r;
  };
  auto f = open({"edge-1", "filter"}, *filter.identity);
  REQUIRE_MESSAGE(!*f.ec, f.client.last_error());
  auto o = open({"edge-1", "other"}, token_source::from_key(other.identity->audience(),
                                                            filter.parsed.shared_access_key));
  CHECK(*o.ec == amqp::errc::unauthorized);
  CHECK_FALSE(o.client);
  CHECK(conn.tokens_put() == 1);
  out = send(io, f.client, telemetry("shared-1"));
  REQUIRE(out);
  CHECK(out->state == state_kind::accepted);
  // The module's token does not open its device's links.
  auto as_device = open({"edge-1", {}}, *filter.identity);
  CHECK(as_device.ec.value());
  CHECK_FALSE(as_device.client);
  CHECK(as_device.client.last_error().find("amqp:unauthorized-access") != std::string::npos);
  out = send(io, f.client, telemetry("shared-2"));
  REQUIRE(out);
  CHECK(out->state == state_kind::accepted);
  close_client(io, f.client);
  std::optional<std::error_code> conn_closed;
  conn.async_close([&](std::error_code ec) { conn_closed = ec; });
  REQUIRE(run_until(io, [&] { return conn_closed.has_value(); }));

  // The reader sees each event with the device and module ids the hub stamped.
  const auto events = read_events(emu, 3);
  REQUIRE(events.size() == 3);
  const std::vector<std::string> ids{"own-1", "shared-1", "shared-2"};
  for (std::size_t i = 0; i < events.size(); ++i) {
    CAPTURE(i);
    const auto& e = events[i];
    CHECK(message_id(e.message) == ids[i]);
    CHECK(string_of(e.message.application_properties.get("source")) == ids[i]);
    CHECK(e.device_id == std::optional<std::string>("edge-1"));
    CHECK(e.module_id == std::optional<std::string>("filter"));
    CHECK(annotation_string(e.message, annotation::connection_device_id) == "edge-1");
    CHECK(annotation_string(e.message, annotation::connection_module_id) == "filter");
    CHECK(annotation_string(e.message, annotation::connection_auth_method) ==
          auth_method_json("module", "sas"));
  }
}

TEST_CASE("identities: an X.509 device: a CA-signed certificate, no SASL, no token; "
          "telemetry and C2D") {
  test::cert_dir dir;
  const test::test_ca ca(dir, "device-ca");
  const test::test_ca other_ca(dir, "other-ca");
  test::emulator_process emu({.devices = {"sas-1"},
                              .args = {"--partitions", "1"},
                              .x509_devices = {"cert-1", "cert-3"},
                              .client_ca = ca.cert_file});
  REQUIRE(emu.x509_devices.size() == 2);
  CHECK(emu.devices.count("cert-1") == 0);
  asio::io_context io;

  auto x509_endpoint = [&](const test::cert_files& files) {
    auto ep = endpoint(emu, emu.x509_devices.at("cert-1"));
    ep.options.tls.cert_file = files.cert_file;
    ep.options.tls.key_file = files.key_file;
    ep.options.reconnect.enabled = false; // a refusal fails the connect, not retried
    ep.options.connect_timeout = 10s;
    return ep;
  };
  const auto ep = x509_endpoint(ca.issue("cert-1"));
  CHECK(ep.options.auth == hub_auth::x509);
  CHECK_FALSE(ep.identity.has_value());
  auto d = connect_device(io, ep);
  REQUIRE_MESSAGE(!*d.ec, d.client.last_error());
  CHECK(d.client.identity().device_id == "cert-1");
  CHECK(d.client.connection().tokens_put() == 0);

  auto out = send(io, d.client, telemetry("x509-1"));
  REQUIRE(out);
  CHECK(out->state == state_kind::accepted);

  // C2D from the service client reaches the device on its certificate.
  {
    std::string why;
    auto svc = blocking_service_client::connect(endpoint(emu, emu.service), {}, &why);
    REQUIRE_MESSAGE(svc, why);
    amqp::message c2d("to cert-1");
    c2d.properties.message_id = owned_value("c2d-1");
    auto sent = svc->send("cert-1", c2d);
    REQUIRE_MESSAGE(sent, svc->last_error());
    CHECK(sent->accepted());
    CHECK(svc->close());
  }
  std::optional<std::error_code> got;
  c2d_message received;
  d.client.async_receive([&](std::error_code ec, c2d_message msg) {
    got = ec;
    received = std::move(msg);
  });
  REQUIRE(run_until(io, [&] { return got.has_value(); }));
  REQUIRE_FALSE(*got);
  auto decoded = received.message();
  REQUIRE(decoded);
  CHECK(decoded->body_text() == "to cert-1");
  CHECK(message_id(*decoded) == "c2d-1");
  CHECK(d.client.complete(received));
  CHECK(d.client.connection().tokens_put() == 0);
  close_client(io, d.client);

  // A certificate of the same CA whose CN is a device not registered: TLS passes, but the
  // certificate is nobody's, and the links of cert-1 are refused.
  auto stranger = connect_device(io, x509_endpoint(ca.issue("cert-2")));
  CHECK(stranger.ec.value());
  CHECK_FALSE(stranger.client);
  CHECK(stranger.client.last_error().find("amqp:unauthorized-access") != std::string::npos);
  // The CN of a device registered with keys: no identity either.
  auto keyed = connect_device(io, x509_endpoint(ca.issue("sas-1")));
  CHECK(keyed.ec.value());
  CHECK_FALSE(keyed.client);
  CHECK(keyed.client.last_error().find("amqp:unauthorized-access") != std::string::npos);
  // The certificate of another X.509 device: it is cert-3, and cert-1's links are not its.
  auto other = connect_device(io, x509_endpoint(ca.issue("cert-3")));
  CHECK(other.ec.value());
  CHECK_FALSE(other.client);
  CHECK(other.client.last_error().find("amqp:unauthorized-access") != std::string::npos);
  // cert-1's name, signed by another CA: refused at TLS.
  auto forged = connect_device(io, x509_endpoint(other_ca.issue("cert-1")));
  CHECK(forged.ec.value());
  CHECK_FALSE(forged.client);
  CHECK(forged.ec->message().find("unknown ca") != std::string::npos);

  // With --client-ca the hub asks for a certificate but needs none: a device with keys
  // goes on as before.
  auto keys = connect_device(io, endpoint(emu, emu.devices.at("sas-1")));
  REQUIRE_MESSAGE(!*keys.ec, keys.client.last_error());
  out = send(io, keys.client, telemetry("sas-1"));
  REQUIRE(out);
  CHECK(out->state == state_kind::accepted);
  close_client(io, keys.client);

  // The telemetry reached the hub as cert-1's, authenticated by X.509 (and sas-1's with its
  // key); nothing else did.
  const auto events = read_events(emu, 3, 3s); // the stored events come at once; no third
  REQUIRE(events.size() == 2);
  CHECK(message_id(events[0].message) == "x509-1");
  CHECK(events[0].device_id == std::optional<std::string>("cert-1"));
  CHECK_FALSE(events[0].module_id.has_value());
  CHECK(annotation_string(events[0].message, annotation::connection_device_id) == "cert-1");
  CHECK(annotation_string(events[0].message, annotation::connection_auth_method) ==
        auth_method_json("device", "x509"));
  CHECK(message_id(events[1].message) == "sas-1");
  CHECK(annotation_string(events[1].message, annotation::connection_auth_method) ==
        auth_method_json("device", "sas"));
}

TEST_CASE("identities: the lite device with X.509: SASL EXTERNAL, no CBS, no token") {
  test::cert_dir dir;
  const test::test_ca ca(dir, "device-ca");
  test::emulator_process emu({.devices = {},
                              .args = {"--partitions", "1"},
                              .x509_devices = {"cert-1"},
                              .client_ca = ca.cert_file});
  auto cs = parse_connection_string(emu.x509_devices.at("cert-1"));
  REQUIRE(cs);
  const auto mine = ca.issue("cert-1");
  const auto stranger = ca.issue("cert-2");
  tls_channel_options co;
  co.host = "localhost";
  co.port = emu.amqps_port;
  co.ca_file = emu.ca;
  co.cert_file = mine.cert_file;
  co.key_file = mine.key_file;
  lite_device_options o;
  o.hub_host = cs->host_name;
  o.identity = {cs->device_id, {}};
  o.x509 = true;
  o.timeout = std::chrono::seconds(10);
  const auto now =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());

  std::string why;
  auto ch = tls_channel::connect(co, &why);
  REQUIRE_MESSAGE(ch, why);
  auto d = lite_device::connect(**ch, o, now, &why);
  REQUIRE_MESSAGE(d, why);
  CHECK(d->token_expiry() == 0);
  const value body[1] = {value(std::string_view("lite x509"))};
  message_parts m;
  m.body = body_kind::amqp_value;
  m.body_sections = body;
  auto out = d->send_event(m, &why);
  REQUIRE_MESSAGE(out, why);
  CHECK(*out == state_kind::accepted);
  CHECK(d->renew_token(now, &why)); // nothing to renew
  out = d->send_event(m, &why);
  REQUIRE_MESSAGE(out, why);
  CHECK(*out == state_kind::accepted);
  CHECK(d->close());

  // The certificate of a device not registered: the hub refuses the SASL EXTERNAL login.
  co.cert_file = stranger.cert_file;
  co.key_file = stranger.key_file;
  ch = tls_channel::connect(co, &why);
  REQUIRE_MESSAGE(ch, why);
  why.clear();
  auto refused = lite_device::connect(**ch, o, now, &why);
  REQUIRE_FALSE(refused);
  CHECK(refused.error() == make_error_code(amqp::errc::unauthorized));
  CHECK_MESSAGE(why.find("SASL") != std::string::npos, why);
  // A key that does not load: refused before any byte is sent.
  co.key_file = co.cert_file;
  ch = tls_channel::connect(co, &why);
  REQUIRE_FALSE(ch);
  CHECK(ch.error() == make_error_code(amqp::errc::invalid_argument));

  const auto events = read_events(emu, 3, 3s); // the stored events come at once; no third
  REQUIRE(events.size() == 2);
  for (const auto& e : events) {
    CHECK(e.device_id == std::optional<std::string>("cert-1"));
    CHECK(annotation_string(e.message, annotation::connection_auth_method) ==
          auth_method_json("device", "x509"));
  }
}
