// The Event Hubs-compatible endpoint (§6): the redirect of /messages/events/..., partition
// receivers with their start position, epochs and runtime metrics, consumer groups, and the
// $management node. Filters, the redirect info and $management messages are the profile
// layer's (amqp/iothub/eventhubs.hpp).
#include <algorithm>
#include <charconv>

#include "amqp/codec.hpp"
#include "amqp/iothub/cbs.hpp"
#include "amqp/iothub/eventhubs.hpp"
#include "amqp/iothub/messages.hpp"
#include "emulator/hub_state.hpp"
#include "emulator/hub_texts.hpp"

namespace amqp::iothub::emulator {

namespace {

amqp::error make_error(std::string_view condition, std::string_view description,
                       const value& info = {}) {
  return amqp::error{symbol_view{condition}, description, info};
}

std::string lowered(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

bool same_name(std::string_view a, std::string_view b) {
  return lowered(a) == lowered(b);
}

// A decimal integer, all of `s`.
std::optional<std::int64_t> to_int(std::string_view s) {
  std::int64_t v = 0;
  const auto* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, v);
  if (ec != std::errc{} || p != end || s.empty()) {
    return std::nullopt;
  }
  return v;
}

// A partition id of the hub: "0" .. "N-1", decimal, no sign or leading zero.
std::optional<std::uint32_t> partition_id(std::string_view s, std::uint32_t partitions) {
  if (s.empty() || s.size() > 4 || (s.size() > 1 && s[0] == '0') ||
      !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  auto v = to_int(s);
  if (!v || *v >= partitions) {
    return std::nullopt;
  }
  return static_cast<std::uint32_t>(*v);
}

} // namespace

std::int64_t hub::impl::committed_next(std::uint32_t p) const noexcept {
  // Events of the open transaction are not readable until it commits.
  return db.in_transaction() ? heads_at_begin[p].next_sequence : heads[p].next_sequence;
}

// §6.1: the IoT Hub form is answered, then detached with amqp:link:redirect, pointing at the
// Event Hubs form of the same path on the hub's own listener (the one the client came in on).
void hub::impl::redirect(conn_state& c, const link_attached& e, const address& a) {
  if (!answer(c, e, e.remote.rcv_settle_mode)) {
    return;
  }
  const std::string& host = opts.host_names.front();
  const std::uint16_t port = c.peer.tls ? opts.amqps_port : opts.amqp_port;
  std::string path;
  if (!a.consumer_group.empty() && !a.partition.empty()) {
    // As written by the hub (TRACE iothub-explorer#57): '$' of $Default not escaped.
    path = reg.hub_name() + "/ConsumerGroups/" + a.consumer_group + "/Partitions/" + a.partition;
  } else if (a.events_path.empty()) {
    path = reg.hub_name();
  } else {
    path = reg.hub_name() + "/" + a.events_path;
  }
  redirect_info r;
  r.hostname = host;
  r.network_host = host;
  r.port = port;
  r.address = std::string(c.peer.tls ? "amqps://" : "amqp://") + host + ":" + std::to_string(port) +
              "/" + path;
  r.tracking_id = tracking_id();
  const owned_value info = build_redirect_info(r);
  (void)c.engine.detach(e.link, true,
                        make_error(amqp::symbol::link_redirect, texts::redirected, info.get()));
}

void hub::impl::attach_reader(conn_state& c, const link_attached& e, const address& a) {
  const amqp::attach& at = e.remote;
  const std::string group =
      a.consumer_group.empty() ? std::string(default_consumer_group) : a.consumer_group;
  const auto p = partition_id(a.partition, opts.partitions);
  if (!p) {
    refuse(c, e, amqp::symbol::not_found, texts::no_partition(a.partition));
    return;
  }
  if (!reg.has_consumer_group(group)) {
    refuse(c, e, amqp::symbol::not_found, texts::no_consumer_group(group));
    return;
  }
  // §6.2: where the receiver starts. No filter: the end of the stream (@latest).
  std::string why;
  auto sel = parse_filter_set(at.source ? at.source->filter : value{}, &why);
  if (!sel) {
    refuse(c, e, amqp::symbol::not_implemented, "The filter is not supported: " + why);
    return;
  }
  const std::int64_t end = committed_next(*p);
  std::int64_t start = end;
  if (*sel) {
    const selector& s = **sel;
    const bool inclusive = s.op != position_operator::greater;
    std::optional<event_position> from;
    if (s.field == position_field::offset && s.value == "-1") {
      start = 0; // the start of the stream: everything retained
    } else if (s.field == position_field::offset && s.value == "@latest") {
      start = end;
    } else {
      auto v = to_int(s.value);
      if (!v) {
        refuse(c, e, amqp::symbol::not_implemented,
               "The filter is not supported: '" + s.value + "' is not an offset of this hub.");
        return;
      }
      switch (s.field) {
      case position_field::sequence_number:
        start = std::max<std::int64_t>(0, inclusive ? *v : *v + 1);
        break;
      case position_field::offset:
        from = event_position{event_position::field::offset, *v, inclusive};
        break;
      case position_field::enqueued_time:
        from = event_position{event_position::field::enqueued_time, *v, inclusive};
        break;
      }
    }
    if (from) {
      // Offsets and enqueued times grow with the sequence number: the first event that
      // matches, or (none yet) the next one.
      auto first = db.read_events(*p, *from, 1);
      start = first && !first->empty() ? std::min(first->front().sequence, end) : end;
    }
  }

  // §6.3 epochs: per consumer group and partition the highest epoch owns it.
  std::optional<std::int64_t> epoch;
  if (auto ep = at.properties.find(link_property::epoch)) {
    epoch = ep->get_signed();
    if (!epoch && ep->get_unsigned()) {
      epoch = static_cast<std::int64_t>(*ep->get_unsigned());
    }
  }
  std::string name = "nil";
  if (auto rn = at.properties.find("com.microsoft:receiver-name")) {
    name = rn->get_string().value_or(rn->get_symbol().value_or("nil"));
  }
  const auto key = std::make_pair(lowered(group), *p);
  std::vector<std::pair<conn_state*, link_state*>> others;
  for (const auto& [h, id] : readers[key]) {
    if (conn_state* oc = find(h)) {
      if (auto it = oc->links.find(id); it != oc->links.end()) {
        others.emplace_back(oc, it->second.get());
      }
    }
  }
  const link_state* owner = nullptr;
  for (const auto& [oc, ol] : others) {
    if (ol->epoch && (owner == nullptr || *ol->epoch > *owner->epoch)) {
      owner = ol;
    }
  }
  if (epoch && owner != nullptr && *owner->epoch > *epoch) {
    refuse(c, e, amqp::symbol::stolen,
           texts::lower_epoch(owner->receiver_name, *owner->epoch, name, *epoch));
    return;
  }
  if (!epoch && owner != nullptr) {
    refuse(c, e, amqp::symbol::stolen, texts::non_epoch_refused(*owner->epoch));
    return;
  }
  if (!epoch && others.size() >= opts.max_receivers_per_partition) {
    std::vector<std::string> names;
    names.reserve(others.size());
    for (const auto& [oc, ol] : others) {
      names.push_back(ol->receiver_name);
    }
    refuse(c, e, amqp::symbol::resource_limit_exceeded,
           texts::too_many_receivers(opts.max_receivers_per_partition, names));
    return;
  }

  link_options o;
  o.role = role::sender;
  // Reads are not destructive: events go settled (as Event Hubs answers, TRACE vcabbage/amqp#43).
  o.snd_settle_mode = sender_settle_mode::settled;
  o.rcv_settle_mode = at.rcv_settle_mode;
  o.source = at.source.value_or(amqp::source{});
  if (at.target && std::holds_alternative<amqp::target>(*at.target)) {
    o.target = std::get<amqp::target>(*at.target);
  } else {
    o.target = amqp::target{};
  }
  const bool metric = at.desired_capabilities.contains(link_property::receiver_runtime_metric);
  if (metric) {
    o.offered_capabilities = value(symbol_view{link_property::receiver_runtime_metric});
  }
  if (!c.engine.attach(e.link, o)) {
    (void)c.engine.detach(e.link, true,
                          make_error(amqp::symbol::resource_limit_exceeded, "no handle free"));
    return;
  }
  link_state& l = add_link(c, e, link_kind::partition_reader);
  l.consumer_group = key.first;
  l.partition = *p;
  l.next = start;
  l.epoch = epoch;
  l.receiver_name = name;
  l.runtime_metric = metric;
  readers[key].emplace_back(c.handle, l.id.value);
  // An epoch receiver takes the partition: the others go (§6.3, amqp:link:stolen).
  if (epoch) {
    for (const auto& [oc, ol] : others) {
      const std::string text = texts::stolen(name, *epoch, ol->receiver_name, ol->epoch.value_or(0),
                                             ol->epoch.has_value());
      detach(*oc, ol->id.value, amqp::symbol::stolen, text);
    }
  }
  pump_reader(c, l);
}

void hub::impl::remove_reader(const conn_state& c, const link_state& l) {
  auto it = readers.find(std::make_pair(l.consumer_group, l.partition));
  if (it == readers.end()) {
    return;
  }
  std::erase(it->second, std::make_pair(c.handle, l.id.value));
  if (it->second.empty()) {
    readers.erase(it);
  }
}

void hub::impl::pump_reader(conn_state& c, link_state& l) {
  const std::uint32_t p = l.partition;
  const std::int64_t limit = committed_next(p);
  const partition_head& head = db.in_transaction() ? heads_at_begin[p] : heads[p];
  while (c.engine.credit(l.id) > 0 && l.next < limit) {
    const auto want = std::min<std::size_t>(
        {c.engine.credit(l.id), 64, static_cast<std::size_t>(limit - l.next)});
    auto batch =
        db.read_events(p, event_position{event_position::field::sequence, l.next, true}, want);
    if (!batch || batch->empty()) {
      // Trimmed by retention since: on from the oldest event retained.
      auto r = db.range(p);
      if (r && !r->empty && r->first_sequence > l.next) {
        l.next = r->first_sequence;
        continue;
      }
      break;
    }
    for (const stored_event& ev : *batch) {
      if (ev.sequence >= limit) {
        break;
      }
      std::vector<std::byte> with_metric;
      std::span<const std::byte> payload = ev.bytes;
      if (l.runtime_metric) {
        // §6.3: the partition's last event and when the hub looked, on each delivery.
        auto view = decode_message(ev.bytes);
        if (view) {
          const std::string offset = std::to_string(head.last_offset);
          const value kv[8] = {
              value(symbol_view{"last_enqueued_sequence_number"}),
              value(std::int64_t{head.next_sequence - 1}),
              value(symbol_view{"last_enqueued_offset"}),
              value(std::string_view(offset)),
              value(symbol_view{"last_enqueued_time_utc"}),
              value(amqp::timestamp{head.last_enqueued_time}),
              value(symbol_view{"runtime_info_retrieval_time_utc"}),
              value(amqp::timestamp{wall_ms()}),
          };
          message_parts with;
          with.delivery_annotations = value::map(kv);
          if (encode_append(*view, with, section_set::delivery_annotations, with_metric)) {
            payload = with_metric;
          }
        }
      }
      transfer_options t;
      t.payload = payload;
      t.settled = true;
      if (!c.engine.send(l.id, t)) {
        return; // the output is full: on_output_written() goes on
      }
      l.next = ev.sequence + 1;
      touch(c);
    }
  }
  if (l.drain && (c.engine.credit(l.id) == 0 || l.next >= limit)) {
    // AMQP 1.0 §2.6.7: nothing more to send: the credit is used up.
    (void)c.engine.drained(l.id);
    l.drain = false;
    touch(c);
  }
}

void hub::impl::pump_partition(std::uint32_t p) {
  for (auto& [key, group] : readers) {
    if (key.second != p) {
      continue;
    }
    const auto members = group; // pumping never changes the group, but be safe
    for (const auto& [h, id] : members) {
      conn_state* c = find(h);
      if (c == nullptr || c->closed) {
        continue;
      }
      if (auto it = c->links.find(id); it != c->links.end()) {
        pump_reader(*c, *it->second);
      }
    }
  }
}

// §6.4: READ of com.microsoft:eventhub and com.microsoft:partition.
void hub::impl::on_management_request(conn_state& c, link_state& l, const delivery_received& d) {
  auto m = amqp::message::decode(d.payload);
  if (!m || m->properties.message_id.is_null()) {
    if (!d.settled) {
      (void)c.engine.settle(d.delivery,
                            rejected{make_error(amqp::symbol::decode_error,
                                                m ? "The request has no message-id."
                                                  : "The request is not a valid AMQP message.")});
    }
    top_up_requests(c);
    return;
  }
  if (!d.settled) {
    (void)c.engine.settle(d.delivery, accepted{});
    (void)c.engine.pending_output(); // the disposition goes ahead of the answer
  }
  std::string why;
  auto req = parse_management_request(*m, &why);
  const owned_value& corr = m->properties.message_id;
  amqp::message out;
  std::optional<std::string> reply_to = m->properties.reply_to;
  if (!req) {
    out = build_cbs_response(cbs_response{corr, cbs_status::bad_request, "Bad request: " + why});
  } else if (!same_name(req->event_hub, reg.hub_name())) {
    out = build_cbs_response(
        cbs_response{corr, cbs_status::not_found, texts::no_entity(req->event_hub)});
  } else if (!req->partition) {
    eventhub_info info;
    info.name = reg.hub_name();
    info.created_at = amqp::timestamp{created_at};
    for (std::uint32_t i = 0; i < opts.partitions; ++i) {
      info.partition_ids.push_back(std::to_string(i));
    }
    out = build_eventhub_response(corr, info);
  } else if (auto p = partition_id(*req->partition, opts.partitions); !p) {
    out = build_cbs_response(
        cbs_response{corr, cbs_status::not_found, texts::no_partition(*req->partition)});
  } else {
    const partition_head& h = db.in_transaction() ? heads_at_begin[*p] : heads[*p];
    auto r = db.range(*p);
    partition_info info;
    info.name = reg.hub_name();
    info.partition = std::to_string(*p);
    info.is_partition_empty = !r || r->empty;
    if (h.next_sequence == 0) {
      // Never written to (Event Hubs: -1 for both, offset "-1").
      info.begin_sequence_number = -1;
      info.last_enqueued_sequence_number = -1;
      info.last_enqueued_offset = "-1";
    } else {
      info.begin_sequence_number = info.is_partition_empty ? h.next_sequence : r->first_sequence;
      info.last_enqueued_sequence_number = h.next_sequence - 1;
      info.last_enqueued_offset = std::to_string(h.last_offset);
      info.last_enqueued_time_utc = amqp::timestamp{h.last_enqueued_time};
    }
    out = build_partition_response(corr, info);
  }
  if (link_state* to = reply_link(c, l, link_kind::management_responses, reply_to)) {
    if (auto bytes = out.encode()) {
      send_or_queue(c, *to, std::move(*bytes));
    }
  }
  top_up_requests(c);
}

} // namespace amqp::iothub::emulator
