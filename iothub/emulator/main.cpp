// iothub-emulator: a local Azure IoT Hub (the AMQP surface and the Event Hubs-compatible
// built-in endpoint) for the official SDKs, Python uAMQP and our own clients. The hub
// (hub.hpp) is sans-IO; this program gives it a state directory (SQLite store, CA and server
// certificate, connection-strings.json), listeners (AMQPS, AMQP, WSS) on one thread, the
// system clock and randomness, and signals.
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <openssl/rand.h>

#include "amqp/iothub/errors.hpp"
#include "amqp/transport/listener.hpp"
#include "emulator/certs.hpp"
#include "emulator/hub.hpp"
#include "emulator/program.hpp"
#include "emulator/random.hpp"
#include "emulator/registry.hpp"
#include "emulator/store.hpp"

namespace {

using namespace amqp;
using namespace amqp::iothub::emulator;
namespace fs = std::filesystem;

// Randomness from the operating system, through OpenSSL (keys, GUIDs, container ids).
class os_random final : public random_source {
public:
  void fill(std::span<std::byte> out) override {
    if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size())) !=
        1) {
      std::cerr << "iothub-emulator: the system's random source failed\n";
      std::abort();
    }
  }
};

// The listener's view of the hub. The listeners are bound before the hub exists (the hub
// names their ports in redirects); no connection arrives before io.run(), and until set()
// the handler has no deadline.
class hub_handler final : public transport::server_handler {
public:
  void set(hub& h) noexcept { hub_ = &h; }
  handle on_accept(time_point now, const transport::accepted_peer& p) override {
    peer_info info;
    info.address = p.address;
    info.tls = p.tls;
    info.certificate_subject = p.certificate_subject;
    info.server_name = p.server_name;
    info.websocket_path = p.websocket_path;
    return hub_->add_connection(now, info);
  }
  amqp::connection* engine(handle h) override { return hub_->engine(h); }
  void process(handle h, time_point now) override { hub_->process(h, now); }
  std::vector<handle> take_dirty() override { return hub_->take_dirty(); }
  void on_output_written(handle h) override { hub_->on_output_written(h); }
  void on_closed(handle h) override {
    // hub.hpp: the engine hears the stream is gone, the hub acts on it, then forgets it.
    if (auto* e = hub_->engine(h); e != nullptr) {
      e->on_transport_closed();
      hub_->process(h, std::chrono::steady_clock::now());
    }
    hub_->remove_connection(h);
  }
  std::optional<time_point> next_deadline() override {
    return hub_ != nullptr ? hub_->next_deadline() : std::nullopt;
  }
  void on_deadline(time_point now) override {
    if (hub_ != nullptr) {
      hub_->on_deadline(now);
    }
  }
  std::vector<handle> take_aborted() override {
    return hub_ != nullptr ? hub_->take_aborted() : std::vector<handle>{};
  }

private:
  hub* hub_ = nullptr;
};

struct args {
  std::string state = "./.iothub-emulator";
  std::string hub_name;
  std::string amqps = "127.0.0.1:5671";
  std::string amqp;
  std::string wss = "127.0.0.1:8443";
  std::vector<std::string> devices;
  std::string devices_file;
  std::vector<std::string> modules;      // DEVICE/MODULE
  std::vector<std::string> x509_devices; // ids
  std::uint32_t partitions = 4;
  std::string cert;
  std::string key;
  std::string client_ca;
  std::vector<std::string> hosts;
  std::vector<std::string> consumer_groups;
  bool trace = false;
  bool no_redirect = false;
  double retention_hours = 24;
  double token_grace_s = 0;
  double c2d_lock_s = 60;
  double feedback_window_s = 15;
  std::size_t max_connections = 1000;
};

milliseconds seconds_ms(double s) {
  return milliseconds(static_cast<std::int64_t>(s * 1000.0));
}

bool write_file_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << text;
    if (!f.flush()) {
      return false;
    }
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

// Prints "iothub-emulator: " and the parts, returns the exit status 1.
template <class... Parts> int fail(const Parts&... why) {
  std::cerr << "iothub-emulator: ";
  (std::cerr << ... << why) << '\n';
  return 1;
}

int run(const args& a) {
  // An X.509 device is verified against --client-ca: without it no certificate is asked for
  // and the device could never connect.
  if (!a.x509_devices.empty() && a.client_ca.empty()) {
    return fail("--x509-device needs --client-ca: the CA that signs the devices' certificates "
                "(their CN is the device id)");
  }
  std::vector<module_name> modules;
  for (const auto& text : a.modules) {
    auto m = parse_module_name(text);
    if (!m) {
      return fail("--module takes DEVICE/MODULE, not '" + text + "'");
    }
    modules.push_back(std::move(*m));
  }
  // Signals first: one that arrives while the state is being set up is handled as soon as
  // the loop runs (asio records it), and never kills the process half-way.
  asio::io_context io;
  asio::signal_set signals(io, SIGINT, SIGTERM);
  const bool in_memory = a.state == ":memory:";
  // Where the certificates and connection-strings.json go.
  std::string dir;
  std::error_code ec;
  if (in_memory) {
    std::string tmpl = (fs::temp_directory_path(ec) / "iothub-emulator-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      return fail("cannot make a temporary directory");
    }
    dir = tmpl;
    std::cout << "state in memory (nothing kept); certificates and connection-strings.json in "
              << dir << " (removed at exit)" << std::endl;
  } else {
    fs::create_directories(a.state, ec);
    if (ec) {
      return fail("cannot make the state directory " + a.state + ": " + ec.message());
    }
    dir = fs::absolute(a.state, ec).lexically_normal().string();
    if (!dir.empty() && dir.back() == '/') {
      dir.pop_back();
    }
  }

  auto db = store::open(in_memory ? ":memory:" : dir + "/hub.db");
  if (!db) {
    return fail("cannot open " + dir + "/hub.db: " + db.error().message() +
                " (is another iothub-emulator using this state directory?)");
  }
  store& st = **db;

  // The hub name: --hub, else the one stored, else "emulator".
  std::string hub_name = a.hub_name;
  if (hub_name.empty()) {
    auto stored = st.get_meta("hub_name");
    hub_name = stored && *stored ? **stored : "emulator";
  }
  // The partition count is part of the stored state's meaning (partition_of).
  auto stored_partitions = st.get_meta("partitions");
  if (!stored_partitions) {
    return fail("cannot read the store: " + stored_partitions.error().message());
  }
  std::uint32_t partitions = a.partitions;
  if (*stored_partitions) {
    const auto was = static_cast<std::uint32_t>(std::stoul(**stored_partitions));
    if (was != partitions) {
      return fail("the state directory has " + std::to_string(was) + " partitions, not " +
                  std::to_string(partitions) + " (use another --state to change it)");
    }
  } else if (auto r = st.set_meta("partitions", std::to_string(partitions)); !r) {
    return fail("cannot write the store: " + r.error().message());
  }

  os_random random;
  auto reg = registry::load(st, hub_name);
  if (!reg) {
    return fail("cannot load the registry: " + reg.error().message());
  }
  if (auto r = provision_default_policies(*reg, st, random); !r) {
    return fail("cannot create the policies: " + r.error().message());
  }
  std::vector<std::string> device_ids = a.devices;
  if (!a.devices_file.empty()) {
    std::ifstream f(a.devices_file, std::ios::binary);
    if (!f) {
      return fail("cannot read " + a.devices_file);
    }
    std::stringstream text;
    text << f.rdbuf();
    for (auto& id : parse_devices_file(text.str())) {
      device_ids.push_back(std::move(id));
    }
  }
  for (const auto& id : device_ids) {
    if (const auto* d = reg->device(id); d != nullptr && d->auth_type != "sas") {
      return fail("device '" + id + "' is registered for X.509 (--x509-device), not with keys");
    }
    if (auto r = provision_device(*reg, st, random, id); !r) {
      return fail("cannot register device '" + id + "': " + r.error().message());
    }
  }
  for (const auto& m : modules) {
    if (auto r = provision_module(*reg, st, random, m.device_id, m.module_id); !r) {
      return fail("cannot register module '" + m.device_id + "/" + m.module_id +
                  "': " + r.error().message());
    }
  }
  for (const auto& id : a.x509_devices) {
    if (auto r = provision_x509_device(*reg, st, random, id); !r) {
      if (r.error() == iothub::errc::conflict) {
        return fail("device '" + id + "' is registered with keys (--device), not for X.509");
      }
      return fail("cannot register X.509 device '" + id + "': " + r.error().message());
    }
  }
  for (const auto& cg : a.consumer_groups) {
    if (auto r = reg->put_consumer_group(st, cg); !r) {
      return fail("cannot create consumer group '" + cg + "': " + r.error().message());
    }
  }

  // Host names: localhost first (the one redirects name), then --host.
  std::vector<std::string> hosts{"localhost"};
  for (const auto& h : a.hosts) {
    if (h != "localhost") {
      hosts.push_back(h);
    }
  }
  std::vector<std::string> cert_names = hosts;
  cert_names.push_back(hub_host_name(hub_name));
  std::vector<std::string> ips{"127.0.0.1", "::1"};

  // Listen addresses.
  struct endpoint {
    std::string scheme;
    listen_address addr;
    std::string path;
  };
  std::vector<endpoint> endpoints;
  for (const auto& [scheme, text] :
       {std::pair<std::string, std::string>{"amqps", a.amqps}, {"amqp", a.amqp}, {"wss", a.wss}}) {
    if (text.empty() || text == "none") {
      continue;
    }
    auto addr = parse_listen_address(text);
    if (!addr) {
      return fail("--", scheme, " takes HOST:PORT, not '", text, "'");
    }
    if (addr->host != "127.0.0.1" && addr->host != "::1" && addr->host != "0.0.0.0" &&
        addr->host != "::") {
      ips.push_back(addr->host);
    }
    endpoints.push_back({scheme, *addr, scheme == "wss" ? "/$iothub/websocket" : ""});
  }
  if (endpoints.empty()) {
    return fail("no listener: give --amqps, --amqp or --wss");
  }

  std::string cert = a.cert;
  std::string key = a.key;
  std::string ca_path;
  if (cert.empty()) {
    std::string why;
    auto made = ensure_certificates(dir, cert_names, ips, why);
    if (!made) {
      return fail("certificates: " + why);
    }
    const auto files = certificate_paths(dir);
    cert = files.server_cert;
    key = files.server_key;
    ca_path = files.ca_cert;
    if (made->made_ca) {
      std::cout << "made a CA: " << ca_path << std::endl;
    }
  } else {
    // A certificate of the user's: clients trust whatever signed it; the chain's last
    // certificate is the best guess of a CA file.
    ca_path = fs::absolute(cert, ec).string();
  }

  hub_options ho;
  ho.host_names = hosts;
  ho.partitions = partitions;
  ho.redirect = !a.no_redirect;
  ho.retention = milliseconds(static_cast<std::int64_t>(a.retention_hours * 3600.0 * 1000.0));
  ho.token_grace = seconds_ms(a.token_grace_s);
  ho.c2d_lock = seconds_ms(a.c2d_lock_s);
  ho.feedback_window = seconds_ms(a.feedback_window_s);
  // The wall clock: the hub runs on the monotonic clock plus this offset.
  const auto steady_now = std::chrono::steady_clock::now();
  const auto wall_now = std::chrono::system_clock::now();
  ho.unix_offset = std::chrono::duration_cast<milliseconds>(wall_now.time_since_epoch()) -
                   std::chrono::duration_cast<milliseconds>(steady_now.time_since_epoch());

  // Listeners first (ports 0 are resolved), then the hub (it names the ports in redirects).
  // The hub is created before any connection can arrive: nothing runs until io.run().
  std::unique_ptr<hub> the_hub;
  hub_handler handler; // the hub is set once created

  transport::listener_options lo;
  lo.tls.cert_file = cert;
  lo.tls.key_file = key;
  lo.tls.ca_file = a.client_ca;
  lo.websocket_paths = {"/$iothub/websocket", "/$servicebus/websocket"};
  lo.trace = a.trace;
  lo.max_connections = a.max_connections;
  std::optional<transport::listener> listener;
  std::vector<std::string> urls;
  for (auto& e : endpoints) {
    std::string why;
    const auto url = listen_url(e.scheme, e.addr);
    if (!listener) {
      auto l = transport::listener::listen(io, url, lo, handler, &why);
      if (!l) {
        return fail("cannot listen on ", url, ": ", why);
      }
      e.addr.port = l->port();
      listener.emplace(std::move(*l));
    } else {
      auto p = listener->add(url, &why);
      if (!p) {
        return fail("cannot listen on ", url, ": ", why);
      }
      e.addr.port = *p;
    }
    if (e.scheme == "amqps") {
      ho.amqps_port = e.addr.port;
    } else if (e.scheme == "amqp") {
      ho.amqp_port = e.addr.port;
    }
    urls.push_back(listen_url(e.scheme, e.addr, e.path));
  }
  bool have_amqps = false;
  for (const auto& e : endpoints) {
    have_amqps = have_amqps || e.scheme == "amqps";
  }
  if (!have_amqps) {
    // Redirects and connection strings then name the plain listener.
    for (const auto& e : endpoints) {
      if (e.scheme == "amqp") {
        ho.amqps_port = e.addr.port;
      }
    }
  }

  auto h = hub::create(ho, st, *reg, random);
  if (!h) {
    return fail("cannot start the hub: " + h.error().message());
  }
  the_hub = std::move(*h);
  handler.set(*the_hub);
  listener->refresh_deadline(); // the hub's timers (retention, C2D locks and TTLs, ...)

  for (const auto& u : urls) {
    std::cout << "listening " << u << std::endl;
  }

  connection_strings_input csi;
  csi.hub_name = reg->hub_name();
  csi.host = "localhost";
  csi.amqps_port = ho.amqps_port;
  csi.service_policy = "service";
  if (const auto* p = reg->policy("service"); p != nullptr) {
    csi.service_key = p->primary_key;
  }
  for (const auto& [id, d] : reg->devices()) {
    if (d.auth_type == "sas") {
      csi.device_keys.emplace(id, d.primary_key);
    } else {
      csi.x509_devices.push_back(id);
    }
  }
  for (const auto& [id, m] : reg->modules()) {
    csi.module_keys.emplace(id, m.primary_key);
  }
  csi.ca_path = ca_path;
  const std::string cs_path = dir + "/connection-strings.json";
  if (!write_file_atomically(cs_path, connection_strings_json(csi))) {
    return fail("cannot write " + cs_path);
  }
  std::cout << "hub " << reg->hub_name() << ", " << partitions << " partitions, "
            << reg->devices().size() << " devices, " << reg->modules().size()
            << " modules; connection strings in " << cs_path << std::endl;

  signals.async_wait([&](std::error_code, int) {
    listener->close();
    io.stop();
  });
  io.run();
  // Every process() committed its transaction; nothing is open here.
  the_hub.reset();
  if (in_memory) {
    fs::remove_all(dir, ec);
  }
  std::cout << "stopped" << std::endl;
  return 0;
}

int run_cli(int argc, char** argv) {
  args a;
  CLI::App app{"iothub-emulator: a local Azure IoT Hub over AMQP 1.0 (AMQPS, AMQP over "
               "WebSockets) with its Event Hubs-compatible built-in endpoint."};
  app.add_option("--state", a.state,
                 "state directory: hub.db (SQLite), ca.pem, server certificate, "
                 "connection-strings.json; :memory: keeps nothing")
      ->capture_default_str();
  app.add_option("--hub", a.hub_name,
                 "hub name (default: the one stored in the state directory, else emulator)");
  app.add_option("--amqps", a.amqps, "AMQPS listener HOST:PORT (none: off)")->capture_default_str();
  app.add_option("--amqp", a.amqp, "plain AMQP listener HOST:PORT (for tests; default off)");
  app.add_option("--wss", a.wss,
                 "AMQP over WebSockets (TLS) listener HOST:PORT, paths /$iothub/websocket and "
                 "/$servicebus/websocket (none: off; the device SDKs dial port 443)")
      ->capture_default_str();
  app.add_option("--device", a.devices,
                 "register a device with random keys (repeatable; an existing one keeps its "
                 "keys)");
  app.add_option("--devices-file", a.devices_file,
                 "file of device ids to register, one per line ('#' comments)");
  app.add_option("--module", a.modules,
                 "register module DEVICE/MODULE with random keys, and its device if missing "
                 "(repeatable; an existing one keeps its keys)");
  app.add_option("--x509-device", a.x509_devices,
                 "register a device authenticated by a TLS client certificate whose CN is ID, "
                 "signed by --client-ca (repeatable; needs --client-ca)");
  app.add_option("--partitions", a.partitions, "partitions of the built-in endpoint")
      ->check(CLI::Range(1U, 1024U))
      ->capture_default_str();
  app.add_option("--host", a.hosts,
                 "another host name the hub answers to (in its certificate; repeatable)");
  app.add_option("--consumer-group", a.consumer_groups,
                 "create a consumer group of the built-in endpoint (repeatable)");
  auto* cert = app.add_option("--cert", a.cert, "PEM server certificate (default: made)");
  app.add_option("--key", a.key, "PEM private key of --cert")->needs(cert);
  cert->needs(app.get_option("--key"));
  app.add_option("--client-ca", a.client_ca,
                 "PEM CA that verifies the TLS client certificates of X.509 devices, with "
                 "SASL EXTERNAL or with no SASL (asked for, not required: SAS clients go on)");
  app.add_flag("--trace", a.trace, "print every frame, decoded, keys and signatures redacted");
  app.add_flag("--no-redirect", a.no_redirect,
               "refuse /messages/events receivers instead of redirecting them");
  app.add_option("--retention", a.retention_hours, "HOURS events are kept")
      ->check(CLI::Range(0.001, 168.0))
      ->capture_default_str();
  app.add_option("--token-grace", a.token_grace_s, "SECONDS a token may be used past its expiry")
      ->capture_default_str();
  app.add_option("--c2d-lock", a.c2d_lock_s, "SECONDS a delivered C2D message stays locked")
      ->check(CLI::Range(0.1, 3600.0))
      ->capture_default_str();
  app.add_option("--feedback-window", a.feedback_window_s,
                 "SECONDS feedback records wait to be batched")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
  app.add_option("--max-connections", a.max_connections, "connections open at once")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  return run(a);
}

} // namespace

int main(int argc, char** argv) {
  // What escapes: setting up the options or printing a parse error failed.
  try {
    return run_cli(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "iothub-emulator: " << e.what() << '\n';
  } catch (...) {
    std::cerr << "iothub-emulator: unknown error\n";
  }
  return 1;
}
