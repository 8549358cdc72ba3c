// Device-to-cloud telemetry (§3): size rules, batches, the hub's annotations, partitions with
// sequence numbers, offsets and enqueued times, durability (one commit per process()), and
// retention. Batches are split and messages stamped by the profile layer
// (amqp/iothub/messages.hpp).
#include <algorithm>
#include <array>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "amqp/codec.hpp"
#include "amqp/iothub/errors.hpp"
#include "amqp/iothub/messages.hpp"
#include "emulator/hub_state.hpp"

namespace amqp::iothub::emulator {

namespace {

// Days since 1970-01-01 to a civil date (H. Hinnant's days_from_civil, inverted).
void civil_from_days(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) noexcept {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2 ? 1 : 0;
}

// The iothub-connection-auth-method JSON of scope device, module or hub (0, 1, 2) and type
// sas or x509 (0, 1): six texts, made once.
const std::string& auth_method_text(int scope, int type) {
  static const std::array<std::string, 6> texts = [] {
    std::array<std::string, 6> t;
    constexpr std::string_view scopes[] = {"device", "module", "hub"};
    constexpr std::string_view types[] = {"sas", "x509"};
    for (std::size_t i = 0; i < t.size(); ++i) {
      t[i] = auth_method_json(scopes[i / 2], types[i % 2]);
    }
    return t;
  }();
  return texts[(static_cast<std::size_t>(scope) * 2) + static_cast<std::size_t>(type)];
}

} // namespace

std::uint32_t partition_of(std::string_view device_id, std::uint32_t partitions) noexcept {
  std::uint32_t h = 2166136261U;
  for (const char c : device_id) {
    h ^= static_cast<unsigned char>(c);
    h *= 16777619U;
  }
  return partitions == 0 ? 0 : h % partitions;
}

std::string hub::impl::tracking_id() {
  const std::int64_t ms = wall_ms();
  const std::int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
  const std::int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
  const std::int64_t rem = secs - days * 86400;
  std::int64_t y = 0;
  unsigned mo = 0;
  unsigned d = 0;
  civil_from_days(days, y, mo, d);
  std::array<char, 48> when{};
  std::snprintf(when.data(), when.size(), "%02u/%02u/%04lld %02lld:%02lld:%02lld", mo, d,
                static_cast<long long>(y), static_cast<long long>(rem / 3600),
                static_cast<long long>(rem / 60 % 60), static_cast<long long>(rem % 60));
  return random_hex(random, 16) + "-G:0-TimeStamp:" + when.data();
}

bool hub::impl::ensure_transaction() {
  if (tx_failed) {
    return false;
  }
  if (db.in_transaction()) {
    return true;
  }
  if (!db.begin()) {
    tx_failed = true;
    return false;
  }
  heads_at_begin = heads;
  appended.clear();
  return true;
}

void hub::impl::reject_later(conn_state& c, const delivery_received& d, std::string_view condition,
                             std::string description, owned_value info) {
  if (d.settled) {
    return; // presettled: nothing goes back (AMQP 1.0 §2.6.12)
  }
  pending_outcome o;
  o.delivery = d.delivery;
  o.accept = false;
  o.condition = condition;
  o.description = std::move(description);
  o.info = std::move(info);
  c.outcomes.push_back(std::move(o));
}

d2c_stamp hub::impl::next_stamp(const link_state& l, const identity* id, stored_event& e) {
  const device_identity& who = l.device;
  const std::uint32_t p = partition_of(who.device_id, opts.partitions);
  const partition_head& head = heads[p];
  // Enqueued times never go back within a partition (readers filter on them), whatever the
  // wall clock does.
  const std::int64_t enqueued = std::max(wall_ms(), head.last_enqueued_time);

  d2c_stamp stamp;
  stamp.identity = who;
  // Views into the registry's records: nothing changes them while the message is stamped.
  if (who.is_module()) {
    const module_record* mr = reg.module(who.device_id, who.module_id);
    stamp.auth_generation_id = mr != nullptr ? std::string_view(mr->generation_id) : "";
  } else {
    const device_record* dr = reg.device(who.device_id);
    stamp.auth_generation_id = dr != nullptr ? std::string_view(dr->generation_id) : "";
  }
  // DOC-MSG: scope hub/device/module, type sas/x509.
  int scope = who.is_module() ? 1 : 0;
  int type = 0;
  if (id != nullptr && id->kind == principal_kind::policy) {
    scope = 2;
  } else if (id != nullptr && id->kind == principal_kind::x509) {
    type = 1;
  }
  stamp.auth_method = auth_method_text(scope, type);
  stamp.enqueued_time = amqp::timestamp{enqueued};
  stamp.model_id = l.model_id;
  stamp.sequence_number = head.next_sequence;
  stamp.offset = std::to_string(head.next_offset);

  e.partition = p;
  e.sequence = head.next_sequence;
  e.offset = head.next_offset;
  e.enqueued_time = enqueued;
  e.device = who.device_id;
  return stamp;
}

bool hub::impl::append_event(stored_event& e) {
  if (!db.append_event(e)) {
    tx_failed = true;
    return false;
  }
  partition_head& head = heads[e.partition];
  head.next_sequence = e.sequence + 1;
  head.next_offset = e.offset + static_cast<std::int64_t>(e.bytes.size());
  head.last_enqueued_time = e.enqueued_time;
  head.last_offset = e.offset;
  if (std::find(appended.begin(), appended.end(), e.partition) == appended.end()) {
    appended.push_back(e.partition);
  }
  return true;
}

bool hub::impl::append(const link_state& l, const identity* id, amqp::message& m) {
  stored_event e;
  stamp_d2c(m, next_stamp(l, id, e));
  auto bytes = m.encode();
  if (!bytes) {
    return false;
  }
  e.bytes = std::move(*bytes);
  return append_event(e);
}

bool hub::impl::append(const link_state& l, const identity* id, const message_view& m) {
  stored_event e;
  // The stamped bytes go into a buffer the hub reuses (the store copies them).
  e.bytes.swap(stamp_buffer);
  e.bytes.clear();
  const bool ok = stamp_d2c(m, next_stamp(l, id, e), e.bytes).has_value() && append_event(e);
  e.bytes.swap(stamp_buffer);
  return ok;
}

// §3: one transfer is one message (format 0) or a batch (0x80013700, §3.3). Each message is
// stamped (§3.4) and appended to its device's partition in the open transaction; the outcome
// (accepted) waits for the commit at the end of process().
void hub::impl::on_telemetry(conn_state& c, link_state& l, const delivery_received& d) {
  if (auto refused = fault_refusal(l.device)) {
    reject_later(c, d, refused->first, refused->second);
    return;
  }
  const std::size_t size = d.payload.size();
  if (size > opts.max_d2c_message_size) {
    // §3.5 (TRACE c#2233): rejected with the size, a tracking id and is-filtered.
    const std::string tid = tracking_id();
    const value kv[4] = {value(symbol_view{error_info::tracking_id}), value(std::string_view(tid)),
                         value(symbol_view{error_info::is_filtered}), value(true)};
    auto info = owned_value::copy_of(value::map(kv));
    reject_later(c, d, amqp::symbol::message_size_exceeded,
                 message_size_description(size, opts.max_d2c_message_size),
                 info ? std::move(*info) : owned_value{});
    return;
  }
  std::vector<amqp::message> messages;
  std::string why;
  std::optional<message_view> single;
  if (d.message_format == batch_message_format) {
    batch_limits limits;
    limits.max_messages = opts.max_batch_messages;
    limits.max_bytes = opts.max_d2c_message_size;
    auto split = split_batch(d.payload, limits, &why);
    if (!split) {
      const bool too_many = split.error() == errc::limit_exceeded;
      reject_later(c, d,
                   too_many ? std::string_view(condition::argument_out_of_range)
                            : amqp::symbol::decode_error,
                   "The batch was refused: " + why);
      return;
    }
    messages = std::move(*split);
  } else if (d.message_format == 0) {
    // Stamped as decoded: its sections but the annotations are stored as they came.
    auto m = decode_message(d.payload);
    if (!m) {
      reject_later(c, d, amqp::symbol::decode_error,
                   "The message is not a valid AMQP message: " + m.error().message());
      return;
    }
    single = *m;
  } else {
    reject_later(c, d, amqp::symbol::not_implemented,
                 "Message format " + std::to_string(d.message_format) + " is not supported.");
    return;
  }
  const identity* id = nullptr;
  for (const auto& [audience, i] : c.identities) {
    if (i.serial == l.identity) {
      id = &i;
    }
  }
  if (!ensure_transaction()) {
    reject_later(c, d, amqp::symbol::internal_error, "The hub could not store the message.");
    return;
  }
  if (single && !append(l, id, *single)) {
    reject_later(c, d, amqp::symbol::internal_error, "The hub could not store the message.");
    return;
  }
  for (amqp::message& m : messages) {
    if (!append(l, id, m)) {
      reject_later(c, d, amqp::symbol::internal_error, "The hub could not store the message.");
      return;
    }
  }
  if (!d.settled) {
    pending_outcome o;
    o.delivery = d.delivery;
    c.outcomes.push_back(std::move(o));
  }
  maybe_fault(c, l, d.payload, single ? &*single : nullptr);
}

void hub::impl::top_up_telemetry(conn_state& c) {
  for (auto& [id, l] : c.links) {
    if (l->kind == link_kind::telemetry && c.engine.credit(l->id) <= opts.d2c_credit / 2) {
      (void)c.engine.flow(l->id, opts.d2c_credit);
    }
  }
}

// §6.5: events older than the retention, then the oldest over the size bound, go.
void hub::impl::trim_partitions() {
  const std::int64_t before = wall_ms() - opts.retention.count();
  if (db.begin()) {
    for (std::uint32_t p = 0; p < opts.partitions; ++p) {
      (void)db.trim(p, before, opts.retention_bytes);
    }
    if (!db.commit()) {
      db.rollback();
    }
  }
  timers.schedule(now + opts.trim_interval, timer_kind::retention);
}

} // namespace amqp::iothub::emulator
