// Fuzz target iothub_text: the text parsers of amqp::iothub on untrusted strings.
//
// Input: one byte that picks the parser (its value modulo 7), then the text:
//   0 connection string   parse -> to_string -> parse gives an equal struct; validate and
//                         parse_and_validate agree;
//   1 SAS token           parse -> to_string -> parse gives an equal token; verification
//                         against a fixed key, expiry and coverage run without failing;
//   2 address             parse -> to_string -> parse gives an equal address; the token
//                         coverage rule holds for the resource of a parsed device address;
//   3 selector filter     parse -> to_string -> parse gives an equal selector; both
//                         descriptor forms of the filter parse back to it;
//   4 URL and base64      url_decode(url_encode(s)) == s (both styles, s without NUL);
//                         base64_decode -> base64_encode gives back the text (strict
//                         decoding accepts one encoding per byte string), and the other way;
//   5 SASL PLAIN user     parse -> format -> parse gives an equal user; split_host_port;
//                         hub_name;
//   6 UTC time            parse_utc_time -> format_utc_time -> parse gives the same time.
// Every error is one of the documented codes, with a non-empty reason.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "amqp/iothub/address.hpp"
#include "amqp/iothub/connection_string.hpp"
#include "amqp/iothub/eventhubs.hpp"
#include "amqp/iothub/feedback.hpp"
#include "amqp/iothub/sas.hpp"
#include "support/check.hpp"

using namespace amqp::iothub;
using amqp::fuzz::require;

namespace {

constexpr std::string_view key = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk=";

template <class T> void require_error(const amqp::result<T>& r, const std::string& why) {
  require(!r.has_value());
  const std::error_code e = r.error();
  require(e.category() == iothub_category());
  require(e.value() >= static_cast<int>(errc::missing_field) &&
          e.value() <= static_cast<int>(errc::token_expired));
  require(!why.empty());
}

void connection_string_case(std::string_view text) {
  std::string why;
  auto cs = parse_connection_string(text, &why);
  if (!cs) {
    require_error(cs, why);
    require(cs.error() == errc::limit_exceeded || cs.error() == errc::invalid_value ||
            cs.error() == errc::conflict);
    return;
  }
  const std::string out = to_string(*cs);
  auto again = parse_connection_string(out);
  require(again.has_value() && *again == *cs);
  require(to_string(*again) == out);
  std::string vwhy;
  auto kind = validate(*cs, &vwhy);
  if (!kind) {
    require_error(kind, vwhy);
  }
  auto both = parse_and_validate(text);
  require(both.has_value() == kind.has_value());
  if (both) {
    require(*both == *cs);
  }
}

void sas_case(std::string_view text) {
  std::string why;
  auto t = parse_sas_token(text, &why);
  if (!t) {
    require_error(t, why);
    return;
  }
  const std::string out = to_string(*t);
  auto again = parse_sas_token(out);
  require(again.has_value() && *again == *t);
  std::string vwhy;
  auto v = verify_sas_signature(*t, key, {}, &vwhy);
  if (!v) {
    require_error(v, vwhy);
    require(v.error() == errc::signature_mismatch);
  } else {
    require(*v == 0);
  }
  (void)check_sas_expiry(*t, 1700000000, 300);
  (void)sas_covers(t->resource, "amqps://localhost:5671/devices/d1/messages/events");
  // A token made for the resource, with the same key, verifies.
  if (auto decoded = url_decode(t->resource); decoded && !decoded->empty()) {
    auto made = make_sas_token(*decoded, key, t->expiry, t->key_name.value_or(""));
    require(made.has_value());
    auto mt = parse_sas_token(*made);
    if (mt) {
      require(verify_sas_signature(*mt, key).has_value());
    } else {
      require(mt.error() == errc::limit_exceeded); // encoding can make it longer
    }
  }
}

void address_case(std::string_view text) {
  std::string why;
  auto a = parse_address(text, &why);
  if (!a) {
    require_error(a, why);
    return;
  }
  const std::string out = to_string(*a);
  auto again = parse_address(out);
  if (!again) {
    // Re-encoding may only make the text longer than the limit.
    require(again.error() == errc::limit_exceeded);
    return;
  }
  require(*again == *a);
  require(!kind_name(a->kind).empty());
  switch (a->kind) {
  case address_kind::telemetry:
  case address_kind::device_c2d:
  case address_kind::twin:
  case address_kind::methods: {
    // The identity's resource covers its own addresses: with ids URL-encoded once (.NET), or
    // the whole raw resource encoded once (Node).
    std::string host = a->host.empty() ? "localhost" : a->host;
    if (host.find(':') != std::string::npos) {
      host = "[" + host + "]";
    }
    require(sas_covers(device_resource_uri(host, a->identity), out, host));
    std::string raw = host + "/devices/" + a->identity.device_id;
    if (a->identity.is_module()) {
      raw += "/modules/" + a->identity.module_id;
    }
    require(sas_covers(url_encode(raw, url_style::node), out, host));
    break;
  }
  default:
    break;
  }
}

void selector_case(std::string_view text) {
  std::string why;
  auto s = parse_selector(text, &why);
  if (!s) {
    require_error(s, why);
    return;
  }
  const std::string out = to_string(*s);
  auto again = parse_selector(out);
  if (!again) {
    require(again.error() == errc::limit_exceeded); // doubled quotes can lengthen it
    return;
  }
  require(*again == *s);
  for (descriptor_form f : {descriptor_form::numeric, descriptor_form::symbolic}) {
    auto v = selector_filter(*s, f);
    require(v.has_value());
    auto back = parse_selector_filter(v->get());
    require(back.has_value() && *back == *s);
    auto set = selector_filter_set(*s, f);
    require(set.has_value());
    auto from_set = parse_filter_set(set->get());
    require(from_set.has_value() && from_set->has_value() && **from_set == *s);
  }
}

void encoding_case(std::string_view text) {
  if (text.find('\0') == std::string_view::npos) {
    for (url_style st : {url_style::rfc3986, url_style::node}) {
      auto back = url_decode(url_encode(text, st));
      require(back.has_value() && *back == text);
    }
  }
  std::string why;
  auto d = url_decode(text, &why);
  if (!d) {
    require_error(d, why);
  }
  auto b = base64_decode(text, &why);
  if (!b) {
    require_error(b, why);
  } else {
    require(base64_encode(*b) == text);
  }
  const auto* p = reinterpret_cast<const std::byte*>(text.data());
  const std::string enc = base64_encode({p, text.size()});
  auto raw = base64_decode(enc);
  require(raw.has_value() && raw->size() == text.size());
  for (std::size_t k = 0; k < text.size(); ++k) {
    require((*raw)[k] == p[k]);
  }
}

void sasl_case(std::string_view text) {
  std::string why;
  auto u = parse_sasl_user(text, &why);
  if (!u) {
    require_error(u, why);
  } else {
    const std::string out = u->policy.empty() ? sasl_device_user(u->identity, u->hub)
                                              : sasl_policy_user(u->policy, u->hub);
    auto again = parse_sasl_user(out);
    require(again.has_value() && *again == *u);
  }
  auto hp = split_host_port(text, &why);
  if (!hp) {
    require_error(hp, why);
  } else {
    require(!hp->host.empty());
    require(!hp->port || *hp->port != 0);
  }
  require(hub_name(text).size() <= text.size());
}

void time_case(std::string_view text) {
  std::string why;
  auto t = parse_utc_time(text, &why);
  if (!t) {
    require_error(t, why);
    return;
  }
  const std::string out = format_utc_time(*t);
  auto again = parse_utc_time(out);
  require(again.has_value() && *again == *t);
  require(format_utc_time(*again) == out);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) {
    return 0;
  }
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 7) {
  case 0:
    connection_string_case(text);
    break;
  case 1:
    sas_case(text);
    break;
  case 2:
    address_case(text);
    break;
  case 3:
    selector_case(text);
    break;
  case 4:
    encoding_case(text);
    break;
  case 5:
    sasl_case(text);
    break;
  default:
    time_case(text);
    break;
  }
  return 0;
}
