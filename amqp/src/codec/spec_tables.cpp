// all_composites(): the composite tables as plain data.
#include "codec/spec_tables.hpp"

#include "codec/composite_tables.hpp"

namespace amqp::detail {

namespace {

template <class M> field_info describe(std::string_view name, unsigned flags, const M& init) {
  field_info f{name, (flags & mandatory) != 0, false, std::same_as<M, symbols>, {}};
  f.nullable = is_optional<M>::value || std::same_as<M, value> || f.multiple;
  if constexpr (std::same_as<M, bool>) {
    f.default_text = init ? "true" : "false";
  } else if constexpr (std::unsigned_integral<M>) {
    f.default_text = std::to_string(init);
  } else if constexpr (std::same_as<M, symbol_view>) {
    f.default_text = init.str;
  }
  return f;
}

template <composite T> composite_info info() {
  [[maybe_unused]] const T defaults{}; // unused if T has no fields
  composite_info c{composite_traits<T>::name, composite_traits<T>::code, {}};
  std::apply(
      [&](const auto&... f) {
        (c.fields.push_back(describe(f.name, f.flags, defaults.*(f.member))), ...);
      },
      composite_traits<T>::fields);
  return c;
}

template <class... Ts> std::vector<composite_info> infos() {
  return {info<Ts>()...};
}

} // namespace

std::vector<composite_info> all_composites() {
  return infos<header, properties, open, begin, attach, flow, transfer, disposition, detach, end,
               close, error, received, accepted, rejected, released, modified, source, target,
               delete_on_close, delete_on_no_links, delete_on_no_messages,
               delete_on_no_links_or_messages, sasl_mechanisms, sasl_init, sasl_challenge,
               sasl_response, sasl_outcome, coordinator, declare, discharge, declared,
               transactional_state>();
}

} // namespace amqp::detail
