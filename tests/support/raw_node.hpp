// A server written directly on server-role engines behind a transport listener: the base of
// the scripted peers of the transport and IoT Hub client tests.
#pragma once

#include <map>
#include <vector>

#include "amqp/connection.hpp"
#include "amqp/transport/listener.hpp"

namespace amqp::test {

// A server written directly on server-role engines behind a listener (SASL ANONYMOUS). It
// answers open, begin and every attach (mirroring the peer's termini); a subclass adjusts the
// answer and sees every other event.
class raw_node : public transport::server_handler {
public:
  handle on_accept(time_point, const transport::accepted_peer&) override {
    connection_options o;
    o.role = connection_role::server;
    o.container_id = "raw-node";
    o.sasl.enabled = true;
    o.sasl.accept_anonymous = true;
    configure(o);
    engines_.emplace(++next_, connection(o));
    return next_;
  }
  amqp::connection* engine(handle h) override { return &engines_.at(h); }
  std::vector<handle> take_dirty() override { return {}; }
  void on_closed(handle h) override { engines_.erase(h); }

  void process(handle h, time_point) override {
    auto& c = engines_.at(h);
    while (auto e = c.next_event()) {
      if (const auto* co = std::get_if<connection_opened>(&*e)) {
        on_opened(c, co->remote);
        (void)c.open();
      } else if (const auto* sb = std::get_if<session_begun>(&*e)) {
        if (sb->remote_initiated) {
          (void)c.begin(sb->session);
        }
      } else if (const auto* la = std::get_if<link_attached>(&*e)) {
        link_options o;
        o.source = la->remote.source;
        if (la->remote.target) {
          if (const auto* t = std::get_if<target>(&*la->remote.target)) {
            o.target = *t;
          }
        }
        answer(*la, o);
        (void)c.attach(la->link, o);
        on_attached(c, *la);
      } else {
        on_event(c, *e);
      }
    }
  }

protected:
  // Adjusts the engine options of each accepted connection (e.g. SASL mechanisms).
  virtual void configure(connection_options&) {}
  // Sees the peer's open before the node answers it.
  virtual void on_opened(amqp::connection&, const amqp::open&) {}
  virtual void answer(const link_attached&, link_options&) {}
  virtual void on_attached(amqp::connection&, const link_attached&) {}
  virtual void on_event(amqp::connection&, const amqp::event&) {}

private:
  std::map<handle, amqp::connection> engines_;
  handle next_ = 0;
};

} // namespace amqp::test
