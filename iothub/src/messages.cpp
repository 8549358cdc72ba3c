// Batches (doc §3.3) and the hub's D2C annotations (doc §3.4).
#include "amqp/iothub/messages.hpp"

#include <array>
#include <iterator>
#include <utility>
#include <vector>

#include "amqp/codec.hpp"
#include "detail.hpp"

namespace amqp::iothub {

using detail::fail;

namespace {

// The index of a section in spec order (AMQP 1.0 §3.2): header, delivery-annotations,
// message-annotations, properties, application-properties, body, footer.
int spec_rank(section s) noexcept {
  switch (s) {
  case section::header:
    return 0;
  case section::delivery_annotations:
    return 1;
  case section::message_annotations:
    return 2;
  case section::properties:
    return 3;
  case section::application_properties:
    return 4;
  case section::data:
  case section::amqp_sequence:
  case section::amqp_value:
    return 5;
  case section::footer:
    return 6;
  }
  return 6;
}

void json_escape(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  for (char c : s) {
    const auto b = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (b < 0x20) {
      out += "\\u00";
      out += hex[b >> 4U];
      out += hex[b & 0xFU];
    } else {
      out += c;
    }
  }
}

} // namespace

result<std::size_t> build_batch(std::span<const amqp::message> messages, std::size_t max_size,
                                amqp::message& envelope, std::size_t max_messages,
                                std::string* why) {
  if (messages.empty() || max_messages == 0) {
    return fail(why, errc::limit_exceeded, "a batch holds at least one message");
  }
  envelope.clear_body();
  auto base = envelope.encoded_size();
  if (!base) {
    return fail(why, errc::invalid_value, "the envelope does not encode: " + envelope.check());
  }
  std::size_t total = *base;
  std::size_t count = 0;
  std::vector<std::vector<std::byte>> encoded;
  for (const amqp::message& m : messages) {
    if (count == max_messages) {
      break;
    }
    auto bytes = m.encode();
    if (!bytes) {
      return fail(why, errc::invalid_value,
                  "message " + std::to_string(count) + " does not encode: " + m.check());
    }
    const std::size_t section = data_section_size(bytes->size());
    if (total > max_size || section > max_size - total) {
      if (count == 0) {
        return fail(why, errc::limit_exceeded,
                    "the first message needs " + std::to_string(total + section) +
                        " bytes of batch, above the limit of " + std::to_string(max_size));
      }
      break;
    }
    total += section;
    encoded.push_back(std::move(*bytes));
    ++count;
  }
  for (const auto& e : encoded) {
    envelope.add_data(e);
  }
  return count;
}

result<amqp::message> decode_any_order(std::span<const std::byte> bytes, std::string* why) {
  struct part {
    section s;
    std::span<const std::byte> raw;
  };
  std::vector<part> parts;
  std::array<bool, 9> seen{};
  body_kind body = body_kind::none;
  std::size_t pos = 0;
  // No bytes at all make the empty message, as for amqp::message::decode (and an empty
  // message encodes to no bytes).
  while (pos < bytes.size()) {
    std::size_t used = 0;
    auto v = decode_value(bytes.subspan(pos), used);
    if (!v) {
      return fail(why, errc::invalid_value,
                  "a malformed section at byte " + std::to_string(pos) + ": " +
                      v.error().message());
    }
    const auto s = v->is(type::described) ? section_of(v->descriptor()) : std::nullopt;
    if (!s) {
      return fail(why, errc::invalid_value,
                  "the value at byte " + std::to_string(pos) + " is not a message section");
    }
    const auto idx = static_cast<std::size_t>(static_cast<std::uint8_t>(*s) - 0x70U);
    const body_kind kind = *s == section::data            ? body_kind::data
                           : *s == section::amqp_sequence ? body_kind::amqp_sequence
                           : *s == section::amqp_value    ? body_kind::amqp_value
                                                          : body_kind::none;
    if (kind != body_kind::none) {
      if (body != body_kind::none && (body != kind || kind == body_kind::amqp_value)) {
        return fail(why, errc::invalid_value,
                    "the body mixes section kinds or repeats amqp-value (" +
                        std::string(section_name(*s)) + ")");
      }
      body = kind;
    } else if (seen[idx]) {
      return fail(why, errc::invalid_value,
                  "the section " + std::string(section_name(*s)) + " appears twice");
    }
    seen[idx] = true;
    parts.push_back({*s, bytes.subspan(pos, used)});
    pos += used;
  }
  // Re-assembled in spec order (body sections keep their order), then decoded and checked by
  // the core's message decoder.
  std::vector<std::byte> ordered;
  ordered.reserve(bytes.size());
  for (int rank = 0; rank <= 6; ++rank) {
    for (const part& p : parts) {
      if (spec_rank(p.s) == rank) {
        ordered.insert(ordered.end(), p.raw.begin(), p.raw.end());
      }
    }
  }
  auto m = amqp::message::decode(ordered);
  if (!m) {
    return fail(why, errc::invalid_value, "a malformed section: " + m.error().message());
  }
  // The core's decoder accepts some sections its encoder refuses (application-properties
  // with keys that are not strings, AMQP 1.0 §3.2.5). A message the hub cannot forward is
  // refused here (found by fuzzing).
  if (std::string wrong = m->check(); !wrong.empty()) {
    return fail(why, errc::invalid_value, "a section that cannot be encoded again: " + wrong);
  }
  return std::move(*m);
}

result<std::vector<amqp::message>> split_batch(std::span<const std::byte> payload,
                                               const batch_limits& limits, std::string* why) {
  if (payload.size() > limits.max_bytes) {
    return fail(why, errc::limit_exceeded,
                message_size_description(payload.size(), limits.max_bytes));
  }
  auto outer = decode_message(payload);
  if (!outer) {
    return fail(why, errc::invalid_value, "a malformed batch envelope: " + outer.error().message());
  }
  if (outer->body != body_kind::data) {
    return fail(why, errc::invalid_value, "a batch envelope's body must be data sections");
  }
  if (outer->body_section_count() > limits.max_messages) {
    return fail(why, errc::limit_exceeded,
                "a batch of " + std::to_string(outer->body_section_count()) +
                    " messages, above the limit of " + std::to_string(limits.max_messages));
  }
  std::vector<amqp::message> out;
  out.reserve(outer->body_section_count());
  for (const value& s : outer->body_sections()) {
    std::string inner_why;
    auto m = decode_any_order(s.described_value().as_binary(), &inner_why);
    if (!m) {
      return fail(why, errc::invalid_value,
                  "batch message " + std::to_string(out.size()) + ": " + inner_why);
    }
    out.push_back(std::move(*m));
  }
  return out;
}

std::string auth_method_json(std::string_view scope, std::string_view type) {
  std::string out = R"({"scope":")";
  json_escape(out, scope);
  out += R"(","type":")";
  json_escape(out, type);
  out += R"(","issuer":"iothub","acceptingIpFilterRule":null})";
  return out;
}

void stamp_d2c(amqp::message& m, const d2c_stamp& stamp) {
  auto& a = m.message_annotations;
  a.set(annotation::connection_device_id, owned_value(stamp.identity.device_id));
  if (stamp.identity.is_module()) {
    a.set(annotation::connection_module_id, owned_value(stamp.identity.module_id));
  } else {
    a.erase(annotation::connection_module_id);
  }
  a.set(annotation::connection_auth_generation_id, owned_value(stamp.auth_generation_id));
  a.set(annotation::connection_auth_method, owned_value(stamp.auth_method));
  a.set(annotation::enqueued_time, owned_value(stamp.enqueued_time));
  a.set(annotation::message_source, owned_value(stamp.message_source));
  if (stamp.model_id.empty()) {
    a.erase(annotation::dt_dataschema);
  } else {
    a.set(annotation::dt_dataschema, owned_value(stamp.model_id));
  }
  a.set(annotation::sequence_number, owned_value(stamp.sequence_number));
  a.set(annotation::offset, owned_value(stamp.offset));
  a.set(annotation::enqueued_time_eh, owned_value(stamp.enqueued_time));
}

result<void> stamp_d2c(const message_view& m, const d2c_stamp& stamp, std::vector<std::byte>& out) {
  // The hub's entries, in stamp_d2c(message&)'s order; a null value: the key is removed.
  const value none;
  const std::pair<std::string_view, value> hub[] = {
      {annotation::connection_device_id, value(std::string_view(stamp.identity.device_id))},
      {annotation::connection_module_id,
       stamp.identity.is_module() ? value(std::string_view(stamp.identity.module_id)) : none},
      {annotation::connection_auth_generation_id, value(stamp.auth_generation_id)},
      {annotation::connection_auth_method, value(stamp.auth_method)},
      {annotation::enqueued_time, value(stamp.enqueued_time)},
      {annotation::message_source, value(stamp.message_source)},
      {annotation::dt_dataschema, stamp.model_id.empty() ? none : value(stamp.model_id)},
      {annotation::sequence_number, value(stamp.sequence_number)},
      {annotation::offset, value(std::string_view(stamp.offset))},
      {annotation::enqueued_time_eh, value(stamp.enqueued_time)},
  };
  constexpr std::size_t n = std::size(hub);
  std::array<bool, n> placed{};
  // The new map's keys and values, in a buffer each thread reuses (no allocation a message).
  thread_local std::vector<value> kv;
  kv.clear();
  const auto push = [&](const value& k, const value& v) {
    kv.push_back(k);
    kv.push_back(v);
  };
  // The device's annotations come first, as in the owned map: each key the hub sets takes
  // the hub's value in its place (the first entry with that text only, as value_map::set),
  // each it removes goes.
  if (m.message_annotations.is(type::map)) {
    bool is_key = true;
    value key;
    for (const value& v : m.message_annotations.items()) {
      if (is_key) {
        key = v;
        is_key = false;
        continue;
      }
      is_key = true;
      std::size_t i = n;
      if (key.is(type::symbol) || key.is(type::string)) {
        for (i = 0; i < n && (placed[i] || hub[i].first != key.as_string()); ++i) {
        }
      }
      if (i == n) {
        push(key, v);
        continue;
      }
      placed[i] = true;
      if (!hub[i].second.is_null()) {
        push(key, hub[i].second);
      }
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (!placed[i] && !hub[i].second.is_null()) {
      push(value(symbol_view{hub[i].first}), hub[i].second);
    }
  }
  message_parts with;
  with.message_annotations = value::map(kv);
  return amqp::encode_append(m, with, section_set::message_annotations, out);
}

} // namespace amqp::iothub
