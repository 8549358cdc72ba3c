// The TCP byte stream and TLS contexts (the TLS stream: tls_stream.cpp).
#include "stream.hpp"

#include <array>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include <asio/buffer.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/ssl/context.hpp>
#include <asio/write.hpp>
#include <openssl/ssl.h>

#include "amqp/error.hpp"

namespace amqp::transport::detail {
namespace {

// At most this many buffers per gather write (the engine driver passes one or two; the
// WebSocket layer three).
constexpr std::size_t max_gather = 8;

using gather_array = std::array<asio::const_buffer, max_gather>;

// `b` holds the buffer descriptors until the write completes: asio::async_write keeps a
// view of the sequence, not a copy, across the partial writes of a large batch.
template <typename Stream>
void write_all(Stream& s, gather_array& b, const_buffers buffers, io_handler handler) {
  const std::size_t n = std::min(buffers.size(), max_gather);
  std::size_t total = 0;
  for (std::size_t i = 0; i < n; ++i) {
    b[i] = asio::const_buffer(buffers[i].data(), buffers[i].size());
    total += buffers[i].size();
  }
  // Asio's default completion condition (transfer_all) offers the socket at most 64 KiB
  // per call; asking for everything that remains makes a batch one system call (more only
  // when the socket buffer takes part of it).
  asio::async_write(
      s, std::span<const asio::const_buffer>(b.data(), n),
      [total](const std::error_code& ec, std::size_t done) -> std::size_t {
        return ec ? 0 : total - done;
      },
      [h = std::move(handler)](std::error_code ec, std::size_t written) { h(ec, written); });
}

// A stream over a connected TCP socket.
class tcp_stream final : public byte_stream {
public:
  explicit tcp_stream(asio::ip::tcp::socket socket) : socket_(std::move(socket)) {
    std::error_code ec;
    socket_.set_option(asio::ip::tcp::no_delay(true), ec);
  }

  void async_read_some(std::span<std::byte> buffer, io_handler handler) override {
    socket_.async_read_some(
        asio::buffer(buffer.data(), buffer.size()),
        [h = std::move(handler)](std::error_code ec, std::size_t n) { h(ec, n); });
  }
  void async_wait_readable(std::function<void(std::error_code)> handler) override {
    // Bytes already there (a connection under load): no round through the reactor.
    std::error_code available_error;
    if (socket_.available(available_error) > 0 && !available_error) {
      asio::post(socket_.get_executor(), [h = std::move(handler)] { h({}); });
      return;
    }
    socket_.async_wait(asio::socket_base::wait_read,
                       [h = std::move(handler)](std::error_code ec) { h(ec); });
  }
  void async_write(const_buffers buffers, io_handler handler) override {
    write_all(socket_, gather_, buffers, std::move(handler));
  }
  void close() noexcept override { close_socket(socket_); }
  asio::any_io_executor executor() override { return socket_.get_executor(); }
  [[nodiscard]] std::string peer() const override { return endpoint_text(socket_); }

private:
  asio::ip::tcp::socket socket_;
  gather_array gather_{};
};

} // namespace

void byte_stream::async_wait_readable(std::function<void(std::error_code)> handler) {
  asio::post(executor(), [h = std::move(handler)] { h({}); });
}

std::shared_ptr<byte_stream> make_tcp_stream(asio::ip::tcp::socket socket) {
  return std::make_shared<tcp_stream>(std::move(socket));
}

result<std::shared_ptr<asio::ssl::context>> make_tls_context(const tls_options& o, bool server,
                                                             std::string& why) {
  auto ctx = std::make_shared<asio::ssl::context>(server ? asio::ssl::context::tls_server
                                                         : asio::ssl::context::tls_client);
  // TLS 1.2 is the minimum (as IoT Hub requires); SSLv2/3, TLS 1.0/1.1 and compression off.
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_compression);
  std::error_code ec;
  if (!o.ca_file.empty()) {
    ctx->load_verify_file(o.ca_file, ec);
    if (ec) {
      why = "cannot load CA file " + o.ca_file + ": " + ec.message();
      return errc::invalid_argument;
    }
  } else if (!server) {
    ctx->set_default_verify_paths(ec);
  }
  if (!o.cert_file.empty()) {
    ctx->use_certificate_chain_file(o.cert_file, ec);
    if (ec) {
      why = "cannot load certificate " + o.cert_file + ": " + ec.message();
      return errc::invalid_argument;
    }
    ctx->use_private_key_file(o.key_file.empty() ? o.cert_file : o.key_file,
                              asio::ssl::context::pem, ec);
    if (ec) {
      why = "cannot load private key " + o.key_file + ": " + ec.message();
      return errc::invalid_argument;
    }
  } else if (server) {
    why = "a TLS listener needs a certificate and a key";
    return errc::invalid_argument;
  }
  if (server) {
    // With a CA file, clients are asked for a certificate and one they present must verify;
    // requiring one refuses those without.
    if (o.require_client_certificate) {
      ctx->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
    } else {
      ctx->set_verify_mode(o.ca_file.empty() ? asio::ssl::verify_none : asio::ssl::verify_peer);
    }
  } else {
    ctx->set_verify_mode(o.verify ? asio::ssl::verify_peer : asio::ssl::verify_none);
  }
  return ctx;
}

result<std::shared_ptr<asio::ssl::context>> shared_client_tls_context(const tls_options& o,
                                                                      std::string& why) {
  // What make_tls_context reads for a client (server_name and the listener's options are
  // per connection or server only).
  using key = std::tuple<std::string, std::string, std::string, bool>;
  static std::mutex mutex;
  static std::map<key, std::weak_ptr<asio::ssl::context>> contexts;
  const std::lock_guard lock(mutex);
  key k{o.ca_file, o.cert_file, o.key_file, o.verify};
  if (auto it = contexts.find(k); it != contexts.end()) {
    if (auto ctx = it->second.lock()) {
      return ctx;
    }
  }
  // Entries whose context is gone are dropped as new ones come: the map holds at most the
  // kinds of options in use plus those that lapsed since the last new context.
  std::erase_if(contexts, [](const auto& e) { return e.second.expired(); });
  auto ctx = make_tls_context(o, false, why);
  if (ctx) {
    contexts[std::move(k)] = *ctx;
  }
  return ctx;
}

std::string endpoint_text(const asio::ip::tcp::socket& s) {
  std::error_code ec;
  const auto ep = s.remote_endpoint(ec);
  if (ec) {
    return "?";
  }
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

void close_socket(asio::ip::tcp::socket& s) noexcept {
  std::error_code ec;
  s.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
  s.close(ec);
}

} // namespace amqp::transport::detail
