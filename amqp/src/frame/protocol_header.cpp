// Protocol headers (AMQP 1.0 §2.2): writing, classifying and incremental reading.
#include "frame/protocol_header.hpp"

#include <algorithm>

namespace amqp::detail {

namespace {

constexpr std::array<std::byte, 4> magic = {std::byte{'A'}, std::byte{'M'}, std::byte{'Q'},
                                            std::byte{'P'}};

} // namespace

result<std::size_t> write_protocol_header(protocol_id id, std::span<std::byte> out) noexcept {
  if (protocol_header_size > out.size()) {
    return errc::buffer_too_small;
  }
  const auto bytes = protocol_header_bytes(id);
  std::copy(bytes.begin(), bytes.end(), out.begin());
  return protocol_header_size;
}

protocol_header_info
classify_protocol_header(std::span<const std::byte, protocol_header_size> in) noexcept {
  protocol_header_info h;
  if (!std::equal(magic.begin(), magic.end(), in.begin())) {
    return h; // not_amqp
  }
  h.id = std::to_integer<std::uint8_t>(in[4]);
  h.major = std::to_integer<std::uint8_t>(in[5]);
  h.minor = std::to_integer<std::uint8_t>(in[6]);
  h.revision = std::to_integer<std::uint8_t>(in[7]);
  h.kind = protocol_header_kind::unsupported;
  // AMQP 1.0 §2.2: the version this specification defines is 1.0.0 (major 1, minor 0,
  // revision 0); any other version, and any other protocol id, is one we do not speak.
  if (h.major != 1 || h.minor != 0 || h.revision != 0) {
    return h;
  }
  switch (h.id) {
  case static_cast<std::uint8_t>(protocol_id::amqp):
    h.kind = protocol_header_kind::amqp;
    break;
  case static_cast<std::uint8_t>(protocol_id::tls):
    h.kind = protocol_header_kind::tls;
    break;
  case static_cast<std::uint8_t>(protocol_id::sasl):
    h.kind = protocol_header_kind::sasl;
    break;
  default:
    break;
  }
  return h;
}

std::optional<protocol_id> to_protocol_id(protocol_header_kind k) noexcept {
  switch (k) {
  case protocol_header_kind::amqp:
    return protocol_id::amqp;
  case protocol_header_kind::tls:
    return protocol_id::tls;
  case protocol_header_kind::sasl:
    return protocol_id::sasl;
  case protocol_header_kind::unsupported:
  case protocol_header_kind::not_amqp:
    break;
  }
  return std::nullopt;
}

std::size_t protocol_header_reader::feed(std::span<const std::byte> in) noexcept {
  if (info_) {
    return 0;
  }
  std::size_t used = 0;
  while (have_ < protocol_header_size && used < in.size()) {
    const std::byte b = in[used++];
    buf_[have_] = b;
    // The magic is checked byte by byte, so that a peer speaking another protocol is
    // answered (AMQP 1.0 §2.2) even if it sends fewer than 8 bytes and then waits.
    if (have_ < magic.size() && b != magic[have_]) {
      info_ = protocol_header_info{};
      return used;
    }
    ++have_;
  }
  if (have_ == protocol_header_size) {
    info_ = classify_protocol_header(std::span<const std::byte, protocol_header_size>(buf_));
  }
  return used;
}

result<void> expect_protocol_header(const protocol_header_info& h, protocol_id expected) noexcept {
  const auto id = to_protocol_id(h.kind);
  if (!id || *id != expected) {
    return errc::protocol_mismatch;
  }
  return {};
}

} // namespace amqp::detail
