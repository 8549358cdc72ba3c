// Tests of SAS tokens, URL encoding and base64 (iothub/src/sas.cpp; doc §2.1).
//
// Expected signatures were computed outside this code base when the tests were written:
// - with Python's hmac (Debian's /usr/bin/python3): base64(HMAC-SHA256(b64decode(key),
//   sr + "\n" + se));
// - with the Node SDK itself: azure-iot-common 1.13.3 from npm, running
//   SharedAccessSignature.create(encodeUriComponentStrict(host + '/devices/' + id), skn,
//   key, 1700000000).toString(), as SharedAccessKeyAuthenticationProvider does.
#include <array>
#include <string>

#include <doctest/doctest.h>

#include "amqp/iothub/sas.hpp"

using namespace amqp::iothub;

namespace {

// base64 of "ABCDEFGHIJKLMNOPQRSTUVWXYZ456789".
constexpr std::string_view key = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk=";
constexpr std::string_view other_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

std::vector<std::byte> bytes(std::string_view s) {
  std::vector<std::byte> out;
  for (char c : s) {
    out.push_back(static_cast<std::byte>(c));
  }
  return out;
}

sas_token parsed(std::string_view text) {
  std::string why;
  auto t = parse_sas_token(text, &why);
  REQUIRE_MESSAGE(t.has_value(), why);
  return *t;
}

} // namespace

TEST_CASE("url_encode: RFC 3986 unreserved characters are kept, everything else is %XX") {
  CHECK(url_encode("AZaz09-._~") == "AZaz09-._~");
  CHECK(url_encode("a/b c+d%e") == "a%2Fb%20c%2Bd%25e");
  CHECK(url_encode("!'()*") == "%21%27%28%29%2A");
  CHECK(url_encode("\xc3\xa9") == "%C3%A9");
  CHECK(url_encode("") == "");
  SUBCASE("node style: encodeUriComponentStrict writes the five sub-delims in lower-case hex") {
    CHECK(url_encode("!'()*", url_style::node) == "%21%27%28%29%2a");
    CHECK(url_encode("a/b:*", url_style::node) == "a%2Fb%3A%2a");
  }
}

TEST_CASE("url_decode: escapes of either case; '+' stays a plus; bad escapes are errors") {
  CHECK(*url_decode("a%2Fb%2fc") == "a/b/c");
  CHECK(*url_decode("a+b") == "a+b");
  CHECK(*url_decode("") == "");
  CHECK(*url_decode(url_encode("any text: \x01\xff/")) == "any text: \x01\xff/");
  std::string why;
  SUBCASE("cut short") {
    CHECK(url_decode("ab%4", &why).error() == errc::invalid_value);
    CHECK(why.find("cut short") != std::string::npos);
    CHECK(url_decode("%").error() == errc::invalid_value);
  }
  SUBCASE("not hex") {
    CHECK(url_decode("%zz", &why).error() == errc::invalid_value);
    CHECK(why.find("two hex digits") != std::string::npos);
  }
  SUBCASE("NUL") {
    CHECK(url_decode("a%00b", &why).error() == errc::invalid_value);
    CHECK(why.find("NUL") != std::string::npos);
  }
}

TEST_CASE("base64: encodes with padding, decodes strictly") {
  CHECK(base64_encode(bytes("")) == "");
  CHECK(base64_encode(bytes("a")) == "YQ==");
  CHECK(base64_encode(bytes("ab")) == "YWI=");
  CHECK(base64_encode(bytes(std::string_view("\x00\xff\xfe", 3))) == "AP/+");
  CHECK(*base64_decode("AP/+") == bytes(std::string_view("\x00\xff\xfe", 3)));
  CHECK(*base64_decode("YQ==") == bytes("a"));
  CHECK(*base64_decode("YWI=") == bytes("ab"));
  CHECK(base64_decode("")->empty());
  CHECK(base64_decode(key)->size() == 32);
  std::string why;
  CHECK(base64_decode("YQ=", &why).error() == errc::invalid_value); // length
  CHECK(why.find("multiple of 4") != std::string::npos);
  CHECK(base64_decode("Y Q=").error() == errc::invalid_value); // space
  CHECK(base64_decode("YQ=a").error() == errc::invalid_value); // '=' inside
  CHECK(base64_decode("=YQa").error() == errc::invalid_value); // '=' first
  CHECK(base64_decode("YR==").error() == errc::invalid_value); // non-zero padding bits
  CHECK(base64_decode("YWJ=").error() == errc::invalid_value); // non-zero padding bits
  CHECK(base64_decode("Y-_a").error() == errc::invalid_value); // URL-safe alphabet
  CHECK(base64_decode("Y===").error() == errc::invalid_value);
}

TEST_CASE("sas_signature: HMAC-SHA256 of sr \\n se with the decoded key (vectors from Python)") {
  const auto k = *base64_decode(key);
  CHECK(sas_signature("myhub.azure-devices.net/devices/device-1", 1700000000, k) ==
        "Yz97vTiUBYRVVPax2VkWcMcryZm1aHgg/ZBrvlKd4fI=");
  CHECK(sas_signature("myhub.azure-devices.net%2Fdevices%2Fdevice-1", 1700000000, k) ==
        "sqF+8Hk3WVvp+hgnyXZP2BlsrIbU3s8sZyxXsmWTdR8=");
  CHECK(sas_signature("sb://iothub-ns-myhub-1234.servicebus.windows.net/myhub", 4102444800, k) ==
        "6HAz4u/03qyFb49mIOp3inMcwra6QLnSzDPeCK65hOM=");
  CHECK(sas_signature("", 0, k) == "H6RfR1wPmNcISlk67yb6kNXvBLMF5uEwF2cDdAGP7Hw=");
  // An empty key is a valid HMAC key (RFC 2104).
  CHECK(sas_signature("x", 1, {}) == "LqxO3gud+JcULeNOuXiuaAVExZeQhJH6okLWP8oTSbg=");
}

TEST_CASE("make_sas_token: byte for byte what the Node SDK (azure-iot-common 1.13.3) makes") {
  SUBCASE("device") {
    CHECK(*make_sas_token("myhub.azure-devices.net/devices/device-1", key, 1700000000) ==
          "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice-1"
          "&sig=sqF%2B8Hk3WVvp%2BhgnyXZP2BlsrIbU3s8sZyxXsmWTdR8%3D&se=1700000000");
  }
  SUBCASE("an id with the characters encodeUriComponentStrict writes in lower case") {
    CHECK(*make_sas_token("localhost:5671/devices/dev*(x)!", key, 1700000000) ==
          "SharedAccessSignature sr=localhost%3A5671%2Fdevices%2Fdev%2a%28x%29%21"
          "&sig=UmTaFCfV0ewmEdna0qMw8O5VE2e3DASf%2FwciIRYlqzE%3D&se=1700000000");
  }
  SUBCASE("module") {
    CHECK(*make_sas_token("myhub.azure-devices.net/devices/d1/modules/m1", key, 1700000000) ==
          "SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fd1%2Fmodules%2Fm1"
          "&sig=XGedglAyeGGJlpFDjM5LEU8Nj8KD5Y4lrZODwTkwQ18%3D&se=1700000000");
  }
  SUBCASE("policy: skn between sig and se") {
    CHECK(*make_sas_token("myhub.azure-devices.net", key, 1700000000, "iothubowner") ==
          "SharedAccessSignature sr=myhub.azure-devices.net"
          "&sig=aPglbI0MqJ0Q4yLWRMsFp4fEjvnFgFgpiX11rSA3UIw%3D&skn=iothubowner&se=1700000000");
  }
  SUBCASE("errors") {
    std::string why;
    CHECK(make_sas_token("h/devices/d", "not base64!", 1, {}, &why).error() == errc::invalid_value);
    CHECK(why.find("SharedAccessKey is not base64") == 0);
    CHECK(make_sas_token("", key, 1, {}, &why).error() == errc::invalid_value);
    CHECK(why == "the resource URI is empty");
  }
}

TEST_CASE("make_sas_token and verify_sas_signature: Event Hubs signs with the key as text") {
  // @azure/core-amqp 4.4.2 createToken: createHmac("sha256", key) with the key string, the
  // audience encodeURIComponent-ed (docs/iothub-sdk-behaviour.md §4.2); the signature below
  // is what Node 20 computes for it.
  const std::string aud = "sb://localhost:5671/myhub/$management";
  auto t = make_sas_token(aud, key, 1700000000, "service", nullptr, sas_key_form::text);
  REQUIRE(t);
  CHECK(*t == "SharedAccessSignature sr=sb%3A%2F%2Flocalhost%3A5671%2Fmyhub%2F%24management"
              "&sig=gsNbiuA6vT%2BA%2BTB1IsaEqhqV2O8avCPEn9D4j6dG5Rk%3D&skn=service&se=1700000000");
  auto parsed = parse_sas_token(*t);
  REQUIRE(parsed);
  CHECK(verify_sas_signature(*parsed, key, {}, nullptr, sas_key_form::text));
  CHECK_FALSE(verify_sas_signature(*parsed, key));
  auto iot = parse_sas_token(*make_sas_token("myhub.azure-devices.net", key, 1700000000, "x"));
  REQUIRE(iot);
  CHECK(verify_sas_signature(*iot, key));
  CHECK_FALSE(verify_sas_signature(*iot, key, {}, nullptr, sas_key_form::text));
}

TEST_CASE("parse_sas_token: fields in any order, each checked") {
  const auto t =
      parsed("SharedAccessSignature sig=Yz97vTiUBYRVVPax2VkWcMcryZm1aHgg%2FZBrvlKd4fI%3D"
             "&se=1700000000&skn=my%20policy&sr=myhub.azure-devices.net/devices/device-1");
  CHECK(t.resource == "myhub.azure-devices.net/devices/device-1");
  CHECK(t.signature == "Yz97vTiUBYRVVPax2VkWcMcryZm1aHgg/ZBrvlKd4fI=");
  CHECK(t.expiry == 1700000000);
  CHECK(t.key_name == "my policy");
  // Formatted in the Node order; parsing that gives the same token.
  CHECK(to_string(t) ==
        "SharedAccessSignature sr=myhub.azure-devices.net/devices/device-1"
        "&sig=Yz97vTiUBYRVVPax2VkWcMcryZm1aHgg%2FZBrvlKd4fI%3D&skn=my%20policy&se=1700000000");
  CHECK(parsed(to_string(t)) == t);
  CHECK_FALSE(
      parsed("SharedAccessSignature sr=h&sig=Yz97vTiUBYRVVPax2VkWcMcryZm1aHgg%2FZBrvlKd4fI%3D&se=1")
          .key_name.has_value());
}

TEST_CASE("parse_sas_token: every error says what is wrong") {
  const std::string sig = "sig=Yz97vTiUBYRVVPax2VkWcMcryZm1aHgg%2FZBrvlKd4fI%3D";
  struct bad {
    std::string text;
    errc code;
    std::string_view says;
  };
  const std::array<bad, 17> cases = {{
      {"sr=h&" + sig + "&se=1", errc::invalid_value, "starts with 'SharedAccessSignature '"},
      {"SharedAccessSignature  sr=h&" + sig + "&se=1", errc::invalid_value,
       "unknown SAS token field ' sr'"},
      {"SharedAccessSignature sr=h&" + sig, errc::missing_field, "no 'se'"},
      {"SharedAccessSignature " + sig + "&se=1", errc::missing_field, "no 'sr'"},
      {"SharedAccessSignature sr=h&se=1", errc::missing_field, "no 'sig'"},
      {"SharedAccessSignature sr=h&" + sig + "&se=1&sr=h", errc::conflict, "'sr' appears twice"},
      {"SharedAccessSignature sr=h&" + sig + "&se=1&skn=a&skn=b", errc::conflict,
       "'skn' appears twice"},
      {"SharedAccessSignature sr=h&" + sig + "&se=1&foo=1", errc::invalid_value,
       "unknown SAS token field 'foo'"},
      {"SharedAccessSignature sr=&" + sig + "&se=1", errc::invalid_value, "'sr' is empty"},
      {"SharedAccessSignature sr=h&" + sig + "&se=12x", errc::invalid_value,
       "'se' is not a number"},
      {"SharedAccessSignature sr=h&" + sig + "&se=-1", errc::invalid_value, "'se' is not a number"},
      {"SharedAccessSignature sr=h&" + sig + "&se=99999999999999999999", errc::invalid_value,
       "'se' is not a number"},
      {"SharedAccessSignature sr=h&sig=abcd&se=1", errc::invalid_value, "32-byte"},
      {"SharedAccessSignature sr=h%zz&" + sig + "&se=1", errc::invalid_value, "two hex digits"},
      {"SharedAccessSignature sr=h&" + sig + "&se=1&", errc::invalid_value, "has no '='"},
      {"SharedAccessSignature sr=h h&" + sig + "&se=1", errc::invalid_value, "space or control"},
      {"SharedAccessSignature sr=h&" + sig + "&se=1&skn=%4", errc::invalid_value, "cut short"},
  }};
  for (const bad& b : cases) {
    CAPTURE(b.text);
    std::string why;
    auto r = parse_sas_token(b.text, &why);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == b.code);
    CHECK_MESSAGE(why.find(b.says) != std::string::npos, why);
  }
}

TEST_CASE("parse_sas_token: the length limit") {
  const std::string head =
      "SharedAccessSignature sig=Yz97vTiUBYRVVPax2VkWcMcryZm1aHgg%2FZBrvlKd4fI%3D"
      "&se=1&sr=";
  std::string text = head + std::string(max_sas_token_length - head.size(), 'h');
  CHECK(parse_sas_token(text).has_value());
  text += 'h';
  std::string why;
  CHECK(parse_sas_token(text, &why).error() == errc::limit_exceeded);
  CHECK(why == "the SAS token is longer than 4096 characters");
}

TEST_CASE("verify_sas_signature: either key, every form of sr the SDKs sign") {
  SUBCASE("Node: sr encoded and signed encoded") {
    const auto t = parsed("SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice-1"
                          "&sig=sqF%2B8Hk3WVvp%2BhgnyXZP2BlsrIbU3s8sZyxXsmWTdR8%3D&se=1700000000");
    CHECK(*verify_sas_signature(t, key) == 0);
    CHECK(*verify_sas_signature(t, other_key, key) == 1);
  }
  SUBCASE("C SDK: sr raw and signed raw") {
    const auto t = parsed("SharedAccessSignature sr=myhub.azure-devices.net/devices/device-1"
                          "&sig=Yz97vTiUBYRVVPax2VkWcMcryZm1aHgg%2FZBrvlKd4fI%3D&se=1700000000");
    CHECK(*verify_sas_signature(t, key) == 0);
  }
  SUBCASE("sr sent raw but signed encoded, and the other way round") {
    auto t = parsed("SharedAccessSignature sr=myhub.azure-devices.net/devices/device-1"
                    "&sig=sqF%2B8Hk3WVvp%2BhgnyXZP2BlsrIbU3s8sZyxXsmWTdR8%3D&se=1700000000");
    CHECK(*verify_sas_signature(t, key) == 0);
    t = parsed("SharedAccessSignature sr=myhub.azure-devices.net%2Fdevices%2Fdevice-1"
               "&sig=Yz97vTiUBYRVVPax2VkWcMcryZm1aHgg%2FZBrvlKd4fI%3D&se=1700000000");
    CHECK(*verify_sas_signature(t, key) == 0);
    // Signed with lower-case hex escapes (DOC-SAS: "lower case URL-encoding").
    const auto k = *base64_decode(key);
    t.signature = sas_signature("myhub.azure-devices.net%2fdevices%2fdevice-1", 1700000000, k);
    CHECK(*verify_sas_signature(t, key) == 0);
  }
  SUBCASE("mismatches") {
    auto t = parsed("SharedAccessSignature sr=myhub.azure-devices.net/devices/device-1"
                    "&sig=Yz97vTiUBYRVVPax2VkWcMcryZm1aHgg%2FZBrvlKd4fI%3D&se=1700000000");
    std::string why;
    CHECK(verify_sas_signature(t, other_key, {}, &why).error() == errc::signature_mismatch);
    CHECK(why == description::invalid_signature);
    t.expiry = 1700000001; // the expiry is signed too
    CHECK(verify_sas_signature(t, key).error() == errc::signature_mismatch);
    t.expiry = 1700000000;
    t.resource = "myhub.azure-devices.net/devices/device-2";
    CHECK(verify_sas_signature(t, key).error() == errc::signature_mismatch);
    CHECK(verify_sas_signature(t, "%%%%").error() == errc::invalid_value);
    CHECK(verify_sas_signature(t, key, "%%%%").error() == errc::invalid_value);
  }
}

TEST_CASE("check_sas_expiry: now against se, with grace, no overflow") {
  sas_token t;
  t.expiry = 1000;
  CHECK(check_sas_expiry(t, 999).has_value());
  CHECK(check_sas_expiry(t, 1000).has_value());
  std::string why;
  CHECK(check_sas_expiry(t, 1001, 0, &why).error() == errc::token_expired);
  CHECK(why == description::token_expired);
  CHECK(check_sas_expiry(t, 1300, 300).has_value());
  CHECK(check_sas_expiry(t, 1301, 300).error() == errc::token_expired);
  t.expiry = UINT64_MAX;
  CHECK(check_sas_expiry(t, UINT64_MAX, UINT64_MAX).has_value());
  t.expiry = 0;
  CHECK(check_sas_expiry(t, UINT64_MAX, UINT64_MAX).has_value());
  CHECK(check_sas_expiry(t, UINT64_MAX, UINT64_MAX - 1).error() == errc::token_expired);
}

TEST_CASE("sas_covers: segment-wise prefix, decoded, lower-cased, scheme and port aside") {
  const std::string_view addr = "amqps://localhost/devices/d1/messages/events";
  CHECK(sas_covers("localhost:5671/devices/d1", addr));
  CHECK(sas_covers("localhost/devices/d1", addr));
  CHECK(sas_covers("amqps://localhost:5671/devices/d1", addr));
  CHECK(sas_covers("localhost%3A5671%2Fdevices%2Fd1", addr)); // Node encodes the '/'
  CHECK(sas_covers("LOCALHOST/Devices/D1", addr));            // case ignored
  CHECK(sas_covers("localhost", addr));
  CHECK(sas_covers("localhost/", addr));
  CHECK(sas_covers("localhost/devices/d1", "amqps://localhost:5671/devices/d1"));
  CHECK(sas_covers("localhost/devices/d%31", addr)); // decoded before comparing
  CHECK(sas_covers("sb://ns/hub", "sb://ns:5671/hub/ConsumerGroups/$Default/Partitions/0"));
  CHECK(sas_covers("localhost/devices/d1", "/devices/d1/twin", "localhost"));
  CHECK(sas_covers("localhost/devices/d1", "/devices/d1/twin", "localhost:5671"));

  CHECK_FALSE(sas_covers("localhost/devices/d", addr)); // not a segment prefix
  CHECK_FALSE(sas_covers("localhost/devices/d1/messages/events/x", addr));
  CHECK_FALSE(sas_covers("otherhost/devices/d1", addr));
  CHECK_FALSE(sas_covers("localhost/devices/d1", "/devices/d1/twin")); // no default host
  CHECK_FALSE(sas_covers("localhost/devices/d1", "/devices/d1/twin", "otherhost"));
  CHECK_FALSE(sas_covers("localhost/devices/d%zz", addr));
  CHECK_FALSE(sas_covers("localhost/devices/d1", "amqps://localhost/devices/d%zz"));
  CHECK_FALSE(sas_covers("", addr));
  CHECK_FALSE(sas_covers("/devices/d1", addr));
}

TEST_CASE("sas: an empty key neither signs nor verifies") {
  // HMAC accepts an empty key (RFC 2104), so a token "signed" with one is easy to forge: a
  // registry entry with an empty primary key must not make such tokens valid.
  const auto t = parsed(
      "SharedAccessSignature sr=x&sig=LqxO3gud%2BJcULeNOuXiuaAVExZeQhJH6okLWP8oTSbg%3D&se=1");
  std::string why;
  auto v = verify_sas_signature(t, "", {}, &why);
  REQUIRE_FALSE(v.has_value());
  CHECK(v.error() == errc::invalid_value);
  CHECK(why == "a shared access key is empty");
  auto m = make_sas_token("x", "", 1, {}, &why);
  REQUIRE_FALSE(m.has_value());
  CHECK(m.error() == errc::invalid_value);
  CHECK(why == "SharedAccessKey is empty");
}
