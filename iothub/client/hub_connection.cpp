// hub_connection (hub_connection.hpp): the transport client, the `$cbs` requester that puts
// each identity's token before the links attach (client_options::before_links) and renews
// it on a timer, SASL PLAIN and X.509 set-up, and the options a connection string implies.
#include "amqp/iothub/hub_connection.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <utility>

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include "amqp/error.hpp"
#include "amqp/iothub/address.hpp"
#include "amqp/iothub/cbs.hpp"

namespace amqp::iothub {

namespace {

std::uint64_t unix_now() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

std::error_code code(amqp::errc e) {
  return amqp::make_error_code(e);
}

// The error of a CBS status the hub sent: 401 and 403 refuse the token.
std::error_code status_error(std::int32_t status) {
  return status == cbs_status::unauthorized || status == cbs_status::forbidden
             ? code(amqp::errc::unauthorized)
             : code(amqp::errc::remote_error);
}

std::uint16_t default_port(hub_protocol p) {
  switch (p) {
  case hub_protocol::amqps:
    return 5671;
  case hub_protocol::amqp_websockets:
    return 443;
  case hub_protocol::amqp:
    return 5672;
  }
  return 5671;
}

} // namespace

// ---- token_source ---------------------------------------------------------------------------

token_source token_source::from_key(std::string audience, std::string key, std::string key_name,
                                    std::chrono::seconds lifetime, sas_key_form form) {
  token_source t;
  t.audience_ = std::move(audience);
  t.key_ = std::move(key);
  t.key_name_ = std::move(key_name);
  t.lifetime_ = std::max(lifetime, std::chrono::seconds(1));
  t.form_ = form;
  return t;
}

result<token_source> token_source::from_token(std::string token, std::string* why) {
  auto parsed = parse_sas_token(token, why);
  if (!parsed) {
    return parsed.error();
  }
  auto audience = url_decode(parsed->resource, why);
  if (!audience) {
    return audience.error();
  }
  token_source t;
  t.audience_ = std::move(*audience);
  t.token_ = std::move(token);
  t.expiry_ = parsed->expiry;
  return t;
}

result<token_source::token> token_source::make(std::uint64_t now, std::string* why) const {
  if (key_.empty()) {
    if (expiry_ <= now) {
      if (why != nullptr) {
        *why = "the SAS token given for " + audience_ + " has expired";
      }
      return make_error_code(errc::token_expired);
    }
    return token{token_, expiry_};
  }
  const std::uint64_t expiry = now + static_cast<std::uint64_t>(lifetime_.count());
  auto text = make_sas_token(audience_, key_, expiry, key_name_, why, form_);
  if (!text) {
    return text.error();
  }
  return token{std::move(*text), expiry};
}

// ---- endpoint_from --------------------------------------------------------------------------

result<hub_endpoint> endpoint_from(const connection_string& cs, hub_protocol protocol,
                                   std::string* why) {
  auto kind = validate(cs, why);
  if (!kind) {
    return kind.error();
  }
  hub_endpoint e;
  e.kind = *kind;
  e.parsed = cs;
  auto& o = e.options;
  o.protocol = protocol;
  if (*kind == connection_string_kind::event_hubs) {
    // Endpoint=sb://host[:port]/
    std::string_view rest = cs.endpoint;
    rest.remove_prefix(rest.find("://") + 3);
    rest = rest.substr(0, rest.find('/'));
    o.host = std::string(rest);
    o.websocket_path = "/$servicebus/websocket";
    auto hp = split_host_port(rest, why);
    if (!hp) {
      return hp.error();
    }
    const std::string audience = "sb://" + std::string(hp->host) + "/" + cs.entity_path;
    if (!cs.shared_access_signature.empty()) {
      auto t = token_source::from_token(cs.shared_access_signature, why);
      if (!t) {
        return t.error();
      }
      e.identity = std::move(*t);
    } else {
      e.identity = token_source::from_key(audience, cs.shared_access_key, cs.shared_access_key_name,
                                          std::chrono::hours(1), sas_key_form::text);
    }
    o.sasl_user = cs.shared_access_key_name;
    return e;
  }
  o.host = cs.gateway_host_name.empty() ? cs.host_name : cs.gateway_host_name;
  o.virtual_host = cs.host_name;
  const std::string hub = std::string(hub_name(cs.host_name));
  if (*kind == connection_string_kind::service) {
    o.sasl_user = sasl_policy_user(cs.shared_access_key_name, hub);
    if (!cs.shared_access_signature.empty()) {
      auto t = token_source::from_token(cs.shared_access_signature, why);
      if (!t) {
        return t.error();
      }
      e.identity = std::move(*t);
    } else {
      e.identity =
          token_source::from_key(cs.host_name, cs.shared_access_key, cs.shared_access_key_name);
    }
    return e;
  }
  const device_identity id{cs.device_id, cs.module_id};
  o.sasl_user = sasl_device_user(id, hub);
  if (cs.x509) {
    o.auth = hub_auth::x509;
    return e;
  }
  if (!cs.shared_access_signature.empty()) {
    auto t = token_source::from_token(cs.shared_access_signature, why);
    if (!t) {
      return t.error();
    }
    e.identity = std::move(*t);
  } else {
    e.identity =
        token_source::from_key(device_resource_uri(cs.host_name, id), cs.shared_access_key);
  }
  return e;
}

result<hub_endpoint> endpoint_from(std::string_view text, hub_protocol protocol, std::string* why) {
  auto cs = parse_connection_string(text, why);
  if (!cs) {
    return cs.error();
  }
  return endpoint_from(*cs, protocol, why);
}

// ---- hub_connection_impl --------------------------------------------------------------------

namespace detail {

class hub_connection_impl : public std::enable_shared_from_this<hub_connection_impl> {
public:
  hub_connection_impl(asio::io_context& io, hub_connection_options o)
      : io_(io), opts_(std::move(o)) {}

  // One identity of a cbs connection: its tokens and their renewal.
  struct identity {
    identity(asio::io_context& io, token_source s) : source(std::move(s)), renew(io) {}
    token_source source;
    asio::steady_timer renew;
    bool put_once = false; // its token was put on some connection
  };

  void connect(std::vector<token_source> identities,
               std::function<void(std::error_code, hub_connection)> done);
  void add(token_source source, std::function<void(std::error_code)> done);
  void close(std::function<void(std::error_code)> done);

  transport::client client_;
  std::string last_error_;
  std::uint64_t puts_ = 0;
  std::function<void(const std::string&, std::error_code)> on_error_;
  bool closed_ = false;

private:
  // client_options::before_links: the $cbs requester, then every identity's token.
  void before_links(transport::client& c, std::function<void(std::error_code)> done);
  void put_all(std::function<void(std::error_code)> done);
  // One put-token; `done` gets its result. A success schedules the renewal. A put whose
  // $cbs links the hub detached before it answered is made again on the new links (up to
  // `tries_left` times).
  void put(const std::shared_ptr<identity>& id, std::function<void(std::error_code)> done,
           int tries_left = 3);
  // The $cbs links were attached again after the hub detached one: every token is put
  // again on them (a failure is reported to that identity).
  void on_cbs_reattached();
  void schedule_renewal(const std::shared_ptr<identity>& id, std::uint64_t now,
                        std::uint64_t expiry);
  void report(const std::shared_ptr<identity>& id, std::error_code ec);

  asio::io_context& io_;
  hub_connection_options opts_;
  transport::requester cbs_;
  bool cbs_opening_ = false;
  std::vector<std::shared_ptr<identity>> identities_;
};

void hub_connection_impl::connect(std::vector<token_source> identities,
                                  std::function<void(std::error_code, hub_connection)> done) {
  auto fail = [&](std::string why) {
    last_error_ = std::move(why);
    asio::post(io_, [done = std::move(done), text = last_error_] {
      hub_connection failed;
      failed.failure_ = text;
      done(code(amqp::errc::invalid_argument), std::move(failed));
    });
  };
  if (opts_.host.empty()) {
    fail("hub_connection_options::host is empty");
    return;
  }
  if (opts_.auth == hub_auth::sasl_plain && identities.size() != 1) {
    fail("SASL PLAIN authenticates exactly one identity");
    return;
  }
  if (opts_.auth == hub_auth::x509 &&
      (opts_.tls.cert_file.empty() || opts_.protocol == hub_protocol::amqp)) {
    fail("X.509 needs TLS and tls.cert_file");
    return;
  }
  for (auto& s : identities) {
    identities_.push_back(std::make_shared<identity>(io_, std::move(s)));
  }
  auto hp = split_host_port(opts_.host);
  if (!hp) {
    fail("hub_connection_options::host is not host[:port]: " + opts_.host);
    return;
  }
  const std::uint16_t port = hp->port.value_or(default_port(opts_.protocol));
  const std::string host = std::string(hp->host).find(':') != std::string::npos
                               ? "[" + std::string(hp->host) + "]"
                               : std::string(hp->host);
  std::string url;
  switch (opts_.protocol) {
  case hub_protocol::amqps:
    url = "amqps://" + host + ":" + std::to_string(port);
    break;
  case hub_protocol::amqp_websockets:
    url = "wss://" + host + ":" + std::to_string(port) + opts_.websocket_path;
    break;
  case hub_protocol::amqp:
    url = "amqp://" + host + ":" + std::to_string(port);
    break;
  }
  transport::client_options co;
  co.tls = opts_.tls;
  co.reconnect = opts_.reconnect;
  co.connect_timeout = opts_.connect_timeout;
  co.trace = opts_.trace;
  co.amqp.container_id = opts_.container_id;
  co.amqp.hostname = opts_.virtual_host;
  std::string password;
  switch (opts_.auth) {
  case hub_auth::x509:
    co.no_sasl = true; // doc §2.6: the certificate is the identity; no SASL, no token
    break;
  case hub_auth::sasl_plain: {
    std::string why;
    auto t = identities_.front()->source.make(unix_now(), &why);
    if (!t) {
      fail("cannot make the SAS token: " + why);
      return;
    }
    password = std::move(t->text);
    co.amqp.sasl.enabled = true;
    co.amqp.sasl.mechanism = "PLAIN";
    co.amqp.sasl.username = opts_.sasl_user;
    co.amqp.sasl.password = password; // copied by the client
    break;
  }
  case hub_auth::cbs:
    co.before_links = [w = weak_from_this()](transport::client& c,
                                             std::function<void(std::error_code)> d) {
      if (auto self = w.lock()) {
        self->before_links(c, std::move(d));
      } else {
        d(code(amqp::errc::invalid_state));
      }
    };
    break;
  }
  transport::client::async_connect(
      io_, url, std::move(co),
      [self = shared_from_this(), done = std::move(done)](std::error_code ec, transport::client c) {
        hub_connection h;
        if (ec) {
          if (self->last_error_.empty()) {
            self->last_error_ = c.last_error();
          }
          h.failure_ = self->last_error_.empty() ? ec.message() : self->last_error_;
          done(ec, std::move(h));
          return;
        }
        self->client_ = std::move(c);
        h.impl_ = self;
        done({}, std::move(h));
      });
}

void hub_connection_impl::before_links(transport::client& c,
                                       std::function<void(std::error_code)> done) {
  if (cbs_) {
    put_all(std::move(done));
    return;
  }
  if (cbs_opening_) {
    done(code(amqp::errc::invalid_state));
    return;
  }
  cbs_opening_ = true;
  transport::requester_options ro;
  ro.reply_to = std::string(node_cbs_reply_to);
  ro.name = "cbs";
  ro.timeout = opts_.put_token_timeout;
  ro.on_reattached = [w = weak_from_this()] {
    if (auto self = w.lock()) {
      self->on_cbs_reattached();
    }
  };
  c.async_open_requester("$cbs", ro,
                         [self = shared_from_this(), done = std::move(done),
                          c](std::error_code ec, transport::requester q) mutable {
                           self->cbs_opening_ = false;
                           if (ec) {
                             self->last_error_ = "the hub refused the $cbs link: " + c.last_error();
                             done(ec);
                             return;
                           }
                           self->cbs_ = std::move(q);
                           self->put_all(std::move(done));
                         });
}

void hub_connection_impl::put_all(std::function<void(std::error_code)> done) {
  if (identities_.empty()) {
    done({});
    return;
  }
  // Every identity is put; the connection goes on if one at least succeeds (the others are
  // reported to on_error_), and fails with the first error if none does.
  struct tally {
    std::size_t left = 0;
    std::size_t ok = 0;
    std::error_code first;
    std::function<void(std::error_code)> done;
  };
  auto t = std::make_shared<tally>();
  t->left = identities_.size();
  t->done = std::move(done);
  const auto ids = identities_;
  for (const auto& id : ids) {
    put(id, [self = shared_from_this(), t, id](std::error_code ec) {
      if (ec) {
        if (!t->first) {
          t->first = ec;
        }
        if (id->put_once) {
          self->report(id, ec); // a reconnect: the identity's links fail, not the others
        }
      } else {
        ++t->ok;
      }
      if (--t->left == 0) {
        t->done(t->ok > 0 ? std::error_code{} : t->first);
      }
    });
  }
}

void hub_connection_impl::on_cbs_reattached() {
  if (closed_) {
    return;
  }
  const auto ids = identities_;
  for (const auto& id : ids) {
    put(id, [self = shared_from_this(), id](std::error_code ec) {
      if (ec) {
        self->report(id, ec);
      }
    });
  }
}

void hub_connection_impl::put(const std::shared_ptr<identity>& id,
                              std::function<void(std::error_code)> done, int tries_left) {
  std::string why;
  const std::uint64_t now = unix_now();
  auto t = id->source.make(now, &why);
  if (!t) {
    last_error_ = "cannot make the SAS token for " + id->source.audience() + ": " + why;
    done(t.error());
    return;
  }
  put_token_request r;
  r.audience = id->source.audience();
  r.token = std::move(t->text);
  r.to = std::string("$cbs");
  const std::uint64_t expiry = t->expiry;
  cbs_.async_request(
      build_put_token(r),
      [self = shared_from_this(), id, now, expiry, tries_left,
       done = std::move(done)](std::error_code ec, const transport::received_message& m) mutable {
        const std::string audience = id->source.audience();
        if (ec == code(amqp::errc::connection_lost) && tries_left > 1 && !self->closed_) {
          // The hub detached a $cbs link before it answered; the requester attaches again
          // and the put waits for it (a put may be repeated).
          self->put(id, std::move(done), tries_left - 1);
          return;
        }
        if (ec) {
          self->last_error_ =
              "put-token for " + audience + " failed: " +
              (ec == code(amqp::errc::timeout) ? std::string("no answer in time") : ec.message());
          done(ec);
          return;
        }
        auto msg = m.message();
        std::string perr;
        auto resp = msg ? parse_cbs_response(*msg, &perr) : result<cbs_response>(msg.error());
        if (!resp) {
          self->last_error_ =
              "the hub's answer to put-token for " + audience + " is not a CBS response: " + perr;
          done(code(amqp::errc::remote_error));
          return;
        }
        if (!is_success_status(resp->status_code)) {
          self->last_error_ = "the hub refused the token for " + audience + ": status " +
                              std::to_string(resp->status_code) + " " + resp->status_description;
          done(status_error(resp->status_code));
          return;
        }
        ++self->puts_;
        id->put_once = true;
        if (id->source.renewable()) {
          self->schedule_renewal(id, now, expiry);
        }
        done({});
      });
}

void hub_connection_impl::schedule_renewal(const std::shared_ptr<identity>& id, std::uint64_t now,
                                           std::uint64_t expiry) {
  // `now` is in whole seconds (the token's se): up to a second of the life may be gone
  // already, and the put took its time. The renewal is timed on what is left now, to the
  // millisecond, so that it always comes before the expiry.
  (void)now;
  const double fraction = std::clamp(opts_.renew_at, 0.05, 0.95);
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const auto left_ms = std::max<std::int64_t>(static_cast<std::int64_t>(expiry) * 1000 - now_ms, 0);
  id->renew.expires_after(std::chrono::milliseconds(
      static_cast<std::int64_t>(static_cast<double>(left_ms) * fraction)));
  id->renew.async_wait([w = weak_from_this(), id](std::error_code ec) {
    auto self = w.lock();
    if (ec || !self || self->closed_) {
      return;
    }
    // On the current links; during a reconnect the request waits for them, and the put of
    // the new connection renews the token anyway.
    self->put(id, [self, id](std::error_code e) {
      if (e) {
        self->report(id, e);
      }
    });
  });
}

void hub_connection_impl::report(const std::shared_ptr<identity>& id, std::error_code ec) {
  if (on_error_) {
    on_error_(id->source.audience(), ec);
  }
}

void hub_connection_impl::add(token_source source, std::function<void(std::error_code)> done) {
  if (opts_.auth != hub_auth::cbs || closed_ || !cbs_) {
    asio::post(io_, [done = std::move(done)] { done(code(amqp::errc::invalid_state)); });
    return;
  }
  auto id = std::make_shared<identity>(io_, std::move(source));
  put(id, [self = shared_from_this(), id, done = std::move(done)](std::error_code ec) {
    if (!ec) {
      self->identities_.push_back(id); // put again after every reconnect
    }
    done(ec);
  });
}

void hub_connection_impl::close(std::function<void(std::error_code)> done) {
  closed_ = true;
  for (auto& id : identities_) {
    id->renew.cancel();
  }
  if (!client_) {
    asio::post(io_, [done = std::move(done)] { done({}); });
    return;
  }
  client_.async_close(std::move(done));
}

} // namespace detail

// ---- hub_connection -------------------------------------------------------------------------

void hub_connection::async_connect(asio::io_context& io, hub_connection_options options,
                                   std::vector<token_source> identities,
                                   std::function<void(std::error_code, hub_connection)> done) {
  auto impl = std::make_shared<detail::hub_connection_impl>(io, std::move(options));
  impl->connect(std::move(identities), std::move(done));
}

void hub_connection::async_add_identity(token_source identity,
                                        std::function<void(std::error_code)> done) {
  if (!impl_) {
    done(code(amqp::errc::invalid_state));
    return;
  }
  impl_->add(std::move(identity), std::move(done));
}

void hub_connection::on_identity_error(
    std::function<void(const std::string& audience, std::error_code)> f) {
  if (impl_) {
    impl_->on_error_ = std::move(f);
  }
}

transport::client& hub_connection::client() noexcept {
  static transport::client none;
  return impl_ ? impl_->client_ : none;
}

void hub_connection::async_close(std::function<void(std::error_code)> done) {
  if (!impl_) {
    done(code(amqp::errc::invalid_state));
    return;
  }
  impl_->close(std::move(done));
}

std::string hub_connection::last_error() const {
  if (!impl_) {
    return failure_;
  }
  return impl_->last_error_.empty() ? impl_->client_.last_error() : impl_->last_error_;
}

std::uint64_t hub_connection::tokens_put() const noexcept {
  return impl_ ? impl_->puts_ : 0;
}

std::uint64_t hub_connection::reconnects() const noexcept {
  return impl_ ? impl_->client_.reconnects() : 0;
}

} // namespace amqp::iothub
