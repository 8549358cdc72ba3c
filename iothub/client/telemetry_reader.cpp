// The telemetry reader (telemetry_reader.hpp): partition receivers on an Event Hubs
// connection (reached directly, or by following the IoT Hub's amqp:link:redirect), a
// $management requester, the events of every partition in one queue, checkpoints.
#include "amqp/iothub/telemetry_reader.hpp"

#include <algorithm>
#include <deque>
#include <future>
#include <map>
#include <utility>

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include "amqp/error.hpp"
#include "amqp/iothub/cbs.hpp"
#include "amqp/iothub/connection_string.hpp"
#include "amqp/iothub/messages.hpp"
#include "amqp/transport/detail/io_thread.hpp"

namespace amqp::iothub {

namespace {

std::error_code code(amqp::errc e) {
  return amqp::make_error_code(e);
}

// The receiver's filter-set entry for `s` (the symbolic descriptor: doc §6.2).
std::vector<transport::source_filter> filters_of(const selector& s) {
  return {{std::string(selector_filter_name), std::string(selector_filter_name), to_string(s)}};
}

std::optional<std::string> text_of(const std::optional<value>& v) {
  if (!v) {
    return std::nullopt;
  }
  if (auto s = v->get_string()) {
    return std::string(*s);
  }
  if (auto s = v->get_symbol()) {
    return std::string(*s);
  }
  return std::nullopt;
}

// The event hub of a redirect's address: the first path segment of
// amqps://{host}:{port}/{event hub}/...
std::string event_hub_of(std::string_view address) {
  if (auto scheme = address.find("://"); scheme != std::string_view::npos) {
    address.remove_prefix(scheme + 3);
    const auto slash = address.find('/');
    address = slash == std::string_view::npos ? std::string_view{} : address.substr(slash);
  }
  while (address.starts_with('/')) {
    address.remove_prefix(1);
  }
  return std::string(address.substr(0, address.find('/')));
}

} // namespace

// ---- event_position, checkpoint ---------------------------------------------------------------

event_position event_position::earliest() {
  return {start_of_stream()};
}
event_position event_position::latest() {
  return {end_of_stream()};
}
event_position event_position::from_offset(std::string offset, bool inclusive) {
  return {selector{position_field::offset,
                   inclusive ? position_operator::greater_or_equal : position_operator::greater,
                   std::move(offset)}};
}
event_position event_position::from_sequence_number(std::int64_t sequence_number, bool inclusive) {
  return {selector{position_field::sequence_number,
                   inclusive ? position_operator::greater_or_equal : position_operator::greater,
                   std::to_string(sequence_number)}};
}
event_position event_position::from_enqueued_time(amqp::timestamp time, bool inclusive) {
  return {selector{position_field::enqueued_time,
                   inclusive ? position_operator::greater_or_equal : position_operator::greater,
                   std::to_string(time.ms)}};
}

event_position checkpoint::next() const {
  return sequence_number < 0 ? event_position::earliest()
                             : event_position::from_sequence_number(sequence_number);
}

// ---- the reader ---------------------------------------------------------------------------------

namespace detail {

class telemetry_reader_impl : public std::enable_shared_from_this<telemetry_reader_impl> {
public:
  telemetry_reader_impl(asio::io_context& io, telemetry_reader_options o)
      : io_(io), opts_(std::move(o)) {}

  struct partition {
    std::string id;
    event_position start;
    transport::receiver rx;
    std::uint64_t rx_generation = 0; // bumped when rx is replaced (a redirect followed)
    bool on_hub = false;             // attached on the IoT Hub: its redirect is awaited
    bool armed = false;              // an async_receive is outstanding on rx
    bool failed = false;
    std::optional<std::int64_t> last_taken; // the last sequence number taken from the link
    std::size_t queued = 0;                 // events of this partition in ready_
    std::optional<checkpoint> cp;
    std::optional<transport::link_error> error;
    std::function<void(std::error_code)> open_done;
  };
  struct item {
    std::error_code ec;
    telemetry_event event;
    std::shared_ptr<partition> from;
  };
  struct waiter {
    std::uint64_t id = 0;
    std::function<void(std::error_code, telemetry_event)> done;
    std::shared_ptr<asio::steady_timer> timer;
  };

  void connect(std::string_view text, std::function<void(std::error_code)> done);
  void request(std::optional<std::string> partition_id,
               std::function<void(std::error_code, amqp::message)> done);
  void open_partition(std::string id, event_position start,
                      std::function<void(std::error_code)> done);
  // A receive waiting at most `timeout` (0: no limit); an event arriving later stays queued.
  void receive(std::chrono::milliseconds timeout,
               std::function<void(std::error_code, telemetry_event)> done);
  void close(std::function<void(std::error_code)> done);

  std::string last_error_;
  std::string eh_name_;
  std::uint64_t redirects_ = 0;
  std::map<std::string, std::shared_ptr<partition>, std::less<>> parts_;
  hub_connection eh_;

private:
  hub_connection_options tuned(hub_connection_options o) const;
  // Connects the Event Hubs connection (once) to the endpoint of a redirect.
  void ensure_eh(const redirect_info& r, std::function<void(std::error_code)> done);
  void connect_eh(hub_endpoint e, std::function<void(std::error_code)> done);
  void open_management(std::function<void(std::error_code)> done);
  void attach(const std::shared_ptr<partition>& p, transport::client& c,
              const std::string& address);
  void arm(const std::shared_ptr<partition>& p);
  void on_receive(const std::shared_ptr<partition>& p, std::error_code ec,
                  const transport::received_message& m);
  void follow(const std::shared_ptr<partition>& p, const transport::link_error& e);
  void fail(const std::shared_ptr<partition>& p, std::error_code ec, std::string why);
  void deliver();
  transport::receiver_options receiver_options_for(const partition& p) const;

  asio::io_context& io_;
  telemetry_reader_options opts_;
  connection_string parsed_;
  bool via_hub_ = false;
  bool closed_ = false;
  hub_connection hub_;
  bool eh_connecting_ = false;
  std::vector<std::function<void(std::error_code)>> eh_waiting_;
  transport::receiver discovery_;
  transport::requester mgmt_;
  std::deque<item> ready_;
  std::deque<waiter> waiting_;
  std::uint64_t next_waiter_ = 0;
};

hub_connection_options telemetry_reader_impl::tuned(hub_connection_options o) const {
  o.tls = opts_.tls;
  o.reconnect = opts_.reconnect;
  o.connect_timeout = opts_.connect_timeout;
  o.trace = opts_.trace;
  return o;
}

void telemetry_reader_impl::connect(std::string_view text,
                                    std::function<void(std::error_code)> done) {
  std::string why;
  auto ep = endpoint_from(text, opts_.protocol, &why);
  if (!ep) {
    last_error_ = "invalid connection string: " + why;
    asio::post(io_, [done = std::move(done), ec = ep.error()] { done(ec); });
    return;
  }
  parsed_ = ep->parsed;
  if (ep->kind == connection_string_kind::event_hubs) {
    eh_name_ = parsed_.entity_path;
    connect_eh(std::move(*ep), std::move(done));
    return;
  }
  if (ep->kind != connection_string_kind::service || parsed_.shared_access_key.empty()) {
    last_error_ = ep->kind != connection_string_kind::service
                      ? "the telemetry reader needs a service or an Event Hubs connection string"
                      : "a service connection string with a SharedAccessSignature cannot sign "
                        "the Event Hubs token of the redirect: give its SharedAccessKey";
    asio::post(io_, [done = std::move(done)] { done(code(amqp::errc::invalid_argument)); });
    return;
  }
  // doc §6.1: the IoT Hub redirects any receiver under /messages/events; $management is the
  // cheap one to find the Event Hubs endpoint with.
  via_hub_ = true;
  std::vector<token_source> ids;
  ids.push_back(*ep->identity);
  hub_connection::async_connect(
      io_, tuned(ep->options), std::move(ids),
      [self = shared_from_this(), done = std::move(done)](std::error_code ec, hub_connection c) {
        if (ec) {
          self->last_error_ = c.last_error();
          done(ec);
          return;
        }
        self->hub_ = std::move(c);
        self->hub_.client().async_open_receiver(
            "/messages/events/$management", {},
            [self, done](std::error_code oe, transport::receiver rx) {
              if (oe) {
                self->last_error_ = self->hub_.client().last_error();
                done(oe);
                return;
              }
              self->discovery_ = std::move(rx);
              self->discovery_.async_receive(
                  [self, done](std::error_code re, const transport::received_message&) {
                    const auto e = self->discovery_.remote_error();
                    if (!re || !e || e->condition != amqp::symbol::link_redirect) {
                      self->last_error_ = "the hub did not redirect /messages/events/$management";
                      if (re) {
                        self->last_error_ += ": " + self->hub_.client().last_error();
                      }
                      done(re ? re : code(amqp::errc::remote_error));
                      return;
                    }
                    std::string bad;
                    auto r = parse_redirect_info(e->info.get(), &bad);
                    if (!r) {
                      self->last_error_ = "the redirect's info map does not parse: " + bad;
                      done(code(amqp::errc::invalid_argument));
                      return;
                    }
                    ++self->redirects_;
                    self->ensure_eh(*r, done);
                  });
            });
      });
}

void telemetry_reader_impl::ensure_eh(const redirect_info& r,
                                      std::function<void(std::error_code)> done) {
  if (eh_) {
    done({});
    return;
  }
  eh_waiting_.push_back(std::move(done));
  if (eh_connecting_) {
    return;
  }
  eh_connecting_ = true;
  const std::string name = event_hub_of(r.address);
  if (eh_name_.empty()) {
    eh_name_ = name;
  }
  // The Event Hubs connection string the SDK samples build from the redirect (doc §6.1):
  // the same policy and key, signing sb://{host}/{event hub} with the key's text.
  std::string host = r.hostname;
  if (opts_.protocol != hub_protocol::amqp_websockets) {
    host += ":" + std::to_string(r.port);
  }
  const std::string text = "Endpoint=sb://" + host +
                           "/;SharedAccessKeyName=" + parsed_.shared_access_key_name +
                           ";SharedAccessKey=" + parsed_.shared_access_key + ";EntityPath=" + name;
  std::string why;
  auto ep = endpoint_from(text, opts_.protocol, &why);
  auto finish = [self = shared_from_this()](std::error_code ec) {
    self->eh_connecting_ = false;
    auto waiting = std::move(self->eh_waiting_);
    self->eh_waiting_.clear();
    for (auto& w : waiting) {
      w(ec);
    }
  };
  if (!ep) {
    last_error_ = "the redirect to '" + r.address + "' gives no Event Hubs endpoint: " + why;
    asio::post(io_, [finish, ec = ep.error()] { finish(ec); });
    return;
  }
  connect_eh(std::move(*ep), finish);
}

void telemetry_reader_impl::connect_eh(hub_endpoint e, std::function<void(std::error_code)> done) {
  std::vector<token_source> ids;
  if (e.identity) {
    ids.push_back(*e.identity);
  }
  hub_connection::async_connect(
      io_, tuned(e.options), std::move(ids),
      [self = shared_from_this(), done = std::move(done)](std::error_code ec, hub_connection c) {
        if (ec) {
          self->last_error_ = "cannot connect to the Event Hubs endpoint: " + c.last_error();
          done(ec);
          return;
        }
        self->eh_ = std::move(c);
        self->open_management(done);
      });
}

void telemetry_reader_impl::open_management(std::function<void(std::error_code)> done) {
  transport::requester_options ro;
  ro.timeout = opts_.operation_timeout;
  eh_.client().async_open_requester("$management", ro,
                                    [self = shared_from_this(), done = std::move(done)](
                                        std::error_code ec, transport::requester q) {
                                      if (ec) {
                                        self->last_error_ = self->eh_.client().last_error();
                                        done(ec);
                                        return;
                                      }
                                      self->mgmt_ = std::move(q);
                                      done({});
                                    });
}

void telemetry_reader_impl::request(std::optional<std::string> partition_id,
                                    std::function<void(std::error_code, amqp::message)> done) {
  if (closed_ || !mgmt_) {
    done(code(amqp::errc::invalid_state), {});
    return;
  }
  management_request r;
  r.event_hub = eh_name_;
  r.partition = std::move(partition_id);
  mgmt_.async_request(
      build_management_request(r), [self = shared_from_this(), done = std::move(done)](
                                       std::error_code ec, const transport::received_message& m) {
        if (ec) {
          self->last_error_ = "$management: " + self->eh_.client().last_error();
          done(ec, {});
          return;
        }
        auto msg = m.message();
        if (!msg) {
          self->last_error_ = "$management: the response does not decode";
          done(msg.error(), {});
          return;
        }
        std::string why;
        auto status = parse_cbs_response(*msg, &why);
        if (!status) {
          self->last_error_ = "$management: " + why;
          done(status.error(), {});
          return;
        }
        if (status->status_code != 200) {
          self->last_error_ = "$management: status " + std::to_string(status->status_code) + ": " +
                              status->status_description;
          done(code(amqp::errc::remote_error), {});
          return;
        }
        done({}, std::move(*msg));
      });
}

transport::receiver_options telemetry_reader_impl::receiver_options_for(const partition& p) const {
  transport::receiver_options ro;
  ro.credit = opts_.prefetch;
  ro.filters = filters_of(p.last_taken ? event_position::from_sequence_number(*p.last_taken).filter
                                       : p.start.filter);
  if (opts_.epoch) {
    const value props[2] = {value(symbol_view{link_property::epoch}), value(*opts_.epoch)};
    if (auto v = owned_value::copy_of(value::map(props))) {
      ro.properties = std::move(*v);
    }
  }
  return ro;
}

void telemetry_reader_impl::open_partition(std::string id, event_position start,
                                           std::function<void(std::error_code)> done) {
  if (closed_ || (!eh_ && !hub_)) {
    done(code(amqp::errc::invalid_state));
    return;
  }
  if (parts_.contains(id)) {
    last_error_ = "partition " + id + " is open already";
    done(code(amqp::errc::invalid_state));
    return;
  }
  auto p = std::make_shared<partition>();
  p->id = id;
  p->start = std::move(start);
  p->open_done = std::move(done);
  parts_.emplace(id, p);
  const std::string tail = "ConsumerGroups/" + opts_.consumer_group + "/Partitions/" + id;
  if (via_hub_) {
    // doc §6.1: attached on the hub, detached with amqp:link:redirect: followed in
    // on_receive.
    p->on_hub = true;
    attach(p, hub_.client(), "/messages/events/" + tail);
  } else {
    attach(p, eh_.client(), eh_name_ + "/" + tail);
  }
}

void telemetry_reader_impl::attach(const std::shared_ptr<partition>& p, transport::client& c,
                                   const std::string& address) {
  c.async_open_receiver(
      address, receiver_options_for(*p),
      [self = shared_from_this(), p, cp = &c](std::error_code ec, transport::receiver rx) {
        if (self->closed_) {
          return;
        }
        if (ec) {
          self->fail(p, ec, cp->last_error());
          return;
        }
        p->rx = std::move(rx);
        ++p->rx_generation;
        if (!p->on_hub) {
          if (auto d = std::move(p->open_done)) {
            p->open_done = nullptr;
            d({});
          }
        }
        self->arm(p);
      });
}

void telemetry_reader_impl::arm(const std::shared_ptr<partition>& p) {
  if (p->armed || p->failed || closed_ || !p->rx || p->queued >= opts_.prefetch) {
    return;
  }
  p->armed = true;
  p->rx.async_receive([w = weak_from_this(), p, gen = p->rx_generation](
                          std::error_code ec, const transport::received_message& m) {
    auto self = w.lock();
    if (!self || gen != p->rx_generation) {
      return;
    }
    p->armed = false;
    self->on_receive(p, ec, m);
  });
}

void telemetry_reader_impl::on_receive(const std::shared_ptr<partition>& p, std::error_code ec,
                                       const transport::received_message& m) {
  if (closed_) {
    return;
  }
  if (ec) {
    auto e = p->rx.remote_error();
    if (e && e->condition == amqp::symbol::link_redirect) {
      follow(p, *e);
      return;
    }
    std::string why = "partition " + p->id + ": ";
    if (e) {
      p->error = e;
      why += "the hub detached the receiver: " + e->condition + ": " + e->description;
    } else {
      why += ec.message();
    }
    fail(p, ec, why);
    return;
  }
  auto msg = m.message();
  if (!msg) {
    last_error_ = "partition " + p->id + ": an event that does not decode was skipped";
    arm(p);
    return;
  }
  telemetry_event ev;
  ev.partition = p->id;
  const auto& ma = msg->message_annotations;
  const auto seq = ma.get(annotation::sequence_number);
  ev.sequence_number = seq ? seq->get_signed().value_or(0) : 0;
  // A re-attach after a reconnect starts after the last event taken; anything older that
  // was still buffered on the way is dropped here.
  if (seq && p->last_taken && ev.sequence_number <= *p->last_taken) {
    arm(p);
    return;
  }
  if (seq) {
    p->last_taken = ev.sequence_number;
    p->rx.set_filters(filters_of(event_position::from_sequence_number(ev.sequence_number).filter));
  }
  ev.offset = text_of(ma.get(annotation::offset)).value_or("");
  if (auto t = ma.get(annotation::enqueued_time_eh); t && t->kind() == type::timestamp) {
    ev.enqueued_time = t->as_timestamp();
  }
  ev.partition_key = text_of(ma.get(annotation::partition_key));
  ev.device_id = text_of(ma.get(annotation::connection_device_id));
  ev.module_id = text_of(ma.get(annotation::connection_module_id));
  ev.message = std::move(*msg);
  if (auto d = std::move(p->open_done)) {
    // Served on the hub's own address (no redirect): open.
    p->open_done = nullptr;
    p->on_hub = false;
    d({});
  }
  ++p->queued;
  ready_.push_back(item{{}, std::move(ev), p});
  deliver();
  arm(p);
}

void telemetry_reader_impl::follow(const std::shared_ptr<partition>& p,
                                   const transport::link_error& e) {
  std::string why;
  auto r = parse_redirect_info(e.info.get(), &why);
  if (!r) {
    fail(p, code(amqp::errc::invalid_argument),
         "partition " + p->id + ": the redirect's info map does not parse: " + why);
    return;
  }
  ++redirects_;
  ensure_eh(*r, [self = shared_from_this(), p, address = r->address](std::error_code ec) {
    if (self->closed_) {
      return;
    }
    if (ec) {
      self->fail(p, ec, self->last_error_);
      return;
    }
    p->on_hub = false;
    self->attach(p, self->eh_.client(), address);
  });
}

void telemetry_reader_impl::fail(const std::shared_ptr<partition>& p, std::error_code ec,
                                 std::string why) {
  p->failed = true;
  last_error_ = std::move(why);
  if (auto d = std::move(p->open_done)) {
    // The open fails: the partition may be opened again.
    p->open_done = nullptr;
    parts_.erase(p->id);
    d(ec);
    return;
  }
  ready_.push_back(item{ec, {}, p});
  deliver();
}

void telemetry_reader_impl::deliver() {
  while (!waiting_.empty() && !ready_.empty()) {
    auto w = std::move(waiting_.front());
    waiting_.pop_front();
    auto it = std::move(ready_.front());
    ready_.pop_front();
    if (w.timer) {
      w.timer->cancel();
    }
    if (!it.ec) {
      --it.from->queued;
      it.from->cp = checkpoint{it.from->id, it.event.sequence_number, it.event.offset,
                               it.event.enqueued_time};
      arm(it.from);
    }
    w.done(it.ec, std::move(it.event));
  }
}

void telemetry_reader_impl::receive(std::chrono::milliseconds timeout,
                                    std::function<void(std::error_code, telemetry_event)> done) {
  if (closed_) {
    done(code(amqp::errc::invalid_state), {});
    return;
  }
  waiter w;
  w.id = ++next_waiter_;
  w.done = std::move(done);
  if (timeout.count() > 0 && ready_.empty()) {
    w.timer = std::make_shared<asio::steady_timer>(io_, timeout);
    w.timer->async_wait([wk = weak_from_this(), id = w.id](std::error_code ec) {
      auto self = wk.lock();
      if (ec || !self) {
        return;
      }
      auto it = std::find_if(self->waiting_.begin(), self->waiting_.end(),
                             [id](const waiter& x) { return x.id == id; });
      if (it == self->waiting_.end()) {
        return;
      }
      auto d = std::move(it->done);
      self->waiting_.erase(it);
      d(code(amqp::errc::timeout), {});
    });
  }
  waiting_.push_back(std::move(w));
  deliver();
}

void telemetry_reader_impl::close(std::function<void(std::error_code)> done) {
  if (closed_) {
    asio::post(io_, [done = std::move(done)] { done(code(amqp::errc::invalid_state)); });
    return;
  }
  closed_ = true;
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& w : waiting) {
    if (w.timer) {
      w.timer->cancel();
    }
    w.done(code(amqp::errc::invalid_state), {});
  }
  for (auto& [id, p] : parts_) {
    if (auto d = std::move(p->open_done)) {
      p->open_done = nullptr;
      d(code(amqp::errc::invalid_state));
    }
  }
  // Both connections close; `done` runs once both have.
  const int count = (eh_ ? 1 : 0) + (hub_ ? 1 : 0);
  if (count == 0) {
    asio::post(io_, [done = std::move(done)] { done({}); });
    return;
  }
  auto left = std::make_shared<int>(count);
  auto result = std::make_shared<std::error_code>();
  auto one = [left, result, done = std::move(done)](std::error_code ec) {
    if (ec && !*result) {
      *result = ec;
    }
    if (--*left == 0) {
      done(*result);
    }
  };
  if (eh_) {
    eh_.async_close(one);
  }
  if (hub_) {
    hub_.async_close(one);
  }
}

} // namespace detail

// ---- telemetry_reader ---------------------------------------------------------------------------

void telemetry_reader::async_connect(asio::io_context& io, std::string_view connection_string,
                                     telemetry_reader_options options,
                                     std::function<void(std::error_code, telemetry_reader)> done) {
  auto impl = std::make_shared<detail::telemetry_reader_impl>(io, std::move(options));
  impl->connect(connection_string, [impl, done = std::move(done)](std::error_code ec) {
    telemetry_reader r;
    if (ec) {
      r.failure_ = impl->last_error_.empty() ? ec.message() : impl->last_error_;
      impl->close([impl](std::error_code) {});
    } else {
      r.impl_ = impl;
    }
    done(ec, std::move(r));
  });
}

void telemetry_reader::async_get_eventhub_info(
    std::function<void(std::error_code, eventhub_info)> done) {
  if (!impl_) {
    done(code(amqp::errc::invalid_state), {});
    return;
  }
  impl_->request(std::nullopt, [impl = impl_, done = std::move(done)](std::error_code ec,
                                                                      const amqp::message& m) {
    if (ec) {
      done(ec, {});
      return;
    }
    std::string why;
    auto info = parse_eventhub_info(m.body_value(), &why);
    if (!info) {
      impl->last_error_ = "$management: " + why;
      done(info.error(), {});
      return;
    }
    done({}, std::move(*info));
  });
}

void telemetry_reader::async_get_partition_info(
    std::string partition, std::function<void(std::error_code, partition_info)> done) {
  if (!impl_) {
    done(code(amqp::errc::invalid_state), {});
    return;
  }
  impl_->request(std::move(partition), [impl = impl_, done = std::move(done)](
                                           std::error_code ec, const amqp::message& m) {
    if (ec) {
      done(ec, {});
      return;
    }
    std::string why;
    auto info = parse_partition_info(m.body_value(), &why);
    if (!info) {
      impl->last_error_ = "$management: " + why;
      done(info.error(), {});
      return;
    }
    done({}, std::move(*info));
  });
}

void telemetry_reader::async_open_partition(std::string partition, event_position start,
                                            std::function<void(std::error_code)> done) {
  if (!impl_) {
    done(code(amqp::errc::invalid_state));
    return;
  }
  impl_->open_partition(std::move(partition), std::move(start), std::move(done));
}

void telemetry_reader::async_open_all(event_position start,
                                      std::function<void(std::error_code)> done) {
  if (!impl_) {
    done(code(amqp::errc::invalid_state));
    return;
  }
  async_get_eventhub_info([impl = impl_, start = std::move(start),
                           done = std::move(done)](std::error_code ec, const eventhub_info& info) {
    if (ec) {
      done(ec);
      return;
    }
    auto left = std::make_shared<std::size_t>(info.partition_ids.size());
    auto first = std::make_shared<std::error_code>();
    if (*left == 0) {
      done({});
      return;
    }
    for (auto& id : info.partition_ids) {
      impl->open_partition(id, start, [left, first, done](std::error_code oe) {
        if (oe && !*first) {
          *first = oe;
        }
        if (--*left == 0) {
          done(*first);
        }
      });
    }
  });
}

void telemetry_reader::async_receive(std::function<void(std::error_code, telemetry_event)> done) {
  if (!impl_) {
    done(code(amqp::errc::invalid_state), {});
    return;
  }
  impl_->receive(std::chrono::milliseconds(0), std::move(done));
}

std::vector<checkpoint> telemetry_reader::checkpoints() const {
  std::vector<checkpoint> out;
  if (impl_) {
    for (const auto& [id, p] : impl_->parts_) {
      if (p->cp) {
        out.push_back(*p->cp);
      }
    }
  }
  return out;
}

std::optional<checkpoint> telemetry_reader::checkpoint_of(std::string_view partition) const {
  if (impl_) {
    if (auto it = impl_->parts_.find(partition); it != impl_->parts_.end()) {
      return it->second->cp;
    }
  }
  return std::nullopt;
}

std::optional<transport::link_error>
telemetry_reader::partition_error(std::string_view partition) const {
  if (impl_) {
    if (auto it = impl_->parts_.find(partition); it != impl_->parts_.end()) {
      return it->second->error;
    }
  }
  return std::nullopt;
}

std::string telemetry_reader::event_hub_name() const {
  return impl_ ? impl_->eh_name_ : std::string{};
}

std::uint64_t telemetry_reader::redirects() const noexcept {
  return impl_ ? impl_->redirects_ : 0;
}

std::uint64_t telemetry_reader::reconnects() const noexcept {
  return impl_ && impl_->eh_ ? impl_->eh_.reconnects() : 0;
}

void telemetry_reader::async_close(std::function<void(std::error_code)> done) {
  if (!impl_) {
    done(code(amqp::errc::invalid_state));
    return;
  }
  impl_->close(std::move(done));
}

std::string telemetry_reader::last_error() const {
  return impl_ ? impl_->last_error_ : failure_;
}

// ---- blocking_telemetry_reader ----------------------------------------------------------------

namespace detail {

// The reader on its I/O thread (transport::detail::io_thread).
struct blocking_reader_state : transport::detail::io_thread<telemetry_reader> {};

} // namespace detail

namespace {

template <typename T> void settle(std::promise<result<T>>& p, std::error_code ec, T v) {
  if (ec) {
    p.set_value(ec);
  } else {
    p.set_value(std::move(v));
  }
}

template <typename T, typename F>
result<T> on_thread(const std::shared_ptr<detail::blocking_reader_state>& st, F&& f) {
  if (!st) {
    return code(amqp::errc::invalid_state);
  }
  if (st->closing()) {
    return code(amqp::errc::invalid_state);
  }
  auto r = st->template call<result<T>>(std::forward<F>(f));
  if (!r) {
    return code(amqp::errc::invalid_state);
  }
  return std::move(*r);
}

} // namespace

// A failure to lock or join in close() leaves nothing to recover: std::terminate (a
// destructor is noexcept) is the right end, as blocking_client's.
blocking_telemetry_reader::~blocking_telemetry_reader() { // NOLINT(bugprone-exception-escape)
  if (state_) {
    (void)close();
  }
}

result<blocking_telemetry_reader>
blocking_telemetry_reader::connect(std::string_view connection_string,
                                   telemetry_reader_options options, std::string* why) {
  auto st = std::make_shared<detail::blocking_reader_state>();
  std::string failure;
  auto r = st->call<result<void>>([&](std::promise<result<void>>& p) {
    telemetry_reader::async_connect(st->io, connection_string, std::move(options),
                                    [&, st](std::error_code ec, telemetry_reader rd) {
                                      if (ec) {
                                        failure = rd.last_error();
                                        p.set_value(ec);
                                        return;
                                      }
                                      st->c = std::move(rd);
                                      p.set_value(result<void>{});
                                    });
  });
  if (!r || !*r) {
    if (why != nullptr) {
      *why = failure;
    }
    st->stop();
    return r ? r->error() : code(amqp::errc::invalid_state);
  }
  blocking_telemetry_reader b;
  b.state_ = std::move(st);
  return b;
}

result<eventhub_info> blocking_telemetry_reader::eventhub() {
  auto st = state_;
  return on_thread<eventhub_info>(st, [st](std::promise<result<eventhub_info>>& p) {
    st->c.async_get_eventhub_info(
        [&p](std::error_code ec, eventhub_info i) { settle(p, ec, std::move(i)); });
  });
}

result<std::vector<std::string>> blocking_telemetry_reader::partitions() {
  auto info = eventhub();
  if (!info) {
    return info.error();
  }
  return std::move(info->partition_ids);
}

result<partition_info> blocking_telemetry_reader::partition(std::string partition) {
  auto st = state_;
  return on_thread<partition_info>(st, [st, &partition](std::promise<result<partition_info>>& p) {
    st->c.async_get_partition_info(
        std::move(partition),
        [&p](std::error_code ec, partition_info i) { settle(p, ec, std::move(i)); });
  });
}

result<void> blocking_telemetry_reader::open_partition(std::string partition,
                                                       event_position start) {
  auto st = state_;
  return on_thread<void>(st, [st, &partition, &start](std::promise<result<void>>& p) {
    st->c.async_open_partition(std::move(partition), std::move(start), [&p](std::error_code ec) {
      p.set_value(ec ? result<void>(ec) : result<void>{});
    });
  });
}

result<void> blocking_telemetry_reader::open_all(event_position start) {
  auto st = state_;
  return on_thread<void>(st, [st, &start](std::promise<result<void>>& p) {
    st->c.async_open_all(std::move(start), [&p](std::error_code ec) {
      p.set_value(ec ? result<void>(ec) : result<void>{});
    });
  });
}

result<telemetry_event> blocking_telemetry_reader::receive(std::chrono::milliseconds timeout) {
  auto st = state_;
  return on_thread<telemetry_event>(st, [st, timeout](std::promise<result<telemetry_event>>& p) {
    auto* impl = st->c ? st->c.impl_.get() : nullptr;
    if (impl == nullptr) {
      p.set_value(code(amqp::errc::invalid_state));
      return;
    }
    impl->receive(timeout.count() > 0 ? timeout : std::chrono::milliseconds(1),
                  [&p](std::error_code ec, telemetry_event e) { settle(p, ec, std::move(e)); });
  });
}

std::vector<checkpoint> blocking_telemetry_reader::checkpoints() {
  auto st = state_;
  auto r = on_thread<std::vector<checkpoint>>(
      st,
      [st](std::promise<result<std::vector<checkpoint>>>& p) { p.set_value(st->c.checkpoints()); });
  return r ? std::move(*r) : std::vector<checkpoint>{};
}

std::optional<transport::link_error>
blocking_telemetry_reader::partition_error(std::string partition) {
  using out = std::optional<transport::link_error>;
  auto st = state_;
  auto r = on_thread<out>(st, [st, &partition](std::promise<result<out>>& p) {
    p.set_value(st->c.partition_error(partition));
  });
  return r ? std::move(*r) : std::nullopt;
}

std::uint64_t blocking_telemetry_reader::reconnects() {
  auto st = state_;
  auto r = on_thread<std::uint64_t>(
      st, [st](std::promise<result<std::uint64_t>>& p) { p.set_value(st->c.reconnects()); });
  return r ? *r : 0;
}

result<void> blocking_telemetry_reader::close() {
  auto st = state_;
  if (!st || !st->begin_close()) {
    return code(amqp::errc::invalid_state);
  }
  auto r = st->call<result<void>>([st](std::promise<result<void>>& p) {
    st->keep_last_error();
    st->c.async_close([&p, st](std::error_code ec) {
      st->keep_last_error();
      p.set_value(ec ? result<void>(ec) : result<void>{});
    });
  });
  st->stop();
  return r ? *r : result<void>{};
}

std::string blocking_telemetry_reader::last_error() const {
  auto st = state_;
  if (!st) {
    return {};
  }
  return st->last_error();
}

} // namespace amqp::iothub
