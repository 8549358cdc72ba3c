// Performatives (AMQP 1.0 §2.7): the public codec API over the tables of composite_tables.hpp.
#include "amqp/performatives.hpp"

#include "codec/composite_tables.hpp"

namespace amqp {

AMQP_DEFINE_COMPOSITE_API(open)
AMQP_DEFINE_COMPOSITE_API(begin)
AMQP_DEFINE_COMPOSITE_API(attach)
AMQP_DEFINE_COMPOSITE_API(flow)
AMQP_DEFINE_COMPOSITE_API(transfer)
AMQP_DEFINE_COMPOSITE_API(disposition)
AMQP_DEFINE_COMPOSITE_API(detach)
AMQP_DEFINE_COMPOSITE_API(end)
AMQP_DEFINE_COMPOSITE_API(close)

result<performative> decode_performative(const value& described) noexcept {
  performative p;
  if (const errc e =
          detail::decode_alternatives(described, detail::alternatives_of<performative>, &p);
      e != errc{}) {
    return e;
  }
  return p;
}

result<std::size_t> encoded_size(const performative& x) noexcept {
  return detail::held_size(detail::alternatives_of<performative>, &x);
}

result<std::size_t> encode(const performative& x, std::span<std::byte> out) noexcept {
  return detail::encode_held(detail::alternatives_of<performative>, &x, out);
}

std::string_view name(const performative& p) noexcept {
  return std::visit(
      [](const auto& x) { return detail::short_name<std::remove_cvref_t<decltype(x)>>(); }, p);
}

} // namespace amqp
