// The owning message (amqp::message, owned_value, value_map; amqp/message.hpp): deep copies of
// every section, converted to the codec's views (message_parts) to encode and from them
// (message_view) to decode.
#include <algorithm>
#include <cstring>
#include <utility>

#include "amqp/error.hpp"
#include "amqp/message.hpp"

namespace amqp {

namespace {

std::vector<std::byte> bytes_of(const void* p, std::size_t n) {
  const auto* b = static_cast<const std::byte*>(p);
  return {b, b + n};
}

bool is_text(type t) noexcept {
  return t == type::string || t == type::symbol;
}

bool is_ascii(std::string_view s) noexcept {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

// What is wrong with a top-level string or symbol held by an owned_value, or "".
std::string_view text_problem(const value& v) {
  if (v.is(type::string) && !is_valid_utf8(v.as_string())) {
    return "a string must be valid UTF-8";
  }
  if (v.is(type::symbol) && !is_ascii(v.as_symbol())) {
    return "a symbol must be ASCII";
  }
  return {};
}

std::string_view key_text(const owned_value& k) noexcept {
  const value& v = k.get();
  if (v.is(type::string)) {
    return v.as_string();
  }
  if (v.is(type::symbol)) {
    return v.as_symbol();
  }
  return {};
}

} // namespace

// ---- owned_value -----------------------------------------------------------------------------

owned_value::owned_value(std::string_view s) : bytes_(bytes_of(s.data(), s.size())) {
  v_ = value(std::string_view{});
  rebind();
}

owned_value::owned_value(symbol_view s) : bytes_(bytes_of(s.str.data(), s.str.size())) {
  v_ = value(symbol_view{});
  rebind();
}

owned_value::owned_value(binary_view b) : bytes_(bytes_of(b.data(), b.size())) {
  v_ = value(binary_view{});
  rebind();
}

result<owned_value> owned_value::copy_of(const value& v) {
  switch (v.kind()) {
  case type::string:
    return owned_value(v.as_string());
  case type::symbol:
    return owned_value(symbol_view{v.as_symbol()});
  case type::binary:
    return owned_value(v.as_binary());
  case type::list:
  case type::map:
  case type::array:
  case type::described: {
    owned_value o;
    if (auto r = encode_append(v, o.bytes_); !r) {
      return r.error();
    }
    // Decoding back validates what a built value does not check (UTF-8 of strings, ASCII of
    // symbols at any depth) and gives the view.
    auto d = decode_whole(o.bytes_);
    if (!d) {
      return errc::invalid_argument;
    }
    o.v_ = *d;
    return o;
  }
  default:
    owned_value o;
    o.v_ = v; // a scalar: held inline
    return o;
  }
}

void owned_value::rebind() noexcept {
  switch (v_.kind()) {
  case type::string:
    v_ = value(std::string_view(reinterpret_cast<const char*>(bytes_.data()), bytes_.size()));
    break;
  case type::symbol:
    v_ = value(
        symbol_view{std::string_view(reinterpret_cast<const char*>(bytes_.data()), bytes_.size())});
    break;
  case type::binary:
    v_ = value(binary_view(bytes_));
    break;
  case type::list:
  case type::map:
  case type::array:
  case type::described:
    // The bytes were produced by decoding or encoding a valid value: they decode again.
    if (auto d = decode_whole(bytes_)) {
      v_ = *d;
    }
    break;
  default:
    break;
  }
}

owned_value::owned_value(const owned_value& o) : v_(o.v_), bytes_(o.bytes_) {
  rebind();
}

owned_value& owned_value::operator=(const owned_value& o) {
  if (this != &o) {
    v_ = o.v_;
    bytes_ = o.bytes_;
    rebind();
  }
  return *this;
}

// A moved vector keeps its buffer, so the views stay valid; the source becomes null.
owned_value::owned_value(owned_value&& o) noexcept : v_(o.v_), bytes_(std::move(o.bytes_)) {
  o.v_ = value{};
  o.bytes_.clear();
}

owned_value& owned_value::operator=(owned_value&& o) noexcept {
  if (this != &o) {
    v_ = o.v_;
    bytes_ = std::move(o.bytes_);
    o.v_ = value{};
    o.bytes_.clear();
  }
  return *this;
}

// ---- value_map -------------------------------------------------------------------------------

void value_map::set(std::string_view key, owned_value v) {
  owned_value k = keys_ == map_keys::symbol ? owned_value(symbol_view{key}) : owned_value(key);
  set_entry(std::move(k), std::move(v));
}

void value_map::set_entry(owned_value key, owned_value v) {
  for (entry& e : entries_) {
    if (e.key == key ||
        (is_text(e.key.kind()) && is_text(key.kind()) && key_text(e.key) == key_text(key))) {
      e.value = std::move(v);
      return;
    }
  }
  entries_.push_back(entry{std::move(key), std::move(v)});
}

std::optional<value> value_map::get(std::string_view key) const noexcept {
  for (const entry& e : entries_) {
    if (is_text(e.key.kind()) && key_text(e.key) == key) {
      return e.value.get();
    }
  }
  return std::nullopt;
}

bool value_map::erase(std::string_view key) noexcept {
  auto it = std::find_if(entries_.begin(), entries_.end(), [&](const entry& e) {
    return is_text(e.key.kind()) && key_text(e.key) == key;
  });
  if (it == entries_.end()) {
    return false;
  }
  entries_.erase(it);
  return true;
}

// ---- message_properties ----------------------------------------------------------------------

bool message_properties::empty() const noexcept {
  return message_id.is_null() && !user_id && !to && !subject && !reply_to &&
         correlation_id.is_null() && !content_type && !content_encoding && !absolute_expiry_time &&
         !creation_time && !group_id && !group_sequence && !reply_to_group_id;
}

// ---- message: body ---------------------------------------------------------------------------

void message::set_body(std::string_view text) {
  body_.clear();
  body_.emplace_back(text);
  body_kind_ = amqp::body_kind::amqp_value;
}

void message::set_body(std::span<const std::byte> data) {
  body_.clear();
  body_.emplace_back(binary_view(data));
  body_kind_ = amqp::body_kind::data;
}

result<void> message::set_body_value(const value& v) {
  auto o = owned_value::copy_of(v);
  if (!o) {
    return o.error();
  }
  body_.clear();
  body_.push_back(std::move(*o));
  body_kind_ = amqp::body_kind::amqp_value;
  return {};
}

void message::add_data(std::span<const std::byte> data) {
  if (body_kind_ != amqp::body_kind::data) {
    body_.clear();
  }
  body_.emplace_back(binary_view(data));
  body_kind_ = amqp::body_kind::data;
}

result<void> message::add_sequence(const value& items) {
  if (!items.is(type::list)) {
    return errc::invalid_argument;
  }
  auto o = owned_value::copy_of(items);
  if (!o) {
    return o.error();
  }
  if (body_kind_ != amqp::body_kind::amqp_sequence) {
    body_.clear();
  }
  body_.push_back(std::move(*o));
  body_kind_ = amqp::body_kind::amqp_sequence;
  return {};
}

void message::clear_body() noexcept {
  body_.clear();
  body_kind_ = amqp::body_kind::none;
}

std::optional<std::string> message::body_text() const {
  if (body_kind_ == amqp::body_kind::amqp_value && is_text(body_[0].kind())) {
    const value& v = body_[0].get();
    return std::string(v.is(type::string) ? v.as_string() : v.as_symbol());
  }
  if (body_kind_ == amqp::body_kind::data) {
    std::string s;
    for (const owned_value& d : body_) {
      const binary_view b = d.get().as_binary();
      s.append(reinterpret_cast<const char*>(b.data()), b.size());
    }
    if (is_valid_utf8(s)) {
      return s;
    }
  }
  return std::nullopt;
}

std::optional<std::vector<std::byte>> message::body_bytes() const {
  if (body_kind_ == amqp::body_kind::data) {
    std::vector<std::byte> out;
    for (const owned_value& d : body_) {
      const binary_view b = d.get().as_binary();
      out.insert(out.end(), b.begin(), b.end());
    }
    return out;
  }
  if (body_kind_ == amqp::body_kind::amqp_value) {
    const value& v = body_[0].get();
    if (v.is(type::binary)) {
      const binary_view b = v.as_binary();
      return std::vector<std::byte>(b.begin(), b.end());
    }
    if (is_text(v.kind())) {
      const std::string_view s = v.is(type::string) ? v.as_string() : v.as_symbol();
      return bytes_of(s.data(), s.size());
    }
  }
  return std::nullopt;
}

value message::body_value() const noexcept {
  return body_kind_ == amqp::body_kind::amqp_value ? body_[0].get() : value{};
}

// ---- message: encoding -----------------------------------------------------------------------

namespace {

// The views of a message, for the codec: valid while the message and this object live.
struct parts_of {
  message_parts parts;
  std::vector<value> maps[4]; // keys and values of each map section
  std::vector<value> body;

  explicit parts_of(const message& m) {
    parts.header = m.header;
    value* targets[4] = {&parts.delivery_annotations, &parts.message_annotations,
                         &parts.application_properties, &parts.footer};
    const value_map* sources[4] = {&m.delivery_annotations, &m.message_annotations,
                                   &m.application_properties, &m.footer};
    for (int i = 0; i < 4; ++i) {
      if (sources[i]->empty()) {
        continue;
      }
      maps[i].reserve(sources[i]->size() * 2);
      for (const value_map::entry& e : *sources[i]) {
        maps[i].push_back(e.key.get());
        maps[i].push_back(e.value.get());
      }
      *targets[i] = value::map(maps[i]);
    }
    const message_properties& p = m.properties;
    if (!p.empty()) {
      properties q;
      q.message_id = p.message_id.get();
      if (p.user_id) {
        q.user_id = binary_view(*p.user_id);
      }
      q.to = p.to;
      q.subject = p.subject;
      q.reply_to = p.reply_to;
      q.correlation_id = p.correlation_id.get();
      if (p.content_type) {
        q.content_type = symbol_view{*p.content_type};
      }
      if (p.content_encoding) {
        q.content_encoding = symbol_view{*p.content_encoding};
      }
      q.absolute_expiry_time = p.absolute_expiry_time;
      q.creation_time = p.creation_time;
      q.group_id = p.group_id;
      q.group_sequence = p.group_sequence;
      q.reply_to_group_id = p.reply_to_group_id;
      parts.properties = q;
    }
    parts.body = m.body_kind();
    body.reserve(m.body_sections().size());
    for (const owned_value& s : m.body_sections()) {
      body.push_back(s.get());
    }
    parts.body_sections = body;
  }
};

void note(std::string& out, std::string_view where, std::string_view what) {
  if (out.empty()) {
    out.append(where).append(": ").append(what);
  }
}

void check_map(std::string& out, std::string_view section, const value_map& m) {
  for (const value_map::entry& e : m) {
    std::string where(section);
    where.append("[").append(key_text(e.key)).append("]");
    if (auto p = text_problem(e.key.get()); !p.empty()) {
      note(out, where + " key", p);
    }
    if (m.keys() == map_keys::symbol && e.key.kind() != type::symbol &&
        e.key.kind() != type::ulong) {
      note(out, where + " key", "annotation keys must be symbols or ulongs (AMQP 1.0 §3.2.10)");
    }
    if (m.keys() == map_keys::string && !e.key.get().is(type::string)) {
      note(out, where + " key", "application-property keys must be strings (AMQP 1.0 §3.2.5)");
    }
    if (auto p = text_problem(e.value.get()); !p.empty()) {
      note(out, where, p);
    }
    if (m.keys() == map_keys::string) {
      const type t = e.value.kind();
      if (t == type::list || t == type::map || t == type::array || t == type::described) {
        note(out, where, "application-property values must be simple types (AMQP 1.0 §3.2.5)");
      }
    }
  }
}

} // namespace

std::string message::check() const {
  std::string out;
  check_map(out, "delivery-annotations", delivery_annotations);
  check_map(out, "message-annotations", message_annotations);
  const message_properties& p = properties;
  const std::pair<std::string_view, const std::optional<std::string>*> strings[] = {
      {"properties.to", &p.to},
      {"properties.subject", &p.subject},
      {"properties.reply-to", &p.reply_to},
      {"properties.group-id", &p.group_id},
      {"properties.reply-to-group-id", &p.reply_to_group_id}};
  for (const auto& [where, s] : strings) {
    if (*s && !is_valid_utf8(**s)) {
      note(out, where, "a string must be valid UTF-8");
    }
  }
  const std::pair<std::string_view, const std::optional<std::string>*> symbols[] = {
      {"properties.content-type", &p.content_type},
      {"properties.content-encoding", &p.content_encoding}};
  for (const auto& [where, s] : symbols) {
    if (*s && !is_ascii(**s)) {
      note(out, where, "a symbol must be ASCII");
    }
  }
  const std::pair<std::string_view, const owned_value*> ids[] = {
      {"properties.message-id", &p.message_id}, {"properties.correlation-id", &p.correlation_id}};
  for (const auto& [where, id] : ids) {
    const type t = id->kind();
    if (t != type::null && t != type::ulong && t != type::uuid && t != type::binary &&
        t != type::string) {
      note(out, where, "a message id must be a ulong, uuid, binary or string (AMQP 1.0 §3.2.4)");
    } else if (auto pr = text_problem(id->get()); !pr.empty()) {
      note(out, where, pr);
    }
  }
  check_map(out, "application-properties", application_properties);
  for (const owned_value& s : body_) {
    if (auto pr = text_problem(s.get()); !pr.empty()) {
      note(out, "body", pr);
    }
  }
  check_map(out, "footer", footer);
  return out;
}

result<std::size_t> message::encoded_size() const {
  if (!check().empty()) {
    return errc::invalid_argument;
  }
  parts_of v(*this);
  return amqp::encoded_size(v.parts);
}

result<void> message::encode_append(std::vector<std::byte>& out) const {
  if (!check().empty()) {
    return errc::invalid_argument;
  }
  parts_of v(*this);
  return amqp::encode_append(v.parts, out);
}

result<std::vector<std::byte>> message::encode() const {
  std::vector<std::byte> out;
  if (auto r = encode_append(out); !r) {
    return r.error();
  }
  return out;
}

// ---- message: decoding -----------------------------------------------------------------------

namespace {

result<void> copy_map(const value& from, value_map& to) {
  if (from.is_null()) {
    return {};
  }
  if (!from.is(type::map)) {
    return errc::invalid_argument;
  }
  auto it = from.items().begin();
  for (std::uint32_t i = 0; i + 1 < from.count(); i += 2) {
    auto k = owned_value::copy_of(*it);
    ++it;
    auto v = owned_value::copy_of(*it);
    ++it;
    if (!k || !v) {
      return errc::invalid_argument;
    }
    to.set_entry(std::move(*k), std::move(*v));
  }
  return {};
}

std::optional<std::string> copy_text(const std::optional<std::string_view>& s) {
  return s ? std::optional<std::string>(*s) : std::nullopt;
}

} // namespace

result<message> message::copy_of(const message_view& v) {
  message m;
  m.header = v.header;
  if (auto r = copy_map(v.delivery_annotations, m.delivery_annotations); !r) {
    return r.error();
  }
  if (auto r = copy_map(v.message_annotations, m.message_annotations); !r) {
    return r.error();
  }
  if (v.properties) {
    const amqp::properties& p = *v.properties;
    message_properties& q = m.properties;
    auto id = owned_value::copy_of(p.message_id);
    auto corr = owned_value::copy_of(p.correlation_id);
    if (!id || !corr) {
      return errc::invalid_argument;
    }
    q.message_id = std::move(*id);
    q.correlation_id = std::move(*corr);
    if (p.user_id) {
      q.user_id = std::vector<std::byte>(p.user_id->begin(), p.user_id->end());
    }
    q.to = copy_text(p.to);
    q.subject = copy_text(p.subject);
    q.reply_to = copy_text(p.reply_to);
    if (p.content_type) {
      q.content_type = std::string(p.content_type->str);
    }
    if (p.content_encoding) {
      q.content_encoding = std::string(p.content_encoding->str);
    }
    q.absolute_expiry_time = p.absolute_expiry_time;
    q.creation_time = p.creation_time;
    q.group_id = copy_text(p.group_id);
    q.group_sequence = p.group_sequence;
    q.reply_to_group_id = copy_text(p.reply_to_group_id);
  }
  if (auto r = copy_map(v.application_properties, m.application_properties); !r) {
    return r.error();
  }
  m.body_kind_ = v.body;
  for (const value& s : v.body_sections()) {
    auto o = owned_value::copy_of(s.described_value());
    if (!o) {
      return o.error();
    }
    m.body_.push_back(std::move(*o));
  }
  if (auto r = copy_map(v.footer, m.footer); !r) {
    return r.error();
  }
  return m;
}

result<message> message::with_value(const value& body) {
  message m;
  if (auto r = m.set_body_value(body); !r) {
    return r.error();
  }
  return m;
}

result<message> message::decode(std::span<const std::byte> encoded, const decode_limits& limits) {
  auto v = decode_message(encoded, limits);
  if (!v) {
    return v.error();
  }
  return copy_of(*v);
}

} // namespace amqp
