// The Event Hubs-compatible endpoint (§6): redirect, partition receivers and their start
// positions, live delivery, consumer groups, epochs, the receiver limit, runtime metrics and
// $management.
#include <sqlite3.h>

#include "amqp/codec.hpp"
#include "amqp/iothub/eventhubs.hpp"
#include "amqp/iothub/messages.hpp"
#include "hub_harness.hpp"

using namespace hubtest;

namespace {

std::vector<std::byte> bytes_of(std::string_view s) {
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

// A device client (SASL PLAIN, 3 days of token) with its telemetry link.
struct sender {
  client* c = nullptr;
  link_id link{};
  void send(world& w, std::string_view body) const {
    amqp::message m(std::span<const std::byte>(bytes_of(body)));
    w.send(*c, link, m);
    REQUIRE(c->last("delivery_updated", link).state == "accepted");
  }
};

sender device(world& w, std::string_view id = "d1") {
  client& c = w.open("PLAIN", std::string(id) + "@sas.emulator", w.device_token(id, 72h));
  return {&c, w.attach_sender(c, "/devices/" + std::string(id) + "/messages/events")};
}

// A service client on the Event Hubs form (CBS with an sb:// audience, as after a redirect).
client& service(world& w) {
  client& c = w.open("ANONYMOUS");
  auto cbs = w.open_cbs(c);
  const std::string sr = "sb://localhost/emulator";
  REQUIRE(w.put_token(c, cbs, sr, w.eh_policy_token("service", 72h, sr)).status_code == 200);
  return c;
}

// Attaches a receiver with an optional selector filter, epoch and runtime metric.
struct reader_opts {
  std::optional<std::string> filter;
  descriptor_form form = descriptor_form::numeric;
  std::optional<std::int64_t> epoch;
  bool metric = false;
  std::uint32_t credit = 100;
  std::string name;
};

// reader_opts built one field at a time (designated initializers would leave the others
// to -Wmissing-field-initializers).
reader_opts filter(std::string f) {
  reader_opts o;
  o.filter = std::move(f);
  return o;
}
reader_opts named(std::string n) {
  reader_opts o;
  o.name = std::move(n);
  return o;
}
reader_opts with_epoch(std::int64_t e) {
  reader_opts o;
  o.epoch = e;
  return o;
}
reader_opts with_credit(std::uint32_t credit, reader_opts o = {}) {
  o.credit = credit;
  return o;
}

link_id reader(world& w, client& c, std::string_view address, reader_opts ro = {}) {
  const std::string link_name = ro.name.empty() ? "reader-" + std::to_string(++c.names) : ro.name;
  link_options o;
  o.name = link_name;
  o.role = role::receiver;
  o.snd_settle_mode = sender_settle_mode::unsettled;
  o.source = source{};
  o.source->address = address;
  std::optional<owned_value> filter;
  if (ro.filter) {
    auto sel = parse_selector(*ro.filter);
    if (sel) {
      auto f = selector_filter_set(*sel, ro.form);
      REQUIRE(f);
      filter = std::move(*f);
    } else {
      // A selector the profile cannot parse, sent as the client wrote it.
      const value d[2] = {value(std::uint64_t{selector_filter_code}),
                          value(std::string_view(*ro.filter))};
      const value described = value::described(d);
      const value kv[2] = {value(symbol_view{selector_filter_name}), described};
      auto f = owned_value::copy_of(value::map(kv));
      REQUIRE(f);
      filter = std::move(*f);
    }
    o.source->filter = filter->get();
  }
  o.target = target{};
  o.target->address = link_name;
  value props_kv[2];
  if (ro.epoch) {
    props_kv[0] = value(symbol_view{"com.microsoft:epoch"});
    props_kv[1] = value(*ro.epoch);
    o.properties = value::map(props_kv);
  }
  if (ro.metric) {
    o.desired_capabilities = value(symbol_view{"com.microsoft:enable-receiver-runtime-metric"});
  }
  auto l = c.engine.attach(c.session, o);
  REQUIRE(l);
  if (ro.credit > 0) {
    REQUIRE(c.engine.flow(*l, ro.credit));
  }
  REQUIRE(w.pump());
  return *l;
}

std::string partition_address(std::uint32_t p, std::string_view group = "$Default") {
  return "emulator/ConsumerGroups/" + std::string(group) + "/Partitions/" + std::to_string(p);
}

// The bodies of what `l` received (in c's log from record `from` on: link ids are reused).
std::vector<std::string> bodies(const client& c, link_id l, std::size_t from = 0) {
  std::vector<std::string> out;
  for (std::size_t i = from; i < c.log.size(); ++i) {
    const rec& r = c.log[i];
    if (r.kind != "delivery_received" || r.link != l) {
      continue;
    }
    auto m = amqp::message::decode(r.payload);
    REQUIRE(m);
    out.push_back(m->body_text().value_or("?"));
  }
  return out;
}

const std::uint32_t p1 = partition_of("d1", 4);

} // namespace

TEST_CASE("event hubs: a receiver of /messages/events/... is answered, then redirected to the "
          "Event Hubs form on the listener it came in on (§6.1)") {
  world w;
  peer_info peer;
  std::string scheme = "amqp";
  std::uint16_t port = 5672;
  SUBCASE("plain") {}
  SUBCASE("TLS") {
    peer.tls = true;
    scheme = "amqps";
    port = 5671;
  }
  client& c = w.open("PLAIN", "service@sas.root.emulator", w.policy_token("service"), peer);
  struct expect {
    std::string source;
    std::string path;
  };
  for (const expect& x : std::vector<expect>{
           {"/messages/events/ConsumerGroups/$Default/Partitions/1",
            "emulator/ConsumerGroups/$Default/Partitions/1"},
           {"amqps://localhost:5671/messages/events/consumergroups/cg/partitions/0",
            "emulator/ConsumerGroups/cg/Partitions/0"},
           {"/messages/events/$management", "emulator/$management"},
           {"/messages/events", "emulator"},
       }) {
    CAPTURE(x.source);
    auto l = w.attach_receiver(c, x.source, 0);
    CHECK(c.last("link_attached", l).has_source);
    auto d = c.last("link_detached", l);
    CHECK(d.remote);
    CHECK(d.condition == "amqp:link:redirect");
    auto info = amqp::decode_whole(d.info);
    REQUIRE(info);
    auto r = parse_redirect_info(*info);
    REQUIRE(r);
    CHECK(r->hostname == "localhost");
    CHECK(r->network_host == "localhost");
    CHECK(r->port == port);
    CHECK(info->find("port")->kind() == amqp::type::int_);
    CHECK(r->address == scheme + "://localhost:" + std::to_string(port) + "/" + x.path);
    REQUIRE(r->tracking_id);
    CHECK(r->tracking_id->find("-G:0-TimeStamp:") == 32);
  }
  // The $management request link (a sender) is redirected too.
  auto s = w.attach_sender(c, "/messages/events/$management");
  CHECK(c.last("link_detached", s).condition == "amqp:link:redirect");
}

TEST_CASE("event hubs: with the redirect off, /messages/events/ConsumerGroups/... is read "
          "directly") {
  hub_options o;
  o.redirect = false;
  world w(o);
  auto d = device(w);
  d.send(w, "e0");
  client& c = w.open("PLAIN", "service@sas.root.emulator", w.policy_token("service"));
  auto l = reader(w, c, "/messages/events/ConsumerGroups/$Default/Partitions/" + std::to_string(p1),
                  filter("amqp.annotation.x-opt-offset > '-1'"));
  CHECK(w.attached(c, l));
  CHECK(bodies(c, l) == std::vector<std::string>{"e0"});
}

TEST_CASE("event hubs: a receiver reads its partition from the filter's position, settled, then "
          "gets new events as they are committed (§6.2)") {
  world w;
  auto d = device(w);
  d.send(w, "e0");
  d.send(w, "e1");
  d.send(w, "e2");
  client& c = service(w);
  auto l = reader(w, c, partition_address(p1), filter("amqp.annotation.x-opt-offset > '-1'"));
  REQUIRE(w.attached(c, l));
  // The hub's end answers settled: reads are not destructive.
  std::optional<sender_settle_mode> mode;
  for (const auto& item : c.wire.items) {
    if (auto a = item.as<amqp::attach>(); a && a->role == role::sender) {
      mode = a->snd_settle_mode;
    }
  }
  CHECK(mode == sender_settle_mode::settled);
  auto received = c.of("delivery_received", l);
  REQUIRE(received.size() == 3);
  auto stored = w.db->read_events(p1, event_position{}, 10);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(received[i].settled);
    CHECK(received[i].payload == (*stored)[i].bytes);
  }
  d.send(w, "e3");
  CHECK(bodies(c, l) == std::vector<std::string>{"e0", "e1", "e2", "e3"});
}

TEST_CASE("event hubs: start positions: no filter is the end, -1 the start, sequence numbers, "
          "offsets and enqueued times, > >= and =, both descriptors") {
  world w;
  auto d = device(w);
  d.send(w, "e0");
  w.advance(1000ms);
  d.send(w, "e1");
  w.advance(1000ms);
  d.send(w, "e2");
  auto stored = w.db->read_events(p1, event_position{}, 10);
  REQUIRE(stored->size() == 3);
  const std::string off1 = std::to_string((*stored)[1].offset);
  const std::string t1 = std::to_string((*stored)[1].enqueued_time);
  client& c = service(w);
  struct start {
    std::optional<std::string> filter;
    std::vector<std::string> expect;
  };
  const std::vector<start> cases = {
      {std::nullopt, {}},
      {"amqp.annotation.x-opt-offset > '@latest'", {}},
      {"amqp.annotation.x-opt-offset > '-1'", {"e0", "e1", "e2"}},
      {"amqp.annotation.x-opt-offset >= '-1'", {"e0", "e1", "e2"}},
      {"amqp.annotation.x-opt-sequence-number > '0'", {"e1", "e2"}},
      {"amqp.annotation.x-opt-sequence-number >= '1'", {"e1", "e2"}},
      {"amqp.annotation.x-opt-sequence-number = '2'", {"e2"}},
      {"amqp.annotation.x-opt-sequence-number > 0", {"e1", "e2"}}, // unquoted, as old docs
      {"amqp.annotation.x-opt-offset > '" + off1 + "'", {"e2"}},
      {"amqp.annotation.x-opt-offset >= '" + off1 + "'", {"e1", "e2"}},
      {"amqp.annotation.x-opt-enqueued-time > '" + t1 + "'", {"e2"}},
      {"amqp.annotation.x-opt-enqueued-time >= '" + t1 + "'", {"e1", "e2"}},
      {"amqp.annotation.x-opt-enqueued-time > '0'", {"e0", "e1", "e2"}},
  };
  for (auto form : {descriptor_form::numeric, descriptor_form::symbolic}) {
    for (const auto& s : cases) {
      CAPTURE(s.filter.value_or("(none)"));
      reader_opts ro;
      ro.filter = s.filter;
      ro.form = form;
      const std::size_t mark = c.log.size();
      auto l = reader(w, c, partition_address(p1), ro);
      REQUIRE(w.attached(c, l));
      CHECK(bodies(c, l, mark) == s.expect);
      REQUIRE(c.engine.detach(l));
      REQUIRE(w.pump());
    }
  }
}

TEST_CASE("event hubs: refused receivers: filters, consumer groups, partitions, hubs, "
          "permissions") {
  world w;
  REQUIRE(w.reg->put_consumer_group(*w.db, "analytics"));
  client& c = service(w);
  struct refused {
    std::string address;
    std::optional<std::string> filter;
    std::string condition;
    std::string description;
  };
  const std::vector<refused> cases = {
      {partition_address(0), "amqp.annotation.x-opt-foo > '1'", "amqp:not-implemented",
       "The filter is not supported: "},
      {partition_address(0), "amqp.annotation.x-opt-offset > 'abc'", "amqp:not-implemented",
       "The filter is not supported: 'abc' is not an offset of this hub."},
      {partition_address(0, "nope"), std::nullopt, "amqp:not-found",
       "The consumer group 'nope' does not exist."},
      {partition_address(4), std::nullopt, "amqp:not-found", "The partition '4' does not exist."},
      {"emulator/ConsumerGroups/$Default/Partitions/01", std::nullopt, "amqp:not-found",
       "The partition '01' does not exist."},
      {"other/ConsumerGroups/$Default/Partitions/0", std::nullopt, "amqp:not-found",
       "The link address 'other/ConsumerGroups/$Default/Partitions/0' did not match any of the "
       "expected formats."},
  };
  for (const auto& r : cases) {
    CAPTURE(r.address);
    reader_opts ro;
    ro.filter = r.filter;
    auto l = reader(w, c, r.address, ro);
    auto d = c.last("link_detached", l);
    CHECK(d.condition == r.condition);
    CHECK(d.description.rfind(r.description, 0) == 0);
  }
  // Consumer groups created, without regard to case; {hub}/Partitions/{p} is $Default.
  for (const std::string& ok :
       {partition_address(0, "analytics"), partition_address(0, "ANALYTICS"),
        partition_address(0, "$default"), std::string("emulator/Partitions/0")}) {
    CAPTURE(ok);
    CHECK(w.attached(c, reader(w, c, ok)));
  }
  // A device's token does not read events.
  client& dev = w.open("PLAIN", "d1@sas.emulator", w.device_token("d1"));
  auto l = reader(w, dev, partition_address(0));
  CHECK(dev.last("link_detached", l).condition == "amqp:unauthorized-access");
}

TEST_CASE("event hubs: the highest epoch owns a consumer group's partition (§6.3)") {
  world w;
  client& a = service(w);
  client& b = service(w);
  const std::string addr = partition_address(0);
  auto n1 = reader(w, a, addr, named("n1"));
  auto n2 = reader(w, b, addr, named("n2"));
  auto other_group = reader(w, a, partition_address(0, "$Default") + "", with_credit(0));
  REQUIRE(w.reg->put_consumer_group(*w.db, "cg2"));
  auto elsewhere = reader(w, a, partition_address(0, "cg2"));
  auto other_partition = reader(w, a, partition_address(1));
  (void)other_group;

  // An epoch receiver takes the partition: the non-epoch ones are stolen.
  auto e1 = reader(w, b, addr, with_epoch(1));
  REQUIRE(w.attached(b, e1));
  for (auto [cl, l] : {std::pair<client*, link_id>{&a, n1}, {&b, n2}}) {
    auto d = cl->last("link_detached", l);
    CHECK(d.condition == "amqp:link:stolen");
    CHECK(d.description.rfind("New receiver 'nil' with higher epoch of '1' is created hence "
                              "current receiver 'nil' with epoch '' is getting disconnected.",
                              0) == 0);
  }
  CHECK(w.attached(a, elsewhere));
  CHECK(w.attached(a, other_partition));

  // No epoch: refused while an epoch receiver exists.
  auto n3 = reader(w, a, addr);
  auto d3 = a.last("link_detached", n3);
  CHECK(d3.condition == "amqp:link:stolen");
  CHECK(d3.description == "At least one receiver for the endpoint is created with epoch of '1', "
                          "and so non-epoch receiver is not allowed. Either reconnect with a "
                          "higher epoch, or make sure all epoch receivers are closed or "
                          "disconnected.");
  // A lower epoch: refused.
  auto e0 = reader(w, a, addr, with_epoch(0));
  auto d0 = a.last("link_detached", e0);
  CHECK(d0.condition == "amqp:link:stolen");
  CHECK(d0.description.rfind("Receiver 'nil' with a higher epoch '1' already exists. Receiver "
                             "'nil' with epoch 0 cannot be created.",
                             0) == 0);
  // The same epoch again: the new one wins (Event Hubs: "higher epoch of '1' ... epoch '1'").
  auto e1b = reader(w, a, addr, with_epoch(1));
  CHECK(w.attached(a, e1b));
  CHECK(b.last("link_detached", e1).description.find("with epoch '1' is getting disconnected") !=
        std::string::npos);
  // When the epoch receiver goes, non-epoch receivers are welcome again.
  REQUIRE(a.engine.detach(e1b));
  REQUIRE(w.pump());
  CHECK(w.attached(a, reader(w, a, addr)));
}

TEST_CASE("event hubs: at most 5 receivers per consumer group and partition") {
  hub_options o;
  std::size_t limit = 5;
  SUBCASE("the hub's 5") {}
  SUBCASE("2") {
    limit = 2;
    o.max_receivers_per_partition = 2;
  }
  world w(o);
  client& c = service(w);
  for (std::size_t i = 0; i < limit; ++i) {
    REQUIRE(w.attached(c, reader(w, c, partition_address(0))));
  }
  auto l = reader(w, c, partition_address(0));
  auto d = c.last("link_detached", l);
  CHECK(d.condition == "amqp:resource-limit-exceeded");
  std::string names = "nil";
  for (std::size_t i = 1; i < limit; ++i) {
    names += ", nil";
  }
  CHECK(d.description == "Exceeded the maximum number of allowed receivers per partition in a "
                         "consumer group which is " +
                             std::to_string(limit) + ". List of connected receivers - " + names +
                             ".");
  // Another partition has its own count.
  CHECK(w.attached(c, reader(w, c, partition_address(1))));
}

TEST_CASE("event hubs: the runtime metric capability adds the partition's last event to each "
          "delivery (§6.3)") {
  world w;
  auto d = device(w);
  d.send(w, "e0");
  w.advance(5s);
  d.send(w, "e1");
  client& c = service(w);
  reader_opts ro = filter("amqp.annotation.x-opt-offset > '-1'");
  ro.metric = true;
  auto l = reader(w, c, partition_address(p1), ro);
  // The attach answer offers the capability back.
  bool offered = false;
  for (const auto& item : c.wire.items) {
    if (auto a = item.as<amqp::attach>(); a && a->role == role::sender) {
      offered = a->offered_capabilities.contains("com.microsoft:enable-receiver-runtime-metric");
    }
  }
  CHECK(offered);
  auto stored = w.db->read_events(p1, event_position{}, 10);
  auto received = c.of("delivery_received", l);
  REQUIRE(received.size() == 2);
  for (const rec& r : received) {
    auto m = amqp::message::decode(r.payload);
    REQUIRE(m);
    const auto& da = m->delivery_annotations;
    CHECK(da.get("last_enqueued_sequence_number")->as_long() == 1);
    CHECK(da.get("last_enqueued_offset")->as_string() == std::to_string((*stored)[1].offset));
    CHECK(da.get("last_enqueued_time_utc")->as_timestamp().ms == (*stored)[1].enqueued_time);
    CHECK(da.get("runtime_info_retrieval_time_utc")->as_timestamp().ms == w.wall_ms());
    CHECK(m->message_annotations.contains("x-opt-sequence-number"));
  }
}

TEST_CASE("event hubs: credit, drain, and events trimmed before they were read") {
  hub_options o;
  o.trim_interval = 1h;
  world w(o);
  auto d = device(w);
  for (int i = 0; i < 5; ++i) {
    d.send(w, "e" + std::to_string(i));
  }
  client& c = service(w);
  SUBCASE("credit") {
    auto l = reader(w, c, partition_address(p1),
                    with_credit(2, filter("amqp.annotation.x-opt-offset > '-1'")));
    c.windows.erase(l.value); // no automatic top-up
    CHECK(bodies(c, l).size() == 2);
    REQUIRE(c.engine.flow(l, 10));
    REQUIRE(w.pump());
    CHECK(bodies(c, l) == std::vector<std::string>{"e0", "e1", "e2", "e3", "e4"});
  }
  SUBCASE("drain: the credit is used up when nothing is left") {
    auto l = reader(w, c, partition_address(p1), with_credit(0));
    REQUIRE(c.engine.flow(l, 10, true));
    REQUIRE(w.pump());
    CHECK(c.last("link_flow", l).credit == 0);
    CHECK(c.engine.credit(l) == 0);
  }
  SUBCASE("trimmed: reading goes on from the oldest event retained") {
    REQUIRE(w.db->begin());
    REQUIRE(w.db->trim(p1, 0, 1)); // drops every event: none fits in 1 byte
    REQUIRE(w.db->commit());
    d.send(w, "e5");
    auto l =
        reader(w, c, partition_address(p1), filter("amqp.annotation.x-opt-sequence-number >= '0'"));
    CHECK(bodies(c, l) == std::vector<std::string>{"e5"});
  }
}

TEST_CASE("event hubs: readers get committed events only") {
  world w;
  auto d = device(w);
  client& c = service(w);
  auto l = reader(w, c, partition_address(p1));
  auto* db = static_cast<sqlite3*>(w.db->native_handle());
  sqlite3_commit_hook(
      db, [](void*) { return 1; }, nullptr);
  amqp::message m(std::span<const std::byte>(bytes_of("lost")));
  w.send(*d.c, d.link, m);
  CHECK(d.c->last("delivery_updated", d.link).state == "rejected amqp:internal-error");
  CHECK(bodies(c, l).empty());
  sqlite3_commit_hook(db, nullptr, nullptr);
  d.send(w, "kept");
  auto received = c.of("delivery_received", l);
  REQUIRE(received.size() == 1);
  auto e = amqp::message::decode(received[0].payload);
  CHECK(e->body_text() == "kept");
  CHECK(e->message_annotations.get("x-opt-sequence-number")->as_long() == 0);
}

TEST_CASE("event hubs: $management READ of the event hub and its partitions (§6.4)") {
  world w;
  auto d = device(w);
  d.send(w, "e0");
  d.send(w, "e1");
  client& c = service(w);
  auto requests = w.attach_sender(c, "$management");
  // The Event Hubs SDKs name their answer link in reply-to.
  auto answers = reader(w, c, "$management", named("mgmt-reply"));
  auto ask = [&](const management_request& r) {
    w.send(c, requests, build_management_request(r));
    auto got = c.of("delivery_received", answers);
    REQUIRE_FALSE(got.empty());
    auto m = amqp::message::decode(got.back().payload);
    REQUIRE(m);
    return std::move(*m);
  };
  management_request r;
  r.message_id = std::uint64_t{1};
  r.reply_to = "mgmt-reply";
  r.event_hub = "emulator";
  auto hubm = ask(r);
  auto status = parse_cbs_response(hubm);
  REQUIRE(status);
  CHECK(status->status_code == 200);
  CHECK(status->correlation_id.get().as_ulong() == 1);
  auto info = parse_eventhub_info(hubm.body_value());
  REQUIRE(info);
  CHECK(info->name == "emulator");
  CHECK(info->partition_ids == std::vector<std::string>{"0", "1", "2", "3"});
  CHECK(info->created_at.ms == epoch_ms);
  CHECK(hubm.body_value().find("partition_count")->as_int() == 4);

  r.partition = std::to_string(p1);
  auto pm = ask(r);
  auto pinfo = parse_partition_info(pm.body_value());
  REQUIRE(pinfo);
  auto stored = w.db->read_events(p1, event_position{}, 10);
  CHECK(pinfo->partition == std::to_string(p1));
  CHECK(pinfo->begin_sequence_number == 0);
  CHECK(pinfo->last_enqueued_sequence_number == 1);
  CHECK(pinfo->last_enqueued_offset == std::to_string((*stored)[1].offset));
  CHECK(pinfo->last_enqueued_time_utc.ms == (*stored)[1].enqueued_time);
  CHECK_FALSE(pinfo->is_partition_empty);

  // A partition never written to.
  r.partition = std::to_string((p1 + 1) % 4);
  auto empty = parse_partition_info(ask(r).body_value());
  REQUIRE(empty);
  CHECK(empty->is_partition_empty);
  CHECK(empty->begin_sequence_number == -1);
  CHECK(empty->last_enqueued_sequence_number == -1);
  CHECK(empty->last_enqueued_offset == "-1");

  r.partition = "9";
  auto bad = parse_cbs_response(ask(r));
  CHECK(bad->status_code == 404);
  CHECK(bad->status_description == "The partition '9' does not exist.");
  r.partition.reset();
  r.event_hub = "other";
  auto other = parse_cbs_response(ask(r));
  CHECK(other->status_code == 404);
  CHECK(other->status_description == "The messaging entity 'other' could not be found.");

  amqp::message junk("x");
  junk.properties.message_id = "q";
  junk.properties.reply_to = "mgmt-reply";
  w.send(c, requests, junk);
  auto j = world::response_of(c.last("delivery_received", answers));
  CHECK(j.status_code == 400);
  CHECK(j.correlation_id.get().as_string() == "q");
}
