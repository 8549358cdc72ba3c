// size_proton_send_one: what size_send_one does, with Qpid Proton C's proactor (after
// Proton's examples/c/send.c, cut down to one message): connect over TCP, send one message,
// wait for its outcome, close. Measured by bench_size; Proton's own code is in the shared
// library libqpid-proton.so (core and proactor), which bench_size counts beside the program.
// Written against Proton's C API (compiled as C++: the project builds no C).
//
// Usage: size_proton_send_one [HOST [PORT [ADDRESS]]]   (default 127.0.0.1 5672 q)
// Exit status 0 when the message was accepted.
#include <cstdio>
#include <cstdlib>
#include <span>

#include <proton/condition.h>
#include <proton/connection.h>
#include <proton/delivery.h>
#include <proton/link.h>
#include <proton/message.h>
#include <proton/proactor.h>
#include <proton/session.h>
#include <proton/transport.h>

namespace {

struct app {
  const char* address = "q";
  pn_message_t* message = nullptr;
  pn_rwbytes_t buffer{};
  bool sent = false;
  int exit_code = 1;
};

bool failed(pn_condition_t* c) {
  if (pn_condition_is_set(c)) {
    std::fprintf(stderr, "%s: %s\n", pn_condition_get_name(c), pn_condition_get_description(c));
    return true;
  }
  return false;
}

// Returns false once the proactor has nothing more to do.
bool handle(app& a, pn_event_t* e) {
  switch (pn_event_type(e)) {
  case PN_CONNECTION_INIT: {
    pn_connection_t* c = pn_event_connection(e);
    pn_connection_set_container(c, "size_proton_send_one");
    pn_connection_open(c);
    pn_session_t* s = pn_session(c);
    pn_session_open(s);
    pn_link_t* l = pn_sender(s, "sender");
    pn_terminus_set_address(pn_link_target(l), a.address);
    pn_link_open(l);
    break;
  }
  case PN_LINK_FLOW: {
    pn_link_t* l = pn_event_link(e);
    if (!a.sent && pn_link_credit(l) > 0) {
      a.sent = true;
      pn_delivery(l, pn_dtag("1", 1));
      pn_data_t* body = pn_message_body(a.message);
      pn_data_put_binary(body, pn_bytes(5, "hello"));
      if (pn_message_send(a.message, l, &a.buffer) < 0) {
        pn_connection_close(pn_event_connection(e));
      }
    }
    break;
  }
  case PN_DELIVERY: {
    pn_delivery_t* d = pn_event_delivery(e);
    if (pn_delivery_remote_state(d) == PN_ACCEPTED) {
      a.exit_code = 0;
    }
    pn_delivery_settle(d);
    pn_connection_close(pn_event_connection(e));
    break;
  }
  case PN_TRANSPORT_CLOSED:
    (void)failed(pn_transport_condition(pn_event_transport(e)));
    break;
  case PN_CONNECTION_REMOTE_CLOSE:
    (void)failed(pn_connection_remote_condition(pn_event_connection(e)));
    pn_connection_close(pn_event_connection(e));
    break;
  case PN_PROACTOR_INACTIVE:
    return false;
  default:
    break;
  }
  return true;
}

} // namespace

int main(int argc, char** argv) {
  const std::span<char*> args(argv, static_cast<std::size_t>(argc));
  const char* host = args.size() > 1 ? args[1] : "127.0.0.1";
  const char* port = args.size() > 2 ? args[2] : "5672";
  app a;
  a.address = args.size() > 3 ? args[3] : "q";
  a.message = pn_message();
  pn_proactor_t* proactor = pn_proactor();
  char addr[PN_MAX_ADDR];
  pn_proactor_addr(addr, sizeof addr, host, port);
  pn_proactor_connect2(proactor, nullptr, nullptr, addr);
  for (bool more = true; more;) {
    pn_event_batch_t* events = pn_proactor_wait(proactor);
    for (pn_event_t* e = pn_event_batch_next(events); e != nullptr && more;
         e = pn_event_batch_next(events)) {
      more = handle(a, e);
    }
    pn_proactor_done(proactor, events);
  }
  pn_proactor_free(proactor);
  std::free(a.buffer.start);
  pn_message_free(a.message);
  return a.exit_code;
}
