// tls_channel (tls_channel.hpp): a non-blocking socket waited on with poll(2), OpenSSL on it.
#include "amqp/iothub/tls_channel.hpp"

#include <cerrno>
#include <cstring>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "amqp/error.hpp"

namespace amqp::iothub {

namespace {

using clock = std::chrono::steady_clock;

std::error_code sys(int e) {
  return {e, std::system_category()};
}

void say(std::string* why, const std::string& text) {
  if (why != nullptr) {
    *why = text;
  }
}

// Waits for `events` on `fd` until `deadline`. Returns false on timeout.
bool wait_fd(int fd, short events, clock::time_point deadline) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    if (left <= 0) {
      return false;
    }
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 60'000)));
    if (r > 0) {
      return true;
    }
    if (r < 0 && errno != EINTR) {
      return true; // the next call reports the error
    }
  }
}

bool is_ip_literal(std::string_view host) {
  unsigned char buf[sizeof(in6_addr)];
  const std::string h(host);
  return ::inet_pton(AF_INET, h.c_str(), buf) == 1 || ::inet_pton(AF_INET6, h.c_str(), buf) == 1;
}

} // namespace

struct tls_channel::state {
  int fd = -1;
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
  ~state() {
    if (ssl != nullptr) {
      SSL_free(ssl);
    }
    if (ctx != nullptr) {
      SSL_CTX_free(ctx);
    }
    if (fd >= 0) {
      ::close(fd);
    }
  }
};

tls_channel::tls_channel(std::unique_ptr<state> s) noexcept : s_(std::move(s)) {}

tls_channel::~tls_channel() {
  if (s_ && s_->ssl != nullptr) {
    (void)SSL_shutdown(s_->ssl); // close_notify, not waited for
  }
}

result<std::unique_ptr<tls_channel>> tls_channel::connect(const tls_channel_options& o,
                                                          std::string* why) {
  const auto deadline = clock::now() + o.timeout;
  auto s = std::make_unique<state>();
  // TCP.
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string host(o.host);
  const std::string port = std::to_string(o.port);
  if (const int r = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); r != 0) {
    say(why, "cannot resolve " + host + ": " + ::gai_strerror(r));
    return make_error_code(amqp::errc::connection_lost);
  }
  std::error_code last = sys(ECONNREFUSED);
  for (addrinfo* a = found; a != nullptr && s->fd < 0; a = a->ai_next) {
    const int fd =
        ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      last = sys(errno);
      continue;
    }
    int err = ::connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      err = wait_fd(fd, POLLOUT, deadline) ? 0 : ETIMEDOUT;
      if (err == 0) {
        socklen_t len = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      }
    }
    if (err != 0) {
      last = sys(err);
      ::close(fd);
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->fd = fd;
  }
  ::freeaddrinfo(found);
  if (s->fd < 0) {
    say(why, "cannot connect to " + host + ":" + port + ": " + last.message());
    return last == sys(ETIMEDOUT) ? make_error_code(amqp::errc::timeout) : last;
  }
  // TLS.
  s->ctx = SSL_CTX_new(TLS_client_method());
  if (s->ctx == nullptr) {
    say(why, "OpenSSL cannot make a context");
    return make_error_code(amqp::errc::out_of_memory);
  }
  SSL_CTX_set_min_proto_version(s->ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(s->ctx, SSL_VERIFY_PEER, nullptr);
  const std::string ca(o.ca_file);
  if (ca.empty() ? SSL_CTX_set_default_verify_paths(s->ctx) != 1
                 : SSL_CTX_load_verify_locations(s->ctx, ca.c_str(), nullptr) != 1) {
    say(why, "cannot load the CA file " + ca);
    return make_error_code(amqp::errc::invalid_argument);
  }
  if (!o.cert_file.empty()) {
    const std::string cert(o.cert_file);
    const std::string key(o.key_file.empty() ? o.cert_file : o.key_file);
    if (SSL_CTX_use_certificate_chain_file(s->ctx, cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(s->ctx, key.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(s->ctx) != 1) {
      say(why, "cannot load the client certificate " + cert + " with its key " + key);
      return make_error_code(amqp::errc::invalid_argument);
    }
  }
  s->ssl = SSL_new(s->ctx);
  if (s->ssl == nullptr || SSL_set_fd(s->ssl, s->fd) != 1) {
    say(why, "OpenSSL cannot make a connection");
    return make_error_code(amqp::errc::out_of_memory);
  }
  SSL_set_mode(s->ssl, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  const std::string name(o.server_name.empty() ? o.host : o.server_name);
  if (!is_ip_literal(name)) {
    // SSL_set_tlsext_host_name, without the macro's C cast.
    SSL_ctrl(s->ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(name.c_str()));
    SSL_set1_host(s->ssl, name.c_str());
  } else {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), name.c_str());
  }
  for (;;) {
    const int r = SSL_connect(s->ssl);
    if (r == 1) {
      break;
    }
    const int e = SSL_get_error(s->ssl, r);
    if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) &&
        wait_fd(s->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
      continue;
    }
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      say(why, "the TLS handshake with " + host + " timed out");
      return make_error_code(amqp::errc::timeout);
    }
    const long verify = SSL_get_verify_result(s->ssl);
    if (verify != X509_V_OK) {
      say(why, "the certificate of " + host +
                   " does not verify: " + X509_verify_cert_error_string(verify));
      return make_error_code(amqp::errc::unauthorized);
    }
    char text[256] = "the peer closed the connection";
    if (const unsigned long err = ERR_get_error(); err != 0) {
      ERR_error_string_n(err, text, sizeof text);
    }
    say(why, "the TLS handshake with " + host + " failed: " + text);
    return make_error_code(amqp::errc::connection_lost);
  }
  return std::unique_ptr<tls_channel>(new tls_channel(std::move(s)));
}

result<std::size_t> tls_channel::read_some(std::span<std::byte> buf,
                                           std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  for (;;) {
    std::size_t n = 0;
    const int r = SSL_read_ex(s_->ssl, buf.data(), buf.size(), &n);
    if (r == 1) {
      read_ = BIO_number_read(SSL_get_rbio(s_->ssl));
      plain_ += n;
      return n;
    }
    const int e = SSL_get_error(s_->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      if (!wait_fd(s_->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
        return std::size_t{0};
      }
      continue;
    }
    if (e == SSL_ERROR_SYSCALL && errno != 0) {
      return sys(errno);
    }
    return make_error_code(amqp::errc::connection_lost);
  }
}

result<void> tls_channel::write_all(std::span<const std::byte> bytes) {
  const auto deadline = clock::now() + std::chrono::seconds(30);
  plain_ += bytes.size();
  while (!bytes.empty()) {
    std::size_t n = 0;
    const int r = SSL_write_ex(s_->ssl, bytes.data(), bytes.size(), &n);
    if (r == 1) {
      bytes = bytes.subspan(n);
      continue;
    }
    const int e = SSL_get_error(s_->ssl, r);
    if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) &&
        wait_fd(s_->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
      continue;
    }
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      return make_error_code(amqp::errc::timeout);
    }
    return make_error_code(amqp::errc::connection_lost);
  }
  written_ = BIO_number_written(SSL_get_wbio(s_->ssl));
  return {};
}

} // namespace amqp::iothub
