// size_send_one: the smallest useful program on our stack, measured by bench_size (its
// stripped .text and file size): connect over TCP with the blocking client, send one message,
// wait for its outcome, close. Linked statically against amqp::transport and amqp::amqp, and
// dynamically against the system's libstdc++ and OpenSSL.
//
// Usage: size_send_one [URL [ADDRESS]]   (default amqp://127.0.0.1:5672, address "q")
// Exit status 0 when the message was accepted.
#include <cstddef>
#include <cstdio>
#include <span>
#include <string_view>

#include "amqp/message.hpp"
#include "amqp/transport/blocking.hpp"

int main(int argc, char** argv) {
  const std::span<char*> args(argv, static_cast<std::size_t>(argc));
  const std::string_view url = args.size() > 1 ? args[1] : "amqp://127.0.0.1:5672";
  const std::string_view address = args.size() > 2 ? args[2] : "q";

  auto client = amqp::transport::blocking_client::connect(url);
  if (!client) {
    std::fprintf(stderr, "connect: %s\n", client.error().message().c_str());
    return 1;
  }
  auto sender = client->open_sender(address);
  if (!sender) {
    std::fprintf(stderr, "open_sender: %s\n", sender.error().message().c_str());
    return 1;
  }
  // The message as users write it: an amqp-value "hello".
  const auto outcome = sender->send(amqp::message("hello"));
  const bool accepted = outcome && outcome->state == amqp::state_kind::accepted;
  if (!accepted) {
    std::fprintf(stderr, "send: %s\n",
                 outcome ? "not accepted" : outcome.error().message().c_str());
  }
  (void)client->close();
  return accepted ? 0 : 1;
}
