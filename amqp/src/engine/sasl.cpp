// SASL (AMQP 1.0 §5.3), a mode of the connection engine before the AMQP header, in both
// roles. Built-in client mechanisms: ANONYMOUS, PLAIN (RFC 4616), EXTERNAL; any other
// mechanism is pluggable through events. The server reports each exchange as events and the
// application decides (sasl_challenge / sasl_complete); nothing calls back into it.
#include <cstring>

#include "amqp/assert.hpp"
#include "engine/engine.hpp"

namespace amqp::detail {

namespace {

std::span<const std::byte> as_bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

bool offered(std::string_view list, std::string_view mech) noexcept {
  std::size_t i = 0;
  while (i < list.size()) {
    std::size_t j = list.find(' ', i);
    if (j == std::string_view::npos) {
      j = list.size();
    }
    if (list.substr(i, j - i) == mech) {
      return true;
    }
    i = j + 1;
  }
  return false;
}

// Splits a PLAIN response (RFC 4616: authzid NUL authcid NUL passwd) into its parts.
bool split_plain(std::span<const std::byte> r, std::string_view& authzid, std::string_view& authcid,
                 std::string_view& passwd) noexcept {
  const std::string_view s(reinterpret_cast<const char*>(r.data()), r.size());
  const std::size_t a = s.find('\0');
  if (a == std::string_view::npos) {
    return false;
  }
  const std::size_t b = s.find('\0', a + 1);
  if (b == std::string_view::npos) {
    return false;
  }
  authzid = s.substr(0, a);
  authcid = s.substr(a + 1, b - a - 1);
  passwd = s.substr(b + 1);
  return true;
}

} // namespace

// The mechanism a client uses: the configured one, else the best the options allow.
static std::string_view implied_mechanism(const sasl_options& o) noexcept {
  if (!o.mechanism.empty()) {
    return o.mechanism;
  }
  if (!o.username.empty()) {
    return "PLAIN";
  }
  if (o.external) {
    return "EXTERNAL";
  }
  return "ANONYMOUS";
}

void connection_impl::sasl_client_send_init() {
  if (sasl_chosen.empty()) {
    sasl_chosen = implied_mechanism(opts.sasl);
  }
  sasl_init init;
  init.mechanism = symbol_view{sasl_chosen};
  pvec<std::byte> plain(mem);
  if (sasl_chosen == "PLAIN") {
    // RFC 4616: authzid NUL authcid NUL passwd.
    const auto z = as_bytes(opts.sasl.authzid);
    const auto u = as_bytes(opts.sasl.username);
    const auto p = as_bytes(opts.sasl.password);
    plain.insert(plain.end(), z.begin(), z.end());
    plain.push_back(std::byte{0});
    plain.insert(plain.end(), u.begin(), u.end());
    plain.push_back(std::byte{0});
    plain.insert(plain.end(), p.begin(), p.end());
    init.initial_response = binary_view(plain);
  } else if (opts.sasl.initial_response) {
    init.initial_response = binary_view(*opts.sasl.initial_response);
  } else if (sasl_chosen == "ANONYMOUS" || sasl_chosen == "EXTERNAL") {
    init.initial_response = binary_view{};
  }
  if (!opts.sasl.hostname.empty()) {
    init.hostname = opts.sasl.hostname;
  } else if (!opts.hostname.empty()) {
    init.hostname = opts.hostname;
  }
  if (!write_sasl(init)) {
    fail_local(errc::frame_too_large); // e.g. a token beyond 512 bytes
    return;
  }
  sasl_init_sent = true;
}

void connection_impl::on_sasl_server_start() {
  // Every mechanism configured is offered (none dropped: the frame is the one asked for).
  pvec<value> items(mem);
  const std::string_view list = opts.sasl.server_mechanisms;
  std::size_t i = 0;
  while (i < list.size()) {
    std::size_t j = list.find(' ', i);
    if (j == std::string_view::npos) {
      j = list.size();
    }
    if (j > i) {
      items.emplace_back(symbol_view{list.substr(i, j - i)});
    }
    i = j + 1;
  }
  sasl_mechanisms m;
  m.sasl_server_mechanisms = symbols{value::array(type::symbol, items)};
  // Symbols always encode.
  const auto w = write_sasl(m);
  AMQP_ASSERT(w);
  (void)w;
  sasl = sasl_step::wait_init;
}

void connection_impl::on_sasl(const sasl_frame& f) {
  const bool server = opts.role == connection_role::server;
  switch (f.index()) {
  case 0: { // sasl-mechanisms (§5.3.3.1), to a client
    if (server || sasl != sasl_step::wait_mechanisms) {
      break;
    }
    const auto& m = std::get<sasl_mechanisms>(f);
    if (sasl_init_sent) {
      // Pipelined: the mechanism was chosen in advance; the server must offer it.
      if (!m.sasl_server_mechanisms.contains(sasl_chosen)) {
        fail_local(errc::unauthorized);
        return;
      }
      sasl = sasl_step::wait_outcome;
      return;
    }
    std::string_view pick;
    if (!opts.sasl.mechanism.empty()) {
      if (m.sasl_server_mechanisms.contains(opts.sasl.mechanism)) {
        pick = opts.sasl.mechanism;
      }
    } else {
      for (std::string_view c : {std::string_view("PLAIN"), std::string_view("EXTERNAL"),
                                 std::string_view("ANONYMOUS")}) {
        const bool usable = c == "PLAIN"      ? !opts.sasl.username.empty()
                            : c == "EXTERNAL" ? opts.sasl.external
                                              : true;
        if (usable && m.sasl_server_mechanisms.contains(c)) {
          pick = c;
          break;
        }
      }
    }
    if (pick.empty()) {
      fail_local(errc::unauthorized); // no mechanism in common
      return;
    }
    sasl_chosen = pick;
    sasl_client_send_init();
    sasl = sasl_step::wait_outcome;
    return;
  }
  case 1: { // sasl-init (§5.3.3.2), to a server
    if (!server || sasl != sasl_step::wait_init) {
      break;
    }
    const auto& init = std::get<sasl_init>(f);
    sasl_chosen = init.mechanism.str;
    if (!offered(opts.sasl.server_mechanisms, init.mechanism.str)) {
      (void)sasl_complete(sasl_code::auth, {});
      return;
    }
    if (init.mechanism.str == "ANONYMOUS" && opts.sasl.accept_anonymous) {
      sasl = sasl_step::wait_decision;
      (void)sasl_complete(sasl_code::ok, {});
      return;
    }
    sasl_init_received e;
    e.mechanism = symbol_view{sasl_chosen};
    e.initial_response = init.initial_response.value_or(binary_view{});
    e.hostname = init.hostname.value_or(std::string_view{});
    if (init.mechanism.str == "PLAIN") {
      (void)split_plain(e.initial_response, e.authzid, e.username, e.password);
    }
    sasl = sasl_step::wait_decision;
    push(e);
    return;
  }
  case 2: { // sasl-challenge (§5.3.3.3), to a client
    if (server || sasl != sasl_step::wait_outcome) {
      break;
    }
    const auto& c = std::get<amqp::sasl_challenge>(f);
    if (amqp_header_sent) {
      // Pipelined: the AMQP header is already written, so no sasl-response can follow it
      // (§5.3.2). A mechanism that needs challenges cannot be pipelined.
      fail_local(errc::unauthorized);
      return;
    }
    if (sasl_chosen == "PLAIN" || sasl_chosen == "ANONYMOUS" || sasl_chosen == "EXTERNAL") {
      // The built-in mechanisms have nothing more to say.
      (void)write_sasl(sasl_response{binary_view{}});
      return;
    }
    sasl = sasl_step::wait_challenge_answer;
    push(sasl_challenge_received{c.challenge});
    return;
  }
  case 3: { // sasl-response (§5.3.3.4), to a server
    if (!server || sasl != sasl_step::wait_response) {
      break;
    }
    sasl = sasl_step::wait_decision;
    push(sasl_response_received{std::get<sasl_response>(f).response});
    return;
  }
  default: { // sasl-outcome (§5.3.3.5), to a client
    if (server || sasl != sasl_step::wait_outcome) {
      break;
    }
    const auto& o = std::get<sasl_outcome>(f);
    push(sasl_done{o.code, o.additional_data.value_or(binary_view{}), symbol_view{sasl_chosen}});
    if (o.code != sasl_code::ok) {
      fail_local(errc::unauthorized);
      return;
    }
    sasl = sasl_step::none;
    // §5.3.2: the SASL layer ends after the outcome; the AMQP header follows.
    ph = phase::amqp_header;
    if (!amqp_header_sent) {
      write_header(protocol_id::amqp);
    }
    return;
  }
  }
  // §5.3.2: a SASL frame out of sequence.
  fail_local(errc::not_allowed);
}

result<void> connection_impl::sasl_challenge(std::span<const std::byte> c) {
  if (fatal) {
    return fatal;
  }
  if (opts.role != connection_role::server || sasl != sasl_step::wait_decision) {
    return errc::invalid_state;
  }
  if (auto w = write_sasl(amqp::sasl_challenge{binary_view(c)}); !w) {
    return w.error();
  }
  sasl = sasl_step::wait_response;
  return {};
}

result<void> connection_impl::sasl_complete(sasl_code code, std::span<const std::byte> data) {
  if (fatal) {
    return fatal;
  }
  if (opts.role != connection_role::server ||
      (sasl != sasl_step::wait_decision && sasl != sasl_step::wait_init)) {
    return errc::invalid_state;
  }
  sasl_outcome o;
  o.code = code;
  if (!data.empty()) {
    o.additional_data = binary_view(data);
  }
  if (auto w = write_sasl(o); !w) {
    return w.error();
  }
  push(sasl_done{code, {}, symbol_view{sasl_chosen}});
  if (code != sasl_code::ok) {
    fail_local(errc::unauthorized);
    return {};
  }
  sasl = sasl_step::none;
  ph = phase::amqp_header;
  // Bytes the client pipelined after its SASL frames (AMQP header, open, ...) are read now.
  process_input();
  replenish_windows();
  return {};
}

result<void> connection_impl::sasl_respond(std::span<const std::byte> r) {
  if (fatal) {
    return fatal;
  }
  if (opts.role != connection_role::client || sasl != sasl_step::wait_challenge_answer) {
    return errc::invalid_state;
  }
  if (auto w = write_sasl(sasl_response{binary_view(r)}); !w) {
    return w.error();
  }
  sasl = sasl_step::wait_outcome;
  // Frames that arrived after the challenge are read now.
  process_input();
  replenish_windows();
  return {};
}

} // namespace amqp::detail
