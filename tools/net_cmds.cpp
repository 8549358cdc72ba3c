// `amqp-cli send` and `amqp-cli receive`: a client on the async API (client.hpp), one
// connection, one link, pipelined up to --window messages in flight.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>

#include "amqp/message.hpp"
#include "amqp/transport/client.hpp"
#include "commands.hpp"
#include "input.hpp"
#include "message_json.hpp"

namespace amqp::cli {
namespace {

// Options common to send and receive.
struct net_args {
  std::string url;
  std::string address;
  std::uint64_t count = 1;
  std::string ca;
  std::string cert;
  std::string key;
  bool insecure = false;
  std::string sasl;
  std::uint32_t idle_timeout_ms = 0;
  bool trace = false;
  double timeout_s = 60;
  bool reconnect = false;
  bool no_sasl = false;

  void add(CLI::App& c) {
    c.add_option("url", url, "amqp://[user:pass@]host:port, amqps://, ws://host:port/path, wss://")
        ->required();
    c.add_option("address", address, "the node: queue or topic name")->required();
    c.add_option("--count,-n", count, "number of messages")->capture_default_str();
    c.add_option("--ca", ca, "PEM file of trusted CAs (TLS)");
    c.add_option("--cert", cert, "PEM client certificate (TLS client authentication)");
    c.add_option("--key", key, "PEM private key of --cert");
    c.add_flag("--insecure", insecure, "do not verify the server's certificate (tests only)");
    c.add_option("--sasl", sasl, "SASL mechanism (default: PLAIN with a user, else ANONYMOUS)");
    c.add_flag("--no-sasl", no_sasl, "no SASL layer: the AMQP header first");
    c.add_option("--idle-timeout", idle_timeout_ms, "our idle-time-out in milliseconds");
    c.add_flag("--trace", trace, "print every frame, decoded (secrets redacted)");
    c.add_option("--timeout", timeout_s, "give up after this many seconds")->capture_default_str();
    c.add_flag("--reconnect", reconnect, "reconnect with backoff and resend what is unsettled");
  }

  [[nodiscard]] transport::client_options options() const {
    transport::client_options o;
    o.tls.ca_file = ca;
    o.tls.cert_file = cert;
    o.tls.key_file = key;
    o.tls.verify = !insecure;
    o.amqp.sasl.mechanism = sasl;
    o.amqp.sasl.external = sasl == "EXTERNAL";
    o.no_sasl = no_sasl;
    if (idle_timeout_ms > 0) {
      o.amqp.timeouts.idle_time_out = std::chrono::milliseconds(idle_timeout_ms);
    }
    o.trace = trace;
    o.reconnect.enabled = reconnect;
    return o;
  }
};

// Runs `io` until `done` or the timeout; returns false on timeout.
bool run_until(asio::io_context& io, const bool& done, double timeout_s) {
  asio::steady_timer deadline(io);
  bool timed_out = false;
  deadline.expires_after(std::chrono::milliseconds(static_cast<std::int64_t>(timeout_s * 1000)));
  deadline.async_wait([&](std::error_code ec) {
    if (!ec) {
      timed_out = true;
      io.stop();
    }
  });
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code ec, int) {
    if (!ec) {
      timed_out = true;
      io.stop();
    }
  });
  while (!done && !io.stopped()) {
    io.run_one();
  }
  deadline.cancel();
  signals.cancel();
  return !timed_out;
}

void fail(int& status, std::string_view what, const transport::client& c, std::error_code ec) {
  std::cerr << "amqp-cli: " << what << ": " << ec.message();
  if (!c.last_error().empty()) {
    std::cerr << " (" << c.last_error() << ")";
  }
  std::cerr << '\n';
  status = 1;
}

// One client session of a command: connect, open the command's link, run until done, the
// timeout or a signal, report, close.
struct client_run {
  asio::io_context io;
  transport::client c;
  bool done = false;
  std::error_code error;

  void stop(std::error_code ec) {
    if (ec && !error) {
      error = ec;
    }
    done = true;
  }
  // Connects, then calls open(client) to attach the link; returns false on timeout.
  bool run(const net_args& a, const std::function<void(transport::client&)>& open) {
    transport::client::async_connect(io, a.url, a.options(),
                                     [&](std::error_code ec, transport::client cl) {
                                       c = std::move(cl); // on failure: its last_error()
                                       if (ec) {
                                         stop(ec);
                                         return;
                                       }
                                       open(c);
                                     });
    return run_until(io, done, a.timeout_s);
  }
  // Sets the exit status (timeout, error) and closes the connection.
  void finish(bool in_time, std::string_view what, int& status) {
    if (!in_time) {
      std::cerr << "amqp-cli: timed out\n";
      status = 1;
    } else if (error) {
      fail(status, what, c, error);
    }
    if (c) {
      bool closed = false;
      c.async_close([&](std::error_code) { closed = true; });
      io.restart();
      (void)run_until(io, closed, 10);
    }
  }
};

struct send_args : net_args {
  bool presettled = false;
  std::size_t size = 0;
  std::string body;
  std::vector<std::string> props;
  std::size_t window = 1000;
  bool durable = false;
  std::string message_file;                   // --message: whole messages, one JSON per line
  std::vector<std::vector<std::byte>> loaded; // their encodings
};

// Reads --message FILE: one message per non-blank line, in the JSON form of receive --json
// (message_json.hpp). Errors name the line and what is wrong.
bool load_messages(send_args& a, int& status) {
  std::string error;
  const auto text = read_input(a.message_file, error);
  if (!text) {
    std::cerr << "amqp-cli send: " << error << '\n';
    status = 1;
    return false;
  }
  const std::string_view name = a.message_file.empty() || a.message_file == "-"
                                    ? std::string_view("standard input")
                                    : std::string_view(a.message_file);
  std::size_t number = 0;
  std::size_t begin = 0;
  while (begin < text->size()) {
    const std::size_t end = std::min(text->find('\n', begin), text->size());
    const std::string_view line = std::string_view(*text).substr(begin, end - begin);
    begin = end + 1;
    ++number;
    if (line.find_first_not_of(" \t\r\f\v") == std::string_view::npos) {
      continue;
    }
    auto m = parse_message_json(line, error);
    if (!m) {
      std::cerr << "amqp-cli send: " << name << " line " << number << ": " << error << '\n';
      status = 1;
      return false;
    }
    a.loaded.push_back(std::move(*m));
  }
  if (a.loaded.empty()) {
    std::cerr << "amqp-cli send: " << name << " holds no message\n";
    status = 1;
    return false;
  }
  a.count = a.loaded.size();
  return true;
}

// Encodes message `i`: as loaded from --message, or message-id "<i>", application
// properties, a data body.
std::vector<std::byte> make_message(const send_args& a, std::uint64_t i) {
  if (!a.loaded.empty()) {
    return a.loaded[i];
  }
  std::vector<std::byte> payload;
  if (!a.body.empty()) {
    const auto* p = reinterpret_cast<const std::byte*>(a.body.data());
    payload.assign(p, p + a.body.size());
  } else {
    const std::size_t n = a.size > 0 ? a.size : 16;
    payload.resize(n);
    for (std::size_t k = 0; k < n; ++k) {
      payload[k] = static_cast<std::byte>('A' + k % 26);
    }
  }
  const std::string id = std::to_string(i);
  std::vector<std::string> keys;
  std::vector<std::string> vals;
  for (const auto& p : a.props) {
    const auto eq = p.find('=');
    keys.push_back(p.substr(0, eq));
    vals.push_back(eq == std::string::npos ? std::string() : p.substr(eq + 1));
  }
  std::vector<value> kv;
  for (std::size_t k = 0; k < keys.size(); ++k) {
    kv.emplace_back(std::string_view(keys[k]));
    kv.emplace_back(std::string_view(vals[k]));
  }
  message_parts m;
  if (a.durable) {
    m.header = header{};
    m.header->durable = true;
  }
  m.properties = properties{};
  m.properties->message_id = value(std::string_view(id));
  m.properties->creation_time = timestamp{std::chrono::duration_cast<std::chrono::milliseconds>(
                                              std::chrono::system_clock::now().time_since_epoch())
                                              .count()};
  if (!kv.empty()) {
    m.application_properties = value::map(kv);
  }
  const value body[1] = {value(binary_view(payload))};
  m.body = body_kind::data;
  m.body_sections = body;
  std::vector<std::byte> out;
  (void)encode_append(m, out);
  return out;
}

void run_send(const send_args& args, int& status) {
  send_args a = args;
  if (!a.message_file.empty() && !load_messages(a, status)) {
    return;
  }
  client_run run;
  transport::sender s;
  std::uint64_t sent = 0;
  std::uint64_t settled = 0;
  // Outcomes by their AMQP name ("accepted", "rejected", ...): no integer outcome codes.
  std::map<std::string, std::uint64_t, std::less<>> counts;

  std::function<void()> send_more = [&] {
    while (sent < a.count && s.in_flight() < a.window) {
      const auto bytes = make_message(a, sent);
      ++sent;
      s.async_send(bytes, [&](std::error_code ec, const transport::delivery_outcome& o) {
        ++settled;
        if (ec) {
          run.stop(ec);
          return;
        }
        ++counts[std::string(name(o.state))];
        if (settled == a.count) {
          run.stop({});
          return;
        }
        send_more();
      });
    }
  };
  const bool in_time = run.run(a, [&](transport::client& c) {
    transport::sender_options so;
    so.presettled = a.presettled;
    so.durable = a.durable;
    c.async_open_sender(a.address, so, [&](std::error_code e, transport::sender sd) {
      if (e) {
        run.stop(e);
        return;
      }
      s = std::move(sd);
      send_more();
    });
  });
  std::cout << "sent " << settled << " accepted " << counts["accepted"] << " rejected "
            << counts["rejected"] << " released " << counts["released"] << " modified "
            << counts["modified"] << std::endl;
  if (run.c && run.c.reconnects() > 0) {
    std::cerr << "amqp-cli: reconnected " << run.c.reconnects() << " time(s)\n";
  }
  if (in_time && !run.error && !a.presettled && counts["accepted"] != a.count) {
    status = 1;
  }
  run.finish(in_time, "send", status);
}

struct receive_args : net_args {
  std::string outcome = "accept";
  std::uint32_t credit = 1000;
  std::optional<std::uint32_t> credit_overrun;
  bool settle_second = false;
  bool print = false;
  bool print_id = false;
  bool json = false;
  std::uint32_t until_idle_ms = 0;
};

// Settles `m` as --outcome says.
result<void> settle(transport::receiver& r, const transport::received_message& m,
                    const std::string& outcome) {
  if (outcome == "reject") {
    return r.reject(m, "amqp:internal-error", "rejected by amqp-cli");
  }
  if (outcome == "release") {
    return r.release(m);
  }
  if (outcome == "modify") {
    return r.modify(m, true, false);
  }
  return r.accept(m);
}

void print(const receive_args& a, const transport::received_message& m, std::uint64_t n) {
  if (a.json) {
    // The whole message, one line (message_json.hpp): send --message reads it back.
    std::string line;
    if (auto r = append_message_json(m.bytes(), line); !r) {
      std::cerr << "amqp-cli receive: message " << n
                << " is not a valid AMQP message: " << r.error().message() << '\n';
      return;
    }
    line += '\n';
    std::cout << line;
    return;
  }
  auto v = m.decode();
  if (!v) {
    return;
  }
  if (a.print_id && v->properties) {
    if (auto id = v->properties->message_id.get_string()) {
      std::cout << "id " << *id << '\n';
    }
  }
  if (a.print) {
    const auto d = v->data();
    std::cout << std::string_view(reinterpret_cast<const char*>(d.data()), d.size()) << '\n';
  }
}

void run_receive(const receive_args& a, int& status) {
  client_run run;
  transport::receiver r;
  std::uint64_t received = 0;
  // --until-idle: done (successfully) once no message has come for that long.
  asio::steady_timer idle(run.io);
  const auto arm_idle = [&] {
    if (a.until_idle_ms == 0) {
      return;
    }
    idle.expires_after(std::chrono::milliseconds(a.until_idle_ms));
    idle.async_wait([&](std::error_code ec) {
      if (!ec) {
        run.stop({});
      }
    });
  };

  std::function<void()> next = [&] {
    r.async_receive([&](std::error_code ec, const transport::received_message& m) {
      if (ec) {
        run.stop(ec);
        return;
      }
      ++received;
      arm_idle();
      print(a, m, received);
      if (!m.settled()) {
        if (auto s = settle(r, m, a.outcome); !s) {
          run.stop(s.error());
          return;
        }
      }
      if (received == a.count) {
        r.set_credit(0); // nothing more in flight to us: it would be lost at close
        run.stop({});
        return;
      }
      // No more credit than messages still wanted: a broker that sends presettled would
      // lose the extra ones when we close.
      if (a.count - received < a.credit) {
        r.set_credit(static_cast<std::uint32_t>(a.count - received));
      }
      next();
    });
  };
  const bool in_time = run.run(a, [&](transport::client& c) {
    transport::receiver_options ro;
    ro.credit = static_cast<std::uint32_t>(std::min<std::uint64_t>(a.credit, a.count));
    ro.credit_overrun = a.credit_overrun;
    ro.settle_second = a.settle_second;
    c.async_open_receiver(a.address, ro, [&](std::error_code e, transport::receiver rv) {
      if (e) {
        run.stop(e);
        return;
      }
      r = std::move(rv);
      arm_idle();
      next();
    });
  });
  // With --json, standard output holds only messages (to be sent again as they are).
  (a.json ? std::cerr : std::cout) << "received " << received << std::endl;
  run.finish(in_time, "receive", status);
}

} // namespace

void add_send_command(CLI::App& app, int& status) {
  auto a = std::make_shared<send_args>();
  auto* c = app.add_subcommand("send", "send messages to a node of a broker");
  a->add(*c);
  c->add_flag("--presettled", a->presettled, "send presettled (at most once)");
  c->add_option("--size", a->size, "body size in bytes (data section)");
  c->add_option("--body", a->body, "body text (data section)");
  c->add_option("--property", a->props, "application property KEY=VALUE (repeatable)");
  c->add_option("--window", a->window, "messages in flight at most")->capture_default_str();
  auto* durable = c->add_flag("--durable", a->durable, "durable messages to a durable target node");
  c->add_option("--message", a->message_file,
                "FILE of whole messages in the JSON form of receive --json, one per line (\"-\": "
                "standard input): each is sent as it is, all of them")
      ->excludes(c->get_option("--count"))
      ->excludes(c->get_option("--size"))
      ->excludes(c->get_option("--body"))
      ->excludes(c->get_option("--property"))
      ->excludes(durable);
  c->footer(std::string(message_json_help) + "\n" + typed_json_help);
  c->callback([a, &status] { run_send(*a, status); });
}

void add_receive_command(CLI::App& app, int& status) {
  auto a = std::make_shared<receive_args>();
  auto* c = app.add_subcommand("receive", "receive messages from a node of a broker");
  a->add(*c);
  c->add_option("--outcome", a->outcome, "accept, reject, release or modify")
      ->check(CLI::IsMember({"accept", "reject", "release", "modify"}))
      ->capture_default_str();
  c->add_option("--credit", a->credit, "link credit (prefetch)")->capture_default_str();
  c->add_option("--credit-overrun", a->credit_overrun,
                "transfers tolerated beyond the credit (RabbitMQ before 4.0 overshoots); "
                "default: as many as --credit, 0: strict");
  c->add_flag("--settle-second", a->settle_second,
              "rcv-settle-mode second: outcomes go unsettled, the sender settles them");
  auto* body = c->add_flag("--print", a->print, "print each message body");
  auto* id = c->add_flag("--print-id", a->print_id, "print each message-id (\"id ID\")");
  c->add_flag("--json", a->json,
              "print each message whole, one JSON line per message (the form send --message "
              "reads); \"received N\" then goes to standard error")
      ->excludes(body)
      ->excludes(id);
  c->footer(std::string(message_json_help) + "\n" + typed_json_help);
  c->add_option("--until-idle", a->until_idle_ms,
                "stop (successfully) when no message came for this many milliseconds");
  c->callback([a, &status] { run_receive(*a, status); });
}

} // namespace amqp::cli
