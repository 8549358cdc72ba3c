// The broker's SASL decisions (broker/src/auth.hpp), without engines: PLAIN parsing (RFC
// 4616), accounts, the authenticator callback, ANONYMOUS and EXTERNAL.
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>

#include "auth.hpp"

using namespace amqp;
using namespace std::string_literals;
using namespace std::string_view_literals;
namespace ab = amqp::broker;

namespace {

std::span<const std::byte> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

sasl_init_received init(std::string_view mechanism, std::string_view response) {
  sasl_init_received e;
  e.mechanism = symbol_view{mechanism};
  e.initial_response = bytes_of(response);
  return e;
}

} // namespace

TEST_CASE("broker auth: parse_plain takes exactly two NULs and a non-empty authcid") {
  const auto p = ab::parse_plain(bytes_of("zid\0cid\0pw"sv));
  REQUIRE(p);
  CHECK(p->authzid == "zid");
  CHECK(p->authcid == "cid");
  CHECK(p->passwd == "pw");
  const auto no_authzid = ab::parse_plain(bytes_of("\0cid\0"sv));
  REQUIRE(no_authzid);
  CHECK(no_authzid->authzid.empty());
  CHECK(no_authzid->passwd.empty());
  for (const auto bad :
       {""sv, "cidpw"sv, "\0cidpw"sv, "\0\0pw"sv, "zid\0\0pw"sv, "\0cid\0pw\0"sv, "\0\0\0"sv}) {
    CAPTURE(bad.size());
    CHECK_FALSE(ab::parse_plain(bytes_of(bad)));
  }
}

TEST_CASE("broker auth: anonymous access follows the accounts unless set") {
  ab::broker_options o;
  CHECK(ab::authenticator(o).anonymous());
  o.users = {{"u", "p"}};
  CHECK_FALSE(ab::authenticator(o).anonymous());
  o.allow_anonymous = true;
  CHECK(ab::authenticator(o).anonymous());
  ab::broker_options a;
  a.authenticate = [](const ab::sasl_login&) { return false; };
  CHECK_FALSE(ab::authenticator(a).anonymous());
  ab::broker_options off;
  off.allow_anonymous = false;
  CHECK_FALSE(ab::authenticator(off).anonymous());
}

TEST_CASE("broker auth: configure offers the mechanisms the options allow") {
  ab::broker_options o;
  sasl_options s;
  ab::authenticator open(o);
  open.configure(s, false);
  CHECK(s.enabled);
  CHECK(s.server_mechanisms == "PLAIN ANONYMOUS");
  CHECK(s.accept_anonymous);
  CHECK(s.optional);
  open.configure(s, true);
  CHECK(s.server_mechanisms == "EXTERNAL PLAIN ANONYMOUS");
  o.users = {{"u", "p"}};
  ab::authenticator closed(o);
  closed.configure(s, false);
  CHECK(s.server_mechanisms == "PLAIN");
  CHECK_FALSE(s.accept_anonymous);
  CHECK_FALSE(s.optional);
}

TEST_CASE("broker auth: decide") {
  ab::broker_options o;
  o.users = {{"alice", "secret"}, {"bob", "pw\0x"s}};
  const ab::authenticator a(o);
  SUBCASE("PLAIN against the accounts") {
    CHECK(a.decide(init("PLAIN", "\0alice\0secret"sv), {}).ok);
    CHECK(a.decide(init("PLAIN", "\0alice\0secret"sv), {}).user == "alice");
    CHECK(a.decide(init("PLAIN", "alice\0alice\0secret"sv), {}).ok); // authzid = authcid
    CHECK_FALSE(a.decide(init("PLAIN", "bob\0alice\0secret"sv), {}).ok);
    CHECK_FALSE(a.decide(init("PLAIN", "\0alice\0secreT"sv), {}).ok);
    CHECK_FALSE(a.decide(init("PLAIN", "\0alice\0secret\0"sv), {}).ok);
    // A password with a NUL cannot be given in a well-formed response.
    CHECK_FALSE(a.decide(init("PLAIN", "\0bob\0pw\0x"sv), {}).ok);
    CHECK(a.decide(init("PLAIN", "\0alice\0wrong"sv), {}).user.empty());
  }
  SUBCASE("ANONYMOUS is off with accounts") {
    CHECK_FALSE(a.decide(init("ANONYMOUS", ""), {}).ok);
  }
  SUBCASE("EXTERNAL: the certificate's subject, or an authzid equal to it") {
    CHECK(a.decide(init("EXTERNAL", ""), "CN=d").ok);
    CHECK(a.decide(init("EXTERNAL", ""), "CN=d").user == "CN=d");
    CHECK(a.decide(init("EXTERNAL", "CN=d"), "CN=d").ok);
    CHECK_FALSE(a.decide(init("EXTERNAL", "CN=e"), "CN=d").ok);
    CHECK_FALSE(a.decide(init("EXTERNAL", ""), {}).ok);
  }
  SUBCASE("an unknown mechanism") {
    CHECK_FALSE(a.decide(init("SCRAM-SHA-256", "x"), {}).ok);
  }
}

TEST_CASE("broker auth: the authenticator callback gets well-formed PLAIN logins only") {
  std::vector<std::string> seen;
  ab::broker_options o;
  o.authenticate = [&](const ab::sasl_login& l) {
    seen.push_back(std::string(l.authzid) + "/" + std::string(l.username) + "/" +
                   std::string(l.password) + "/" + std::string(l.hostname));
    return l.password == "good";
  };
  const ab::authenticator a(o);
  auto e = init("PLAIN", "z\0u\0good"sv);
  e.hostname = "host";
  CHECK(a.decide(e, {}).ok);
  CHECK(a.decide(e, {}).user == "u");
  CHECK_FALSE(a.decide(init("PLAIN", "\0u\0bad"sv), {}).ok);
  CHECK_FALSE(a.decide(init("PLAIN", "ugood"sv), {}).ok);
  CHECK(seen == std::vector<std::string>{"z/u/good/host", "z/u/good/host", "/u/bad/"});
}
