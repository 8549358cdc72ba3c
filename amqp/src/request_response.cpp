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

result<std::uint64_t> request_response::request(connection& c, const message_parts& m) {
  if (!sender_ || failed_ || !sender_attached_ || !receiver_attached_) {
    return failed_ ? failed_ : std::error_code(errc::invalid_state);
  }
  if (pending_.size() >= max_pending_ || c.credit(*sender_) == 0) {
    return errc::would_block;
  }
  const std::uint64_t id = next_id_;
  message_parts req = m;
  properties p = m.properties.value_or(properties{});
  p.message_id = value(id);
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
    if (a->link == sender_) {
      sender_attached_ = true;
    } else if (a->link == receiver_) {
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
