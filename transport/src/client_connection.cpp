// The client's connection (client_impl.hpp): connect attempts, TLS and WebSocket handshakes,
// backoff and reconnect, close, and the engine's event loop, which hands link events to
// client_links.cpp.
#include <algorithm>
#include <chrono>

#include <asio/connect.hpp>
#include <asio/post.hpp>

#include "amqp/error.hpp"
#include "client_impl.hpp"
#include "trace_hook.hpp"
#include "ws_stream.hpp"

namespace amqp::transport::detail {

client_impl::client_impl(asio::io_context& io, url u, client_options o)
    : io_(io), url_(std::move(u)), opts_(std::move(o)), timer_(io), resolver_(io),
      rng_(
          static_cast<std::uint32_t>(std::chrono::steady_clock::now().time_since_epoch().count())) {
  own_options();
  if (url_.tls() && !setup_error_) {
    // Loaded once, here: a missing or unreadable file fails the connect at once, and every
    // attempt shares the context, as do other clients with the same files (the files are
    // read again once no client holds it).
    std::string why;
    auto ctx = shared_client_tls_context(opts_.tls, why);
    if (ctx) {
      tls_context_ = std::move(*ctx);
    } else {
      setup_error_ = ctx.error();
      last_error = why;
    }
  }
  opts_.trace = opts_.trace || trace_from_environment();
}

void client_impl::note_error(std::string text) {
  last_error = std::move(text);
  attempt_noted_ = true;
}

std::string client_impl::endpoint() const {
  return (url_.host.find(':') != std::string::npos ? "[" + url_.host + "]" : url_.host) + ":" +
         std::to_string(url_.port);
}

void client_impl::own_options() {
  auto& a = opts_.amqp;
  container_id_ = std::string(a.container_id);
  if (container_id_.empty()) {
    container_id_ = "amqp-cpp-" + std::to_string(rng_()) + "-" + std::to_string(rng_());
  }
  a.container_id = container_id_;
  hostname_ = std::string(a.hostname);
  a.hostname = hostname_;
  auto keep = [](std::string& store, std::string_view& view) {
    store = std::string(view);
    view = store;
  };
  keep(sasl_mechanism_, a.sasl.mechanism);
  keep(sasl_username_, a.sasl.username);
  keep(sasl_password_, a.sasl.password);
  keep(sasl_authzid_, a.sasl.authzid);
  keep(sasl_hostname_, a.sasl.hostname);
  keep(sasl_server_mechanisms_, a.sasl.server_mechanisms);
  if (a.sasl.initial_response) {
    sasl_initial_response_.assign(a.sasl.initial_response->begin(), a.sasl.initial_response->end());
    a.sasl.initial_response = sasl_initial_response_;
  }
  const std::pair<value*, owned_value*> values[] = {
      {&a.offered_capabilities, &offered_capabilities_},
      {&a.desired_capabilities, &desired_capabilities_},
      {&a.properties, &open_properties_}};
  const char* names[] = {"offered_capabilities", "desired_capabilities", "properties"};
  for (std::size_t i = 0; i < std::size(values); ++i) {
    auto copy = owned_value::copy_of(*values[i].first);
    if (!copy) {
      setup_error_ = copy.error();
      last_error = std::string("client_options::amqp.") + names[i] + ": not an encodable value";
      *values[i].first = value{};
      continue;
    }
    *values[i].second = std::move(*copy);
    *values[i].first = values[i].second->get();
  }
}

client_impl::~client_impl() {
  if (driver_) {
    driver_->detach_owner();
    // Operations in flight may still use the engine's buffers: it lives on with the driver.
    driver_->keep_alive(engine_);
    driver_->abort();
  }
}

std::string client_impl::next_link_name(bool sender) {
  return container_id_ + (sender ? "-sender-" : "-receiver-") + std::to_string(++name_counter_);
}

void client_impl::connect(std::function<void(std::error_code)> done) {
  connect_done_ = std::move(done);
  if (setup_error_) {
    phase_ = phase::closed;
    finish_connect(setup_error_);
    return;
  }
  phase_ = phase::connecting;
  start_attempt();
}

void client_impl::start_attempt() {
  const auto id = ++attempt_id_;
  phase_ = phase::connecting;
  ws_done_ = false;
  attempt_noted_ = false;
  timed_out_ = false;
  sasl_refused_ = false;
  before_links_error_ = {};
  timer_.expires_after(opts_.connect_timeout);
  timer_.async_wait([self = shared_from_this(), id](std::error_code ec) {
    if (ec || id != self->attempt_id_ || self->phase_ != phase::connecting) {
      return;
    }
    self->timed_out_ = true;
    self->note_error("no AMQP connection to " + self->endpoint() + " within the connect timeout (" +
                     std::to_string(self->opts_.connect_timeout.count()) + " ms)");
    self->resolver_.cancel();
    if (self->driver_) {
      self->driver_->abort(); // on_stream_closed() reports the timeout
    } else {
      self->attempt_failed(code(errc::timeout));
    }
  });
  resolver_.async_resolve(
      url_.host, std::to_string(url_.port),
      [self = shared_from_this(), id](std::error_code ec,
                                      const asio::ip::tcp::resolver::results_type& results) {
        if (id != self->attempt_id_) {
          return;
        }
        if (ec) {
          self->note_error("cannot resolve " + self->url_.host + ": " + ec.message());
          self->attempt_failed(ec);
          return;
        }
        auto socket = std::make_shared<asio::ip::tcp::socket>(self->io_);
        asio::async_connect(
            *socket, results,
            [self, socket, id](std::error_code e, const asio::ip::tcp::endpoint&) {
              if (id != self->attempt_id_) {
                return;
              }
              if (e) {
                self->note_error("cannot connect to " + self->endpoint() + ": " + e.message());
                self->attempt_failed(e);
                return;
              }
              if (!self->url_.tls()) {
                self->on_connected({}, make_tcp_stream(std::move(*socket)));
                return;
              }
              const std::string host = self->opts_.tls.server_name.empty()
                                           ? self->url_.host
                                           : self->opts_.tls.server_name;
              async_tls_handshake(self->tls_context_, std::move(*socket), false, host,
                                  self->opts_.tls.verify,
                                  [self, id](std::error_code he, std::shared_ptr<byte_stream> s) {
                                    if (id != self->attempt_id_) {
                                      return;
                                    }
                                    if (he) {
                                      self->note_error("TLS handshake with " + self->endpoint() +
                                                       " failed: " + he.message());
                                    }
                                    self->on_connected(he, std::move(s));
                                  });
            });
      });
}

void client_impl::on_connected(std::error_code ec, std::shared_ptr<byte_stream> stream) {
  if (ec) {
    attempt_failed(ec);
    return;
  }
  if (url_.websocket() && !ws_done_) {
    ws_done_ = true;
    const auto id = attempt_id_;
    // The request-target: the URL's path and query (e.g. an SAS token in a query string).
    const std::string target = url_.query.empty() ? url_.path : url_.path + "?" + url_.query;
    async_websocket_client(
        std::move(stream), url_.host, url_.port, url_.tls(), target,
        [self = shared_from_this(), id](std::error_code e, std::shared_ptr<byte_stream> s) {
          if (id != self->attempt_id_) {
            return;
          }
          if (e) {
            self->note_error("WebSocket handshake with " + self->endpoint() +
                             " failed: " + e.message());
          }
          self->on_connected(e, std::move(s));
        });
    return;
  }
  ws_done_ = false;
  connection_options co = opts_.amqp;
  co.role = connection_role::client;
  if (co.hostname.empty()) {
    co.hostname = url_.host;
  }
  if (!url_.user.empty()) {
    co.sasl.enabled = true;
    if (co.sasl.mechanism.empty()) {
      co.sasl.mechanism = "PLAIN";
    }
    co.sasl.username = url_.user;
    co.sasl.password = url_.password;
  } else if (!opts_.no_sasl) {
    co.sasl.enabled = true;
  }
  engine_ = std::make_shared<amqp::connection>(co);
  session_.reset();
  session_ready_ = false;
  links_ready_ = false;
  ++generation;
  for (auto& l : links_) {
    l->id.reset();
    l->attached = false;
    l->refused = false;
  }
  for (auto& q : requesters_) {
    q->helper.reset(); // a new one attaches once the session is ready
    q->relinking = false;
    q->reattach_pending = false; // before_links covers a new connection
  }
  driver_ = std::make_shared<engine_driver>(std::move(stream), *engine_, *this,
                                            opts_.trace ? make_trace_hook("client", generation)
                                                        : engine_driver::trace_hook{});
  (void)engine_->open();
  if (auto s = engine_->begin()) {
    session_ = *s;
  }
  driver_->start();
}

void client_impl::attempt_failed(std::error_code ec) {
  if (phase_ != phase::connecting) {
    return;
  }
  if (!attempt_noted_) {
    note_error("connection to " + endpoint() + " failed: " + ec.message());
  }
  const auto give_up = opts_.reconnect.give_up_after;
  const bool retry =
      opts_.reconnect.enabled && ec != make_error_code(errc::unauthorized) &&
      (opts_.reconnect.max_attempts == 0 || attempt_ < opts_.reconnect.max_attempts) &&
      (give_up.count() == 0 || std::chrono::steady_clock::now() - lost_at_ < give_up);
  // The first connection reports its failure: a URL or credential error should not be
  // retried in silence.
  if (!retry || !ever_open_) {
    phase_ = phase::closed;
    timer_.cancel();
    fail_all(ec);
    finish_connect(ec);
    return;
  }
  phase_ = phase::waiting_reconnect;
  ++attempt_;
  const auto id = ++attempt_id_;
  timer_.expires_after(backoff(attempt_));
  timer_.async_wait([self = shared_from_this(), id](std::error_code e) {
    if (e || id != self->attempt_id_ || self->phase_ != phase::waiting_reconnect) {
      return;
    }
    ++self->reconnects;
    self->start_attempt();
  });
}

std::chrono::milliseconds client_impl::backoff(std::uint32_t attempt) {
  // Exponential backoff with jitter: initial * 2^(attempt-1), capped, reduced by up to jitter.
  auto delay = opts_.reconnect.initial_delay;
  for (std::uint32_t i = 1; i < attempt && delay < opts_.reconnect.max_delay; ++i) {
    delay *= 2;
  }
  delay = std::min(delay, opts_.reconnect.max_delay);
  const double j = std::clamp(opts_.reconnect.jitter, 0.0, 1.0);
  std::uniform_real_distribution<double> dist(1.0 - j, 1.0);
  return std::chrono::milliseconds(
      static_cast<std::int64_t>(static_cast<double>(delay.count()) * dist(rng_)));
}

void client_impl::finish_connect(std::error_code ec) {
  if (auto done = std::move(connect_done_)) {
    connect_done_ = nullptr;
    done(ec);
  }
}

void client_impl::finish_close(std::error_code ec) {
  phase_ = phase::closed;
  timer_.cancel();
  fail_all(code(errc::invalid_state));
  if (auto done = std::move(close_done_)) {
    close_done_ = nullptr;
    done(ec);
  }
}

void client_impl::on_engine_activity() {
  if (!engine_) {
    return;
  }
  // A handler may close the client or open links: the engine stays valid for the loop
  // (it is replaced only from on_stream_closed/on_connected, never from inside here).
  auto keep = shared_from_this();
  in_events_ = true;
  while (auto e = engine_->next_event()) {
    handle(*e);
  }
  in_events_ = false;
  // Credit is topped up once the batch is handed out: the engine has already counted every
  // delivery of the batch, the application not yet.
  for (auto& link : links_) {
    if (link->top_up_due) {
      link->top_up_due = false;
      top_up(*link);
    }
  }
}

void client_impl::on_output_written() {
  for (auto& l : links_) {
    if (l->is_sender && !l->queue.empty()) {
      pump(*l);
    }
  }
  const auto requesters = requesters_; // a handler may open or close one
  for (const auto& q : requesters) {
    if (!q->queue.empty()) {
      pump_requests(*q);
    }
  }
}

void client_impl::on_stream_closed(std::error_code ec) {
  if (driver_) {
    writes_before += driver_->writes();
  }
  driver_.reset();
  switch (phase_) {
  case phase::closing:
    finish_close({});
    return;
  case phase::connecting:
    attempt_failed(timed_out_            ? code(errc::timeout)
                   : before_links_error_ ? before_links_error_
                   : ec                  ? ec
                                         : code(errc::connection_lost));
    return;
  case phase::open:
    connection_lost(ec ? ec : code(errc::connection_lost));
    return;
  default:
    return;
  }
}

void client_impl::connection_lost(std::error_code ec) {
  if (!opts_.reconnect.enabled) {
    phase_ = phase::closed;
    fail_all(ec);
    return;
  }
  attempt_ = 0;
  lost_at_ = std::chrono::steady_clock::now();
  phase_ = phase::connecting; // attempt_failed() schedules the next attempt
  requests_lost(ec);
  attempt_failed(ec);
}

void client_impl::fail_all(std::error_code ec) {
  for (auto& l : links_) {
    link_failed(*l, ec);
  }
  links_.clear();
  const auto requesters = requesters_;
  for (const auto& q : requesters) {
    requester_failed(q, ec);
  }
}

void client_impl::set_last_error(std::string_view what, const std::optional<amqp::error>& e) {
  std::string text(what);
  if (e) {
    text += ": ";
    text += e->condition.str;
    if (e->description) {
      text += ": ";
      text += *e->description;
    }
  }
  note_error(std::move(text));
}

void client_impl::on_session_ready() {
  session_ready_ = true;
  // Requesters first: before_links may use one (IoT Hub's $cbs).
  const auto requesters = requesters_; // attaching may fail one
  for (const auto& q : requesters) {
    if (!q->helper) {
      attach_requester(*q);
    }
  }
  if (links_ready_ || !opts_.before_links) {
    on_links_ready();
    return;
  }
  client handle;
  handle.impl_ = shared_from_this();
  opts_.before_links(handle, [weak = weak_from_this(), gen = generation](std::error_code ec) {
    auto self = weak.lock();
    if (!self || gen != self->generation || !self->driver_ || self->links_ready_ ||
        self->phase_ != phase::connecting) {
      return; // a connection that is gone, or done twice
    }
    if (!ec) {
      self->on_links_ready();
      return;
    }
    if (!self->attempt_noted_) {
      self->note_error("the connection to " + self->endpoint() +
                       " was not made ready for links (before_links): " + ec.message());
    }
    self->before_links_error_ = ec;
    self->driver_->abort(); // on_stream_closed() reports it
  });
}

void client_impl::on_links_ready() {
  links_ready_ = true;
  if (phase_ == phase::connecting) {
    phase_ = phase::open;
    timer_.cancel();
    attempt_ = 0;
    const bool first = !ever_open_;
    ever_open_ = true;
    if (first) {
      finish_connect({});
    }
  }
  for (auto& l : links_) {
    if (!l->id && !l->closed) {
      attach(*l);
    }
  }
}

void client_impl::close(std::function<void(std::error_code)> done) {
  if (phase_ == phase::closing) {
    // A close is already under way (its handler reports how it ends): this one would
    // replace that handler, which would then never run.
    done(code(errc::invalid_state));
    return;
  }
  close_done_ = std::move(done);
  if (phase_ == phase::closed) {
    finish_close({});
    return;
  }
  const bool had_engine = engine_ != nullptr && driver_ != nullptr;
  phase_ = phase::closing;
  ++attempt_id_; // no more reconnects
  if (!had_engine) {
    finish_close({});
    return;
  }
  (void)engine_->close();
  timer_.expires_after(opts_.close_timeout);
  timer_.async_wait([self = shared_from_this()](std::error_code ec) {
    if (!ec && self->phase_ == phase::closing && self->driver_) {
      self->driver_->abort();
    }
  });
  kick();
}

void client_impl::session_lost(const session_ended& se) {
  set_last_error("the peer ended the session of the connection to " + endpoint() + "; reconnecting",
                 se.error);
  // Links whose attach was not answered yet fail as refused (a peer may end the session
  // to refuse one: RabbitMQ does); the others attach again on the next connection, which
  // resends what has no outcome (our client has one session per connection).
  std::vector<std::shared_ptr<link_impl>> refused;
  for (auto& l : links_) {
    if (l->id && l->generation == generation && !l->attached) {
      refused.push_back(l);
    }
  }
  std::vector<std::shared_ptr<requester_impl>> refused_requesters;
  for (auto& q : requesters_) {
    if (q->helper && q->generation == generation && !q->attached_once && !q->relinking) {
      refused_requesters.push_back(q);
    }
  }
  for (auto& q : refused_requesters) {
    requester_failed(q, code(errc::remote_error));
  }
  for (auto& l : refused) {
    std::erase(links_, l);
    link_failed(*l, code(errc::remote_error));
  }
  // Nothing more goes on this session: sends and requests wait for the next connection.
  for (auto& l : links_) {
    if (l->generation == generation) {
      l->id.reset();
      l->attached = false;
    }
  }
  for (auto& q : requesters_) {
    if (q->generation == generation) {
      q->helper.reset();
    }
  }
  // Out of the event loop: what the engine still holds is of no use, and the loop goes on
  // with it until then.
  asio::post(io_, [w = weak_from_this(), gen = generation] {
    auto self = w.lock();
    if (self && gen == self->generation && self->driver_ && self->phase_ == phase::open) {
      self->driver_->abort(); // on_stream_closed() reconnects
    }
  });
}

void client_impl::handle(const event& e) {
  if (!requesters_.empty()) {
    offer_to_requesters(e);
  }
  if (const auto* sb = std::get_if<session_begun>(&e)) {
    if (session_ && sb->session == *session_) {
      on_session_ready();
    }
  } else if (const auto* la = std::get_if<link_attached>(&e)) {
    on_link_attached(*la);
  } else if (const auto* lf = std::get_if<link_flow>(&e)) {
    on_link_flow(*lf);
  } else if (const auto* dr = std::get_if<delivery_received>(&e)) {
    on_delivery_received(*dr);
  } else if (const auto* du = std::get_if<delivery_updated>(&e)) {
    on_delivery_updated(*du);
  } else if (const auto* ld = std::get_if<link_detached>(&e)) {
    on_link_detached(*ld);
  } else if (const auto* se = std::get_if<session_ended>(&e)) {
    if (session_ && se->session == *session_ && se->remote && opts_.relink &&
        opts_.reconnect.enabled && phase_ == phase::open) {
      session_lost(*se);
    } else if (session_ && se->session == *session_) {
      set_last_error("session ended", se->error);
      // The peer ended the session (RabbitMQ does so on a link error): its links are gone.
      // Links of the application fail; a new session serves later links.
      session_.reset();
      session_ready_ = false;
      std::vector<std::shared_ptr<link_impl>> gone;
      for (auto& l : links_) {
        if (l->id && l->generation == generation) {
          gone.push_back(l);
        }
      }
      std::vector<std::shared_ptr<requester_impl>> gone_requesters;
      for (auto& q : requesters_) {
        if (q->helper && q->generation == generation) {
          gone_requesters.push_back(q);
        }
      }
      for (auto& q : gone_requesters) {
        requester_failed(q, code(errc::remote_error));
      }
      for (auto& l : gone) {
        std::erase(links_, l);
        link_failed(*l, code(errc::remote_error));
      }
      if (phase_ == phase::open) {
        if (auto s = engine_->begin()) {
          session_ = *s;
        }
      }
    }
  } else if (const auto* cc = std::get_if<connection_closed>(&e)) {
    if (phase_ != phase::closing) {
      if (cc->code == make_error_code(errc::unauthorized)) {
        if (!sasl_refused_) {
          // The engine found no mechanism it may use among those the server offers.
          const auto& m = opts_.amqp.sasl.mechanism;
          note_error(
              "authentication failed: " + endpoint() +
              " offers no SASL mechanism this client can use (" +
              (m.empty() ? std::string("PLAIN with a user name, or ANONYMOUS") : std::string(m)) +
              ")");
        }
        ++attempt_id_;
        phase_ = phase::closed;
        fail_all(cc->code);
        finish_connect(cc->code);
      } else {
        set_last_error(cc->remote ? "connection to " + endpoint() + " closed by the peer"
                                  : "connection to " + endpoint() + " closed",
                       cc->error);
      }
    }
  } else if (const auto* sd = std::get_if<sasl_done>(&e)) {
    if (sd->code != sasl_code::ok) {
      // AMQP 1.0 §5.3.3.6 sasl-code.
      const char* why = sd->code == sasl_code::auth       ? "auth: bad credentials"
                        : sd->code == sasl_code::sys_perm ? "sys-perm: permanent system error"
                        : sd->code == sasl_code::sys_temp ? "sys-temp: transient system error"
                                                          : "sys: system error";
      sasl_refused_ = true;
      note_error("authentication failed: " + endpoint() + " refused the " +
                 std::string(sd->mechanism.str) + " login (sasl-outcome " + why + ")");
    }
  }
}

} // namespace amqp::transport::detail
