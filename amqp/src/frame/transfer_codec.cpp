// Fast transfer decoding and encoding (see transfer_codec.hpp).
#include "frame/transfer_codec.hpp"

#include <cstring>

namespace amqp::detail {

namespace {

// Reads a uint field: uint0, smalluint, uint, or null (absent).
bool read_uint(const std::byte*& p, const std::byte* end, std::optional<std::uint32_t>& out) {
  if (p == end) {
    return false;
  }
  switch (static_cast<std::uint8_t>(*p)) {
  case 0x40:
    ++p;
    out.reset();
    return true;
  case 0x43:
    ++p;
    out = 0;
    return true;
  case 0x52:
    if (end - p < 2) {
      return false;
    }
    out = static_cast<std::uint32_t>(p[1]);
    p += 2;
    return true;
  case 0x70:
    if (end - p < 5) {
      return false;
    }
    out = (static_cast<std::uint32_t>(p[1]) << 24) | (static_cast<std::uint32_t>(p[2]) << 16) |
          (static_cast<std::uint32_t>(p[3]) << 8) | static_cast<std::uint32_t>(p[4]);
    p += 5;
    return true;
  default:
    return false;
  }
}

// Reads a boolean field: true, false, boolean with a 0x00/0x01 byte, or null.
bool read_bool(const std::byte*& p, const std::byte* end, std::optional<bool>& out) {
  if (p == end) {
    return false;
  }
  switch (static_cast<std::uint8_t>(*p)) {
  case 0x40:
    ++p;
    out.reset();
    return true;
  case 0x41:
    ++p;
    out = true;
    return true;
  case 0x42:
    ++p;
    out = false;
    return true;
  case 0x56:
    if (end - p < 2 || static_cast<std::uint8_t>(p[1]) > 1) {
      return false;
    }
    out = p[1] == std::byte{1};
    p += 2;
    return true;
  default:
    return false;
  }
}

std::size_t uint_size(std::uint32_t v) noexcept {
  return v == 0 ? 1 : v < 256 ? 2 : 5;
}

std::byte* put_uint(std::byte* p, std::uint32_t v) noexcept {
  if (v == 0) {
    *p++ = std::byte{0x43};
  } else if (v < 256) {
    *p++ = std::byte{0x52};
    *p++ = static_cast<std::byte>(v);
  } else {
    *p++ = std::byte{0x70};
    *p++ = static_cast<std::byte>(v >> 24);
    *p++ = static_cast<std::byte>(v >> 16);
    *p++ = static_cast<std::byte>(v >> 8);
    *p++ = static_cast<std::byte>(v);
  }
  return p;
}

// The number of fields written: up to the last one that is not null/default.
std::size_t field_count(const transfer_fields& f) noexcept {
  if (f.aborted) {
    return 10;
  }
  if (f.more) {
    return 6;
  }
  if (f.settled) {
    return 5;
  }
  if (f.message_format) {
    return 4;
  }
  if (f.delivery_tag) {
    return 3;
  }
  if (f.delivery_id) {
    return 2;
  }
  return 1;
}

std::size_t fields_size(const transfer_fields& f, std::size_t n) noexcept {
  std::size_t s = uint_size(f.handle);
  if (n > 1) {
    s += f.delivery_id ? uint_size(*f.delivery_id) : 1;
  }
  if (n > 2) {
    s += f.delivery_tag ? 2 + f.delivery_tag->size() : 1;
  }
  if (n > 3) {
    s += f.message_format ? uint_size(*f.message_format) : 1;
  }
  // settled, more, rcv-settle-mode, state, resume, aborted: one byte each (bool or null).
  s += n > 4 ? n - 4 : 0;
  return s;
}

} // namespace

bool try_decode_transfer(std::span<const std::byte> body, transfer& t,
                         std::span<const std::byte>& payload) noexcept {
  // 00 53 14: the descriptor 0x14 as smallulong; C0 size count: list8.
  if (body.size() < 6 || body[0] != std::byte{0x00} || body[1] != std::byte{0x53} ||
      body[2] != std::byte{0x14} || body[3] != std::byte{0xC0}) {
    return false;
  }
  const std::size_t size = static_cast<std::uint8_t>(body[4]);
  const std::size_t count = static_cast<std::uint8_t>(body[5]);
  if (size < 1 || size > body.size() - 5 || count < 1 || count > 11) {
    return false;
  }
  const std::byte* p = body.data() + 6;
  const std::byte* end = body.data() + 5 + size;
  t = transfer{};
  std::optional<std::uint32_t> u;
  std::optional<bool> b;
  for (std::size_t i = 0; i < count; ++i) {
    switch (i) {
    case 0:
      if (!read_uint(p, end, u) || !u) {
        return false; // a null handle: the generic decoder reports the missing field
      }
      t.handle = *u;
      break;
    case 1:
      if (!read_uint(p, end, t.delivery_id)) {
        return false;
      }
      break;
    case 2:
      if (p == end) {
        return false;
      }
      if (*p == std::byte{0x40}) {
        ++p;
      } else if (*p == std::byte{0xA0} && end - p >= 2 &&
                 static_cast<std::size_t>(end - p) >= 2U + static_cast<std::size_t>(p[1])) {
        const std::size_t n = static_cast<std::uint8_t>(p[1]);
        t.delivery_tag = binary_view(p + 2, n);
        p += 2 + n;
      } else {
        return false;
      }
      break;
    case 3:
      if (!read_uint(p, end, t.message_format)) {
        return false;
      }
      break;
    case 4:
      if (!read_bool(p, end, t.settled)) {
        return false;
      }
      break;
    case 6:
      if (p == end) {
        return false;
      }
      if (*p == std::byte{0x40}) {
        ++p;
      } else if (*p == std::byte{0x50} && end - p >= 2 && static_cast<std::uint8_t>(p[1]) <= 1) {
        t.rcv_settle_mode = static_cast<receiver_settle_mode>(p[1]);
        p += 2;
      } else {
        return false;
      }
      break;
    case 7:
      if (p == end || *p != std::byte{0x40}) {
        return false; // a delivery-state: left to the generic decoder
      }
      ++p;
      break;
    default: // 5 more, 8 resume, 9 aborted, 10 batchable
      if (!read_bool(p, end, b)) {
        return false;
      }
      if (i == 5) {
        t.more = b.value_or(false);
      } else if (i == 8) {
        t.resume = b.value_or(false);
      } else if (i == 9) {
        t.aborted = b.value_or(false);
      } else {
        t.batchable = b.value_or(false);
      }
      break;
    }
  }
  if (p != end) {
    return false;
  }
  payload = body.subspan(5 + size);
  return true;
}

std::size_t transfer_performative_size(const transfer_fields& f) noexcept {
  return 6 + fields_size(f, field_count(f)); // descriptor (3), list8 header (3), fields
}

void write_transfer_frame(std::uint16_t channel, const transfer_fields& f,
                          std::span<const std::byte> payload, std::span<std::byte> out) noexcept {
  const std::size_t n = field_count(f);
  const std::size_t fsize = fields_size(f, n);
  const auto frame = static_cast<std::uint32_t>(out.size());
  std::byte* p = out.data();
  *p++ = static_cast<std::byte>(frame >> 24);
  *p++ = static_cast<std::byte>(frame >> 16);
  *p++ = static_cast<std::byte>(frame >> 8);
  *p++ = static_cast<std::byte>(frame);
  *p++ = std::byte{2};
  *p++ = std::byte{0};
  *p++ = static_cast<std::byte>(channel >> 8);
  *p++ = static_cast<std::byte>(channel);
  *p++ = std::byte{0x00};
  *p++ = std::byte{0x53};
  *p++ = std::byte{0x14};
  *p++ = std::byte{0xC0};
  *p++ = static_cast<std::byte>(fsize + 1);
  *p++ = static_cast<std::byte>(n);
  p = put_uint(p, f.handle);
  if (n > 1) {
    p = f.delivery_id ? put_uint(p, *f.delivery_id) : (*p = std::byte{0x40}, p + 1);
  }
  if (n > 2) {
    if (f.delivery_tag) {
      *p++ = std::byte{0xA0};
      *p++ = static_cast<std::byte>(f.delivery_tag->size());
      if (!f.delivery_tag->empty()) {
        std::memcpy(p, f.delivery_tag->data(), f.delivery_tag->size());
      }
      p += f.delivery_tag->size();
    } else {
      *p++ = std::byte{0x40};
    }
  }
  if (n > 3) {
    p = f.message_format ? put_uint(p, *f.message_format) : (*p = std::byte{0x40}, p + 1);
  }
  if (n > 4) {
    *p++ = f.settled ? std::byte{0x41} : std::byte{0x40};
  }
  if (n > 5) {
    *p++ = f.more ? std::byte{0x41} : std::byte{0x40};
  }
  for (std::size_t i = 6; i < n; ++i) {
    // rcv-settle-mode, state, resume: null; aborted: true (the only reason to get here).
    *p++ = i == 9 ? std::byte{0x41} : std::byte{0x40};
  }
  if (!payload.empty()) {
    std::memcpy(p, payload.data(), payload.size());
  }
}

} // namespace amqp::detail
