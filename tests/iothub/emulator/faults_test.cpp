// Fault injection (§9.4): the AzIoTHub_Fault* properties of a D2C message, each fault's effect
// on the wire after its delay.
#include <functional>

#include "amqp/iothub/messages.hpp"
#include "hub_harness.hpp"

using namespace hubtest;

namespace {

amqp::message faulty(std::string_view type, std::string_view delay = "1",
                     std::string_view duration = "20") {
  amqp::message m("payload");
  m.properties.message_id = "fault";
  m.application_properties.set("AzIoTHub_FaultOperationType", std::string(type));
  m.application_properties.set("AzIoTHub_FaultOperationCloseReason", "boom");
  m.application_properties.set("AzIoTHub_FaultOperationDelayInSecs", std::string(delay));
  m.application_properties.set("AzIoTHub_FaultOperationDurationInSecs", std::string(duration));
  return m;
}

// A device on CBS with its telemetry link, C2D receiver and $cbs links.
struct device_client {
  client* c = nullptr;
  world::cbs_links cbs{};
  link_id d2c{};
  link_id c2d{};
};

device_client device(world& w, std::string_view id = "d1") {
  client& c = w.open("ANONYMOUS");
  device_client d{&c, w.open_cbs(c), {}, {}};
  REQUIRE(w.put_token(c, d.cbs, "localhost/devices/" + std::string(id), w.device_token(id, 72h))
              .status_code == 200);
  d.d2c = w.attach_sender(c, "/devices/" + std::string(id) + "/messages/events");
  d.c2d = w.attach_receiver(c, "/devices/" + std::string(id) + "/messages/devicebound", 10);
  return d;
}

std::string send(world& w, const device_client& d, const amqp::message& m) {
  w.send(*d.c, d.d2c, m);
  return d.c->last("delivery_updated", d.d2c).state;
}

} // namespace

TEST_CASE("faults: the message is accepted; after the delay the fault breaks what it names") {
  world w;
  auto d = device(w);
  auto detached = [](link_id device_client::*which, std::string condition) {
    return [which, condition](world&, const device_client& dc) {
      auto r = dc.c->last("link_detached", dc.*which);
      CHECK(r.remote);
      CHECK(r.condition == condition);
      CHECK(r.description == "boom");
      CHECK(dc.c->of("connection_closed").empty());
    };
  };
  std::string type;
  std::function<void(world&, const device_client&)> check;
  SUBCASE("KillAmqpConnection") {
    type = "KillAmqpConnection";
    check = [](world&, const device_client& dc) {
      auto r = dc.c->last("connection_closed");
      CHECK(r.remote);
      CHECK(r.condition == "amqp:connection:forced");
      CHECK(r.description == "boom");
    };
  }
  SUBCASE("KillAmqpSession") {
    type = "KillAmqpSession";
    check = [](world&, const device_client& dc) {
      auto r = dc.c->last("session_ended");
      CHECK(r.condition == "amqp:internal-error");
      CHECK(r.description == "boom");
      CHECK(dc.c->of("connection_closed").empty());
    };
  }
  SUBCASE("KillAmqpD2CLink") {
    type = "KillAmqpD2CLink";
    check = detached(&device_client::d2c, "amqp:link:detach-forced");
  }
  SUBCASE("KillAmqpC2DLink") {
    type = "KillAmqpC2DLink";
    check = detached(&device_client::c2d, "amqp:link:detach-forced");
  }
  SUBCASE("KillAmqpCBSLinkReq") {
    type = "KillAmqpCBSLinkReq";
    check = [](world& ww, const device_client& dc) {
      auto r = dc.c->last("link_detached", dc.cbs.requests);
      CHECK(r.condition == "amqp:link:detach-forced");
      CHECK(ww.attached(*dc.c, dc.cbs.responses));
    };
  }
  SUBCASE("KillAmqpCBSLinkResp") {
    type = "KillAmqpCBSLinkResp";
    check = [](world& ww, const device_client& dc) {
      auto r = dc.c->last("link_detached", dc.cbs.responses);
      CHECK(r.condition == "amqp:link:detach-forced");
      CHECK(ww.attached(*dc.c, dc.cbs.requests));
    };
  }
  SUBCASE("InvokeAuthError") {
    type = "InvokeAuthError";
    check = [](world& ww, const device_client& dc) {
      CHECK(dc.c->last("link_detached", dc.d2c).condition == "amqp:unauthorized-access");
      CHECK(dc.c->last("link_detached", dc.c2d).condition == "amqp:unauthorized-access");
      CHECK(ww.attached(*dc.c, dc.cbs.requests));
    };
  }
  SUBCASE("KillTcp: the socket goes, no close frame") {
    type = "KillTcp";
    check = [](world& ww, const device_client& dc) {
      REQUIRE(ww.aborted.size() == 1);
      CHECK(ww.aborted[0] == dc.c->handle);
      CHECK(ww.h().connections() == 0);
      std::size_t closes = 0;
      for (const auto& item : dc.c->wire.items) {
        closes += item.as<amqp::close>() ? 1U : 0U;
      }
      CHECK(closes == 0);
      CHECK(dc.c->last("connection_closed").code == amqp::errc::connection_lost);
    };
  }
  CHECK(send(w, d, faulty(type)) == "accepted");
  w.advance(999ms);
  CHECK(d.c->of("connection_closed").empty());
  CHECK(d.c->of("session_ended").empty());
  w.advance(1ms);
  check(w, d);
}

TEST_CASE("faults: InvokeThrottling and InvokeMaxMessageQuota refuse the device's messages for "
          "the duration") {
  world w;
  auto d = device(w);
  auto other = device(w, "d2");
  std::string type = "InvokeThrottling";
  std::string refused = "rejected com.microsoft:device-container-throttled";
  SUBCASE("throttling") {}
  SUBCASE("quota") {
    type = "InvokeMaxMessageQuota";
    refused = "rejected amqp:resource-limit-exceeded";
  }
  CHECK(send(w, d, faulty(type, "0", "20")) == "accepted");
  w.advance(0ms);
  CHECK(send(w, d, amqp::message("x")) == refused);
  CHECK(send(w, other, amqp::message("x")) == "accepted"); // another device is not affected
  w.advance(19s);
  CHECK(send(w, d, amqp::message("x")) == refused);
  w.advance(1s);
  CHECK(send(w, d, amqp::message("x")) == "accepted");
}

TEST_CASE("faults: ShutDownAmqp closes every connection; a batch envelope carries the fault; "
          "unknown faults do nothing") {
  world w;
  auto d = device(w);
  auto other = device(w, "d2");
  SUBCASE("ShutDownAmqp on a batch envelope") {
    std::vector<amqp::message> inner = {amqp::message("a"), amqp::message("b")};
    amqp::message envelope = faulty("ShutDownAmqp", "2");
    envelope.clear_body();
    REQUIRE(build_batch(inner, 256 * 1024, envelope));
    w.send(*d.c, d.d2c, envelope, false, batch_message_format);
    CHECK(d.c->last("delivery_updated", d.d2c).state == "accepted");
    w.advance(2s);
    for (const device_client* x : {&d, &other}) {
      auto r = x->c->last("connection_closed");
      CHECK(r.condition == "amqp:connection:forced");
      CHECK(r.description == "boom");
    }
  }
  SUBCASE("twin and method faults, and unknown ones, are ignored") {
    for (const char* t : {"KillAmqpTwinLinkReq", "KillAmqpMethodReqLink", "ShutDownMqtt", "Nope"}) {
      CHECK(send(w, d, faulty(t, "0")) == "accepted");
    }
    w.advance(10s);
    CHECK(d.c->of("connection_closed").empty());
    CHECK(d.c->of("link_detached", d.d2c).empty());
  }
}
