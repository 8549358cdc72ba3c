// IEEE 754-2008 decimal (BID encoding) <-> string. One generic implementation for the three
// widths over an unsigned 128-bit integer.
#include "amqp/decimal.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>

namespace amqp {
namespace {

__extension__ using u128 = unsigned __int128;

// The parameters of a decimal interchange format (IEEE 754-2008 table 3.6).
struct format {
  unsigned bytes;      // 4, 8, 16
  unsigned exp_bits;   // width of the biased exponent: 8, 10, 14
  unsigned coeff_bits; // bits of the coefficient in the "small" form: 23, 53, 113
  unsigned digits;     // precision p: 7, 16, 34
  int bias;            // 101, 398, 6176
};
constexpr format d32{4, 8, 23, 7, 101};
constexpr format d64{8, 10, 53, 16, 398};
constexpr format d128{16, 14, 113, 34, 6176};

u128 pow10(unsigned n) noexcept {
  u128 r = 1;
  for (unsigned k = 0; k < n; ++k) {
    r *= 10;
  }
  return r;
}

u128 load(const std::byte* p, unsigned n) noexcept {
  u128 v = 0;
  for (unsigned k = 0; k < n; ++k) {
    v = (v << 8) | std::to_integer<unsigned>(p[k]);
  }
  return v;
}
void store(u128 v, std::byte* p, unsigned n) noexcept {
  for (unsigned k = n; k-- > 0;) {
    p[k] = static_cast<std::byte>(static_cast<unsigned>(v & 0xFF));
    v >>= 8;
  }
}

std::string digits_of(u128 c) {
  if (c == 0) {
    return "0";
  }
  std::string s;
  while (c != 0) {
    s += static_cast<char>('0' + static_cast<int>(c % 10));
    c /= 10;
  }
  std::reverse(s.begin(), s.end());
  return s;
}

std::string format_decimal(const std::byte* p, const format& f) {
  const unsigned w = f.bytes * 8;
  const u128 v = load(p, f.bytes);
  const bool neg = ((v >> (w - 1)) & 1) != 0;
  std::string out = neg ? "-" : "";
  const auto top5 = static_cast<unsigned>((v >> (w - 6)) & 0x1F);
  const u128 mask_small = (u128{1} << f.coeff_bits) - 1;
  if (top5 == 0x1F) { // NaN: 11111, the next bit tells signalling
    const bool signalling = ((v >> (w - 7)) & 1) != 0;
    const u128 payload = v & ((u128{1} << (f.coeff_bits - 3)) - 1); // trailing significand
    out += signalling ? "sNaN" : "NaN";
    if (payload != 0 && payload < pow10(f.digits - 1)) {
      out += digits_of(payload);
    }
    return out;
  }
  if (top5 == 0x1E) {
    return out + "Infinity";
  }
  u128 coeff;
  unsigned biased;
  const unsigned mask_exp = (1U << f.exp_bits) - 1;
  if (((v >> (w - 3)) & 3) == 3) { // large-coefficient form: 0b100 prefix implied
    biased = static_cast<unsigned>((v >> (f.coeff_bits - 2)) & mask_exp);
    coeff = (u128{4} << (f.coeff_bits - 2)) | (v & ((u128{1} << (f.coeff_bits - 2)) - 1));
  } else {
    biased = static_cast<unsigned>((v >> f.coeff_bits) & mask_exp);
    coeff = v & mask_small;
  }
  if (coeff >= pow10(f.digits)) {
    coeff = 0; // IEEE 754-2008 §3.5.2: non-canonical significands are zero
  }
  const int exp = static_cast<int>(biased) - f.bias;
  const std::string c = digits_of(coeff);
  const int adjusted = exp + static_cast<int>(c.size()) - 1;
  if (exp <= 0 && adjusted >= -6) {
    if (exp == 0) {
      return out + c;
    }
    const auto frac = static_cast<std::size_t>(-exp);
    if (c.size() > frac) {
      return out + c.substr(0, c.size() - frac) + "." + c.substr(c.size() - frac);
    }
    return out + "0." + std::string(frac - c.size(), '0') + c;
  }
  out += c.substr(0, 1);
  if (c.size() > 1) {
    out += "." + c.substr(1);
  }
  out += adjusted >= 0 ? "E+" : "E-";
  out += std::to_string(adjusted >= 0 ? adjusted : -adjusted);
  return out;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x | 0x20) == (y | 0x20);
         });
}

result<void> parse_into(std::string_view s, const format& f, std::byte* out) noexcept {
  const unsigned w = f.bytes * 8;
  bool neg = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  const u128 sign = neg ? u128{1} << (w - 1) : 0;
  if (iequals(s, "inf") || iequals(s, "infinity")) {
    store(sign | (u128{0x1E} << (w - 6)), out, f.bytes);
    return {};
  }
  const bool snan = s.size() >= 4 && iequals(s.substr(0, 4), "snan");
  if (snan || (s.size() >= 3 && iequals(s.substr(0, 3), "nan"))) {
    std::string_view digits = s.substr(snan ? 4 : 3);
    u128 payload = 0;
    if (digits.size() >= f.digits) {
      return errc::invalid_argument;
    }
    for (char ch : digits) {
      if (ch < '0' || ch > '9') {
        return errc::invalid_argument;
      }
      payload = payload * 10 + static_cast<unsigned>(ch - '0');
    }
    u128 bits = sign | (u128{0x1F} << (w - 6)) | payload;
    if (snan) {
      bits |= u128{1} << (w - 7);
    }
    store(bits, out, f.bytes);
    return {};
  }
  // [digits][.digits][E[+-]digits], at least one digit in the coefficient.
  u128 coeff = 0;
  unsigned ndigits = 0; // significant digits kept (leading zeros skipped)
  int exp = 0;
  bool any = false;
  bool point = false;
  std::size_t k = 0;
  for (; k < s.size(); ++k) {
    char ch = s[k];
    if (ch == '.' && !point) {
      point = true;
      continue;
    }
    if (ch < '0' || ch > '9') {
      break;
    }
    any = true;
    if (coeff != 0 || ch != '0') {
      if (++ndigits > f.digits) {
        return errc::invalid_argument; // would need rounding
      }
      coeff = coeff * 10 + static_cast<unsigned>(ch - '0');
    }
    if (point) {
      --exp;
    }
  }
  if (!any) {
    return errc::invalid_argument;
  }
  if (k < s.size()) {
    if (s[k] != 'e' && s[k] != 'E') {
      return errc::invalid_argument;
    }
    ++k;
    bool eneg = false;
    if (k < s.size() && (s[k] == '+' || s[k] == '-')) {
      eneg = s[k] == '-';
      ++k;
    }
    if (k == s.size()) {
      return errc::invalid_argument;
    }
    int e = 0;
    for (; k < s.size(); ++k) {
      if (s[k] < '0' || s[k] > '9' || e > 100000) {
        return errc::invalid_argument;
      }
      e = e * 10 + (s[k] - '0');
    }
    exp += eneg ? -e : e;
  }
  const int emax_biased = (3 << (f.exp_bits - 2)) - 1; // biased exponents 0 .. 3*2^(E-2)-1
  int biased = exp + f.bias;
  // Clamp an exponent above the range by multiplying the coefficient, when it stays exact.
  while (biased > emax_biased && coeff != 0 && coeff * 10 < pow10(f.digits)) {
    coeff *= 10;
    --biased;
  }
  if (coeff == 0) {
    biased = std::clamp(biased, 0, emax_biased);
  }
  if (biased < 0 || biased > emax_biased) {
    return errc::invalid_argument;
  }
  u128 bits = sign;
  // No shift below loses a bit: biased < 3 * 2^(exp_bits - 2) and exp_bits + coeff_bits <=
  // 127 (and shifts of unsigned values are defined anyway). clang-tidy 14's analyzer reports
  // them as undefined all the same: a false positive.
  // NOLINTBEGIN(clang-analyzer-core.UndefinedBinaryOperatorResult)
  if (coeff < (u128{1} << f.coeff_bits)) {
    bits |= (static_cast<u128>(biased) << f.coeff_bits) | coeff;
  } else {
    bits |= (u128{3} << (w - 3)) | (static_cast<u128>(biased) << (f.coeff_bits - 2)) |
            (coeff & ((u128{1} << (f.coeff_bits - 2)) - 1));
  }
  // NOLINTEND(clang-analyzer-core.UndefinedBinaryOperatorResult)
  store(bits, out, f.bytes);
  return {};
}

} // namespace

std::string to_string(const decimal32& d) {
  return format_decimal(d.bytes.data(), d32);
}
std::string to_string(const decimal64& d) {
  return format_decimal(d.bytes.data(), d64);
}
std::string to_string(const decimal128& d) {
  return format_decimal(d.bytes.data(), d128);
}

result<decimal32> parse_decimal32(std::string_view s) noexcept {
  decimal32 d;
  if (auto r = parse_into(s, d32, d.bytes.data()); !r) {
    return r.error();
  }
  return d;
}
result<decimal64> parse_decimal64(std::string_view s) noexcept {
  decimal64 d;
  if (auto r = parse_into(s, d64, d.bytes.data()); !r) {
    return r.error();
  }
  return d;
}
result<decimal128> parse_decimal128(std::string_view s) noexcept {
  decimal128 d;
  if (auto r = parse_into(s, d128, d.bytes.data()); !r) {
    return r.error();
  }
  return d;
}

} // namespace amqp
