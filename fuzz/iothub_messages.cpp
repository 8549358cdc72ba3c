// Fuzz target iothub_messages: the AMQP-encoded inputs amqp::iothub reads from peers.
//
// Input: one byte that picks the reader (its value modulo 7), then AMQP bytes:
//   0 batch payload        split_batch; each inner message re-encoded reads back equal with
//                          decode_any_order; build_batch of the messages, encoded and split
//                          again, gives the same messages;
//   1 CBS request          decode_message + parse_put_token -> build_put_token -> encode ->
//                          decode -> parse gives an equal request; the response built for it
//                          parses back with the request's message-id;
//   2 CBS response         parse_cbs_response -> build_cbs_response -> ... equal;
//   3 $management request  parse_management_request -> build -> ... equal;
//   4 $management response the amqp-value body through parse_eventhub_info and
//                          parse_partition_info -> build_*_response -> ... equal;
//   5 one value            parse_redirect_info -> build_redirect_info -> ... equal;
//                          parse_filter_set / parse_selector_filter -> selector_filter_set ->
//                          ... equal;
//   6 one message          decode_any_order; its encoding (spec order) reads back equal; the
//                          hub's stamp on it still encodes, and stamping the decoded view
//                          of that encoding (the hub's ingest) gives the same message.
// Every error is one of the documented codes, with a non-empty reason.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "amqp/codec.hpp"
#include "amqp/iothub/cbs.hpp"
#include "amqp/iothub/eventhubs.hpp"
#include "amqp/iothub/messages.hpp"
#include "support/check.hpp"

using namespace amqp::iothub;
using amqp::fuzz::require;

namespace {

template <class T> void require_error(const amqp::result<T>& r, const std::string& why) {
  require(!r.has_value());
  require(r.error().category() == iothub_category());
  require(!why.empty());
}

// Encodes and decodes `m` as a peer would receive it.
amqp::message through_wire(const amqp::message& m) {
  auto e = m.encode();
  require(e.has_value());
  auto d = amqp::message::decode(*e);
  require(d.has_value());
  return std::move(*d);
}

void batch_case(std::span<const std::byte> in) {
  std::string why;
  auto msgs = split_batch(in, {}, &why);
  if (!msgs) {
    require_error(msgs, why);
    require(msgs.error() == errc::invalid_value || msgs.error() == errc::limit_exceeded);
    return;
  }
  for (const amqp::message& m : *msgs) {
    auto e = m.encode();
    require(e.has_value());
    auto back = decode_any_order(*e);
    require(back.has_value() && *back == m);
  }
  amqp::message env;
  std::size_t packed = 0;
  while (packed < msgs->size()) {
    auto n = build_batch(std::span(*msgs).subspan(packed), 1U << 30, env);
    require(n.has_value() && *n >= 1);
    auto e = env.encode();
    require(e.has_value());
    auto again = split_batch(*e, batch_limits{500, 1U << 30});
    require(again.has_value() && again->size() == *n);
    for (std::size_t k = 0; k < *n; ++k) {
      require((*again)[k] == (*msgs)[packed + k]);
    }
    packed += *n;
  }
}

void cbs_request_case(std::span<const std::byte> in) {
  auto m = amqp::message::decode(in);
  if (!m) {
    return;
  }
  std::string why;
  auto r = parse_put_token(*m, &why);
  if (!r) {
    require_error(r, why);
    return;
  }
  auto again = parse_put_token(through_wire(build_put_token(*r)));
  require(again.has_value() && *again == *r);
  const auto resp = through_wire(build_cbs_response(*r, cbs_status::unauthorized, "no"));
  auto pr = parse_cbs_response(resp);
  require(pr.has_value() && pr->correlation_id == r->message_id && pr->status_code == 401);
  require(pr->correlation_id.kind() == r->message_id.kind());
}

void cbs_response_case(std::span<const std::byte> in) {
  auto m = amqp::message::decode(in);
  if (!m) {
    return;
  }
  std::string why;
  auto r = parse_cbs_response(*m, &why);
  if (!r) {
    require_error(r, why);
    return;
  }
  auto again = parse_cbs_response(through_wire(build_cbs_response(*r)));
  require(again.has_value() && *again == *r);
}

void management_request_case(std::span<const std::byte> in) {
  auto m = amqp::message::decode(in);
  if (!m) {
    return;
  }
  std::string why;
  auto r = parse_management_request(*m, &why);
  if (!r) {
    require_error(r, why);
    return;
  }
  auto again = parse_management_request(through_wire(build_management_request(*r)));
  require(again.has_value() && *again == *r);
}

void management_response_case(std::span<const std::byte> in) {
  auto m = amqp::message::decode(in);
  if (!m) {
    return;
  }
  std::string why;
  (void)parse_cbs_response(*m, &why);
  const amqp::value body = m->body_value();
  const amqp::owned_value id("id");
  if (auto e = parse_eventhub_info(body, &why); e) {
    auto again = parse_eventhub_info(through_wire(build_eventhub_response(id, *e)).body_value());
    require(again.has_value() && *again == *e);
  } else {
    require_error(e, why);
  }
  if (auto p = parse_partition_info(body, &why); p) {
    auto again = parse_partition_info(through_wire(build_partition_response(id, *p)).body_value());
    require(again.has_value() && *again == *p);
  } else {
    require_error(p, why);
  }
}

void value_case(std::span<const std::byte> in) {
  auto v = amqp::decode_whole(in);
  if (!v) {
    return;
  }
  std::string why;
  if (auto r = parse_redirect_info(*v, &why); r) {
    const auto info = build_redirect_info(*r);
    std::vector<std::byte> bytes;
    require(amqp::encode_append(info.get(), bytes).has_value());
    auto again = parse_redirect_info(*amqp::decode_whole(bytes));
    require(again.has_value() && *again == *r);
  } else {
    require_error(r, why);
  }
  if (auto f = parse_filter_set(*v, &why); f) {
    if (*f) {
      auto set = selector_filter_set(**f);
      require(set.has_value());
      std::vector<std::byte> bytes;
      require(amqp::encode_append(set->get(), bytes).has_value());
      auto again = parse_filter_set(*amqp::decode_whole(bytes));
      require(again.has_value() && again->has_value() && **again == **f);
    }
  } else {
    require_error(f, why);
  }
  if (auto s = parse_selector_filter(*v, &why); !s) {
    require_error(s, why);
  }
}

void any_order_case(std::span<const std::byte> in) {
  std::string why;
  auto m = decode_any_order(in, &why);
  if (!m) {
    require_error(m, why);
    return;
  }
  auto e = m->encode();
  require(e.has_value());
  auto back = decode_any_order(*e);
  require(back.has_value() && *back == *m);
  d2c_stamp s;
  s.identity = {"d1", "m1"};
  const std::string method = auth_method_json("module", "sas");
  s.auth_method = method;
  s.offset.assign(1, '0'); // = "0" trips gcc 12's false -Wrestrict at -O2 (GCC bug 105329)
  // The hub's stamp without a decoded copy (its ingest) gives what the owned one gives.
  auto view = amqp::decode_message(*e);
  require(view.has_value());
  std::vector<std::byte> fast;
  require(stamp_d2c(*view, s, fast).has_value());
  stamp_d2c(*m, s);
  require(m->encode().has_value());
  require(m->message_annotations.get(annotation::connection_device_id)->as_string() == "d1");
  auto fast_message = amqp::message::decode(fast);
  require(fast_message.has_value() && *fast_message == *m);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) {
    return 0;
  }
  const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data) + 1, size - 1);
  switch (data[0] % 7) {
  case 0:
    batch_case(in);
    break;
  case 1:
    cbs_request_case(in);
    break;
  case 2:
    cbs_response_case(in);
    break;
  case 3:
    management_request_case(in);
    break;
  case 4:
    management_response_case(in);
    break;
  case 5:
    value_case(in);
    break;
  default:
    any_order_case(in);
    break;
  }
  return 0;
}
