// Wire-level engine tests (ngtcp2's tpe): ONE engine, fed raw protocol headers and frames
// written by the test, whose output is split into headers and frames and decoded. The test
// plays the peer by hand, so it can send what a well-behaved engine never would.
#pragma once

#include <algorithm>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <variant>
#include <vector>

#include "amqp/connection.hpp"
#include "support/engine_pair.hpp"
#include "support/wire.hpp"

namespace amqp::test {

class frame_script {
public:
  explicit frame_script(connection_options o, connection_role r = connection_role::client)
      : conn(with_defaults(o, r)) {
    collect();
  }

  connection conn;
  time_point now{};
  // Events of the last step (feed or collect); their views are valid until the next feed.
  std::vector<event> events;
  // Every event so far, described (engine_pair's describe()).
  std::vector<std::string> log;
  // Everything the engine wrote, split into headers and frames.
  wire_parser out;
  // The result of the last receive().
  std::error_code last_error{};

  // Feeds raw bytes; returns receive()'s result (also kept in last_error).
  result<void> feed_bytes(std::span<const std::byte> b) {
    events.clear();
    auto r = conn.receive(b, now);
    last_error = r ? std::error_code{} : r.error();
    collect(false);
    return r;
  }
  result<void> feed_header(detail::protocol_id id = detail::protocol_id::amqp) {
    return feed_bytes(header_bytes(id));
  }
  result<void> feed(const performative& p, std::uint16_t channel = 0,
                    std::span<const std::byte> payload = {}) {
    return feed_bytes(frame_bytes(p, channel, payload));
  }
  result<void> feed_sasl(const sasl_frame& f) { return feed_bytes(sasl_frame_bytes(f)); }

  // Pulls the engine's queued events and output (after a command). `fresh` clears the
  // events of the previous step first.
  void collect(bool fresh = true) {
    if (fresh) {
      events.clear();
    }
    while (auto e = conn.next_event()) {
      log.push_back(describe(*e));
      events.push_back(std::move(*e));
    }
    auto o = conn.pending_output();
    out.feed(o);
    conn.consume_output(o.size());
  }

  // Advances the virtual clock by `d`, running every deadline due on the way.
  void advance(milliseconds d) {
    const time_point until = now + d;
    std::vector<event> all;
    for (;;) {
      auto dl = conn.next_deadline();
      if (!dl || *dl > until) {
        break;
      }
      now = std::max(now, *dl);
      conn.on_deadline(now);
      collect();
      for (auto& e : events) {
        all.push_back(std::move(e)); // events are not assignable (they hold references)
      }
    }
    now = until;
    events = std::move(all);
  }

  // Items written since the last call to take().
  std::vector<const wire_item*> take() {
    std::vector<const wire_item*> v;
    for (; taken_ < out.items.size(); ++taken_) {
      v.push_back(&out.items[taken_]);
    }
    return v;
  }
  // Names of the items written since the last call to take() (and marks them taken).
  std::vector<std::string> take_names() {
    std::vector<std::string> v;
    for (const auto* i : take()) {
      v.push_back(i->name());
    }
    return v;
  }
  // The last item written that holds performative `P`, or nothing.
  template <class P> std::optional<P> last() const {
    for (auto it = out.items.rbegin(); it != out.items.rend(); ++it) {
      if (auto p = it->as<P>()) {
        return p;
      }
    }
    return std::nullopt;
  }
  // Every item written that holds performative `P`.
  template <class P> std::vector<const wire_item*> all() const {
    std::vector<const wire_item*> v;
    for (const auto& i : out.items) {
      if (i.as<P>()) {
        v.push_back(&i);
      }
    }
    return v;
  }

  // The first event of type `E` of the last step, or null.
  template <class E> const E* find() const {
    for (const auto& e : events) {
      if (const auto* x = std::get_if<E>(&e)) {
        return x;
      }
    }
    return nullptr;
  }
  template <class E> std::size_t count() const {
    std::size_t n = 0;
    for (const auto& e : events) {
      if (std::holds_alternative<E>(e)) {
        ++n;
      }
    }
    return n;
  }

  // Plays a well-behaved peer up to an open connection: for a client engine, the peer's
  // AMQP header and open after the client's open(); for a server engine, the client's
  // header and open, then the server's open(). `peer` is the peer's open.
  void handshake(const amqp::open& peer) {
    if (conn.state().local == endpoint_status::uninit) {
      (void)conn.open();
    }
    collect();
    (void)feed_header();
    (void)feed(peer);
    if (conn.state().local == endpoint_status::uninit) {
      (void)conn.open();
      collect(false);
    }
  }

private:
  static connection_options with_defaults(connection_options o, connection_role r) {
    o.role = r;
    if (o.container_id.empty()) {
      o.container_id = r == connection_role::client ? "client" : "server";
    }
    return o;
  }
  std::size_t taken_ = 0;
};

// The open of a scripted peer.
inline amqp::open peer_open(std::string_view id = "peer", std::uint32_t max_frame_size = 65536) {
  amqp::open o;
  o.container_id = id;
  o.max_frame_size = max_frame_size;
  return o;
}

// The begin of a scripted peer: answering our channel `remote` or initiating (nullopt).
inline amqp::begin peer_begin(std::optional<std::uint16_t> remote = 0,
                              std::uint32_t incoming_window = 2048,
                              std::uint32_t next_outgoing_id = 0) {
  amqp::begin b;
  b.remote_channel = remote;
  b.next_outgoing_id = next_outgoing_id;
  b.incoming_window = incoming_window;
  b.outgoing_window = 0x7FFF'FFFF;
  return b;
}

// The attach of a scripted peer.
inline amqp::attach peer_attach(std::string_view name, std::uint32_t handle, amqp::role r,
                                std::uint32_t initial_delivery_count = 0) {
  amqp::attach a;
  a.name = name;
  a.handle = handle;
  a.role = r;
  a.source = amqp::source{};
  a.target = attach_target{amqp::target{}};
  if (r == amqp::role::sender) {
    a.initial_delivery_count = initial_delivery_count;
  }
  return a;
}

// A link flow of a scripted peer.
inline amqp::flow peer_flow(std::uint32_t handle, std::uint32_t delivery_count,
                            std::uint32_t credit, std::uint32_t next_incoming_id = 0,
                            std::uint32_t incoming_window = 2048,
                            std::uint32_t next_outgoing_id = 0) {
  amqp::flow f;
  f.next_incoming_id = next_incoming_id;
  f.incoming_window = incoming_window;
  f.next_outgoing_id = next_outgoing_id;
  f.outgoing_window = 0x7FFF'FFFF;
  f.handle = handle;
  f.delivery_count = delivery_count;
  f.link_credit = credit;
  return f;
}

// The first (or only) transfer frame of a delivery from a scripted peer.
inline amqp::transfer peer_transfer(std::uint32_t handle, std::uint32_t delivery_id,
                                    binary_view tag, bool more = false) {
  amqp::transfer t;
  t.handle = handle;
  t.delivery_id = delivery_id;
  t.delivery_tag = tag;
  t.message_format = 0;
  t.more = more;
  return t;
}

// Opens the connection of a scripted engine and begins one session from the engine,
// answered by the peer's `peer` begin (on the peer's channel `peer_channel`).
inline session_id open_session(frame_script& s, const session_options& so = {},
                               amqp::begin peer = peer_begin(0), std::uint16_t peer_channel = 0,
                               std::uint32_t peer_max_frame_size = 65536) {
  if (s.conn.state().remote == endpoint_status::uninit) {
    s.handshake(peer_open("peer", peer_max_frame_size));
  }
  auto ssn = s.conn.begin(so);
  s.collect();
  if (!ssn) {
    return {};
  }
  peer.remote_channel = ssn->value;
  (void)s.feed(peer, peer_channel);
  return *ssn;
}

// Attaches a link from the engine and answers it from the peer with `peer_handle`; for an
// engine sender, the peer's attach is a receiver's, for an engine receiver a sender's with
// `initial_delivery_count`.
inline link_id attach_link(frame_script& s, session_id ssn, const link_options& lo,
                           std::uint32_t peer_handle, std::uint16_t peer_channel = 0,
                           std::uint32_t initial_delivery_count = 0) {
  auto l = s.conn.attach(ssn, lo);
  s.collect();
  if (!l) {
    return {};
  }
  const amqp::role peer_role =
      lo.role == amqp::role::sender ? amqp::role::receiver : amqp::role::sender;
  (void)s.feed(peer_attach(lo.name, peer_handle, peer_role, initial_delivery_count), peer_channel);
  return *l;
}

// The error condition of a performative that carries one (close, end, detach), or "".
template <class P> std::string condition_of(const std::optional<P>& p) {
  if (!p || !p->error) {
    return "";
  }
  return std::string(p->error->condition.str);
}

} // namespace amqp::test
