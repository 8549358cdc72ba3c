// TCP and TLS byte streams.
#include "stream.hpp"

#include <array>
#include <type_traits>
#include <vector>

#include <asio/buffer.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl.hpp>
#include <asio/write.hpp>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

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

std::string endpoint_text(const asio::basic_socket<asio::ip::tcp>& s) {
  std::error_code ec;
  const auto ep = s.remote_endpoint(ec);
  if (ec) {
    return "?";
  }
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

// The subject of the peer's certificate, when the handshake verified it.
std::string verified_subject(SSL* ssl) {
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) {
    return {};
  }
  std::string subject;
  if (SSL_get_verify_result(ssl) == X509_V_OK) {
    BIO* bio = BIO_new(BIO_s_mem());
    if (bio != nullptr) {
      if (X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
        char* data = nullptr;
        const long n = BIO_get_mem_data(bio, &data);
        if (n > 0 && data != nullptr) {
          subject.assign(data, static_cast<std::size_t>(n));
        }
      }
      BIO_free(bio);
    }
  }
  X509_free(cert);
  return subject;
}

// A stream over an Asio stream: a TCP socket, or a TLS stream over one (whose context it
// keeps alive).
template <typename Stream> class asio_stream final : public byte_stream {
public:
  template <typename... Args>
  explicit asio_stream(std::shared_ptr<asio::ssl::context> ctx, Args&&... args)
      : ctx_(std::move(ctx)), stream_(std::forward<Args>(args)...) {
    std::error_code ec;
    stream_.lowest_layer().set_option(asio::ip::tcp::no_delay(true), ec);
  }
  Stream& stream() { return stream_; }

  void async_read_some(std::span<std::byte> buffer, io_handler handler) override {
    stream_.async_read_some(
        asio::buffer(buffer.data(), buffer.size()),
        [h = std::move(handler)](std::error_code ec, std::size_t n) { h(ec, n); });
  }
  void async_write(const_buffers buffers, io_handler handler) override {
    write_all(stream_, gather_, buffers, std::move(handler));
  }
  void close() noexcept override {
    // For TLS, no close_notify exchange: the AMQP close handshake already ended the
    // connection, and waiting for the peer's close_notify could hang on a peer that never
    // sends it.
    std::error_code ec;
    stream_.lowest_layer().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    stream_.lowest_layer().close(ec);
  }
  asio::any_io_executor executor() override { return stream_.get_executor(); }
  [[nodiscard]] std::string peer() const override { return endpoint_text(stream_.lowest_layer()); }
  [[nodiscard]] std::string peer_certificate_subject() const override {
    if constexpr (std::is_same_v<Stream, asio::ip::tcp::socket>) {
      return {};
    } else {
      return verified_subject(const_cast<Stream&>(stream_).native_handle());
    }
  }
  [[nodiscard]] bool tls() const noexcept override {
    return !std::is_same_v<Stream, asio::ip::tcp::socket>;
  }
  [[nodiscard]] std::string tls_server_name() const override {
    if constexpr (std::is_same_v<Stream, asio::ip::tcp::socket>) {
      return {};
    } else {
      // OpenSSL 3: on the server, the name from the ClientHello once the handshake is done.
      const char* name = SSL_get_servername(const_cast<Stream&>(stream_).native_handle(),
                                            TLSEXT_NAMETYPE_host_name);
      return name != nullptr ? std::string(name) : std::string();
    }
  }

private:
  std::shared_ptr<asio::ssl::context> ctx_; // TLS only
  Stream stream_;
  gather_array gather_{};
};

using tcp_stream = asio_stream<asio::ip::tcp::socket>;
using tls_stream = asio_stream<asio::ssl::stream<asio::ip::tcp::socket>>;

bool is_ip_address(const std::string& host) {
  std::error_code ec;
  (void)asio::ip::make_address(host, ec);
  return !ec;
}

} // namespace

std::shared_ptr<byte_stream> make_tcp_stream(asio::ip::tcp::socket socket) {
  return std::make_shared<tcp_stream>(nullptr, std::move(socket));
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

void async_tls_handshake(std::shared_ptr<asio::ssl::context> ctx, asio::ip::tcp::socket socket,
                         bool server, const std::string& host, bool verify_host,
                         std::function<void(std::error_code, std::shared_ptr<byte_stream>)> done) {
  auto& context = *ctx;
  auto s = std::make_shared<tls_stream>(std::move(ctx), std::move(socket), context);
  if (!server) {
    // SNI carries names only, never addresses (RFC 6066 §3).
    if (!host.empty() && !is_ip_address(host)) {
      // The macro casts with a C cast; the function it stands for, called directly:
      SSL_ctrl(s->stream().native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
               const_cast<char*>(host.c_str()));
    }
    if (verify_host) {
      s->stream().set_verify_callback(asio::ssl::host_name_verification(host));
    }
  }
  auto& ref = s->stream();
  ref.async_handshake(server ? asio::ssl::stream_base::server : asio::ssl::stream_base::client,
                      [s, done = std::move(done)](std::error_code ec) {
                        if (ec) {
                          done(ec, nullptr);
                          return;
                        }
                        done({}, s);
                      });
}

} // namespace amqp::transport::detail
