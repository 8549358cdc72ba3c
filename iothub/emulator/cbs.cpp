// The $cbs node (§2.4): put-token requests in, answers out. The request is parsed by the
// profile layer (amqp/iothub/cbs.hpp), the token verified by auth.cpp.
#include "amqp/iothub/cbs.hpp"

#include <variant>

#include "amqp/iothub/errors.hpp"
#include "emulator/hub_state.hpp"

namespace amqp::iothub::emulator {

namespace {

amqp::error make_error(std::string_view condition, std::string_view description) {
  return amqp::error{symbol_view{condition}, description, value{}};
}

} // namespace

// The link the answer to a request of `from` goes on (§2.4): the $cbs receiver whose target
// (or, as Event Hubs clients name it, whose link name) is the request's reply-to; with no
// reply-to (uAMQP), the $cbs receiver of the request's session; failing both, any $cbs
// receiver of the connection.
link_state* hub::impl::reply_link(conn_state& c, const link_state& from, link_kind kind,
                                  const std::optional<std::string>& reply_to) {
  link_state* same_session = nullptr;
  link_state* any = nullptr;
  for (auto& [id, l] : c.links) {
    if (l->kind != kind) {
      continue;
    }
    if (reply_to && (l->reply_address == *reply_to || l->name == *reply_to)) {
      return l.get();
    }
    if (l->session == from.session && same_session == nullptr) {
      same_session = l.get();
    }
    if (any == nullptr) {
      any = l.get();
    }
  }
  return same_session != nullptr ? same_session : any;
}

void hub::impl::top_up_requests(conn_state& c) {
  std::size_t queued = 0;
  for (const auto& [id, l] : c.links) {
    queued += l->queued.size();
  }
  // Answers waiting for the client's credit stop new requests: the client reads its answers
  // before it may ask more (bounded memory, however the client behaves).
  if (queued >= opts.cbs_credit) {
    return;
  }
  for (auto& [id, l] : c.links) {
    if ((l->kind == link_kind::cbs_requests || l->kind == link_kind::management_requests) &&
        c.engine.credit(l->id) <= opts.cbs_credit / 2) {
      (void)c.engine.flow(l->id, opts.cbs_credit);
      touch(c);
    }
  }
}

void hub::impl::on_cbs_request(conn_state& c, link_state& l, const delivery_received& d) {
  auto m = amqp::message::decode(d.payload);
  std::string why;
  auto request = m ? parse_put_token(*m, &why) : result<put_token_request>(m.error());
  // A request without an id cannot be answered (the answer's correlation-id is that id):
  // it is rejected. Any other bad request gets a 400 answer.
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
  // §2.4 (TRACE c#2233, EDGE): the request is accepted and settled, then answered.
  if (!d.settled) {
    (void)c.engine.settle(d.delivery, accepted{});
    // The engine coalesces dispositions and lets transfers pass them; taking the output
    // view writes the disposition out now, ahead of the answer.
    (void)c.engine.pending_output();
  }
  std::int32_t status = cbs_status::ok;
  std::string description(cbs_ok_description);
  put_token_request fallback;
  const put_token_request* req = nullptr;
  if (!request) {
    status = cbs_status::bad_request;
    description = "Bad put-token request: " + why;
    fallback.message_id = m->properties.message_id;
    fallback.reply_to = m->properties.reply_to;
    req = &fallback;
  } else {
    req = &*request;
    auto verdict = verify_token(req->token, req->audience);
    if (auto* r = std::get_if<refusal>(&verdict)) {
      status = r->status;
      description = r->description;
    } else if (auto refused = put_identity(c, std::move(std::get<identity>(verdict)))) {
      status = refused->status;
      description = refused->description;
    }
  }
  link_state* out = reply_link(c, l, link_kind::cbs_responses, req->reply_to);
  if (out != nullptr) {
    auto bytes = build_cbs_response(*req, status, description).encode();
    if (bytes) {
      send_or_queue(c, *out, std::move(*bytes));
    }
  }
  top_up_requests(c);
}

} // namespace amqp::iothub::emulator
