// Records the seeds of the iothub_emulator fuzz target: a client engine (amqp::connection,
// client role) talks to the hub of support/iothub_world.hpp through a scripted scenario (SASL
// in each mode, CBS put-tokens good and bad, telemetry and batches, refused links, the Event
// Hubs redirect, partition receivers with filters and epochs, $management), and every byte
// the client writes after its protocol header becomes the seed:
//
//   flags | chunk 0 | step 0 | variant | the client's bytes after its header
//
// Replaying a seed feeds the same bytes to the same hub, which answers as it did (the client's
// bytes do not depend on the timing of the answers). The recorder checks that each scenario
// reached what it was for (events stored, links attached or refused) and that its seed
// replays through the fuzz target.
//
//   fuzz_record_iothub_emulator_seeds OUT-DIR   writes OUT-DIR/iothub_emulator/<scenario>
//   fuzz_record_iothub_emulator_seeds --check   records and checks every scenario, writes
//                                               nothing
//
// fuzz/seeds/record_iothub_emulator_seeds.sh names them by sha256 into
// fuzz/corpus/iothub_emulator/.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "amqp/connection.hpp"
#include "amqp/iothub/cbs.hpp"
#include "amqp/iothub/eventhubs.hpp"
#include "amqp/iothub/messages.hpp"
#include "amqp/iothub/sas.hpp"
#include "amqp/message.hpp"
#include "support/iothub_world.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

using namespace amqp;
using namespace amqp::fuzz::iothub;
namespace ih = amqp::iothub;

namespace {

// One client connected to the fuzz world's hub, its bytes recorded.
class session {
public:
  session(std::uint8_t variant, const connection_options& o, const peer_info& peer)
      : w_(make_world(variant)), client_(o) {
    h_ = w_.h->add_connection(now_, peer);
  }

  connection& client() { return client_; }
  world& w() { return w_; }
  std::vector<std::byte>& bytes() { return bytes_; }
  bool failed() const { return failed_; }

  // Moves bytes both ways until nothing moves; the client accepts what it receives.
  void pump() {
    for (int round = 0; round < 10'000; ++round) {
      bool moved = false;
      while (auto e = client_.next_event()) {
        moved = true;
        if (const auto* d = std::get_if<delivery_received>(&*e)) {
          if (!d->settled) {
            (void)client_.settle(d->delivery, accepted{});
          }
          received_.emplace_back(d->payload.begin(), d->payload.end());
        } else if (const auto* ld = std::get_if<link_detached>(&*e)) {
          detached_.push_back(ld->error ? std::string(ld->error->condition.str) : std::string());
        }
      }
      amqp::connection* e = w_.h->engine(h_);
      if (e == nullptr) {
        return;
      }
      if (auto out = client_.pending_output(); !out.empty() && e->wants_read()) {
        bytes_.insert(bytes_.end(), out.begin(), out.end());
        if (!w_.h->receive(h_, out, now_)) {
          failed_ = true;
        }
        client_.consume_output(out.size());
        w_.h->process(h_, now_);
        moved = true;
      }
      if (auto out = e->pending_output(); !out.empty()) {
        if (!client_.finished()) {
          (void)client_.receive(out, now_);
        }
        e->consume_output(out.size());
        w_.h->on_output_written(h_);
        moved = true;
      }
      (void)w_.h->take_dirty();
      if (!moved) {
        return;
      }
    }
  }

  // The name of the link attached last (its target address too, for a receiver).
  const std::string& last_name() const { return last_name_; }

  link_id attach(session_id s, role r, std::string_view address, std::uint32_t credit = 0,
                 value properties = {}, value filter = {}, value desired = {}) {
    const std::string name = "link-" + std::to_string(++names_);
    last_name_ = name;
    link_options o;
    o.name = name;
    o.role = r;
    o.snd_settle_mode = sender_settle_mode::unsettled;
    o.source = source{};
    o.target = target{};
    if (r == role::sender) {
      o.source->address = name;
      o.target->address = address;
    } else {
      o.source->address = address;
      o.source->filter = filter;
      o.target->address = name;
    }
    o.properties = properties;
    o.desired_capabilities = desired;
    auto l = client_.attach(s, o);
    if (!l) {
      failed_ = true;
      return {};
    }
    if (credit > 0) {
      (void)client_.flow(*l, credit);
    }
    pump();
    return *l;
  }

  void send(link_id l, const amqp::message& m, std::uint32_t format = 0, bool settled = false) {
    auto b = m.encode();
    if (!b) {
      failed_ = true;
      return;
    }
    transfer_options t;
    t.payload = *b;
    t.message_format = format;
    t.settled = settled;
    if (!client_.send(l, t)) {
      failed_ = true;
    }
    pump();
  }

  std::size_t events() {
    std::size_t n = 0;
    for (std::uint32_t p = 0; p < w_.h->options().partitions; ++p) {
      auto e = w_.db->read_events(p, event_position{}, 10'000);
      n += e ? e->size() : 0;
    }
    return n;
  }
  const std::vector<std::vector<std::byte>>& received() const { return received_; }
  const std::vector<std::string>& detached() const { return detached_; }

private:
  world w_;
  connection client_;
  connection_handle h_ = 0;
  time_point now_{};
  std::vector<std::byte> bytes_;
  std::vector<std::vector<std::byte>> received_;
  std::vector<std::string> detached_;
  int names_ = 0;
  std::string last_name_;
  bool failed_ = false;
};

std::string token(std::string_view resource, const char* key, std::string_view key_name = {}) {
  auto t = ih::make_sas_token(resource, key, token_expiry, key_name);
  return t ? *t : std::string();
}

amqp::message put_token(std::uint64_t id, std::string_view audience, std::string_view tok) {
  ih::put_token_request r;
  r.message_id = id;
  r.reply_to = "cbs";
  r.audience = audience;
  r.token = tok;
  return ih::build_put_token(r);
}

amqp::message telemetry(std::string_view body) {
  amqp::message m(
      std::span<const std::byte>(reinterpret_cast<const std::byte*>(body.data()), body.size()));
  m.properties.message_id = "msg-1";
  m.properties.content_type = "application/json";
  m.application_properties.set("temperature", "21");
  return m;
}

connection_options sasl(std::string_view mechanism, std::string_view user = {},
                        std::string_view password = {}) {
  connection_options o;
  o.role = connection_role::client;
  o.container_id = "seed-client";
  o.hostname = "localhost";
  o.sasl.enabled = !mechanism.empty();
  o.sasl.mechanism = mechanism;
  o.sasl.username = user;
  o.sasl.password = password;
  if (mechanism == "MSSBCBS") {
    o.sasl.initial_response = std::span<const std::byte>{};
  }
  return o;
}

struct scenario {
  std::string name;
  std::uint8_t flags = 1; // SASL header
  std::uint8_t variant = 0;
  // Runs the script; returns what must hold afterwards (false: the recording failed).
  std::function<bool(session&)> script;
  // The client's SASL mechanism ("": none), PLAIN user name and password.
  std::string mechanism;
  std::string user;
  std::string password;
  peer_info peer;
};

std::vector<scenario> scenarios() {
  std::vector<scenario> out;
  // Shared by the scenarios: open, begin, CBS links.
  auto start = [](session& s) {
    (void)s.client().open();
    auto b = s.client().begin();
    s.pump();
    return b ? *b : session_id{};
  };

  out.push_back(
      {"cbs-telemetry-batch",
       1,
       0,
       [&](session& s) {
         const session_id ss = start(s);
         auto req = s.attach(ss, role::sender, "$cbs");
         s.attach(ss, role::receiver, "$cbs", 10);
         s.send(req, put_token(0, "localhost/devices/d1", token("localhost/devices/d1", key_a)));
         auto d2c = s.attach(ss, role::sender, "/devices/d1/messages/events");
         s.send(d2c, telemetry("{\"t\":1}"));
         s.send(d2c, telemetry("{\"t\":2}"));
         std::vector<amqp::message> inner = {telemetry("a"), telemetry("b"), telemetry("c")};
         amqp::message envelope;
         (void)ih::build_batch(inner, 256 * 1024, envelope);
         s.send(d2c, envelope, ih::batch_message_format);
         (void)s.client().detach(d2c);
         (void)s.client().close();
         s.pump();
         return s.events() == 5;
       },
       "ANONYMOUS",
       "",
       "",
       {}});
  out.push_back(
      {"mssbcbs-refusals",
       1,
       0,
       [&](session& s) {
         const session_id ss = start(s);
         auto req = s.attach(ss, role::sender, "$cbs");
         s.attach(ss, role::receiver, "$cbs", 10);
         // Signed with a key the device does not have.
         s.send(req, put_token(1, "localhost/devices/d1",
                               token("localhost/devices/d1",
                                     "Y2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2M=")));
         s.send(req,
                put_token(2, "localhost/devices/ghost", token("localhost/devices/ghost", key_a)));
         s.send(req, put_token(3, "localhost/devices/d2", token("localhost/devices/d1", key_a)));
         s.attach(ss, role::sender, "/devices/d1/messages/events");
         s.attach(ss, role::sender, "/nowhere");
         s.attach(ss, role::sender, "/devices/d1/twin");
         s.attach(ss, role::receiver, "/devices/d1/messages/events");
         (void)s.client().close();
         s.pump();
         return s.detached().size() >= 4 && s.events() == 0;
       },
       "MSSBCBS",
       "",
       "",
       {}});
  const std::string device_password = token("localhost/devices/d1", key_a);
  out.push_back({"plain-device-module-sizes",
                 1,
                 2,
                 [&](session& s) {
                   const session_id ss = start(s);
                   auto d2c = s.attach(ss, role::sender, "/devices/d1/messages/events");
                   s.send(d2c, telemetry(std::string(2000, 'x'))); // above the 1 KiB variant
                   s.send(d2c, telemetry("small"));
                   std::vector<amqp::message> inner(4, telemetry("i"));
                   amqp::message envelope;
                   (void)ih::build_batch(inner, 256 * 1024, envelope, 10);
                   s.send(d2c, envelope, ih::batch_message_format); // above 3 messages
                   (void)s.client().close();
                   s.pump();
                   return s.events() == 1;
                 },
                 "PLAIN",
                 "d1@sas.emulator",
                 device_password,
                 {}});
  const std::string service_password = token("localhost", key_b, "service");
  out.push_back(
      {"plain-service-eventhubs",
       1,
       0,
       [&](session& s) {
         const session_id ss = start(s);
         s.attach(ss, role::receiver, "/messages/events/ConsumerGroups/$Default/Partitions/0", 10);
         auto sel = ih::selector_filter_set(ih::start_of_stream());
         const value metric(symbol_view{"com.microsoft:enable-receiver-runtime-metric"});
         for (std::uint32_t p = 0; p < 4; ++p) {
           s.attach(ss, role::receiver,
                    "emulator/ConsumerGroups/$Default/Partitions/" + std::to_string(p), 10, {},
                    sel ? sel->get() : value{}, metric);
         }
         const value epoch_kv[2] = {value(symbol_view{"com.microsoft:epoch"}),
                                    value(std::int64_t{3})};
         s.attach(ss, role::receiver, "emulator/ConsumerGroups/cg1/Partitions/1", 10,
                  value::map(epoch_kv));
         s.attach(ss, role::receiver, "emulator/ConsumerGroups/cg1/Partitions/1", 10);
         auto bad = ih::selector_filter_set(
             ih::selector{ih::position_field::sequence_number, ih::position_operator::equal, "7"});
         s.attach(ss, role::receiver, "emulator/Partitions/2", 10, {}, bad ? bad->get() : value{});
         auto mreq = s.attach(ss, role::sender, "$management");
         s.attach(ss, role::receiver, "$management", 10);
         ih::management_request r;
         r.message_id = std::uint64_t{7};
         r.reply_to = s.last_name();
         r.event_hub = "emulator";
         s.send(mreq, ih::build_management_request(r));
         r.partition = "1";
         s.send(mreq, ih::build_management_request(r));
         r.partition = "9";
         s.send(mreq, ih::build_management_request(r));
         (void)s.client().close();
         s.pump();
         return s.received().size() == 3 && !s.detached().empty();
       },
       "PLAIN",
       "service@sas.root.emulator",
       service_password,
       {}});
  out.push_back({"plain-bad-password",
                 1,
                 0,
                 [&](session& s) {
                   start(s);
                   return s.client().finished() || s.client().error();
                 },
                 "PLAIN",
                 "d1@sas.emulator",
                 "SharedAccessSignature sr=x&sig=y&se=1",
                 {}});
  const std::string owner_password = token("localhost", key_a, "iothubowner");
  out.push_back(
      {"c2d-feedback-faults",
       1,
       0,
       [&](session& s) {
         const session_id ss = start(s);
         auto svc = s.attach(ss, role::sender, "/messages/devicebound");
         for (const char* ack : {"full", "positive", "bogus"}) {
           amqp::message m = telemetry("to the device");
           m.properties.to = std::string("/devices/d1/messages/devicebound");
           m.application_properties.set("iothub-ack", ack);
           s.send(svc, m);
         }
         amqp::message ghost = telemetry("nobody");
         ghost.properties.to = std::string("/devices/ghost/messages/devicebound");
         s.send(svc, ghost);
         // The client accepts every delivery: both messages complete.
         s.attach(ss, role::receiver, "/devices/d1/messages/devicebound", 10);
         s.attach(ss, role::receiver, "/messages/serviceBound/feedback", 10);
         s.attach(ss, role::receiver, "/messages/serviceBound/filenotifications", 10);
         auto d2c = s.attach(ss, role::sender, "/devices/d1/messages/events");
         for (const char* fault : {"InvokeThrottling", "KillAmqpC2DLink", "KillAmqpD2CLink"}) {
           amqp::message m = telemetry("fault");
           m.application_properties.set("AzIoTHub_FaultOperationType", fault);
           m.application_properties.set("AzIoTHub_FaultOperationDelayInSecs", "1");
           m.application_properties.set("AzIoTHub_FaultOperationDurationInSecs", "5");
           s.send(d2c, m);
         }
         (void)s.client().close();
         s.pump();
         return s.received().size() == 2 && s.events() == 3;
       },
       "PLAIN",
       "iothubowner@sas.root.emulator",
       owner_password,
       {}});
  peer_info cam;
  cam.tls = true;
  cam.certificate_subject = "CN=cam,O=fuzz";
  out.push_back({"x509-no-sasl", 2, 0,
                 [&](session& s) {
                   const session_id ss = start(s);
                   auto d2c = s.attach(ss, role::sender, "/devices/cam/messages/events");
                   s.send(d2c, telemetry("from a camera"), 0, true);
                   (void)s.client().close();
                   s.pump();
                   return s.events() == 1;
                 },
                 "", "", "", cam});
  out.push_back({"direct-events-no-redirect",
                 1,
                 1,
                 [&](session& s) {
                   const session_id ss = start(s);
                   s.attach(ss, role::receiver,
                            "/messages/events/ConsumerGroups/$Default/Partitions/0", 10);
                   (void)s.client().close();
                   s.pump();
                   return s.detached().empty();
                 },
                 "PLAIN",
                 "service@sas.root.emulator",
                 service_password,
                 {}});
  return out;
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT-DIR | --check\n", argv[0]);
    return 2;
  }
  const bool check_only = std::string_view(argv[1]) == "--check";
  bool ok = true;
  std::size_t written = 0;
  for (const scenario& sc : scenarios()) {
    session s(sc.variant, sasl(sc.mechanism, sc.user, sc.password), sc.peer);
    const bool reached = sc.script(s);
    if (!reached || s.failed() || s.bytes().size() < 8) {
      std::fprintf(stderr,
                   "record: scenario %s did not go as scripted (%zu events, %zu received, %zu "
                   "detached, %s)\n",
                   sc.name.c_str(), s.events(), s.received().size(), s.detached().size(),
                   s.failed() ? "a call failed" : "no call failed");
      ok = false;
      continue;
    }
    std::vector<std::byte> seed = {std::byte{sc.flags}, std::byte{0}, std::byte{0},
                                   std::byte{sc.variant}};
    seed.insert(seed.end(), s.bytes().begin() + 8, s.bytes().end());
    // The seed replays through the fuzz target, whole and in small chunks with time passing.
    (void)LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(seed.data()), seed.size());
    std::vector<std::byte> chunked = seed;
    chunked[1] = std::byte{13};
    chunked[2] = std::byte{30};
    (void)LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(chunked.data()),
                                 chunked.size());
    if (check_only) {
      continue;
    }
    const std::filesystem::path dir = std::filesystem::path(argv[1]) / "iothub_emulator";
    std::filesystem::create_directories(dir);
    for (const auto& [name, bytes] : {std::pair{sc.name, seed}, {sc.name + "-chunked", chunked}}) {
      std::ofstream f(dir / name, std::ios::binary);
      f.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
      ++written;
    }
  }
  std::fprintf(stderr, "record: %zu seeds written%s\n", written, ok ? "" : ", FAILURES");
  return ok ? 0 : 1;
}
