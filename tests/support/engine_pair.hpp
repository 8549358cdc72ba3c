// An in-memory client + server engine pair with a virtual clock (Qpid Proton's
// driver_pair): bytes move between the two engines by copy, events are logged per side,
// and an optional auto-responder answers the peer's open, begin and attach.
#pragma once

#include <algorithm>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "amqp/connection.hpp"
#include "support/wire.hpp"

namespace amqp::test {

enum class side { client, server };

// A one-line description of an event for logs compared by tests.
inline std::string describe(const event& e) {
  std::string s(name(e));
  if (const auto* c = std::get_if<connection_closed>(&e)) {
    if (c->error) {
      s += " ";
      s += c->error->condition.str;
    }
    if (c->remote) {
      s += " remote";
    }
  } else if (const auto* se = std::get_if<session_ended>(&e)) {
    if (se->error) {
      s += " ";
      s += se->error->condition.str;
    }
  } else if (const auto* ld = std::get_if<link_detached>(&e)) {
    if (ld->error) {
      s += " ";
      s += ld->error->condition.str;
    }
    s += ld->closed ? " closed" : " detached";
  } else if (const auto* sd = std::get_if<sasl_done>(&e)) {
    s += " " + std::to_string(static_cast<int>(sd->code));
  }
  return s;
}

class engine_pair {
public:
  // Reacts to an event of one side; return true if handled (the auto-responder is skipped).
  using handler = std::function<bool(side, connection&, const event&)>;

  engine_pair(connection_options client_opts, connection_options server_opts)
      : client(with_role(client_opts, connection_role::client, "client")),
        server(with_role(server_opts, connection_role::server, "server")) {}
  explicit engine_pair(connection_options common = {}) : engine_pair(common, common) {}

  connection client;
  connection server;
  time_point now{};
  // Answer the peer's open, begin and attach (as receiver: credit `auto_credit`).
  bool auto_respond = true;
  std::uint32_t auto_credit = 0;
  // Largest chunk handed to receive() at once (0: all pending bytes).
  std::size_t chunk = 0;
  handler on_event{};
  std::vector<std::string> client_log, server_log;
  std::vector<event> client_events, server_events; // of the last pump step only
  std::size_t client_bytes = 0, server_bytes = 0;  // written by each side
  std::error_code client_error{}, server_error{};  // last receive() error
  // Describe every event into client_log/server_log (off for long runs).
  bool log_events = true;
  // With record_wire, every byte each side writes is split into headers and frames here.
  bool record_wire = false;
  wire_parser client_wire, server_wire;

  // Moves bytes and events until neither side has anything more to do (or `max_rounds`).
  // Returns true when both sides are idle, false when `max_rounds` ran out first.
  bool pump(long max_rounds = 100000) {
    for (long round = 0; round < max_rounds; ++round) {
      bool progress = drain(side::client);
      progress = drain(side::server) || progress;
      progress = move(client, server, side::server) || progress;
      progress = move(server, client, side::client) || progress;
      if (!progress) {
        return true;
      }
    }
    return false;
  }

  // Advances the virtual clock by `d`, firing both engines' deadlines on the way.
  void advance(milliseconds d) {
    const time_point until = now + d;
    for (;;) {
      auto dc = client.next_deadline();
      auto ds = server.next_deadline();
      time_point next = until;
      if (dc && *dc < next) {
        next = *dc;
      }
      if (ds && *ds < next) {
        next = *ds;
      }
      now = std::max(now, next);
      if (dc && *dc <= now) {
        client.on_deadline(now);
      }
      if (ds && *ds <= now) {
        server.on_deadline(now);
      }
      pump();
      if (now >= until) {
        return;
      }
    }
  }

  std::vector<std::string>& log(side s) { return s == side::client ? client_log : server_log; }
  connection& conn(side s) { return s == side::client ? client : server; }

  // Opens both ends and one session; returns the client's session.
  session_id open_session() {
    (void)client.open();
    auto s = client.begin();
    pump();
    return *s;
  }

private:
  static connection_options with_role(connection_options o, connection_role r,
                                      std::string_view id) {
    o.role = r;
    if (o.container_id.empty()) {
      o.container_id = id;
    }
    return o;
  }

  bool drain(side s) {
    connection& c = conn(s);
    bool any = false;
    while (auto e = c.next_event()) {
      any = true;
      if (log_events) {
        log(s).push_back(describe(*e));
      }
      if (on_event && on_event(s, c, *e)) {
        continue;
      }
      if (auto_respond) {
        respond(c, *e);
      }
    }
    return any;
  }

  void respond(connection& c, const event& e) {
    if (std::holds_alternative<connection_opened>(e)) {
      if (c.state().local == endpoint_status::uninit) {
        (void)c.open();
      }
    } else if (const auto* b = std::get_if<session_begun>(&e)) {
      if (b->remote_initiated) {
        (void)c.begin(b->session);
      }
    } else if (const auto* a = std::get_if<link_attached>(&e)) {
      if (a->remote_initiated) {
        link_options o;
        o.role = a->remote.role == role::sender ? role::receiver : role::sender;
        o.snd_settle_mode = a->remote.snd_settle_mode;
        o.rcv_settle_mode = a->remote.rcv_settle_mode;
        o.source = a->remote.source;
        if (a->remote.target && std::holds_alternative<target>(*a->remote.target)) {
          o.target = std::get<target>(*a->remote.target);
        }
        (void)c.attach(a->link, o);
        if (o.role == role::receiver && auto_credit > 0) {
          (void)c.flow(a->link, auto_credit);
        }
      }
    }
  }

  bool move(connection& from, connection& to, side to_side) {
    auto out = from.pending_output();
    if (out.empty()) {
      return false;
    }
    if (!to.wants_read() && !to.finished()) {
      return false;
    }
    std::size_t n = chunk == 0 ? out.size() : std::min(chunk, out.size());
    if (to.finished()) {
      if (record_wire) {
        (to_side == side::server ? client_wire : server_wire).feed(out);
      }
      from.consume_output(out.size()); // the peer has hung up: the bytes go nowhere
      return true;
    }
    if (record_wire) {
      (to_side == side::server ? client_wire : server_wire).feed(out.first(n));
    }
    auto r = to.receive(out.first(n), now);
    (to_side == side::server ? client_bytes : server_bytes) += n;
    if (!r) {
      (to_side == side::server ? server_error : client_error) = r.error();
    }
    from.consume_output(n);
    return true;
  }
};

} // namespace amqp::test
