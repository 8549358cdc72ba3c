// AMQP URLs (amqp/transport/url.hpp): schemes and default ports, user-info, hosts (IPv6 in
// brackets), ports, paths and queries, every error, and to_string with the password redacted.
#include <string>
#include <string_view>

#include <doctest/doctest.h>

#include "amqp/transport/url.hpp"

using amqp::errc;
using amqp::transport::default_port;
using amqp::transport::parse_url;
using amqp::transport::url;

namespace {

url parse_ok(std::string_view text) {
  std::string why;
  auto u = parse_url(text, &why);
  INFO(text << ": " << why);
  REQUIRE(u);
  return *u;
}

// The reason given for a URL that must be refused.
std::string refused(std::string_view text) {
  std::string why;
  auto u = parse_url(text, &why);
  INFO(text);
  REQUIRE_FALSE(u);
  CHECK(u.error() == errc::invalid_argument);
  CHECK_FALSE(why.empty());
  return why;
}

} // namespace

TEST_SUITE_BEGIN("url");

TEST_CASE("url: schemes, default ports and paths, tls() and websocket()") {
  struct row {
    std::string_view text;
    std::string_view scheme;
    std::uint16_t port;
    std::string_view path;
    bool tls;
    bool ws;
  };
  for (const row r :
       {row{"amqp://h", "amqp", 5672, "", false, false},
        row{"amqps://h", "amqps", 5671, "", true, false}, row{"ws://h", "ws", 80, "/", false, true},
        row{"wss://h", "wss", 443, "/", true, true},
        row{"AMQPS://h", "amqps", 5671, "", true, false},
        row{"WsS://h", "wss", 443, "/", true, true}}) {
    CAPTURE(r.text);
    const url u = parse_ok(r.text);
    CHECK(u.scheme == r.scheme);
    CHECK(u.host == "h");
    CHECK(u.port == r.port);
    CHECK(u.path == r.path);
    CHECK(u.tls() == r.tls);
    CHECK(u.websocket() == r.ws);
    CHECK(u.user.empty());
    CHECK(u.password.empty());
    CHECK(u.query.empty());
  }
  CHECK(default_port("amqp") == 5672);
  CHECK(default_port("amqps") == 5671);
  CHECK(default_port("ws") == 80);
  CHECK(default_port("wss") == 443);
  CHECK(default_port("http") == 0);
}

TEST_CASE("url: user and password, percent-decoded") {
  SUBCASE("both") {
    const url u = parse_ok("amqps://us%40er:p%3Ass%2Fw%25d@hub.example:5671/q");
    CHECK(u.user == "us@er");
    CHECK(u.password == "p:ss/w%d");
    CHECK(u.host == "hub.example");
    CHECK(u.path == "/q");
  }
  SUBCASE("an unescaped '@' in the password: the last '@' ends the user-info") {
    const url u = parse_ok("amqp://u:p@ss@h");
    CHECK(u.user == "u");
    CHECK(u.password == "p@ss");
    CHECK(u.host == "h");
  }
  SUBCASE("user only") {
    const url u = parse_ok("amqp://alice@h");
    CHECK(u.user == "alice");
    CHECK(u.password.empty());
  }
  SUBCASE("empty password, empty user") {
    CHECK(parse_ok("amqp://u:@h").password.empty());
    const url u = parse_ok("amqp://:pw@h");
    CHECK(u.user.empty());
    CHECK(u.password == "pw");
  }
  SUBCASE("bad escapes; the password is never quoted") {
    CHECK(refused("amqp://u%4@h").find("user") != std::string::npos);
    CHECK(refused("amqp://u%zz@h").find("user") != std::string::npos);
    const std::string why = refused("amqp://u:SECRET%g1@h");
    CHECK(why.find("password") != std::string::npos);
    CHECK(why.find("SECRET") == std::string::npos);
    CHECK(refused("amqp://u:pw%@h").find("password") != std::string::npos);
  }
}

TEST_CASE("url: hosts") {
  SUBCASE("names and IPv4") {
    CHECK(parse_ok("amqp://h_o-s.t~1").host == "h_o-s.t~1");
    CHECK(parse_ok("amqp://127.0.0.1:5673").host == "127.0.0.1");
  }
  SUBCASE("IPv6 in brackets") {
    url u = parse_ok("amqps://[::1]:5999/x");
    CHECK(u.host == "::1");
    CHECK(u.port == 5999);
    CHECK(u.path == "/x");
    u = parse_ok("amqp://[2001:db8::1]");
    CHECK(u.host == "2001:db8::1");
    CHECK(u.port == 5672);
    CHECK(parse_ok("amqp://[1:2:3:4:5:6:7:8]").host == "1:2:3:4:5:6:7:8");
    CHECK(parse_ok("amqp://[::]").host == "::");
    CHECK(parse_ok("amqp://[1::]").host == "1::");
    CHECK(parse_ok("amqp://[::ffff:192.0.2.1]").host == "::ffff:192.0.2.1");
    CHECK(parse_ok("amqp://[1:2:3:4:5:6:1.2.3.4]").host == "1:2:3:4:5:6:1.2.3.4");
    CHECK(parse_ok("ws://[fe80::1%25eth0]:8080").host == "fe80::1%eth0");
    CHECK(parse_ok("ws://[::1]:").port == 80);
  }
  SUBCASE("bad IPv6") {
    CHECK(refused("amqp://[::1").find("unclosed") != std::string::npos);
    for (const std::string_view bad :
         {"amqp://[::g]", "amqp://[1:2:3:4:5:6:7:8:9]", "amqp://[1:2:3:4:5:6:7]",
          "amqp://[1::2::3]", "amqp://[12345::1]", "amqp://[]", "amqp://[1:2:3:4:5:6:7::8]",
          "amqp://[::1.2.3]", "amqp://[::256.1.1.1]", "amqp://[::01.1.1.1]", "amqp://[::1.2.3.4.5]",
          "amqp://[1.2.3.4::]", "amqp://[fe80::1%eth0]", "amqp://[fe80::1%25]",
          "amqp://[fe80::1%25e!0]", "amqp://[fe80::1%25e%zz]"}) {
      CAPTURE(bad);
      CHECK(refused(bad).find("IPv6") != std::string::npos);
    }
    CHECK(refused("amqp://[::1]x").find("after the IPv6") != std::string::npos);
  }
  SUBCASE("characters not allowed in a host name") {
    for (const std::string_view bad : {"amqp://h%41", "amqp://h!x", "amqp://::1", "amqp://h:1:2"}) {
      CAPTURE(bad);
      refused(bad);
    }
  }
  SUBCASE("empty host") {
    const url u = parse_ok("amqp://:0");
    CHECK(u.host.empty());
    CHECK(u.port == 0);
    CHECK(parse_ok("amqp://").host.empty());
  }
}

TEST_CASE("url: ports") {
  CHECK(parse_ok("amqp://h:0").port == 0);
  CHECK(parse_ok("amqp://h:1").port == 1);
  CHECK(parse_ok("amqp://h:65535").port == 65535);
  CHECK(parse_ok("amqp://h:05672").port == 5672);
  CHECK(parse_ok("amqps://h:").port == 5671); // empty: the default (RFC 3986 §3.2.3)
  CHECK(refused("amqp://h:65536").find("65535") != std::string::npos);
  CHECK(refused("amqp://h:99999999999999999999999").find("65535") != std::string::npos);
  CHECK(refused("amqp://h:12a").find("not a number") != std::string::npos);
  CHECK(refused("amqp://h:-1").find("not a number") != std::string::npos);
  CHECK(refused("amqp://h:+1").find("not a number") != std::string::npos);
}

TEST_CASE("url: paths and queries") {
  url u = parse_ok("wss://hub.example/$servicebus/websocket?iothub-no-client-cert=true");
  CHECK(u.path == "/$servicebus/websocket");
  CHECK(u.query == "iothub-no-client-cert=true");
  u = parse_ok("amqp://h/queue%2Fa");
  CHECK(u.path == "/queue%2Fa"); // kept as written
  u = parse_ok("amqp://h?x=1/2?3");
  CHECK(u.path.empty());
  CHECK(u.query == "x=1/2?3");
  u = parse_ok("ws://h?x");
  CHECK(u.path == "/");
  CHECK(u.query == "x");
  CHECK(parse_ok("amqp://h/").path == "/");
  CHECK(refused("amqp://h/a%zz").find("path") != std::string::npos);
  CHECK(refused("amqp://h/a%2").find("path") != std::string::npos);
  CHECK(refused("amqp://h/a[b]").find("path") != std::string::npos);
  CHECK(refused("amqp://h/?a=%g0").find("query") != std::string::npos);
  CHECK(refused("amqp://h/?a=\\").find("query") != std::string::npos);
  CHECK(refused("amqp://h/a#frag").find("fragment") != std::string::npos);
}

TEST_CASE("url: not a URL, other schemes, spaces") {
  CHECK(refused("").find("://") != std::string::npos);
  CHECK(refused("localhost:5672").find("://") != std::string::npos);
  CHECK(refused("amqp:/h").find("://") != std::string::npos);
  CHECK(refused("http://h").find("\"http\"") != std::string::npos);
  CHECK(refused("://h").find("unsupported scheme (") != std::string::npos);
  // A mistyped URL may hold a secret: odd schemes are not quoted.
  const std::string why = refused("pw=SECRET-TOKEN://h");
  CHECK(why.find("secret") == std::string::npos);
  CHECK(why.find("SECRET") == std::string::npos);
  CHECK(refused("amqpsSECRETSECRETSECRET://h").find("secret") == std::string::npos);
  CHECK(refused("amqp://h /x").find("spaces") != std::string::npos);
  CHECK(refused(" amqp://h").find("spaces") != std::string::npos);
  CHECK(refused("amqp://h\n").find("control") != std::string::npos);
  CHECK(refused(std::string_view("amqp://h\0", 9)).find("control") != std::string::npos);
  // Without `why`, the error alone.
  auto r = parse_url("http://h");
  REQUIRE_FALSE(r);
  CHECK(r.error() == errc::invalid_argument);
}

TEST_CASE("url: to_string never shows the password unless asked") {
  const url u = parse_ok("AMQPS://us%40er:p%40ss%20w@hub.example/q?x=1");
  CHECK(u.to_string() == "amqps://us%40er:***@hub.example/q?x=1");
  CHECK(u.to_string(true) == "amqps://us%40er:***@hub.example/q?x=1");
  CHECK(u.to_string(false) == "amqps://us%40er:p%40ss%20w@hub.example/q?x=1");
  CHECK(parse_ok("amqp://alice@h").to_string() == "amqp://alice@h");
  CHECK(parse_ok("amqp://:pw@h").to_string() == "amqp://:***@h");
  CHECK(parse_ok("amqp://h:5672").to_string() == "amqp://h");
  CHECK(parse_ok("amqp://h:5671").to_string() == "amqp://h:5671");
  CHECK(parse_ok("ws://h").to_string() == "ws://h");
  CHECK(parse_ok("wss://h:443/").to_string() == "wss://h");
  CHECK(parse_ok("wss://h/$servicebus/websocket").to_string() == "wss://h/$servicebus/websocket");
  CHECK(parse_ok("amqps://[::1]:5671").to_string() == "amqps://[::1]");
  CHECK(parse_ok("ws://[fe80::1%25eth0]:81").to_string() == "ws://[fe80::1%25eth0]:81");
  CHECK(parse_ok("amqp://:0").to_string() == "amqp://:0");
  // Round trip of the unredacted form.
  for (const std::string_view text :
       {"amqps://u:p%3A%40%2F%25@h:1/a/b?c=d", "wss://[2001:db8::1%25en0]/p?q", "amqp://h",
        "ws://u@h:8080/x", "amqp://:5"}) {
    CAPTURE(text);
    const url a = parse_ok(text);
    CHECK(parse_ok(a.to_string(false)) == a);
  }
}

TEST_SUITE_END();
