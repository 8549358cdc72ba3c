// A byte stream under an AMQP connection: TCP, TLS over TCP, or WebSocket over either. The
// engine driver reads and writes through this interface whatever the layers below are.
// Internal: includes Asio and OpenSSL.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <system_error>

#include <asio/any_io_executor.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>

#include "amqp/result.hpp"
#include "amqp/transport/options.hpp"

namespace amqp::transport::detail {

using io_handler = std::function<void(std::error_code, std::size_t)>;
using const_buffers = std::span<const std::span<const std::byte>>;

class byte_stream {
public:
  virtual ~byte_stream() = default;
  // Reads at least one byte into `buffer` (or fails; EOF is asio::error::eof).
  virtual void async_read_some(std::span<std::byte> buffer, io_handler handler) = 0;
  // Waits, holding no buffer, until a read would find bytes, the end of the stream or an
  // error (which the read then reports): a quiet connection waits so. The handler gets
  // operation_aborted after close(). This default completes at once, for streams that
  // cannot wait without a buffer: their read then waits holding it.
  virtual void async_wait_readable(std::function<void(std::error_code)> handler);
  // Writes every byte of `buffers` in order (a gather write: one system call when the
  // socket takes it all). The bytes must stay valid until the handler runs; the span of
  // spans itself is copied. At most one write at a time.
  virtual void async_write(const_buffers buffers, io_handler handler) = 0;
  // Closes the stream at once: pending operations complete with operation_aborted.
  virtual void close() noexcept = 0;
  [[nodiscard]] virtual asio::any_io_executor executor() = 0;
  // A short description of the peer ("127.0.0.1:5672"), for logs.
  [[nodiscard]] virtual std::string peer() const = 0;
  // TLS: the subject (RFC 2253) of the certificate the peer presented, if it was verified
  // against the trusted CAs; empty otherwise (and for plain TCP).
  [[nodiscard]] virtual std::string peer_certificate_subject() const { return {}; }
  // True if the bytes travel inside TLS (at this layer or below).
  [[nodiscard]] virtual bool tls() const noexcept { return false; }
  // TLS, server side: the host name the client sent as SNI (RFC 6066 §3); empty when it sent
  // none (and for plain TCP).
  [[nodiscard]] virtual std::string tls_server_name() const { return {}; }
  // WebSocket, server side: the request path of the opening handshake ("/$iothub/websocket");
  // empty for other streams.
  [[nodiscard]] virtual std::string websocket_path() const { return {}; }
};

// A stream over a connected TCP socket (TCP_NODELAY set).
[[nodiscard]] std::shared_ptr<byte_stream> make_tcp_stream(asio::ip::tcp::socket socket);

// A TLS context for a client (verification, CA file, client certificate) or a server
// (certificate and key). Errors: errc::invalid_argument with a readable message in `why`.
[[nodiscard]] result<std::shared_ptr<asio::ssl::context>>
make_tls_context(const tls_options& o, bool server, std::string& why);

// make_tls_context for a client, shared: clients with the same CA, certificate, key and
// verification share one context (its certificates and trust store loaded once, a few KB
// each), as long as one of them holds it; the next one after the last is gone loads the files
// again. Thread-safe (clients on several io_contexts). Errors: as make_tls_context.
[[nodiscard]] result<std::shared_ptr<asio::ssl::context>>
shared_client_tls_context(const tls_options& o, std::string& why);

// TLS over a connected TCP socket: runs the handshake (client: SNI and host-name check for
// `host`), then hands over the stream. OpenSSL reads the socket directly and its record
// buffers exist only while they hold bytes (tls_stream.cpp): an idle connection holds no
// buffer. `done` never runs inside this call.
void async_tls_handshake(std::shared_ptr<asio::ssl::context> ctx, asio::ip::tcp::socket socket,
                         bool server, const std::string& host, bool verify_host,
                         std::function<void(std::error_code, std::shared_ptr<byte_stream>)> done);

// "address:port" of the socket's peer, "?" if it has none (byte_stream::peer).
[[nodiscard]] std::string endpoint_text(const asio::ip::tcp::socket& s);

// Shuts the socket down both ways and closes it, errors ignored (byte_stream::close: no TLS
// close_notify exchange either, the AMQP close handshake has ended the connection).
void close_socket(asio::ip::tcp::socket& s) noexcept;

// TLS streams alive in the process (for the tests: a connection dropped with its
// io_context must free its stream).
[[nodiscard]] std::size_t live_tls_streams() noexcept;

} // namespace amqp::transport::detail
