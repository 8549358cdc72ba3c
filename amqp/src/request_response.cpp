// Request/response over a link pair (see request_response.hpp).
#include "amqp/request_response.hpp"

#include <algorithm>

namespace amqp {

request_response::request_response(std::pmr::memory_resource* m)
    : mem_(m), reply_to_(m), pending_(m), buffer_(m) {}

result<void> request_response::open(connection& c, session_id s,
                                    const request_response_options& o) {
  if (sender_ || o.address.empty()) {
    return errc::invalid_state;
  }
  max_pending_ = std::max<std::uint32_t>(o.max_pending, 1);
  credit_ = std::max<std::uint32_t>(o.credit, 1);
  if (o.reply_to.empty()) {
    reply_to_.assign(o.address.data(), o.address.size());
    reply_to_ += "-reply";
  } else {
    reply_to_.assign(o.reply_to.data(), o.reply_to.size());
  }
  const std::string_view base = o.link_name.empty() ? o.address : o.link_name;
  std::pmr::string sname(base, mem_);
  sname += "-sender";
  std::pmr::string rname(base, mem_);
  rname += "-receiver";

  link_options so;
  so.name = sname;
  so.role = role::sender;
  so.source = source{};
  so.source->address = reply_to_;
  so.target = target{};
  so.target->address = o.address;
  so.snd_settle_mode = sender_settle_mode::settled;
  auto sl = c.attach(s, so);
  if (!sl) {
    return sl.error();
  }
  link_options ro;
  ro.name = rname;
  ro.role = role::receiver;
  ro.source = source{};
  ro.source->address = o.address;
  ro.target = target{};
  ro.target->address = reply_to_;
  auto rl = c.attach(s, ro);
  if (!rl) {
    (void)c.detach(*sl);
    return rl.error();
  }
  sender_ = *sl;
  receiver_ = *rl;
  return {};
}

bool request_response::ready(const connection& c) const noexcept {
  return sender_attached_ && receiver_attached_ && !failed_ && c.credit(*sender_) > 0;
}

result<void> request_response::can_request(const connection& c) const noexcept {
  if (!sender_ || failed_ || !sender_attached_ || !receiver_attached_) {
    return failed_ ? failed_ : std::error_code(errc::invalid_state);
  }
  if (pending_.size() >= max_pending_ || c.credit(*sender_) == 0) {
    return errc::would_block;
  }
  return {};
}

result<std::uint64_t> request_response::request(connection& c, const message_parts& m) {
  if (auto r = can_request(c); !r) {
    return r.error();
  }
  message_parts req = m;
  properties p = m.properties.value_or(properties{});
  p.message_id = value(next_id_);
  p.reply_to = std::string_view(reply_to_);
  req.properties = p;
  auto n = encoded_size(req);
  if (!n) {
    return errc::invalid_argument;
  }
  buffer_.resize(*n);
  if (!encode(req, buffer_)) {
    return errc::invalid_argument;
  }
  return send_buffer(c);
}

result<std::uint64_t> request_response::request(connection& c, const message_view& m) {
  if (auto r = can_request(c); !r) {
    return r.error();
  }
  // The sections in their order (AMQP 1.0 §3.2), each copied from `m` except properties.
  message_parts props;
  props.properties = m.properties.value_or(properties{});
  props.properties->message_id = value(next_id_);
  props.properties->reply_to = std::string_view(reply_to_);
  auto n = encoded_size(props);
  if (!n) {
    return errc::invalid_argument;
  }
  const section body = m.body == body_kind::data            ? section::data
                       : m.body == body_kind::amqp_sequence ? section::amqp_sequence
                                                            : section::amqp_value;
  const std::span<const std::byte> before[] = {m.raw(section::header),
                                               m.raw(section::delivery_annotations),
                                               m.raw(section::message_annotations)};
  const std::span<const std::byte> after[] = {
      m.raw(section::application_properties),
      m.body == body_kind::none ? std::span<const std::byte>{} : m.raw(body),
      m.raw(section::footer)};
  buffer_.clear();
  for (auto part : before) {
    buffer_.insert(buffer_.end(), part.begin(), part.end());
  }
  const std::size_t at = buffer_.size();
  buffer_.resize(at + *n);
  if (!encode(props, std::span<std::byte>(buffer_).subspan(at))) {
    return errc::invalid_argument;
  }
  for (auto part : after) {
    buffer_.insert(buffer_.end(), part.begin(), part.end());
  }
  return send_buffer(c);
}

result<std::uint64_t> request_response::send_buffer(connection& c) {
  const std::uint64_t id = next_id_;
  transfer_options t;
  t.payload = buffer_;
  auto d = c.send(*sender_, t);
  if (!d) {
    return d.error();
  }
  ++next_id_;
  pending_.push_back(id);
  return id;
}

std::optional<response> request_response::on_event(connection& c, const event& e) {
  if (const auto* a = std::get_if<link_attached>(&e)) {
    // AMQP 1.0 §2.6.3: a peer refusing a link answers with no terminus (the target for our
    // sender, the source for our receiver) and detaches it at once.
    if (a->link == sender_) {
      sender_attached_ = a->remote.target.has_value();
    } else if (a->link == receiver_ && a->remote.source) {
      receiver_attached_ = true;
      credit_left_ = credit_;
      (void)c.flow(*receiver_, credit_);
    }
    return std::nullopt;
  }
  if (const auto* d = std::get_if<link_detached>(&e)) {
    if ((d->link == sender_ || d->link == receiver_) && !closing_) {
      failed_ = d->code ? d->code : std::error_code(errc::invalid_state);
      pending_.clear();
    }
    return std::nullopt;
  }
  const auto* r = std::get_if<delivery_received>(&e);
  if (r == nullptr || r->delivery.link != receiver_) {
    return std::nullopt;
  }
  if (!r->settled) {
    (void)c.settle(r->delivery, accepted{});
  }
  if (credit_left_ > 0) {
    --credit_left_;
  }
  if (credit_left_ <= credit_ / 2) {
    credit_left_ = credit_;
    (void)c.flow(*receiver_, credit_);
  }
  if (r->aborted) {
    return std::nullopt;
  }
  auto m = decode_message(r->payload);
  if (!m || !m->properties) {
    return std::nullopt;
  }
  const auto id = m->properties->correlation_id.get_unsigned();
  if (!id) {
    return std::nullopt;
  }
  auto it = std::find(pending_.begin(), pending_.end(), *id);
  if (it == pending_.end()) {
    return std::nullopt;
  }
  pending_.erase(it);
  return response{*id, *m};
}

void request_response::cancel(std::uint64_t id) noexcept {
  auto it = std::find(pending_.begin(), pending_.end(), id);
  if (it != pending_.end()) {
    pending_.erase(it);
  }
}

result<void> request_response::close(connection& c) {
  if (!sender_) {
    return errc::invalid_state;
  }
  closing_ = true;
  auto a = c.detach(*sender_);
  auto b = c.detach(*receiver_);
  pending_.clear();
  if (!a) {
    return a.error();
  }
  if (!b) {
    return b.error();
  }
  return {};
}

} // namespace amqp
