// The iothub-emulator program's pure parts (listen addresses, the devices file, the
// connection strings the SDKs are given) and its certificates (made with libcrypto).
#include <filesystem>
#include <fstream>
#include <sstream>

#include <doctest/doctest.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "amqp/iothub/connection_string.hpp"
#include "emulator/certs.hpp"
#include "emulator/program.hpp"

using namespace amqp;
using namespace amqp::iothub;
using namespace amqp::iothub::emulator;
namespace fs = std::filesystem;

namespace {

connection_strings_input input(std::uint16_t port) {
  connection_strings_input in;
  in.hub_name = "sdkhub";
  in.host = "localhost";
  in.amqps_port = port;
  in.service_policy = "service";
  in.service_key = "c2VydmljZS1rZXktMDEyMzQ1Njc4OWFiY2RlZjAxMjM=";
  in.device_keys = {{"dev-1", "ZGV2MS1rZXktMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY="}};
  in.ca_path = "/state/ca.pem";
  return in;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

struct temp_dir {
  temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "emulator-certs-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  std::string path;
};

X509* read_cert(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  REQUIRE(f != nullptr);
  X509* c = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  REQUIRE(c != nullptr);
  return c;
}

// Verifies `leaf` against the CA file as a TLS client would, for `host`.
bool verifies(const std::string& ca_file, const std::string& leaf_file, const std::string& host) {
  X509_STORE* st = X509_STORE_new();
  X509_STORE_load_file(st, ca_file.c_str());
  X509* leaf = read_cert(leaf_file);
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, st, leaf, nullptr);
  X509_VERIFY_PARAM* p = X509_STORE_CTX_get0_param(ctx);
  X509_VERIFY_PARAM_set_purpose(p, X509_PURPOSE_SSL_SERVER);
  if (host.find(':') != std::string::npos || std::isdigit(static_cast<unsigned char>(host[0]))) {
    X509_VERIFY_PARAM_set1_ip_asc(p, host.c_str());
  } else {
    X509_VERIFY_PARAM_set1_host(p, host.c_str(), host.size());
  }
  const bool ok = X509_verify_cert(ctx) == 1;
  X509_STORE_CTX_free(ctx);
  X509_free(leaf);
  X509_STORE_free(st);
  return ok;
}

} // namespace

TEST_CASE("program: listen addresses") {
  auto a = parse_listen_address("127.0.0.1:5671");
  REQUIRE(a);
  CHECK(a->host == "127.0.0.1");
  CHECK(a->port == 5671);
  auto b = parse_listen_address("[::1]:0");
  REQUIRE(b);
  CHECK(b->host == "::1");
  CHECK(b->port == 0);
  CHECK(listen_url("wss", *b, "/$iothub/websocket") == "wss://[::1]:0/$iothub/websocket");
  CHECK(listen_url("amqps", *a) == "amqps://127.0.0.1:5671");
  for (const char* bad : {"127.0.0.1", "127.0.0.1:", ":5671", "127.0.0.1:65536", "::1:5671",
                          "[::1]5671", "host:12x"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_listen_address(bad));
  }
}

TEST_CASE("program: the devices file: one id a line, blanks and comments skipped") {
  CHECK(parse_devices_file("dev-1\n\n# a comment\n  dev-2 \r\ndev-3") ==
        std::vector<std::string>{"dev-1", "dev-2", "dev-3"});
  CHECK(parse_devices_file("").empty());
}

TEST_CASE("program: --module DEVICE/MODULE") {
  auto m = parse_module_name("edge-1/filter");
  REQUIRE(m);
  CHECK(m->device_id == "edge-1");
  CHECK(m->module_id == "filter");
  for (const char* bad : {"edge-1", "/filter", "edge-1/", "a/b/c", ""}) {
    CAPTURE(bad);
    CHECK(parse_module_name(bad).error() == amqp::errc::invalid_argument);
  }
}

TEST_CASE("program: connection strings the SDKs use unchanged") {
  SUBCASE("AMQPS on a port of its own: every string carries it") {
    const auto in = input(43879);
    const std::string dev = device_connection_string(in, "dev-1", in.device_keys.at("dev-1"));
    // The device SDKs sign for HostName (the hub name is its first label) and dial
    // GatewayHostName with its port.
    CHECK(dev == "HostName=sdkhub.azure-devices.net;DeviceId=dev-1;SharedAccessKey=" +
                     in.device_keys.at("dev-1") + ";GatewayHostName=localhost:43879");
    auto d = parse_connection_string(dev);
    REQUIRE(d);
    CHECK(*validate(*d) == connection_string_kind::device);
    // The service SDK dials HostName, port included.
    const std::string svc = service_connection_string(in);
    CHECK(svc ==
          "HostName=localhost:43879;SharedAccessKeyName=service;SharedAccessKey=" + in.service_key);
    auto s = parse_connection_string(svc);
    REQUIRE(s);
    CHECK(*validate(*s) == connection_string_kind::service);
    const std::string eh = event_hubs_connection_string(in);
    CHECK(eh == "Endpoint=sb://localhost:43879/;SharedAccessKeyName=service;SharedAccessKey=" +
                    in.service_key + ";EntityPath=sdkhub");
    auto e = parse_connection_string(eh);
    REQUIRE(e);
    CHECK(*validate(*e) == connection_string_kind::event_hubs);
  }
  SUBCASE("AMQPS on 5671: no port, so the device SDK's WebSocket transport can append :443") {
    const auto in = input(5671);
    CHECK(device_connection_string(in, "dev-1", "k").ends_with(";GatewayHostName=localhost"));
    CHECK(service_connection_string(in).starts_with("HostName=localhost;"));
    CHECK(event_hubs_connection_string(in).starts_with("Endpoint=sb://localhost/;"));
  }
  SUBCASE("modules and X.509 devices: the SDKs' forms, which our parser validates") {
    const auto in = input(43879);
    const std::string mod = module_connection_string(in, "edge-1", "filter", "bW9kLWtleQ==");
    CHECK(mod == "HostName=sdkhub.azure-devices.net;DeviceId=edge-1;ModuleId=filter;"
                 "SharedAccessKey=bW9kLWtleQ==;GatewayHostName=localhost:43879");
    auto m = parse_connection_string(mod);
    REQUIRE(m);
    CHECK(*validate(*m) == connection_string_kind::module);
    CHECK(m->module_id == "filter");
    const std::string x = x509_device_connection_string(in, "cert-1");
    CHECK(x == "HostName=sdkhub.azure-devices.net;DeviceId=cert-1;x509=true;"
               "GatewayHostName=localhost:43879");
    auto c = parse_connection_string(x);
    REQUIRE(c);
    CHECK(*validate(*c) == connection_string_kind::device);
    CHECK(c->x509);
    CHECK(c->shared_access_key.empty());
  }
  SUBCASE("connection-strings.json, as the scripts read it") {
    auto in = input(5672);
    in.module_keys = {{{"dev-1", "m1"}, "bTEta2V5"}};
    in.x509_devices = {"cert-1"};
    const auto json = connection_strings_json(in);
    CHECK(json.find("\"modules\": {\n    \"dev-1/m1\": \"HostName=sdkhub.azure-devices.net;"
                    "DeviceId=dev-1;ModuleId=m1;SharedAccessKey=bTEta2V5;") != std::string::npos);
    CHECK(json.find("\"x509_devices\": {\n    \"cert-1\": \"HostName=sdkhub.azure-devices.net;"
                    "DeviceId=cert-1;x509=true;GatewayHostName=localhost:5672\"") !=
          std::string::npos);
    // None of either: empty objects, so that readers need not test for the keys.
    const auto bare = connection_strings_json(input(5672));
    CHECK(bare.find("\"modules\": {}") != std::string::npos);
    CHECK(bare.find("\"x509_devices\": {}") != std::string::npos);
    CHECK(json.find("\"hostname\": \"sdkhub.azure-devices.net\"") != std::string::npos);
    CHECK(json.find("\"service\": \"HostName=localhost:5672;") != std::string::npos);
    CHECK(json.find("\"eventhub\": \"Endpoint=sb://localhost:5672/;") != std::string::npos);
    CHECK(json.find("\"dev-1\": \"HostName=sdkhub.azure-devices.net;DeviceId=dev-1;") !=
          std::string::npos);
    CHECK(json.find("\"ca\": \"/state/ca.pem\"") != std::string::npos);
    CHECK(json.ends_with("}\n"));
  }
}

TEST_CASE("certificates: a CA and a server certificate for the hub's names, kept while they "
          "fit") {
  temp_dir dir;
  std::string why;
  const std::vector<std::string> names{"localhost", "sdkhub.azure-devices.net"};
  const std::vector<std::string> ips{"127.0.0.1", "::1"};
  auto first = ensure_certificates(dir.path, names, ips, why);
  REQUIRE_MESSAGE(first, why);
  CHECK(first->made_ca);
  CHECK(first->made_server);
  const auto files = certificate_paths(dir.path);
  for (const auto& host : {"localhost", "sdkhub.azure-devices.net", "127.0.0.1", "::1"}) {
    CAPTURE(host);
    CHECK(verifies(files.ca_cert, files.server_cert, host));
  }
  CHECK_FALSE(verifies(files.ca_cert, files.server_cert, "example.com"));
  // Keys are private to the owner.
  CHECK((fs::status(files.ca_key).permissions() & fs::perms::group_read) == fs::perms::none);
  CHECK((fs::status(files.server_key).permissions() & fs::perms::others_read) == fs::perms::none);
  // An EC P-256 key, TLS 1.2 and 1.3 clients take it.
  X509* cert = read_cert(files.server_cert);
  EVP_PKEY* key = X509_get0_pubkey(cert);
  CHECK(EVP_PKEY_get_base_id(key) == EVP_PKEY_EC);
  CHECK(EVP_PKEY_get_bits(key) == 256);
  X509_free(cert);

  // A second start keeps both.
  const std::string ca_before = slurp(files.ca_cert);
  const std::string server_before = slurp(files.server_cert);
  auto second = ensure_certificates(dir.path, names, ips, why);
  REQUIRE(second);
  CHECK_FALSE(second->made_ca);
  CHECK_FALSE(second->made_server);
  CHECK(slurp(files.server_cert) == server_before);

  // A new host name: a new server certificate from the same CA (clients keep trusting it).
  auto third = ensure_certificates(dir.path, {"localhost", "hub.example"}, ips, why);
  REQUIRE(third);
  CHECK_FALSE(third->made_ca);
  CHECK(third->made_server);
  CHECK(slurp(files.ca_cert) == ca_before);
  CHECK(verifies(files.ca_cert, files.server_cert, "hub.example"));

  // A damaged server key: made again.
  std::ofstream(files.server_key, std::ios::trunc) << "junk";
  auto fourth = ensure_certificates(dir.path, {"localhost", "hub.example"}, ips, why);
  REQUIRE(fourth);
  CHECK(fourth->made_server);
}

TEST_CASE("certificates: names that are not host names or addresses are refused") {
  temp_dir dir;
  std::string why;
  CHECK(ensure_certificates(dir.path, {"local host"}, {}, why).error() ==
        amqp::errc::invalid_argument);
  CHECK(why == "not a host name: local host");
  CHECK(ensure_certificates(dir.path, {"localhost"}, {"300.1.1.1"}, why).error() ==
        amqp::errc::invalid_argument);
  CHECK(why == "not an IP address: 300.1.1.1");
  CHECK_FALSE(fs::exists(certificate_paths(dir.path).ca_cert));
}
