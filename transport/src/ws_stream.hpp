// AMQP over WebSocket (RFC 6455, subprotocol AMQPWSB10) as a byte_stream: the sans-IO
// handshake and framer of amqp/transport/websocket.hpp around a TCP or TLS stream.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "amqp/transport/websocket.hpp"
#include "stream.hpp"

namespace amqp::transport::detail {

// Client: sends the upgrade request for `path` on `host`:`port`, checks the response, then
// hands over a stream that carries binary messages.
void async_websocket_client(
    std::shared_ptr<byte_stream> inner, const std::string& host, std::uint16_t port, bool secure,
    const std::string& path,
    std::function<void(std::error_code, std::shared_ptr<byte_stream>)> done);

// Server: reads and validates the upgrade request (paths: accepted request paths, empty for
// any), answers it, then hands over the stream.
void async_websocket_server(
    std::shared_ptr<byte_stream> inner, std::vector<std::string> paths,
    std::function<void(std::error_code, std::shared_ptr<byte_stream>)> done);

} // namespace amqp::transport::detail
