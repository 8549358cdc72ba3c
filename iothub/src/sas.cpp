// SAS tokens (doc §2.1), URL encoding and base64.
#include "amqp/iothub/sas.hpp"

#include <algorithm>
#include <array>
#include <vector>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "detail.hpp"

namespace amqp::iothub {

using detail::fail;

namespace {

constexpr char upper_hex[] = "0123456789ABCDEF";
constexpr char lower_hex[] = "0123456789abcdef";

// RFC 3986 §2.3.
constexpr bool is_unreserved(char c) noexcept {
  return detail::is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

std::string encode_with(std::string_view s, const char* hex, bool node) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (is_unreserved(c)) {
      out += c;
      continue;
    }
    const auto b = static_cast<unsigned char>(c);
    out += '%';
    // encodeUriComponentStrict: '%' + c.charCodeAt(0).toString(16) for !'()*, lower case.
    const bool node_lower = node && (c == '!' || c == '\'' || c == '(' || c == ')' || c == '*');
    const char* digits = node_lower ? lower_hex : hex;
    out += digits[b >> 4U];
    out += digits[b & 0xFU];
  }
  return out;
}

constexpr std::string_view b64_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int b64_value(char c) noexcept {
  const auto p = b64_alphabet.find(c);
  return p == std::string_view::npos ? -1 : static_cast<int>(p);
}

std::array<std::byte, 32> hmac_sha256(std::span<const std::byte> key, std::string_view text) {
  std::array<std::byte, 32> mac{};
  unsigned int len = 0;
  // HMAC() with an empty key is valid (RFC 2104 pads it); a non-null pointer is still needed.
  static constexpr unsigned char empty = 0;
  const auto* k = key.empty() ? &empty : reinterpret_cast<const unsigned char*>(key.data());
  HMAC(EVP_sha256(), k, static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(text.data()), text.size(),
       reinterpret_cast<unsigned char*>(mac.data()), &len);
  return mac;
}

std::string signed_text(std::string_view resource, std::uint64_t expiry) {
  std::string s(resource);
  s += '\n';
  s += std::to_string(expiry);
  return s;
}

bool has_space_or_control(std::string_view s) noexcept {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto b = static_cast<unsigned char>(c);
    return b <= 0x20 || b == 0x7f;
  });
}

// The lower-cased segments of a URL-decoded `scheme://host:port/path...`: the host without
// its port first, then the path segments (an empty last one, from a trailing '/', dropped).
// The whole text is decoded first, since the Node SDK encodes the '/' too
// ("host%2Fdevices%2Fd1"); ids cannot hold a '/'. nullopt when it does not decode.
std::optional<std::vector<std::string>> resource_segments(std::string_view text,
                                                          std::string_view default_host) {
  auto decoded = url_decode(text);
  if (!decoded) {
    return std::nullopt;
  }
  std::string_view s = *decoded;
  if (const auto p = s.find("://"); p != std::string_view::npos) {
    s.remove_prefix(p + 3);
  }
  std::string joined;
  if (!s.empty() && s.front() == '/') {
    joined.assign(default_host);
  }
  joined += s;
  std::vector<std::string> out;
  std::string_view rest = joined;
  bool first = true;
  while (true) {
    const auto slash = rest.find('/');
    std::string_view seg = rest.substr(0, slash);
    if (first) {
      // host[:port], or [v6]:port
      const auto close = seg.rfind(']');
      const auto colon = seg.rfind(':');
      if (colon != std::string_view::npos && (close == std::string_view::npos || colon > close)) {
        seg = seg.substr(0, colon);
      }
    }
    if (first || !(slash == std::string_view::npos && seg.empty())) {
      out.push_back(detail::to_lower(seg));
    }
    first = false;
    if (slash == std::string_view::npos) {
      break;
    }
    rest.remove_prefix(slash + 1);
  }
  return out;
}

} // namespace

std::string url_encode(std::string_view s, url_style style) {
  return encode_with(s, upper_hex, style == url_style::node);
}

result<std::string> url_decode(std::string_view s, std::string* why) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t k = 0; k < s.size(); ++k) {
    if (s[k] != '%') {
      out += s[k];
      continue;
    }
    if (2 > s.size() - k - 1) {
      return fail(why, errc::invalid_value, "a '%' escape is cut short in " + detail::quote(s));
    }
    const int hi = hex_value(s[k + 1]);
    const int lo = hex_value(s[k + 2]);
    if (hi < 0 || lo < 0) {
      return fail(why, errc::invalid_value,
                  "a '%' is not followed by two hex digits in " + detail::quote(s));
    }
    const auto c = static_cast<char>(hi * 16 + lo);
    if (c == '\0') {
      return fail(why, errc::invalid_value, "%00 (NUL) in " + detail::quote(s));
    }
    out += c;
    k += 2;
  }
  return out;
}

std::string base64_encode(std::span<const std::byte> data) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  std::size_t k = 0;
  for (; data.size() - k >= 3; k += 3) {
    const auto v = (std::to_integer<std::uint32_t>(data[k]) << 16U) |
                   (std::to_integer<std::uint32_t>(data[k + 1]) << 8U) |
                   std::to_integer<std::uint32_t>(data[k + 2]);
    out += b64_alphabet[(v >> 18U) & 63U];
    out += b64_alphabet[(v >> 12U) & 63U];
    out += b64_alphabet[(v >> 6U) & 63U];
    out += b64_alphabet[v & 63U];
  }
  const std::size_t left = data.size() - k;
  if (left == 1) {
    const auto v = std::to_integer<std::uint32_t>(data[k]) << 16U;
    out += b64_alphabet[(v >> 18U) & 63U];
    out += b64_alphabet[(v >> 12U) & 63U];
    out += "==";
  } else if (left == 2) {
    const auto v = (std::to_integer<std::uint32_t>(data[k]) << 16U) |
                   (std::to_integer<std::uint32_t>(data[k + 1]) << 8U);
    out += b64_alphabet[(v >> 18U) & 63U];
    out += b64_alphabet[(v >> 12U) & 63U];
    out += b64_alphabet[(v >> 6U) & 63U];
    out += '=';
  }
  return out;
}

result<std::vector<std::byte>> base64_decode(std::string_view text, std::string* why) {
  if (text.size() % 4 != 0) {
    return fail(why, errc::invalid_value, "base64 length is not a multiple of 4");
  }
  std::size_t pad = 0;
  if (!text.empty() && text.back() == '=') {
    pad = text.size() >= 2 && text[text.size() - 2] == '=' ? 2 : 1;
  }
  std::vector<std::byte> out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t k = 0; k < text.size(); k += 4) {
    std::uint32_t v = 0;
    const bool last = k + 4 == text.size();
    const std::size_t chars = last ? 4 - pad : 4;
    for (std::size_t j = 0; j < 4; ++j) {
      int d = 0;
      if (j < chars) {
        d = b64_value(text[k + j]);
        if (d < 0) {
          return fail(why, errc::invalid_value,
                      "a character that is not base64: " + detail::quote(text.substr(k + j, 1)));
        }
      }
      v = (v << 6U) | static_cast<std::uint32_t>(d);
    }
    out.push_back(static_cast<std::byte>((v >> 16U) & 0xFFU));
    if (chars >= 3) {
      out.push_back(static_cast<std::byte>((v >> 8U) & 0xFFU));
    }
    if (chars == 4) {
      out.push_back(static_cast<std::byte>(v & 0xFFU));
    }
    // The bits of the last character that no output byte holds must be zero.
    if ((chars == 2 && (v & 0xFFFFU) != 0) || (chars == 3 && (v & 0xFFU) != 0)) {
      return fail(why, errc::invalid_value, "base64 with non-zero padding bits");
    }
  }
  return out;
}

std::string sas_signature(std::string_view resource, std::uint64_t expiry,
                          std::span<const std::byte> key) {
  const auto mac = hmac_sha256(key, signed_text(resource, expiry));
  return base64_encode(mac);
}

result<std::string> make_sas_token(std::string_view resource_uri, std::string_view key,
                                   std::uint64_t expiry, std::string_view key_name,
                                   std::string* why, sas_key_form form) {
  if (resource_uri.empty()) {
    return fail(why, errc::invalid_value, "the resource URI is empty");
  }
  // Node throws on an empty key too; HMAC would accept it (RFC 2104).
  if (key.empty()) {
    return fail(why, errc::invalid_value, "SharedAccessKey is empty");
  }
  std::string key_why;
  auto k = base64_decode(key, &key_why);
  if (!k) {
    return fail(why, errc::invalid_value, "SharedAccessKey is not base64: " + key_why);
  }
  if (form == sas_key_form::text) {
    const auto* p = reinterpret_cast<const std::byte*>(key.data());
    k->assign(p, p + key.size());
  }
  const std::string sr = url_encode(resource_uri, url_style::node);
  std::string out(sas_token_prefix);
  out += "sr=" + sr;
  out += "&sig=" + url_encode(sas_signature(sr, expiry, *k), url_style::node);
  if (!key_name.empty()) {
    out += "&skn=" + url_encode(key_name, url_style::node);
  }
  out += "&se=" + std::to_string(expiry);
  return out;
}

result<sas_token> parse_sas_token(std::string_view text, std::string* why) {
  if (text.size() > max_sas_token_length) {
    return fail(why, errc::limit_exceeded,
                "the SAS token is longer than " + std::to_string(max_sas_token_length) +
                    " characters");
  }
  if (!text.starts_with(sas_token_prefix)) {
    return fail(why, errc::invalid_value,
                "a SAS token starts with 'SharedAccessSignature ', not " + detail::quote(text));
  }
  text.remove_prefix(sas_token_prefix.size());
  sas_token t;
  bool have_sr = false;
  bool have_sig = false;
  bool have_se = false;
  bool have_skn = false;
  while (true) {
    const auto amp = text.find('&');
    const std::string_view field = text.substr(0, amp);
    const auto eq = field.find('=');
    if (eq == std::string_view::npos) {
      return fail(why, errc::invalid_value,
                  "SAS token field " + detail::quote(field) + " has no '='");
    }
    const std::string_view name = field.substr(0, eq);
    const std::string_view val = field.substr(eq + 1);
    if (val.empty()) {
      return fail(why, errc::invalid_value, "SAS token field '" + std::string(name) + "' is empty");
    }
    if (has_space_or_control(val)) {
      return fail(why, errc::invalid_value,
                  "SAS token field '" + std::string(name) + "' holds a space or control character");
    }
    bool* seen = nullptr;
    if (name == "sr") {
      seen = &have_sr;
      // Kept as received: the signature is over this text. It must still decode.
      auto d = url_decode(val, why);
      if (!d) {
        return d.error();
      }
      t.resource.assign(val);
    } else if (name == "sig") {
      seen = &have_sig;
      auto d = url_decode(val, why);
      if (!d) {
        return d.error();
      }
      auto raw = base64_decode(*d);
      if (!raw || raw->size() != 32) {
        return fail(why, errc::invalid_value,
                    "SAS token 'sig' is not the base64 of a 32-byte HMAC-SHA256");
      }
      t.signature = std::move(*d);
    } else if (name == "se") {
      seen = &have_se;
      if (!detail::parse_u64(val, t.expiry)) {
        return fail(why, errc::invalid_value,
                    "SAS token 'se' is not a number of seconds: " + detail::quote(val));
      }
    } else if (name == "skn") {
      seen = &have_skn;
      auto d = url_decode(val, why);
      if (!d) {
        return d.error();
      }
      t.key_name = std::move(*d);
    } else {
      return fail(why, errc::invalid_value, "unknown SAS token field " + detail::quote(name));
    }
    if (*seen) {
      return fail(why, errc::conflict, "SAS token field '" + std::string(name) + "' appears twice");
    }
    *seen = true;
    if (amp == std::string_view::npos) {
      break;
    }
    text.remove_prefix(amp + 1);
  }
  if (!have_sr) {
    return fail(why, errc::missing_field, "the SAS token has no 'sr' (resource URI)");
  }
  if (!have_sig) {
    return fail(why, errc::missing_field, "the SAS token has no 'sig' (signature)");
  }
  if (!have_se) {
    return fail(why, errc::missing_field, "the SAS token has no 'se' (expiry)");
  }
  return t;
}

std::string to_string(const sas_token& token) {
  std::string out(sas_token_prefix);
  out += "sr=" + token.resource;
  out += "&sig=" + url_encode(token.signature);
  if (token.key_name) {
    out += "&skn=" + url_encode(*token.key_name);
  }
  out += "&se=" + std::to_string(token.expiry);
  return out;
}

result<std::size_t> verify_sas_signature(const sas_token& token, std::string_view primary_key,
                                         std::string_view secondary_key, std::string* why,
                                         sas_key_form form) {
  auto sig = base64_decode(token.signature);
  if (!sig || sig->size() != 32) {
    return fail(why, errc::signature_mismatch, description::invalid_signature);
  }
  std::vector<std::vector<std::byte>> keys;
  for (std::string_view k : {primary_key, secondary_key}) {
    if (k.empty()) {
      if (!keys.empty()) {
        break; // no secondary key
      }
      // A token signed with an empty key is forged by anyone.
      return fail(why, errc::invalid_value, "a shared access key is empty");
    }
    auto d = base64_decode(k);
    if (!d) {
      return fail(why, errc::invalid_value, "a shared access key is not base64");
    }
    if (form == sas_key_form::text) {
      const auto* p = reinterpret_cast<const std::byte*>(k.data());
      d->assign(p, p + k.size());
    }
    keys.push_back(std::move(*d));
  }
  // The forms of `sr` the signer may have signed (doc §2.1): as received, decoded, and the
  // decoded form encoded again with upper- and lower-case hex.
  std::vector<std::string> forms{token.resource};
  if (auto dec = url_decode(token.resource)) {
    std::string enc = url_encode(*dec);
    std::string enc_lower = encode_with(*dec, lower_hex, false);
    for (std::string* f : {&*dec, &enc, &enc_lower}) {
      if (std::find(forms.begin(), forms.end(), *f) == forms.end()) {
        forms.push_back(std::move(*f));
      }
    }
  }
  for (std::size_t ki = 0; ki < keys.size(); ++ki) {
    for (const std::string& f : forms) {
      const auto mac = hmac_sha256(keys[ki], signed_text(f, token.expiry));
      if (CRYPTO_memcmp(mac.data(), sig->data(), mac.size()) == 0) {
        return ki;
      }
    }
  }
  return fail(why, errc::signature_mismatch, description::invalid_signature);
}

result<void> check_sas_expiry(const sas_token& token, std::uint64_t now, std::uint64_t grace,
                              std::string* why) {
  // expiry + grace without overflow: now > expiry + grace.
  if (now > token.expiry && now - token.expiry > grace) {
    return fail(why, errc::token_expired, description::token_expired);
  }
  return {};
}

bool sas_covers(std::string_view resource, std::string_view address,
                std::string_view default_host) {
  const auto r = resource_segments(resource, {});
  const auto a = resource_segments(address, default_host);
  if (!r || !a || r->size() > a->size() || r->empty() || (*r)[0].empty()) {
    return false;
  }
  return std::equal(r->begin(), r->end(), a->begin());
}

} // namespace amqp::iothub
