// client_options own what they view: the engine of every reconnect is built from the client's
// copies, never from the caller's storage.
#include <mutex>

#include <doctest/doctest.h>

#include "amqp/error.hpp"
#include "amqp/transport/client.hpp"
#include "transport/support.hpp"

using namespace amqp;
using namespace amqp::transport;
using namespace std::chrono_literals;

namespace {

// What a server saw of one connection: the open's fields and the SASL init.
struct seen_open {
  std::string container_id;
  std::string hostname;
  bool offered_capability = false;
  bool desired_capability = false;
  std::string product; // properties["product"]
  std::string mechanism;
  std::string username;
  std::string password;
};

// A node that offers SASL PLAIN, accepts any login, and records every client's open.
class open_recorder final : public test::raw_node {
public:
  std::vector<seen_open> seen() {
    const std::lock_guard lock(mu_);
    return opens_;
  }

protected:
  void configure(connection_options& o) override { o.sasl.server_mechanisms = "PLAIN"; }
  void on_event(connection& c, const event& e) override {
    if (const auto* init = std::get_if<sasl_init_received>(&e)) {
      sasl_ = seen_open{};
      sasl_.mechanism = std::string(init->mechanism.str);
      sasl_.username = std::string(init->username);
      sasl_.password = std::string(init->password);
      (void)c.sasl_complete(sasl_code::ok);
    }
  }
  void on_opened(connection&, const amqp::open& o) override {
    seen_open s = sasl_;
    s.container_id = std::string(o.container_id);
    s.hostname = std::string(o.hostname.value_or(""));
    s.offered_capability = o.offered_capabilities.contains("x-opt-offered");
    s.desired_capability = o.desired_capabilities.contains("x-opt-desired");
    if (auto p = o.properties.find("product")) {
      if (auto text = p->get_string()) {
        s.product = std::string(*text);
      }
    }
    const std::lock_guard lock(mu_);
    opens_.push_back(s);
  }

private:
  seen_open sasl_; // this node's thread only
  std::mutex mu_;
  std::vector<seen_open> opens_;
};

} // namespace

// Regression: client_options::amqp kept the caller's views (container-id, hostname, SASL
// strings, the open's capabilities and properties) and copied them into the engine of every
// reconnect, reading whatever the caller had let go of.
TEST_CASE("client options: what they view is copied; a reconnect still announces it") {
  open_recorder node;
  const test::serving served(node);
  test::fault_proxy proxy(served.port());

  asio::io_context io;
  client c;
  std::error_code connect_error;
  bool connected = false;
  {
    // Every string and value the options view lives here, and is overwritten and freed
    // right after async_connect returns.
    auto storage = std::make_unique<std::vector<std::string>>(std::vector<std::string>{
        "container-under-test", "virtual-host.example", "PLAIN", "alice", "s3cret", "x-opt-offered",
        "x-opt-desired", "product", "amqp-cpp-test"});
    const auto& st = *storage;
    auto props = std::make_unique<std::vector<value>>(
        std::vector<value>{value(symbol_view{st[7]}), value(std::string_view(st[8]))});
    client_options o;
    o.amqp.container_id = st[0];
    o.amqp.hostname = st[1];
    o.amqp.sasl.mechanism = st[2];
    o.amqp.sasl.username = st[3];
    o.amqp.sasl.password = st[4];
    o.amqp.offered_capabilities = value(symbol_view{st[5]});
    o.amqp.desired_capabilities = value(symbol_view{st[6]});
    o.amqp.properties = value::map(*props);
    o.reconnect.enabled = true;
    o.reconnect.initial_delay = 10ms;
    client::async_connect(io, "amqp://127.0.0.1:" + std::to_string(proxy.port()), std::move(o),
                          [&](std::error_code ec, client cl) {
                            connect_error = ec;
                            connected = !ec;
                            c = std::move(cl);
                          });
    for (auto& s : *storage) {
      std::fill(s.begin(), s.end(), '#');
    }
    (*props)[0] = value(std::int32_t{7});
    storage.reset();
    props.reset();
  }
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!connected && !connect_error && std::chrono::steady_clock::now() < deadline) {
    io.run_for(10ms);
  }
  REQUIRE_MESSAGE(connected, connect_error.message());
  proxy.cut(); // a reconnect builds a new engine from the options
  while ((c.reconnects() == 0 || node.seen().size() < 2) &&
         std::chrono::steady_clock::now() < deadline) {
    io.run_for(10ms);
  }
  const auto seen = node.seen();
  REQUIRE(seen.size() >= 2);
  CHECK(c.reconnects() >= 1);
  for (const auto& s : seen) {
    CHECK(s.container_id == "container-under-test");
    CHECK(s.hostname == "virtual-host.example");
    CHECK(s.mechanism == "PLAIN");
    CHECK(s.username == "alice");
    CHECK(s.password == "s3cret");
    CHECK(s.offered_capability);
    CHECK(s.desired_capability);
    CHECK(s.product == "amqp-cpp-test");
  }
  bool closed = false;
  c.async_close([&](std::error_code) { closed = true; });
  while (!closed && std::chrono::steady_clock::now() < deadline) {
    io.run_for(10ms);
  }
  CHECK(closed);
}

TEST_CASE("client options: a capability value with no encoding fails the connect at once") {
  asio::io_context io;
  client_options o;
  const value mixed[2] = {value(symbol_view{"a"}), value(std::int32_t{1})};
  o.amqp.offered_capabilities = value::array(type::symbol, mixed); // elements of two types
  std::error_code ec;
  client::async_connect(io, "amqp://127.0.0.1:1", o, [&](std::error_code e, client) { ec = e; });
  io.run_for(5s);
  CHECK(ec == make_error_code(errc::invalid_argument));
}
