// Fuzz target connection_server: a server-role engine (SASL or not, per a parameter bit)
// whose peer is the input: a valid client protocol header (AMQP, or SASL when SASL is on),
// then the input's bytes, chunked, interleaved with virtual-time advances, and driven like
// an application drives it. Input format and checks: support/engine_driver.hpp.
#include <cstddef>
#include <cstdint>

#include "support/engine_driver.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)amqp::fuzz::engine::run(amqp::fuzz::engine::kind::server, data, size);
  return 0;
}
