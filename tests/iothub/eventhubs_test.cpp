// Tests of selector filters, redirect info and $management READ (iothub/src/eventhubs.cpp;
// doc §6).
#include <array>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "amqp/codec.hpp"
#include "amqp/iothub/cbs.hpp"
#include "amqp/iothub/eventhubs.hpp"

using namespace amqp::iothub;
using amqp::owned_value;
using amqp::value;

namespace {

selector sel(std::string_view text) {
  std::string why;
  auto s = parse_selector(text, &why);
  REQUIRE_MESSAGE(s.has_value(), why);
  CHECK(*parse_selector(to_string(*s)) == *s);
  return *s;
}

// Encodes and decodes a value, as it arrives from a peer.
struct wire_value {
  std::vector<std::byte> bytes;
  value v;
  explicit wire_value(const value& in) {
    REQUIRE(amqp::encode_append(in, bytes).has_value());
    v = *amqp::decode_whole(bytes);
  }
};

amqp::message through_wire(const amqp::message& m) {
  auto e = m.encode();
  REQUIRE(e.has_value());
  return *amqp::message::decode(*e);
}

} // namespace

TEST_CASE("selector: the forms the Event Hubs SDKs write (EH-PY event_position_selector)") {
  auto s = sel("amqp.annotation.x-opt-offset > '123'");
  CHECK(s == selector{position_field::offset, position_operator::greater, "123"});
  CHECK(to_string(s) == "amqp.annotation.x-opt-offset > '123'");
  s = sel("amqp.annotation.x-opt-sequence-number >= '2995'");
  CHECK(s ==
        selector{position_field::sequence_number, position_operator::greater_or_equal, "2995"});
  s = sel("amqp.annotation.x-opt-enqueued-time > '1700000000000'");
  CHECK(s.field == position_field::enqueued_time);
  CHECK(sel("amqp.annotation.x-opt-offset = '5'").op == position_operator::equal);
  CHECK(sel("amqp.annotation.x-opt-offset > '-1'") == start_of_stream());
  CHECK(sel("amqp.annotation.x-opt-offset > '@latest'") == end_of_stream());
  CHECK(to_string(start_of_stream()) == "amqp.annotation.x-opt-offset > '-1'");
  CHECK(to_string(end_of_stream()) == "amqp.annotation.x-opt-offset > '@latest'");
}

TEST_CASE("selector: tolerated spellings") {
  // DOC-AMQP's unquoted number (doc §10).
  CHECK(sel("amqp.annotation.x-opt-sequence-number > 2995").value == "2995");
  CHECK(sel("amqp.annotation.x-opt-offset > -1") == start_of_stream());
  CHECK(sel("  AMQP.Annotation.X-Opt-Offset>='7'  ").op == position_operator::greater_or_equal);
  // A quote inside a quoted value is doubled.
  const auto s = sel("amqp.annotation.x-opt-offset > 'a''b'");
  CHECK(s.value == "a'b");
  CHECK(to_string(s) == "amqp.annotation.x-opt-offset > 'a''b'");
}

TEST_CASE("selector: anything else is refused with a clear error") {
  struct bad {
    std::string text;
    errc code;
    std::string_view says;
  };
  const std::array<bad, 14> cases = {{
      {"x-opt-offset > '1'", errc::not_supported, "is not amqp.annotation.<name> <op> <value>"},
      {"amqp.annotation.x-opt-partition-key = 'a'", errc::not_supported,
       "the selector names 'x-opt-partition-key'"},
      {"amqp.annotation.x-opt-offset < '1'", errc::not_supported, "operator is not >, >= or ="},
      {"amqp.annotation.x-opt-offset <> '1'", errc::not_supported, "operator"},
      {"amqp.annotation.x-opt-offset '1'", errc::not_supported, "operator"},
      {"amqp.annotation.x-opt-offset > '1", errc::invalid_value, "unterminated quote"},
      {"amqp.annotation.x-opt-offset > abc", errc::invalid_value, "neither quoted nor a number"},
      {"amqp.annotation.x-opt-offset > -", errc::invalid_value, "neither quoted nor a number"},
      {"amqp.annotation.x-opt-offset > '1' AND 1=1", errc::invalid_value, "text after"},
      {"amqp.annotation.x-opt-offset > ''", errc::invalid_value, "value is empty"},
      {"amqp.annotation.x-opt-offset > 'a\x01'", errc::invalid_value, "control character"},
      {"amqp.annotation.x-opt-sequence-number > 'x'", errc::invalid_value, "not an integer"},
      {"amqp.annotation.x-opt-sequence-number > '99999999999999999999'", errc::invalid_value,
       "not an integer"},
      {"amqp.annotation.x-opt-enqueued-time > '-5'", errc::invalid_value, "milliseconds"},
  }};
  for (const bad& b : cases) {
    CAPTURE(b.text);
    std::string why;
    auto r = parse_selector(b.text, &why);
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error() == b.code);
    CHECK_MESSAGE(why.find(b.says) != std::string::npos, why);
  }
}

TEST_CASE("selector: the length limit") {
  std::string text = "amqp.annotation.x-opt-offset > '";
  text += std::string(max_selector_length - text.size() - 1, '7') + "'";
  CHECK(parse_selector(text).has_value());
  text.insert(text.size() - 1, "7");
  std::string why;
  CHECK(parse_selector(text, &why).error() == errc::limit_exceeded);
  CHECK(why == "the selector is longer than 1024 characters");
}

TEST_CASE("selector filter: either descriptor, in a filter-set") {
  const selector s{position_field::sequence_number, position_operator::greater, "10"};
  SUBCASE("numeric 0x0000468C00000004") {
    auto f = selector_filter(s);
    REQUIRE(f.has_value());
    wire_value w(f->get());
    CHECK(*w.v.descriptor_code() == 0x0000468C00000004);
    CHECK(*parse_selector_filter(w.v) == s);
  }
  SUBCASE("symbolic apache.org:selector-filter:string") {
    auto f = selector_filter(s, descriptor_form::symbolic);
    wire_value w(f->get());
    CHECK(w.v.descriptor().as_symbol() == "apache.org:selector-filter:string");
    CHECK(*parse_selector_filter(w.v) == s);
  }
  SUBCASE("a filter-set map") {
    auto fs = selector_filter_set(s);
    wire_value w(fs->get());
    CHECK(w.v.find("apache.org:selector-filter:string").has_value());
    CHECK(**parse_filter_set(w.v) == s);
    CHECK_FALSE(parse_filter_set(value{})->has_value());
    CHECK_FALSE(parse_filter_set(value::map({}))->has_value());
  }
  SUBCASE("errors") {
    std::string why;
    CHECK(parse_selector_filter(value("x"), &why).error() == errc::not_supported);
    CHECK(why == "the filter is a string, not a described value");
    const std::array<value, 2> other = {value(std::uint64_t{0x468C00000005}), value("x")};
    CHECK(parse_selector_filter(value::described(other), &why).error() == errc::not_supported);
    CHECK(why == "the filter's descriptor is not apache.org:selector-filter:string");
    const std::array<value, 2> not_string = {value(std::uint64_t{0x0000468C00000004}),
                                             value(std::int32_t{1})};
    CHECK(parse_selector_filter(value::described(not_string), &why).error() == errc::invalid_value);
    CHECK(why == "the selector filter's value is not a string");
    const std::array<value, 2> bad_text = {value(std::uint64_t{0x0000468C00000004}),
                                           value("amqp.annotation.x-opt-offset < '1'")};
    CHECK(parse_selector_filter(value::described(bad_text)).error() == errc::not_supported);
    CHECK(parse_filter_set(value("x"), &why).error() == errc::invalid_value);
    CHECK(why == "the filter-set is not a map");
    const std::array<value, 4> two = {value(amqp::symbol_view{"a"}), value::described(not_string),
                                      value(amqp::symbol_view{"b"}), value::described(not_string)};
    CHECK(parse_filter_set(value::map(two)).error() == errc::invalid_value);
    const auto f = selector_filter(s);
    const std::array<value, 4> dup = {value(amqp::symbol_view{"a"}), f->get(),
                                      value(amqp::symbol_view{"b"}), f->get()};
    CHECK(parse_filter_set(value::map(dup), &why).error() == errc::invalid_value);
    CHECK(why == "the filter-set holds two selector filters");
  }
}

TEST_CASE("redirect info: the keys of the real hub's detach (TRACE iothub-explorer#57)") {
  redirect_info r;
  r.hostname = "iothub-ns-smartiot-1382746-675594b872.servicebus.windows.net";
  r.network_host = r.hostname;
  r.port = 5671;
  r.address = "amqps://" + r.hostname + ":5671/smartiot/$management";
  const auto info = build_redirect_info(r);
  wire_value w(info.get());
  CHECK(w.v.find("hostname")->get_symbol() == std::nullopt); // a string value
  CHECK(w.v.find("port")->is(amqp::type::int_));
  CHECK_FALSE(w.v.find(error_info::tracking_id).has_value());
  CHECK(w.v.items().begin()->is(amqp::type::symbol)); // keys are symbols
  CHECK(*parse_redirect_info(w.v) == r);
  r.tracking_id = "4ad4e1e1-G:1";
  wire_value w2(build_redirect_info(r).get());
  CHECK(*parse_redirect_info(w2.v) == r);

  SUBCASE("tolerant: string keys, symbol values, ulong port, no network-host, extra keys") {
    const std::array<value, 10> kv = {value("hostname"), value(amqp::symbol_view{"ns"}),
                                      value("port"),     value(std::uint64_t{5671}),
                                      value("address"),  value("amqps://ns:5671/hub"),
                                      value("scheme"),   value("amqps"),
                                      value("path"),     value("/hub")};
    wire_value t(value::map(kv));
    const auto p = parse_redirect_info(t.v);
    REQUIRE(p.has_value());
    CHECK(p->hostname == "ns");
    CHECK(p->network_host.empty());
    CHECK(p->port == 5671);
  }
  SUBCASE("errors") {
    std::string why;
    CHECK(parse_redirect_info(value("x"), &why).error() == errc::invalid_value);
    CHECK(why == "the redirect info is not a map");
    std::array<value, 6> kv = {value("hostname"),      value("ns"),      value("port"),
                               value(std::int32_t{0}), value("address"), value("a")};
    CHECK(parse_redirect_info(value::map(kv), &why).error() == errc::invalid_value);
    CHECK(why == "the redirect port 0 is not from 1 to 65535");
    kv[3] = value(std::int32_t{65536});
    CHECK(parse_redirect_info(value::map(kv)).error() == errc::invalid_value);
    kv[3] = value("5671");
    CHECK(parse_redirect_info(value::map(kv), &why).error() == errc::invalid_value);
    CHECK(why == "the redirect info 'port' is a string, not an integer that fits a long");
    kv[3] = value(std::int32_t{5671});
    kv[5] = value(std::int32_t{1});
    CHECK(parse_redirect_info(value::map(kv), &why).error() == errc::invalid_value);
    CHECK(why == "the redirect info 'address' is a int, not a string");
    kv[4] = value("other");
    CHECK(parse_redirect_info(value::map(kv), &why).error() == errc::missing_field);
    CHECK(why == "the redirect info has no 'address'");
  }
}

TEST_CASE("$management READ requests (EH-NET AmqpManagement.cs)") {
  management_request r;
  r.message_id = owned_value("req-1");
  r.reply_to = "mgmt-reply";
  r.event_hub = "myhub";
  auto m = build_management_request(r);
  CHECK(m.application_properties.get("operation")->as_string() == "READ");
  CHECK(m.application_properties.get("type")->as_string() == "com.microsoft:eventhub");
  CHECK_FALSE(m.application_properties.contains("partition"));
  CHECK(*parse_management_request(through_wire(m)) == r);
  r.partition = "3";
  r.security_token = "SharedAccessSignature x";
  m = build_management_request(r);
  CHECK(m.application_properties.get("type")->as_string() == "com.microsoft:partition");
  CHECK(*parse_management_request(through_wire(m)) == r);

  std::string why;
  auto bad = m;
  bad.application_properties.set("operation", owned_value("CREATE"));
  CHECK(parse_management_request(bad, &why).error() == errc::not_supported);
  CHECK(why == "the $management operation 'CREATE' is not READ");
  bad = m;
  bad.application_properties.set("type", owned_value("com.microsoft:consumergroup"));
  CHECK(parse_management_request(bad, &why).error() == errc::not_supported);
  bad = m;
  bad.application_properties.erase("partition");
  CHECK(parse_management_request(bad, &why).error() == errc::missing_field);
  CHECK(why == "the $management request has no 'partition'");
  bad = m;
  bad.application_properties.set("name", owned_value(""));
  CHECK(parse_management_request(bad, &why).error() == errc::invalid_value);
  bad = m;
  bad.application_properties.set("name", owned_value(std::int32_t{1}));
  CHECK(parse_management_request(bad, &why).error() == errc::invalid_value);
  CHECK(why == "the $management 'name' is a int, not a string");
  bad = m;
  bad.application_properties.set("security_token", owned_value(std::int32_t{1}));
  CHECK(parse_management_request(bad).error() == errc::invalid_value);
  bad = m;
  bad.properties.message_id = owned_value();
  CHECK(parse_management_request(bad, &why).error() == errc::missing_field);
  CHECK(why == "the $management request has no message-id");
}

TEST_CASE("$management responses: eventhub and partition maps (doc §6.4)") {
  const owned_value id("req-1");
  SUBCASE("eventhub") {
    const eventhub_info info{"myhub", amqp::timestamp{1600000000000}, {"0", "1", "2", "3"}};
    const auto m = through_wire(build_eventhub_response(id, info));
    CHECK(m.properties.correlation_id == id);
    const auto status = parse_cbs_response(m);
    CHECK(status->status_code == 200);
    CHECK(status->status_description == "OK");
    const value body = m.body_value();
    CHECK(body.find("partition_count")->as_int() == 4);
    CHECK(body.find("type")->as_string() == "com.microsoft:eventhub");
    CHECK(body.find("partition_ids")->is(amqp::type::array));
    CHECK(*parse_eventhub_info(body) == info);
  }
  SUBCASE("partition") {
    const partition_info info{"myhub", "2", 0, 41, "8192", amqp::timestamp{1700000000000}, false};
    const auto m = through_wire(build_partition_response(id, info));
    const value body = m.body_value();
    CHECK(body.find("begin_sequence_number")->is(amqp::type::long_));
    CHECK(body.find("last_enqueued_time_utc")->is(amqp::type::timestamp));
    CHECK(*parse_partition_info(body) == info);
  }
  SUBCASE("tolerant and strict") {
    std::string why;
    std::array<value, 6> kv = {value(amqp::symbol_view{"name"}),          value("h"),
                               value(amqp::symbol_view{"created_at"}),    value(amqp::timestamp{1}),
                               value(amqp::symbol_view{"partition_ids"}), value("0")};
    CHECK(parse_eventhub_info(value::map(kv), &why).error() == errc::invalid_value);
    CHECK(why == "the eventhub response 'partition_ids' is a string, not an array");
    const std::array<value, 2> ids = {value("0"), value(amqp::symbol_view{"1"})};
    kv[5] = value::list(ids);
    CHECK(parse_eventhub_info(value::map(kv))->partition_ids == std::vector<std::string>{"0", "1"});
    const std::array<value, 1> bad_ids = {value(std::int32_t{0})};
    kv[5] = value::list(bad_ids);
    CHECK(parse_eventhub_info(value::map(kv), &why).error() == errc::invalid_value);
    CHECK(why == "a partition id is a int, not a string");
    kv[3] = value(std::int64_t{1});
    CHECK(parse_eventhub_info(value::map(kv), &why).error() == errc::invalid_value);
    CHECK(why == "the eventhub response 'created_at' is a long, not a timestamp");
    CHECK(parse_eventhub_info(value("x")).error() == errc::invalid_value);
    CHECK(parse_partition_info(value("x")).error() == errc::invalid_value);
    const std::array<value, 2> only_name = {value("name"), value("h")};
    CHECK(parse_partition_info(value::map(only_name), &why).error() == errc::missing_field);
    CHECK(why == "the partition response has no 'partition'");
  }
  SUBCASE("limit: 1024 partition ids, not 1025") {
    std::vector<std::string> names(max_partition_ids, "p");
    eventhub_info info{"h", amqp::timestamp{0}, names};
    auto m = through_wire(build_eventhub_response(id, info));
    CHECK(parse_eventhub_info(m.body_value())->partition_ids.size() == 1024);
    info.partition_ids.push_back("p");
    m = through_wire(build_eventhub_response(id, info));
    std::string why;
    CHECK(parse_eventhub_info(m.body_value(), &why).error() == errc::limit_exceeded);
    CHECK(why == "more than 1024 partition ids");
  }
  SUBCASE("is_partition_empty absent reads false") {
    const partition_info info{"h", "0", 5, 9, "1", amqp::timestamp{2}, true};
    const auto m = through_wire(build_partition_response(id, info));
    const value body = m.body_value();
    std::vector<value> kv;
    bool skip = false;
    for (const value& v : body.items()) {
      if (v.get_string() == "is_partition_empty") {
        skip = true;
        continue;
      }
      if (skip) {
        skip = false;
        continue;
      }
      kv.push_back(v);
    }
    const auto p = parse_partition_info(value::map(kv));
    REQUIRE(p.has_value());
    CHECK_FALSE(p->is_partition_empty);
    CHECK(p->last_enqueued_sequence_number == 9);
  }
}
