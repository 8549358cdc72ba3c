// SASL frame bodies (AMQP 1.0 §5.3.3): the public codec API over the tables of
// composite_tables.hpp.
#include "amqp/sasl.hpp"

#include "codec/composite_tables.hpp"

namespace amqp {

AMQP_DEFINE_COMPOSITE_API(sasl_mechanisms)
AMQP_DEFINE_COMPOSITE_API(sasl_init)
AMQP_DEFINE_COMPOSITE_API(sasl_challenge)
AMQP_DEFINE_COMPOSITE_API(sasl_response)
AMQP_DEFINE_COMPOSITE_API(sasl_outcome)

result<sasl_frame> decode_sasl_frame(const value& described) noexcept {
  sasl_frame f;
  if (const errc e =
          detail::decode_alternatives(described, detail::alternatives_of<sasl_frame>, &f);
      e != errc{}) {
    return e;
  }
  return f;
}

result<std::size_t> encoded_size(const sasl_frame& x) noexcept {
  return detail::held_size(detail::alternatives_of<sasl_frame>, &x);
}

result<std::size_t> encode(const sasl_frame& x, std::span<std::byte> out) noexcept {
  return detail::encode_held(detail::alternatives_of<sasl_frame>, &x, out);
}

std::string_view name(const sasl_frame& f) noexcept {
  return std::visit(
      [](const auto& x) { return detail::short_name<std::remove_cvref_t<decltype(x)>>(); }, f);
}

} // namespace amqp
