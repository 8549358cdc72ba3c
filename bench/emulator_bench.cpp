// bench_emulator: the iothub-emulator program under device telemetry, against RabbitMQ, and
// the memory it holds per idle device connection.
//
// Ingest: D devices (1 and 100), each on its own TLS connection authenticated with SASL
// PLAIN and a SAS token (`{device}@sas.{hub}`, the token made by amqp::iothub), each sending
// its share of N reference messages (data/reference_message.bin, with header durable=true so
// that RabbitMQ writes them to disk too) to /devices/{device}/messages/events, unsettled, at
// most --window in flight per connection. Timed from the first send (every connection open
// and its link attached) to the last outcome; every outcome must be accepted. Targets:
//   ours.emulator.ingest.memory.D    iothub-emulator --state :memory:
//   ours.emulator.ingest.durable.D   iothub-emulator --state DIR (SQLite, committed before
//                                    the hub settles)
//   rabbitmq.emulator.ingest.durable.D  the same client, TLS and SASL PLAIN (guest), to a
//                                    durable classic queue (/amq/queue/bench) of a private
//                                    RabbitMQ node with its AMQP 1.0 plugin
// The three run side by side, the order rotated round by round; figures are medians, with
// per-round ratios (ours durable over RabbitMQ durable). NAME.server_cpu and NAME.client_cpu
// (us/msg): the CPU time the server process (the emulator, the RabbitMQ node) and the client
// (this process) spent per message, from /proc/PID/stat; the two share the machine's cores.
//
// Idle TLS memory: a fresh iothub-emulator (--state :memory:) with M devices; a client process
// (this program, --role idle) opens M device connections (TLS, the emulator's CA verified,
// SASL PLAIN with a SAS token, a telemetry sender link attached) and then sends nothing. Once
// all are up and a second has passed, the emulator's VmRSS minus its VmRSS before them, per
// connection: ours.emulator.idle_tls_connection (bytes); the client's likewise:
// ours.emulator.idle_tls_connection.client.
//
// Usage: bench_emulator [--quick] [--rounds R] [--messages N] [--window W] [--idle M]
//                       [--only ingest|idle] [--no-rabbitmq]
// --quick: 2,000 messages, one round, 200 idle connections (a smoke run of seconds, plus the
// RabbitMQ node's start when it is installed). Without RabbitMQ (not installed, or
// --no-rabbitmq) its figures are skipped, and the program says so.
#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "amqp/iothub/sas.hpp"
#include "amqp/transport/client.hpp"
#include "bench_rounds.hpp"
#include "memory_probe.hpp"
#include "tcp_bench_common.hpp"

namespace amqp::bench {
namespace {

namespace fs = std::filesystem;

struct options {
  bool quick = false;
  int rounds = 5;
  std::uint64_t messages = 50'000;
  std::uint32_t window = 256;
  std::size_t idle = 10'000;
  std::string only; // ingest, idle or empty (both)
  bool rabbitmq = true;
  std::string emulator = AMQP_BENCH_EMULATOR;
  std::string rabbitmq_helper = AMQP_BENCH_RABBITMQ_HELPER;
  std::string data_dir = AMQP_BENCH_DATA_DIR;
  // --role idle: the client process of the idle measurement.
  std::string role;
  std::uint16_t port = 0;
  std::string keys; // file: `device key` per line
  std::string ca;
  std::string hub;
};

[[noreturn]] void usage() {
  std::fprintf(stderr, "usage: bench_emulator [--quick] [--rounds R] [--messages N] [--window W] "
                       "[--idle M] [--only ingest|idle] [--no-rabbitmq]\n");
  std::exit(2);
}

// --- Devices and their credentials ------------------------------------------------------------

// Where a device connects and as whom.
struct endpoint {
  std::string url;      // amqps://127.0.0.1:PORT (credentials in `user`/`password`)
  std::string ca;       // the CA file the server's certificate must verify against
  std::string user;     // SASL PLAIN
  std::string password; // SASL PLAIN: a SAS token for the hub, guest's for RabbitMQ
  std::string address;  // the telemetry target
};

std::uint64_t unix_seconds() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

// A device of the hub: user {device}@sas.{hub}, a SAS token for {hub}.azure-devices.net/
// devices/{device} valid for a day, address /devices/{device}/messages/events.
endpoint hub_device(const std::string& hub, std::uint16_t port, const std::string& ca,
                    const std::string& device, const std::string& key) {
  endpoint e;
  e.url = "amqps://127.0.0.1:" + std::to_string(port);
  e.ca = ca;
  e.user = device + "@sas." + hub;
  std::string why;
  auto token = iothub::make_sas_token(hub + ".azure-devices.net/devices/" + device, key,
                                      unix_seconds() + 86'400, {}, &why);
  if (!token) {
    die("SAS token for " + device + ": " + why);
  }
  e.password = std::move(*token);
  e.address = "/devices/" + device + "/messages/events";
  return e;
}

transport::client_options client_options_for(const endpoint& e) {
  transport::client_options co;
  co.tls.ca_file = e.ca;
  co.amqp.sasl.enabled = true;
  co.amqp.sasl.mechanism = "PLAIN";
  co.amqp.sasl.username = e.user; // views: the client copies them in async_connect
  co.amqp.sasl.password = e.password;
  return co;
}

// Opens a connection and a sender for each endpoint, at most 64 handshakes at a time; calls
// `ready` once all are open. Any failure ends the process (role_fail).
class device_fleet {
public:
  device_fleet(asio::io_context& io, std::vector<endpoint> endpoints, std::function<void()> ready)
      : io_(io), endpoints_(std::move(endpoints)), ready_(std::move(ready)) {
    // Reserved up front: their growth would otherwise count as connection memory.
    clients_.reserve(endpoints_.size());
    senders_.reserve(endpoints_.size());
  }
  void start() {
    for (std::size_t i = 0; i < 64 && started_ < endpoints_.size(); ++i) {
      connect_next();
    }
  }
  [[nodiscard]] std::vector<transport::sender>& senders() noexcept { return senders_; }
  [[nodiscard]] std::vector<transport::client>& clients() noexcept { return clients_; }

private:
  void connect_next() {
    if (started_ == endpoints_.size()) {
      return;
    }
    const endpoint& e = endpoints_[started_++];
    transport::client::async_connect(
        io_, e.url, client_options_for(e), [this, &e](std::error_code ec, transport::client c) {
          if (ec) {
            role_fail("client", "connect " + e.user + ": " + c.last_error());
          }
          auto* kept = &clients_.emplace_back(std::move(c));
          kept->async_open_sender(
              e.address, {}, [this, kept, &e](std::error_code err, transport::sender s) {
                if (err) {
                  role_fail("client", "open sender " + e.address + ": " + kept->last_error());
                }
                senders_.push_back(std::move(s));
                if (senders_.size() == endpoints_.size()) {
                  ready_();
                } else {
                  connect_next();
                }
              });
        });
  }

  asio::io_context& io_;
  std::vector<endpoint> endpoints_;
  std::function<void()> ready_;
  std::size_t started_ = 0;
  std::vector<transport::client> clients_;
  std::vector<transport::sender> senders_;
};

// --- Ingest ----------------------------------------------------------------------------------

// User + system CPU seconds process `pid` has used (0: this one), from /proc/PID/stat; 0 if
// it cannot be read.
double cpu_seconds(pid_t pid) {
  const std::string path =
      pid == 0 ? std::string("/proc/self/stat") : "/proc/" + std::to_string(pid) + "/stat";
  std::ifstream f(path);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  // Fields after the command (which may hold spaces), from field 3: utime is 14, stime 15.
  const auto close = text.rfind(')');
  if (close == std::string::npos) {
    return 0;
  }
  std::istringstream in(text.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i >= 14) {
      ticks += std::strtod(field.c_str(), nullptr);
    }
  }
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// A figure and the CPU time the server and this process (the client) spent per message.
struct ingest_figure {
  double rate = 0;      // msg/s
  double server_us = 0; // server CPU per message (0: unknown)
  double client_us = 0; // client CPU per message
};

// Each sender sends `per_sender` copies of `message`, at most `window` in flight; returns
// msg/s from the first send to the last outcome.
double ingest(const std::vector<endpoint>& endpoints, std::uint64_t per_sender,
              std::uint32_t window, const std::vector<std::byte>& message) {
  asio::io_context io;
  double first = 0;
  double last = 0;
  std::uint64_t outcomes = 0;
  const std::uint64_t total = per_sender * endpoints.size();
  struct state {
    std::uint64_t sent = 0;
  };
  std::vector<state> states(endpoints.size());
  std::unique_ptr<device_fleet> fleet;
  std::function<void(std::size_t)> send_one = [&](std::size_t k) {
    ++states[k].sent;
    fleet->senders()[k].async_send(
        message, [&, k](std::error_code ec, transport::delivery_outcome o) {
          if (ec) {
            die("send to " + endpoints[k].address + ": " + ec.message() + " " +
                fleet->clients()[k].last_error());
          }
          if (o.state != state_kind::accepted) {
            die("a message to " + endpoints[k].address + " was not accepted: " +
                std::string(amqp::name(o.state)) + " " + o.condition + " " + o.description);
          }
          if (++outcomes == total) {
            last = now_s();
            for (auto& c : fleet->clients()) {
              c.async_close([](std::error_code) {});
            }
            return;
          }
          if (states[k].sent < per_sender) {
            send_one(k);
          }
        });
  };
  fleet = std::make_unique<device_fleet>(io, endpoints, [&] {
    first = now_s();
    for (std::size_t k = 0; k < endpoints.size(); ++k) {
      for (std::uint32_t i = 0; i < window && states[k].sent < per_sender; ++i) {
        send_one(k);
      }
    }
  });
  fleet->start();
  io.run();
  if (outcomes != total) {
    die("ingest ended with " + std::to_string(outcomes) + " outcomes of " + std::to_string(total));
  }
  return static_cast<double>(total) / (last - first);
}

// The reference message with header durable=true (list0 -> list8 [true]): a broker that
// keeps non-durable messages in memory must write these to disk.
std::vector<std::byte> durable_reference_message(const std::string& data_dir) {
  auto m = read_whole_file(data_dir + "/reference_message.bin");
  static constexpr unsigned char header0[] = {0x00, 0x53, 0x70, 0x45};
  if (!m || m->size() < 4 || std::memcmp(m->data(), header0, 4) != 0) {
    die("cannot read " + data_dir + "/reference_message.bin (an empty header first)");
  }
  static constexpr unsigned char header[] = {0x00, 0x53, 0x70, 0xc0, 0x02, 0x01, 0x41};
  std::vector<std::byte> out;
  out.reserve(m->size() + 3);
  for (unsigned char b : header) {
    out.push_back(static_cast<std::byte>(b));
  }
  for (std::size_t i = 4; i < m->size(); ++i) {
    out.push_back(static_cast<std::byte>((*m)[i]));
  }
  return out;
}

// --- The emulator and RabbitMQ as child processes ---------------------------------------------

struct temp_dir {
  temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "bench-emulator-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      die("mkdtemp failed");
    }
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

// A running iothub-emulator: its port, hub name, CA and device keys.
struct emulator {
  child proc;
  std::uint16_t port = 0;
  std::string hub;
  std::string ca;
  std::map<std::string, std::string> keys; // device -> primary key
};

// Starts iothub-emulator with `state` (":memory:" or a directory) and the devices of
// `devices_file`, AMQPS on a free loopback port, no WebSocket listener.
emulator start_emulator(const options& o, const std::string& state, const std::string& devices_file,
                        std::size_t max_connections) {
  emulator e;
  e.proc =
      spawn({o.emulator, "--state", state, "--amqps", "127.0.0.1:0", "--wss", "none",
             "--devices-file", devices_file, "--max-connections", std::to_string(max_connections)},
            "iothub-emulator");
  const auto listening = wait_for_line(e.proc, "listening amqps://127.0.0.1:", 60);
  const auto hub_line = wait_for_line(e.proc, "hub ", 120);
  if (!listening || !hub_line) {
    die("iothub-emulator did not start (" + o.emulator + ")");
  }
  e.port = static_cast<std::uint16_t>(
      std::atoi(listening->c_str() + std::string_view("listening amqps://127.0.0.1:").size()));
  const auto at = hub_line->find("connection strings in ");
  if (at == std::string::npos) {
    die("no connection strings in: " + *hub_line);
  }
  const std::string path = hub_line->substr(at + std::string_view("connection strings in ").size());
  std::ifstream f(path);
  const auto j = nlohmann::json::parse(f, nullptr, false);
  if (j.is_discarded()) {
    die("cannot parse " + path);
  }
  e.ca = j.at("ca").get<std::string>();
  const std::string hostname = j.at("hostname").get<std::string>();
  e.hub = hostname.substr(0, hostname.find('.'));
  for (const auto& [id, cs] : j.at("devices").items()) {
    const std::string s = cs.get<std::string>();
    const auto k = s.find("SharedAccessKey=");
    if (k == std::string::npos) {
      die("no key for device " + id);
    }
    const auto begin = k + std::string_view("SharedAccessKey=").size();
    e.keys[id] = s.substr(begin, s.find(';', begin) - begin);
  }
  return e;
}

void write_devices_file(const std::string& path, std::size_t n) {
  std::ofstream f(path);
  for (std::size_t i = 0; i < n; ++i) {
    f << "bench-" << i << '\n';
  }
  if (!f.flush()) {
    die("cannot write " + path);
  }
}

std::vector<endpoint> hub_endpoints(const emulator& e, std::size_t n) {
  std::vector<endpoint> out;
  for (std::size_t i = 0; i < n; ++i) {
    const std::string id = "bench-" + std::to_string(i);
    out.push_back(hub_device(e.hub, e.port, e.ca, id, e.keys.at(id)));
  }
  return out;
}

struct rabbitmq {
  child proc;
  endpoint ep;
  pid_t pid = 0; // the node (its CPU time)
};

// Starts the RabbitMQ node (bench/rabbitmq_node.py); nothing if RabbitMQ is not installed.
std::optional<rabbitmq> start_rabbitmq(const options& o) {
  rabbitmq r;
  r.proc = spawn({"/usr/bin/python3", o.rabbitmq_helper, "bench"}, "rabbitmq");
  for (;;) {
    auto line = wait_for_line(r.proc, "", 120);
    if (!line) {
      die("the RabbitMQ node did not start (" + o.rabbitmq_helper + ")");
    }
    if (line->rfind("skip ", 0) == 0) {
      std::printf("skipped RabbitMQ: %s\n", line->c_str() + 5);
      (void)wait_exit(r.proc, 10);
      return std::nullopt;
    }
    if (line->rfind("url ", 0) == 0) {
      // url amqps://guest:guest@127.0.0.1:PORT ca PATH pid PID
      std::istringstream in(line->substr(4));
      std::string word;
      in >> r.ep.url >> word >> r.ep.ca >> word >> r.pid;
      break;
    }
  }
  r.ep.user = "guest";
  r.ep.password = "guest";
  r.ep.address = "/amq/queue/bench";
  const auto at = r.ep.url.find("guest:guest@");
  if (at != std::string::npos) {
    r.ep.url.erase(at, std::string_view("guest:guest@").size());
  }
  return r;
}

// --- Idle TLS memory ---------------------------------------------------------------------------

int run_idle_client(const options& o) {
  raise_open_files(o.idle + 64);
  std::vector<endpoint> endpoints;
  {
    std::ifstream f(o.keys);
    std::string id;
    std::string key;
    while (f >> id >> key) {
      endpoints.push_back(hub_device(o.hub, o.port, o.ca, id, key));
    }
  }
  asio::io_context io;
  std::printf("base rss=%llu\n", static_cast<unsigned long long>(rss_bytes()));
  std::fflush(stdout);
  asio::steady_timer settle(io);
  const std::size_t n = endpoints.size();
  device_fleet fleet(io, std::move(endpoints), [&] {
    // The last flows settle; then the figure.
    settle.expires_after(std::chrono::seconds(1));
    settle.async_wait([&](std::error_code) {
      std::printf("ready rss=%llu connected=%zu\n", static_cast<unsigned long long>(rss_bytes()),
                  n);
      std::fflush(stdout);
    });
  });
  fleet.start();
  io.run();
  return 0;
}

struct idle_figures {
  double server = 0;
  double client = 0;
};

double field(const std::string& line, std::string_view key) {
  const std::string k = " " + std::string(key) + "=";
  const auto at = line.find(k);
  if (at == std::string::npos) {
    die("no " + std::string(key) + " in: " + line);
  }
  return std::strtod(line.c_str() + at + k.size(), nullptr);
}

idle_figures measure_idle(const options& o, const std::string& dir) {
  const std::string devices = dir + "/idle-devices.txt";
  write_devices_file(devices, o.idle);
  emulator e = start_emulator(o, ":memory:", devices, o.idle + 64);
  const std::string keys = dir + "/idle-keys.txt";
  {
    std::ofstream f(keys);
    for (const auto& [id, key] : e.keys) {
      f << id << ' ' << key << '\n';
    }
  }
  const double rss0 = static_cast<double>(rss_bytes(e.proc.pid));
  child client = spawn({self_path(), "--role", "idle", "--port", std::to_string(e.port), "--hub",
                        e.hub, "--ca", e.ca, "--keys", keys, "--idle", std::to_string(o.idle)},
                       "idle client");
  const auto base = wait_for_line(client, "base ", 10);
  const auto ready = wait_for_line(client, "ready ", 60 + static_cast<double>(o.idle) / 50);
  if (!base || !ready) {
    die("the idle client did not connect every device");
  }
  const double rss1 = static_cast<double>(rss_bytes(e.proc.pid));
  stop_child(client, SIGKILL, 10);
  stop_child(e.proc, SIGTERM, 30);
  const double n = static_cast<double>(o.idle);
  idle_figures f;
  f.server = (rss1 - rss0) / n;
  f.client = (field(*ready, "rss") - field(*base, "rss")) / n;
  return f;
}

// --- The orchestrator --------------------------------------------------------------------------

int run(const options& o) {
  install_signal_handlers();
  temp_dir dir;
  if (o.only.empty() || o.only == "ingest") {
    const std::vector<std::size_t> device_counts{1, 100};
    const std::string devices = dir.path + "/devices.txt";
    write_devices_file(devices, 100);
    const auto message = durable_reference_message(o.data_dir);
    emulator memory = start_emulator(o, ":memory:", devices, 1000);
    emulator durable = start_emulator(o, dir.path + "/state", devices, 1000);
    std::optional<rabbitmq> rabbit;
    // One run against the server process `pid`: its rate and the CPU both sides spent.
    auto measure = [&](const std::vector<endpoint>& eps, std::uint64_t per, pid_t pid) {
      const double s0 = pid > 0 ? cpu_seconds(pid) : 0;
      const double c0 = cpu_seconds(0);
      ingest_figure f;
      f.rate = ingest(eps, per, o.window, message);
      const double total = static_cast<double>(per * eps.size());
      f.server_us = pid > 0 ? (cpu_seconds(pid) - s0) / total * 1e6 : 0;
      f.client_us = (cpu_seconds(0) - c0) / total * 1e6;
      return f;
    };
    if (o.rabbitmq) {
      rabbit = start_rabbitmq(o);
    } else {
      std::printf("skipped RabbitMQ: --no-rabbitmq\n");
    }
    std::map<std::string, std::vector<double>> figures;
    auto record = [&](const std::string& name, const ingest_figure& f) {
      figures[name].push_back(f.rate);
      figures[name + ".server_cpu"].push_back(f.server_us);
      figures[name + ".client_cpu"].push_back(f.client_us);
      return f.rate;
    };
    std::map<std::size_t, std::vector<double>> ratios;
    for (int r = 0; r < o.rounds; ++r) {
      for (std::size_t d : device_counts) {
        const std::uint64_t per = std::max<std::uint64_t>(1, o.messages / d);
        const std::string n = std::to_string(d);
        // Rotated: each target goes first in turn.
        std::vector<int> order{0, 1, 2};
        std::rotate(order.begin(), order.begin() + r % 3, order.end());
        double ours_durable = 0;
        double theirs = 0;
        for (int t : order) {
          if (t == 0) {
            record("ours.emulator.ingest.memory." + n,
                   measure(hub_endpoints(memory, d), per, memory.proc.pid));
          } else if (t == 1) {
            ours_durable = record("ours.emulator.ingest.durable." + n,
                                  measure(hub_endpoints(durable, d), per, durable.proc.pid));
          } else if (rabbit) {
            const std::vector<endpoint> eps(d, rabbit->ep);
            theirs =
                record("rabbitmq.emulator.ingest.durable." + n, measure(eps, per, rabbit->pid));
          }
        }
        std::printf("round %d, %zu device(s): memory %.0f, durable %.0f, rabbitmq %.0f msg/s\n",
                    r + 1, d, figures["ours.emulator.ingest.memory." + n].back(), ours_durable,
                    theirs);
        std::fflush(stdout);
        if (theirs > 0) {
          ratios[d].push_back(ours_durable / theirs);
        }
      }
    }
    std::printf("messages %llu per figure, window %u per connection, rounds %d (medians)\n",
                static_cast<unsigned long long>(o.messages), o.window, o.rounds);
    for (std::size_t d : device_counts) {
      const std::string n = std::to_string(d);
      for (const char* name : {"ours.emulator.ingest.memory.", "ours.emulator.ingest.durable.",
                               "rabbitmq.emulator.ingest.durable."}) {
        const auto it = figures.find(name + n);
        if (it != figures.end()) {
          std::printf("%s%s %.0f msg/s\n", name, n.c_str(), median(it->second));
          for (const char* side : {".server_cpu", ".client_cpu"}) {
            const double us = median(figures[name + n + side]);
            if (us > 0) {
              std::printf("%s%s%s %.1f us/msg\n", name, n.c_str(), side, us);
            }
          }
        }
      }
      print_ratios("ratio.emulator.ingest.durable." + n, ratios[d]);
    }
    std::fflush(stdout);
    if (rabbit) {
      stop_child(rabbit->proc, SIGTERM, 60);
    }
    stop_child(memory.proc, SIGTERM, 30);
    stop_child(durable.proc, SIGTERM, 30);
  }
  if (o.only.empty() || o.only == "idle") {
    // Each process (the emulator, the client) inherits the limit and needs one descriptor a
    // connection.
    if (raise_open_files(o.idle + 256) < o.idle + 256) {
      die("the open-files limit is below " + std::to_string(o.idle + 256) +
          " (ulimit -Hn): use fewer --idle");
    }
    const idle_figures f = measure_idle(o, dir.path);
    std::printf("idle connections %zu\n", o.idle);
    std::printf("ours.emulator.idle_tls_connection %.0f bytes\n", f.server);
    std::printf("ours.emulator.idle_tls_connection.client %.0f bytes\n", f.client);
  }
  return 0;
}

} // namespace
} // namespace amqp::bench

int main(int argc, char** argv) {
  using namespace amqp::bench;
  fail_prefix = "bench_emulator";
  options o;
  for_each_arg(argc, argv, usage, [&](std::string_view a, auto& next) {
    if (a == "--quick") {
      o.quick = true;
      o.rounds = 1;
      o.messages = 2'000;
      o.idle = 200;
    } else if (a == "--rounds") {
      o.rounds = std::atoi(next());
    } else if (a == "--messages") {
      o.messages = std::strtoull(next(), nullptr, 10);
    } else if (a == "--window") {
      o.window = static_cast<std::uint32_t>(std::strtoul(next(), nullptr, 10));
    } else if (a == "--idle") {
      o.idle = std::strtoull(next(), nullptr, 10);
    } else if (a == "--only") {
      o.only = next();
    } else if (a == "--no-rabbitmq") {
      o.rabbitmq = false;
    } else if (a == "--emulator") {
      o.emulator = next();
    } else if (a == "--role") {
      o.role = next();
    } else if (a == "--port") {
      o.port = static_cast<std::uint16_t>(std::atoi(next()));
    } else if (a == "--keys") {
      o.keys = next();
    } else if (a == "--ca") {
      o.ca = next();
    } else if (a == "--hub") {
      o.hub = next();
    } else {
      return false;
    }
    return true;
  });
  if (o.rounds < 1 || o.messages == 0 || o.window == 0 || o.idle == 0 ||
      (!o.only.empty() && o.only != "ingest" && o.only != "idle")) {
    usage();
  }
  if (o.role == "idle") {
    arm_watchdog(900, "bench_emulator: idle client timed out\n");
    return run_idle_client(o);
  }
  if (!o.role.empty()) {
    usage();
  }
  return run(o);
}
