// The listener's view of the in-memory broker: a transport::server_handler that hands every
// call to an amqp::broker::broker. Used by `amqp-cli broker` and by the transport tests.
#pragma once

#include <vector>

#include "amqp/broker.hpp"
#include "amqp/transport/listener.hpp"

namespace amqp::cli {

class broker_handler final : public transport::server_handler {
public:
  explicit broker_handler(broker::broker& b) : b_(b) {}
  handle on_accept(time_point now, const transport::accepted_peer& peer) override {
    return b_.add_connection(now, peer.certificate_subject);
  }
  amqp::connection* engine(handle h) override { return b_.engine(h); }
  void process(handle h, time_point now) override { b_.process(h, now); }
  std::vector<handle> take_dirty() override { return b_.take_dirty(); }
  void on_output_written(handle h) override { b_.on_output_written(h); }
  void on_closed(handle h) override { b_.remove_connection(h); }

private:
  broker::broker& b_;
};

} // namespace amqp::cli
