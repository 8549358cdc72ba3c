// The real iothub-emulator program, started by a test on 127.0.0.1 (AMQPS on a free port,
// no WebSocket listener, state in memory unless a directory is given) and stopped by PID:
// the peer of the client tests. Its connection strings come from the connection-strings.json
// it writes, as an application would read them.
#pragma once

#include <csignal>
#include <cstdint>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/child_process.hpp"

namespace amqp::test {

class emulator_process {
public:
  struct options {
    std::vector<std::string> devices{"dev-1"};
    std::vector<std::string> args; // more iothub-emulator options
    std::string state = ":memory:";
    std::vector<std::string> modules;      // --module DEVICE/MODULE
    std::vector<std::string> x509_devices; // --x509-device ID (give client_ca)
    std::string client_ca;                 // --client-ca: the CA of device certificates
  };

  explicit emulator_process(options o) : o_(std::move(o)) { start(); }
  ~emulator_process() { stop(SIGTERM); }
  emulator_process(const emulator_process&) = delete;
  emulator_process& operator=(const emulator_process&) = delete;

  // (Re)starts the program: on the port it had before, if it ran already.
  void start() {
    std::vector<std::string> argv{IOTHUB_EMULATOR_PATH,
                                  "--state",
                                  o_.state,
                                  "--amqps",
                                  "127.0.0.1:" + std::to_string(amqps_port),
                                  "--wss",
                                  "none"};
    for (const auto& d : o_.devices) {
      argv.emplace_back("--device");
      argv.push_back(d);
    }
    for (const auto& m : o_.modules) {
      argv.emplace_back("--module");
      argv.push_back(m);
    }
    for (const auto& d : o_.x509_devices) {
      argv.emplace_back("--x509-device");
      argv.push_back(d);
    }
    if (!o_.client_ca.empty()) {
      argv.emplace_back("--client-ca");
      argv.push_back(o_.client_ca);
    }
    argv.insert(argv.end(), o_.args.begin(), o_.args.end());
    fail_prefix = "emulator_process";
    proc_ = spawn(argv, "iothub-emulator");
    const auto listening = wait_for_line(proc_, "listening amqps://127.0.0.1:", 60);
    const auto hub = wait_for_line(proc_, "hub ", 60);
    if (!listening || !hub) {
      throw std::runtime_error("iothub-emulator did not start: " + proc_.output);
    }
    amqps_port = static_cast<std::uint16_t>(
        std::stoi(listening->substr(std::string_view("listening amqps://127.0.0.1:").size())));
    const auto at = hub->find("connection strings in ");
    std::ifstream f(hub->substr(at + std::string_view("connection strings in ").size()));
    const auto j = nlohmann::json::parse(f);
    hostname = j.at("hostname").get<std::string>();
    service = j.at("service").get<std::string>();
    eventhub = j.at("eventhub").get<std::string>();
    ca = j.at("ca").get<std::string>();
    devices.clear();
    for (const auto& [id, cs] : j.at("devices").items()) {
      devices[id] = cs.get<std::string>();
    }
    modules.clear();
    for (const auto& [id, cs] : j.at("modules").items()) {
      modules[id] = cs.get<std::string>();
    }
    x509_devices.clear();
    for (const auto& [id, cs] : j.at("x509_devices").items()) {
      x509_devices[id] = cs.get<std::string>();
    }
  }
  // SIGKILL: nothing is flushed or closed.
  void kill() { stop(SIGKILL); }
  void stop(int sig) {
    if (proc_.pid > 0) {
      stop_child(proc_, sig, 30);
    }
  }
  // What the program printed so far.
  [[nodiscard]] const std::string& output() const noexcept { return proc_.output; }

  std::uint16_t amqps_port = 0;
  std::string hostname;                       // the hub's host name ("{hub}.azure-devices.net")
  std::string service;                        // the service policy's connection string
  std::string eventhub;                       // the Event Hubs-compatible connection string
  std::string ca;                             // the CA file clients must trust
  std::map<std::string, std::string> devices; // device id -> connection string
  std::map<std::string, std::string> modules; // "device/module" -> connection string
  // X.509 device id -> connection string (x509=true; the certificate is given apart)
  std::map<std::string, std::string> x509_devices;

private:
  options o_;
  child proc_;
};

} // namespace amqp::test
