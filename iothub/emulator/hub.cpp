// The hub's connections, its event loop, link dispatch by address kind, outcomes after the
// commit, and timers. The features live in their own files (hub_state.hpp lists them).
#include "emulator/hub.hpp"

#include <algorithm>
#include <cstdlib>
#include <utility>
#include <variant>

#include "amqp/iothub/messages.hpp"
#include "emulator/hub_state.hpp"

namespace amqp::iothub::emulator {

namespace {

amqp::error make_error(std::string_view condition, std::string_view description,
                       const value& info = {}) {
  return amqp::error{symbol_view{condition}, description, info};
}

// The hub's text for an address it does not serve (TRACE azure-iot-sdk-c#210: errorCode
// 404006 "The link address '...' did not match any of the expected formats.").
std::string unknown_address_text(std::string_view address) {
  return "The link address '" + std::string(address) +
         "' did not match any of the expected formats.";
}

// Names compared without regard to ASCII case (hub and event hub names).
bool same_name(std::string_view a, std::string_view b) noexcept {
  auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [&](char x, char y) { return lower(x) == lower(y); });
}

} // namespace

std::string_view kind_name(link_kind k) noexcept {
  switch (k) {
  case link_kind::cbs_requests:
    return "cbs_requests";
  case link_kind::cbs_responses:
    return "cbs_responses";
  case link_kind::telemetry:
    return "telemetry";
  case link_kind::device_c2d:
    return "device_c2d";
  case link_kind::service_c2d:
    return "service_c2d";
  case link_kind::feedback:
    return "feedback";
  case link_kind::file_notifications:
    return "file_notifications";
  case link_kind::partition_reader:
    return "partition_reader";
  case link_kind::management_requests:
    return "management_requests";
  case link_kind::management_responses:
    return "management_responses";
  }
  return "unknown";
}

hub::impl::impl(hub_options o, store& s, registry& r, random_source& rnd)
    : opts(std::move(o)), db(s), reg(r), random(rnd) {
  conn_opts.role = connection_role::server;
  conn_opts.limits.max_frame_size = opts.max_frame_size;
  conn_opts.limits.channel_max = opts.channel_max;
  conn_opts.limits.handle_max = opts.handle_max;
  conn_opts.limits.max_message_size = opts.max_message_size;
  conn_opts.timeouts.idle_time_out = opts.idle_time_out;
  conn_opts.timeouts.handshake = opts.handshake;
  conn_opts.incoming_window = opts.incoming_window;
  conn_opts.sasl.enabled = true;
  // §1.3: clients that send the AMQP header straight after TLS (.NET, the C SDK with X.509)
  // are served without SASL; CBS (or the certificate) authorizes them.
  conn_opts.sasl.optional = true;
  conn_opts.sasl.server_mechanisms = opts.sasl_mechanisms;
  conn_opts.sasl.accept_anonymous = false; // reported, to record the mode
}

std::int64_t hub::impl::wall_ms() const noexcept {
  return std::chrono::duration_cast<milliseconds>(now.time_since_epoch()).count() +
         opts.unix_offset.count();
}

time_point hub::impl::at_wall_ms(std::int64_t ms) const noexcept {
  return time_point{} +
         std::chrono::duration_cast<time_point::duration>(milliseconds(ms) - opts.unix_offset);
}

conn_state* hub::impl::find(connection_handle c) noexcept {
  auto it = conns.find(c);
  return it == conns.end() ? nullptr : it->second.get();
}

void hub::impl::touch(conn_state& c) {
  if (&c != current && !c.dirty) {
    c.dirty = true;
    dirty.push_back(c.handle);
  }
}

void hub::impl::process_synced() {
  // The events sync() may have caused (a detach answered, a timeout) are pulled now; that
  // may sync more connections.
  for (int round = 0; round < 16 && !to_process.empty(); ++round) {
    std::vector<connection_handle> touched = std::move(to_process);
    to_process.clear();
    for (connection_handle h : touched) {
      if (conn_state* s = find(h)) {
        process(*s);
      }
    }
  }
}

void hub::impl::sync(conn_state& c) {
  if (&c == current) {
    return;
  }
  c.engine.on_deadline(now);
  touch(c);
  if (std::find(to_process.begin(), to_process.end(), c.handle) == to_process.end()) {
    to_process.push_back(c.handle);
  }
}

// ---- events --------------------------------------------------------------------------------

void hub::impl::process(conn_state& c) {
  current = &c;
  while (auto e = c.engine.next_event()) {
    if (const auto* si = std::get_if<sasl_init_received>(&*e)) {
      on_sasl_init(c, *si);
    } else if (std::holds_alternative<sasl_response_received>(*e)) {
      // The hub sends no challenge: a response is out of place (RFC 4422 §3.4).
      (void)c.engine.sasl_complete(sasl_code::auth);
    } else if (std::holds_alternative<connection_opened>(*e)) {
      on_connection_opened(c);
    } else if (const auto* sb = std::get_if<session_begun>(&*e)) {
      if (sb->remote_initiated) {
        // §1.4: begin answered with incoming-window 5000, handle-max 262143.
        session_options so;
        so.incoming_window = opts.incoming_window;
        so.handle_max = opts.handle_max;
        (void)c.engine.begin(sb->session, so);
      }
    } else if (const auto* se = std::get_if<session_ended>(&*e)) {
      remove_links(c, se->session);
    } else if (const auto* la = std::get_if<link_attached>(&*e)) {
      on_attach(c, *la);
    } else if (const auto* ld = std::get_if<link_detached>(&*e)) {
      // AMQP 1.0 §2.6.6: the engine answers a detach with a detach.
      remove_link(c, ld->link.value);
    } else if (const auto* lf = std::get_if<link_flow>(&*e)) {
      auto it = c.links.find(lf->link.value);
      if (it != c.links.end()) {
        on_flow(c, *it->second, *lf);
      }
    } else if (const auto* dr = std::get_if<delivery_received>(&*e)) {
      auto it = c.links.find(dr->delivery.link.value);
      if (it != c.links.end()) {
        on_delivery(c, *it->second, *dr);
      }
    } else if (const auto* du = std::get_if<delivery_updated>(&*e)) {
      auto it = c.links.find(du->delivery.link.value);
      if (it != c.links.end() && it->second->kind == link_kind::device_c2d) {
        on_c2d_disposition(c, *it->second, *du);
      } else if (it != c.links.end() && it->second->kind == link_kind::feedback) {
        on_feedback_disposition(c, *it->second, *du);
      } else if (it != c.links.end() && !du->settled && is_outcome(kind_of(du->state))) {
        // An answer (CBS, $management) the client disposed without settling (rcv-settle-mode
        // second): the hub, the sender, settles (§2.8.3).
        (void)c.engine.settle(du->delivery, du->state);
      }
    } else if (std::holds_alternative<connection_closed>(*e)) {
      c.closed = true;
      remove_links(c, std::nullopt);
      c.identities.clear();
    }
  }
  finish_outcomes(c);
  current = nullptr;
}

// AMQP 1.0 §2.6.3: an attach the hub will not serve is answered with a null local terminus
// (the source of a link the hub would send on, the target of one it would receive on), then
// detached with the error.
void hub::impl::refuse(conn_state& c, const link_attached& e, std::string_view condition,
                       std::string_view description) {
  const amqp::attach& a = e.remote;
  link_options o;
  o.role = a.role == role::sender ? role::receiver : role::sender;
  o.snd_settle_mode = a.snd_settle_mode;
  o.rcv_settle_mode = a.rcv_settle_mode;
  if (o.role == role::receiver) {
    o.source = a.source.value_or(amqp::source{});
  } else if (a.target && std::holds_alternative<amqp::target>(*a.target)) {
    o.target = std::get<amqp::target>(*a.target);
  } else {
    o.target = amqp::target{};
  }
  (void)c.engine.attach(e.link, o);
  (void)c.engine.detach(e.link, true, make_error(condition, description));
}

bool hub::impl::answer(conn_state& c, const link_attached& e, receiver_settle_mode rcv) {
  const amqp::attach& a = e.remote;
  link_options o;
  o.role = a.role == role::sender ? role::receiver : role::sender;
  o.snd_settle_mode = a.snd_settle_mode;
  o.rcv_settle_mode = rcv;
  o.source = a.source.value_or(amqp::source{});
  if (a.target && std::holds_alternative<amqp::target>(*a.target)) {
    o.target = std::get<amqp::target>(*a.target);
  } else {
    o.target = amqp::target{};
  }
  if (o.role == role::receiver) {
    o.max_message_size = opts.max_message_size;
  }
  if (!c.engine.attach(e.link, o)) {
    (void)c.engine.detach(e.link, true,
                          make_error(amqp::symbol::resource_limit_exceeded, "no handle free"));
    return false;
  }
  return true;
}

link_state& hub::impl::add_link(conn_state& c, const link_attached& e, link_kind k) {
  auto l = std::make_unique<link_state>();
  l->id = e.link;
  l->session = e.session;
  l->kind = k;
  l->key = next_key++;
  l->name = e.remote.name;
  link_state& ref = *l;
  c.links[e.link.value] = std::move(l);
  return ref;
}

void hub::impl::on_attach(conn_state& c, const link_attached& e) {
  if (!e.remote_initiated) {
    return; // the hub attaches nothing itself
  }
  remove_link(c, e.link.value); // a stale entry under a reused id (never expected)
  const amqp::attach& a = e.remote;
  if (c.links.size() >= opts.max_links_per_connection) {
    refuse(c, e, amqp::symbol::resource_limit_exceeded,
           "The connection has " + std::to_string(c.links.size()) +
               " links attached, the most a connection may have.");
    return;
  }
  const bool client_sends = a.role == role::sender;
  std::optional<std::string_view> text;
  if (client_sends) {
    if (a.target && std::holds_alternative<coordinator>(*a.target)) {
      refuse(c, e, amqp::symbol::not_implemented, "Transactions are not supported.");
      return;
    }
    if (a.target) {
      text = std::get<amqp::target>(*a.target).address;
    }
  } else if (a.source) {
    text = a.source->address;
  }
  if (!text || text->empty()) {
    refuse(c, e, amqp::symbol::not_found, unknown_address_text({}));
    return;
  }
  std::string why;
  auto parsed = parse_address(*text, &why);
  if (!parsed) {
    refuse(c, e, amqp::symbol::not_found, unknown_address_text(*text));
    return;
  }
  const address& addr = *parsed;
  // The Event Hubs forms name the event hub, which is the hub itself (§6.1).
  const bool eventhub_form = addr.kind == address_kind::eventhub ||
                             addr.kind == address_kind::eventhub_partition ||
                             addr.kind == address_kind::eventhub_consumer ||
                             addr.kind == address_kind::eventhub_management;
  if (eventhub_form && !same_name(addr.event_hub, reg.hub_name())) {
    refuse(c, e, amqp::symbol::not_found, unknown_address_text(*text));
    return;
  }

  // The kind of link the address and the client's role make; anything else is refused.
  std::optional<link_kind> kind;
  switch (addr.kind) {
  case address_kind::cbs:
    kind = client_sends ? link_kind::cbs_requests : link_kind::cbs_responses;
    break;
  case address_kind::telemetry:
    if (client_sends) {
      kind = link_kind::telemetry;
    }
    break;
  case address_kind::device_c2d:
    if (!client_sends) {
      kind = link_kind::device_c2d;
    }
    break;
  case address_kind::service_c2d:
    if (client_sends) {
      kind = link_kind::service_c2d;
    }
    break;
  case address_kind::feedback:
    if (!client_sends) {
      kind = link_kind::feedback;
    }
    break;
  case address_kind::file_notifications:
    if (!client_sends) {
      kind = link_kind::file_notifications;
    }
    break;
  case address_kind::builtin_events:
    // §6.1: any path under /messages/events is redirected ($management included, whose
    // request link is a sender).
    if (!client_sends || opts.redirect) {
      kind = link_kind::partition_reader;
    }
    break;
  case address_kind::eventhub_consumer:
    if (!client_sends) {
      kind = link_kind::partition_reader;
    }
    break;
  case address_kind::eventhub_partition:
    // {hub}/Partitions/{p}: a receiver reads the $Default consumer group.
    if (!client_sends) {
      kind = link_kind::partition_reader;
      break;
    }
    refuse(c, e, amqp::symbol::not_implemented,
           "Sending to the Event Hubs-compatible endpoint is not supported.");
    return;
  case address_kind::management:
  case address_kind::eventhub_management:
    kind = client_sends ? link_kind::management_requests : link_kind::management_responses;
    break;
  case address_kind::twin:
  case address_kind::methods:
    refuse(c, e, amqp::symbol::not_implemented,
           "Device twins and direct methods are not supported by the emulator.");
    return;
  case address_kind::eventhub:
    refuse(c, e, amqp::symbol::not_implemented,
           "Sending to the Event Hubs-compatible endpoint is not supported.");
    return;
  }
  if (!kind) {
    // The right address in the wrong direction (a device receiving from its telemetry).
    refuse(c, e, amqp::symbol::not_found, unknown_address_text(*text));
    return;
  }

  // Permissions (§2): every link but $cbs needs an identity of the connection.
  identity* id = nullptr;
  if (*kind != link_kind::cbs_requests && *kind != link_kind::cbs_responses) {
    auto verdict = authorize(c, addr, *text);
    if (auto* d = std::get_if<denial>(&verdict)) {
      refuse(c, e, d->condition, d->description);
      return;
    }
    id = std::get<identity*>(verdict);
  }

  switch (*kind) {
  case link_kind::partition_reader:
    // §6.1: the IoT Hub form is redirected to the Event Hubs form (or, with redirect off,
    // served as it is).
    if (addr.kind == address_kind::builtin_events && opts.redirect) {
      redirect(c, e, addr);
    } else {
      attach_reader(c, e, addr);
    }
    if (auto it = c.links.find(e.link.value); it != c.links.end() && id != nullptr) {
      it->second->identity = id->serial;
      id->links.insert(e.link.value);
    }
    return;
  case link_kind::telemetry: {
    // §3.1: the hub answers any settle mode and settles each outcome (rcv-settle-mode first).
    if (!answer(c, e, receiver_settle_mode::first)) {
      return;
    }
    link_state& l = add_link(c, e, *kind);
    if (auto model = a.properties.find(link_property::model_id)) {
      l.model_id = model->get_string().value_or(std::string_view{});
    }
    (void)c.engine.flow(l.id, opts.d2c_credit);
    break;
  }
  case link_kind::device_c2d:
    attach_c2d_receiver(c, e, addr);
    break;
  case link_kind::feedback: {
    if (!answer(c, e, a.rcv_settle_mode)) {
      return;
    }
    link_state& l = add_link(c, e, *kind);
    l.presettle = a.snd_settle_mode == sender_settle_mode::settled;
    feedback_receivers.emplace_back(c.handle, l.id.value);
    pump_feedback();
    break;
  }
  case link_kind::service_c2d: {
    if (!answer(c, e, receiver_settle_mode::first)) {
      return;
    }
    link_state& l = add_link(c, e, *kind);
    (void)c.engine.flow(l.id, opts.d2c_credit);
    break;
  }
  case link_kind::cbs_requests:
  case link_kind::management_requests: {
    // The hub settles each request at once (§2.4: accepted, settled, before the answer).
    if (!answer(c, e, receiver_settle_mode::first)) {
      return;
    }
    link_state& l = add_link(c, e, *kind);
    (void)c.engine.flow(l.id, opts.cbs_credit);
    break;
  }
  case link_kind::cbs_responses:
  case link_kind::management_responses: {
    if (!answer(c, e, a.rcv_settle_mode)) {
      return;
    }
    link_state& l = add_link(c, e, *kind);
    if (a.target && std::holds_alternative<amqp::target>(*a.target)) {
      l.reply_address = std::get<amqp::target>(*a.target).address.value_or(std::string_view{});
    }
    break;
  }
  default: {
    // Served by their features; until one serves a kind, the link attaches and what the
    // client sends on it is rejected (amqp:not-implemented).
    if (!answer(c, e, receiver_settle_mode::first)) {
      return;
    }
    link_state& l = add_link(c, e, *kind);
    if (!client_sends) {
      break;
    }
    (void)c.engine.flow(l.id, opts.d2c_credit);
    break;
  }
  }
  // The identity that allowed the link: its expiry detaches it (§2.5). (A link whose answer
  // the engine refused was never added.)
  auto added = c.links.find(e.link.value);
  if (id != nullptr && added != c.links.end()) {
    added->second->identity = id->serial;
    added->second->device = addr.identity;
    id->links.insert(e.link.value);
  }
}

void hub::impl::on_delivery(conn_state& c, link_state& l, const delivery_received& d) {
  if (d.aborted) {
    return; // AMQP 1.0 §2.6.14: discarded (the engine settled it)
  }
  switch (l.kind) {
  case link_kind::cbs_requests:
    on_cbs_request(c, l, d);
    break;
  case link_kind::telemetry:
    on_telemetry(c, l, d);
    break;
  case link_kind::management_requests:
    on_management_request(c, l, d);
    break;
  case link_kind::service_c2d:
    on_c2d_send(c, l, d);
    break;
  default:
    if (!d.settled) {
      (void)c.engine.settle(d.delivery, rejected{make_error(amqp::symbol::not_implemented,
                                                            "Not served by the emulator.")});
    }
    break;
  }
}

void hub::impl::on_flow(conn_state& c, link_state& l, const link_flow& f) {
  if (l.kind == link_kind::partition_reader) {
    l.drain = f.drain;
    pump_reader(c, l);
    return;
  }
  if (l.kind == link_kind::device_c2d) {
    pump_c2d(l.queue);
    return;
  }
  if (l.kind == link_kind::feedback) {
    pump_feedback();
    return;
  }
  if (!l.queued.empty()) {
    flush_queued(c, l);
    top_up_requests(c);
  }
}

void hub::impl::send_or_queue(conn_state& c, link_state& l, std::vector<std::byte> payload) {
  l.queued.push_back(queued_message{std::move(payload)});
  flush_queued(c, l);
}

void hub::impl::flush_queued(conn_state& c, link_state& l) {
  std::size_t sent = 0;
  for (; sent < l.queued.size(); ++sent) {
    transfer_options t;
    t.payload = l.queued[sent].payload;
    if (!c.engine.send(l.id, t)) {
      break; // no credit, or the output is full: retried on flow or written output
    }
    touch(c);
  }
  l.queued.erase(l.queued.begin(), l.queued.begin() + static_cast<std::ptrdiff_t>(sent));
  if (l.queued.empty()) {
    l.queued.shrink_to_fit(); // a quiet link holds nothing (most answer links are)
  }
}

void hub::impl::remove_link(conn_state& c, std::uint32_t id) {
  auto it = c.links.find(id);
  if (it == c.links.end()) {
    return;
  }
  unbind(c, *it->second);
  if (it->second->kind == link_kind::partition_reader) {
    remove_reader(c, *it->second);
  } else if (it->second->kind == link_kind::device_c2d) {
    release_c2d(c, *it->second);
  } else if (it->second->kind == link_kind::feedback) {
    release_feedback(c, *it->second);
  }
  c.links.erase(it);
}

void hub::impl::remove_links(conn_state& c, const std::optional<session_id>& s) {
  std::vector<std::uint32_t> ids;
  for (const auto& [id, l] : c.links) {
    if (!s || l->session == *s) {
      ids.push_back(id);
    }
  }
  for (std::uint32_t id : ids) {
    remove_link(c, id);
  }
}

void hub::impl::detach(conn_state& c, std::uint32_t id, std::string_view condition,
                       std::string_view description) {
  if (!c.links.contains(id)) {
    return;
  }
  sync(c);
  (void)c.engine.detach(link_id{id}, true, make_error(condition, description));
  remove_link(c, id);
  touch(c);
}

// One commit per process() (the design's durability rule): what the events wrote is committed
// before the outcomes that acknowledge it go to the engine. If the commit fails nothing was
// kept: the messages it would have acknowledged are rejected with amqp:internal-error.
bool hub::impl::commit_writes(std::string& failure) {
  bool committed = true;
  if (tx_failed || db.in_transaction()) {
    if (tx_failed) {
      db.rollback();
      committed = false;
      failure = "The hub could not store the message.";
    } else if (auto r = db.commit(); !r) {
      committed = false;
      failure = "The hub could not store the message: " + r.error().message();
    }
    if (!committed) {
      heads = heads_at_begin; // nothing of the transaction was kept
      forget_c2d_added();
    } else {
      partitions_to_pump.insert(partitions_to_pump.end(), appended.begin(), appended.end());
    }
    tx_failed = false;
    appended.clear();
  }
  c2d_added.clear();
  return committed;
}

void hub::impl::deliver_committed() {
  // New events go to the partitions' live readers, C2D messages to their devices, feedback
  // batches to the service, on any connection.
  const std::vector<std::uint32_t> partitions = std::move(partitions_to_pump);
  partitions_to_pump.clear();
  for (std::uint32_t p : partitions) {
    pump_partition(p);
  }
  std::vector<std::string> queues = std::move(c2d_touched);
  c2d_touched.clear();
  std::sort(queues.begin(), queues.end());
  queues.erase(std::unique(queues.begin(), queues.end()), queues.end());
  for (const std::string& q : queues) {
    pump_c2d(q);
  }
  pump_feedback();
}

void hub::impl::finish_outcomes(conn_state& c) {
  std::string failure;
  const bool committed = commit_writes(failure);
  std::vector<pending_outcome> outcomes = std::move(c.outcomes);
  c.outcomes.clear();
  for (const pending_outcome& o : outcomes) {
    if (o.accept && committed) {
      (void)c.engine.settle(o.delivery, accepted{});
    } else if (o.accept) {
      (void)c.engine.settle(o.delivery,
                            rejected{make_error(amqp::symbol::internal_error, failure)});
    } else {
      (void)c.engine.settle(o.delivery,
                            rejected{make_error(o.condition, o.description, o.info.get())});
    }
  }
  deliver_committed();
  top_up_telemetry(c);
}

void hub::impl::commit_timer_writes() {
  std::string failure;
  (void)commit_writes(failure);
  deliver_committed();
}

void hub::impl::on_timer(const timer& t) {
  switch (t.kind) {
  case timer_kind::token_expiry:
    on_token_expiry(t.a, t.b);
    break;
  case timer_kind::retention:
    trim_partitions();
    break;
  case timer_kind::c2d_lock:
    on_c2d_lock_expiry(t.a);
    break;
  case timer_kind::c2d_expiry:
    on_c2d_expiry(t.a);
    break;
  case timer_kind::feedback_window:
    on_feedback_window();
    break;
  case timer_kind::feedback_lock:
    on_feedback_lock_expiry(t.a);
    break;
  case timer_kind::feedback_expiry:
    on_feedback_expiry(static_cast<std::int64_t>(t.a));
    break;
  case timer_kind::fault:
    on_fault(t.a);
    break;
  default:
    break;
  }
}

// ---- hub -----------------------------------------------------------------------------------

hub::hub(std::unique_ptr<impl> p) noexcept : impl_(std::move(p)) {}
hub::~hub() = default;

result<std::unique_ptr<hub>> hub::create(hub_options o, store& s, registry& reg,
                                         random_source& random) {
  if (o.partitions == 0 || o.partitions > 1024 || o.host_names.empty()) {
    return amqp::errc::invalid_argument;
  }
  auto p = std::make_unique<impl>(std::move(o), s, reg, random);
  // The partitions' heads, as committed: sequence numbers and offsets go on from there.
  p->heads.resize(p->opts.partitions);
  for (std::uint32_t i = 0; i < p->opts.partitions; ++i) {
    p->heads[i].partition = i;
  }
  auto stored = s.partition_heads();
  if (!stored) {
    return stored.error();
  }
  for (const partition_head& h : *stored) {
    if (h.partition < p->opts.partitions) {
      p->heads[h.partition] = h;
    }
  }
  if (auto created = s.get_meta("created_at"); created && *created) {
    p->created_at = std::strtoll((*created)->c_str(), nullptr, 10);
  }
  if (auto r = p->load_c2d(); !r) {
    return r.error();
  }
  if (auto r = p->load_feedback(); !r) {
    return r.error();
  }
  // Retention runs at the first on_deadline(), then every trim_interval.
  p->timers.schedule(time_point{}, timer_kind::retention);
  return std::unique_ptr<hub>(new hub(std::move(p)));
}

connection_handle hub::add_connection(time_point now, const peer_info& peer) {
  impl_->now = now;
  if (impl_->created_at == 0) {
    // The hub's creation time (the Event Hubs created_at), set by its first connection.
    impl_->created_at = impl_->wall_ms();
    (void)impl_->db.set_meta("created_at", std::to_string(impl_->created_at));
  }
  // §1.4: the hub's container-id is DeviceGateway_ and 32 hex digits.
  std::string container_id = "DeviceGateway_" + random_hex(impl_->random, 16);
  connection_options o = impl_->conn_opts;
  o.container_id = container_id;
  auto c = std::make_unique<conn_state>(o);
  c->peer = peer;
  c->container_id = std::move(container_id);
  const connection_handle h = impl_->next_handle++;
  c->handle = h;
  impl_->conns.emplace(h, std::move(c));
  return h;
}

amqp::connection* hub::engine(connection_handle c) noexcept {
  conn_state* s = impl_->find(c);
  return s == nullptr ? nullptr : &s->engine;
}

result<void> hub::receive(connection_handle c, std::span<const std::byte> in, time_point now) {
  conn_state* s = impl_->find(c);
  if (s == nullptr) {
    return amqp::errc::invalid_state;
  }
  return s->engine.receive(in, now);
}

void hub::process(connection_handle c, time_point now) {
  impl_->now = now;
  if (conn_state* s = impl_->find(c)) {
    impl_->process(*s);
  }
  impl_->process_synced();
}

void hub::on_output_written(connection_handle c) {
  if (conn_state* s = impl_->find(c)) {
    impl_->current = s;
    std::vector<std::string> queues;
    bool feedback = false;
    for (auto& [id, l] : s->links) {
      impl_->flush_queued(*s, *l);
      if (l->kind == link_kind::partition_reader) {
        impl_->pump_reader(*s, *l);
      } else if (l->kind == link_kind::device_c2d) {
        queues.push_back(l->queue);
      } else if (l->kind == link_kind::feedback) {
        feedback = true;
      }
    }
    for (const std::string& q : queues) {
      impl_->pump_c2d(q);
    }
    if (feedback) {
      impl_->pump_feedback();
    }
    impl_->current = nullptr;
  }
}

std::vector<connection_handle> hub::take_dirty() {
  std::vector<connection_handle> out;
  out.reserve(impl_->dirty.size());
  for (connection_handle h : impl_->dirty) {
    if (conn_state* s = impl_->find(h)) {
      s->dirty = false;
      out.push_back(h);
    }
  }
  impl_->dirty.clear();
  return out;
}

std::vector<connection_handle> hub::take_aborted() {
  std::vector<connection_handle> out;
  for (connection_handle h : impl_->aborted) {
    if (impl_->find(h) != nullptr) {
      out.push_back(h);
    }
  }
  impl_->aborted.clear();
  return out;
}

void hub::remove_connection(connection_handle c) {
  conn_state* s = impl_->find(c);
  if (s == nullptr) {
    return;
  }
  impl_->current = s;
  impl_->remove_links(*s, std::nullopt);
  impl_->current = nullptr;
  impl_->conns.erase(c);
  // Locks it held are released: the messages go to other receivers.
  impl_->deliver_committed();
}

std::optional<time_point> hub::next_deadline() const noexcept {
  return impl_->timers.next();
}

void hub::on_deadline(time_point now) {
  impl_->now = now;
  while (auto t = impl_->timers.pop_due(now)) {
    impl_->on_timer(*t);
  }
  impl_->commit_timer_writes();
  impl_->process_synced();
}

void hub::set_unix_offset(milliseconds offset) noexcept {
  impl_->opts.unix_offset = offset;
}

std::optional<connection_info> hub::info(connection_handle c) const {
  const conn_state* s = impl_->find(c);
  if (s == nullptr) {
    return std::nullopt;
  }
  connection_info out;
  out.peer = s->peer;
  out.container_id = s->container_id;
  out.auth = s->auth;
  out.links = s->links.size();
  out.closed = s->closed;
  for (const auto& [audience, id] : s->identities) {
    identity_info i;
    i.audience = audience;
    switch (id.kind) {
    case principal_kind::device:
      i.principal = "device " + id.device.device_id;
      break;
    case principal_kind::module:
      i.principal = "module " + id.device.device_id + "/" + id.device.module_id;
      break;
    case principal_kind::policy:
      i.principal = "policy " + id.policy;
      break;
    case principal_kind::x509:
      i.principal = "x509 " + id.device.device_id;
      break;
    }
    i.permissions = id.permissions;
    i.expiry = id.expiry;
    i.links = id.links.size();
    out.identities.push_back(std::move(i));
  }
  return out;
}

std::size_t hub::connections() const noexcept {
  return impl_->conns.size();
}

const hub_options& hub::options() const noexcept {
  return impl_->opts;
}

} // namespace amqp::iothub::emulator
