// Fuzz target sasl: the SASL layer (AMQP 1.0 §5.3) of the engine. By default a server
// offering PLAIN ANONYMOUS EXTERNAL (accept_anonymous per parameter bit 1), fed a SASL
// header and then the input's bytes; the driver answers sasl_init_received and
// sasl_response_received with sasl_challenge or sasl_complete (ok, auth, sys, sys-perm)
// chosen by the input, or later. Parameter bit 0 selects a client instead, its mechanism
// chosen by bits 5-7 (ANONYMOUS, PLAIN, EXTERNAL, a pluggable X-TOKEN answered with
// sasl_respond, ...), pipelined per bit 1. After the outcome the connection goes on as in
// connection_client / connection_server. Input format and checks: support/engine_driver.hpp.
#include <cstddef>
#include <cstdint>

#include "support/engine_driver.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)amqp::fuzz::engine::run(amqp::fuzz::engine::kind::sasl, data, size);
  return 0;
}
