// TLS over a TCP socket (stream.hpp: async_tls_handshake), with OpenSSL driven directly
// instead of through asio::ssl::stream, for the memory of idle connections.
//
// asio::ssl::stream keeps, for every connection and for its whole life, two 17 KB buffers of
// its own and a BIO pair with two more (about 70 KB, most of it touched by the handshake).
// Here OpenSSL reads the socket itself, through a BIO whose read is a non-blocking recv(2)
// on the socket, and writes through one that appends the records to a buffer the stream
// sends with one gather-free asio::async_write (a batch of frames is one system call, as on
// TCP). OpenSSL's own record buffers are given back whenever they are empty
// (SSL_MODE_RELEASE_BUFFERS), and the stream's output buffer once written: an idle
// connection holds its SSL object (cipher state, session) and no buffer at all. A read waits
// for the socket to become readable (asio async_wait) before OpenSSL is asked for anything.
#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <asio/error.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/ssl/context.hpp>
#include <asio/ssl/error.hpp>
#include <asio/write.hpp>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "stream.hpp"

namespace amqp::transport::detail {
namespace {

// The error of a failed OpenSSL call (`ret` its return value), as Asio reports them: OpenSSL's
// error queue in asio::error::get_ssl_category() (so messages read "certificate verify
// failed"), an end of stream without close_notify as asio::ssl::error::stream_truncated, a
// close_notify as asio::error::eof, a system error as itself.
std::error_code ssl_error(SSL* ssl, int ret, int saved_errno) {
  const int e = SSL_get_error(ssl, ret);
  if (e == SSL_ERROR_ZERO_RETURN) {
    return asio::error::eof;
  }
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (e == SSL_ERROR_SYSCALL && code == 0) {
    return saved_errno != 0 ? std::error_code(saved_errno, std::system_category())
                            : std::error_code(asio::ssl::error::stream_truncated);
  }
  if (ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
    return asio::ssl::error::stream_truncated;
  }
  if (code == 0) {
    return asio::ssl::error::stream_truncated;
  }
  return {static_cast<int>(code), asio::error::get_ssl_category()};
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

bool is_ip_address(const std::string& host) {
  std::error_code ec;
  (void)asio::ip::make_address(host, ec);
  return !ec;
}

struct ssl_deleter {
  void operator()(SSL* s) const noexcept { SSL_free(s); }
};

// The BIO under each SSL object: read = recv(2) on the socket, write = append to the
// stream's output (see the callbacks below). Built once and never changed: a constant of
// the process, like a vtable.
BIO_METHOD* socket_bio_method();

std::atomic<std::size_t> tls_streams{0};

class tls_stream final : public byte_stream, public std::enable_shared_from_this<tls_stream> {
public:
  tls_stream(std::shared_ptr<asio::ssl::context> ctx, asio::ip::tcp::socket socket)
      : ctx_(std::move(ctx)), socket_(std::move(socket)) {
    tls_streams.fetch_add(1, std::memory_order_relaxed);
    std::error_code ec;
    socket_.set_option(asio::ip::tcp::no_delay(true), ec);
    // recv(2) in the BIO must not block the thread: the socket is non-blocking and reads
    // wait for readiness through Asio.
    socket_.non_blocking(true, ec);
  }
  tls_stream(const tls_stream&) = delete;
  tls_stream& operator=(const tls_stream&) = delete;
  ~tls_stream() override { tls_streams.fetch_sub(1, std::memory_order_relaxed); }

  // An Asio operation's hold on the stream. The stream keeps its caller's handlers (the read,
  // the write, the handshake), which hold the caller (the driver), which holds the stream: a
  // cycle that running the operation breaks. An operation destroyed without running (its
  // io_context destroyed with the connection still open) breaks it here instead, by
  // dropping those handlers; a run takes the stream out first (take()), so that nothing is
  // dropped then.
  class pending {
  public:
    explicit pending(std::shared_ptr<tls_stream> s) noexcept : self_(std::move(s)) {}
    pending(pending&& o) noexcept = default;
    pending(const pending&) = delete;
    pending& operator=(const pending&) = delete;
    pending& operator=(pending&&) = delete;
    ~pending() {
      if (self_) {
        self_->drop_handlers();
      }
    }
    [[nodiscard]] std::shared_ptr<tls_stream> take() noexcept { return std::move(self_); }

  private:
    std::shared_ptr<tls_stream> self_;
  };
  [[nodiscard]] pending hold() { return pending(shared_from_this()); }

  // Forgets the caller's handlers without calling them (see pending).
  void drop_handlers() noexcept {
    auto read = std::exchange(read_handler_, nullptr);
    auto write = std::exchange(write_handler_, nullptr);
    auto handshake = std::exchange(handshake_done_, nullptr);
    read_buffer_ = {};
  }

  // Creates the SSL object. False (with `ec` set) when OpenSSL cannot allocate it.
  bool init(bool server, const std::string& host, bool verify_host, std::error_code& ec) {
    ssl_.reset(SSL_new(ctx_->native_handle()));
    BIO* bio = ssl_ ? BIO_new(socket_bio_method()) : nullptr;
    if (bio == nullptr) {
      ec = std::error_code(static_cast<int>(ERR_get_error()), asio::error::get_ssl_category());
      ERR_clear_error();
      if (ec.value() == 0) {
        ec = asio::error::no_memory;
      }
      return false;
    }
    BIO_set_data(bio, this);
    BIO_set_init(bio, 1);
    SSL_set_bio(ssl_.get(), bio, bio); // the SSL object owns it (one reference for both)
    // Record buffers only while they hold something; partial writes never happen (the BIO
    // takes everything), but a record may be retried with the rest of a batch.
    SSL_set_mode(ssl_.get(), SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    // Read whatever the socket has (several records per recv) instead of a header and then a
    // body per record; the rest stays in OpenSSL's buffer until read.
    SSL_set_read_ahead(ssl_.get(), 1);
    if (server) {
      SSL_set_accept_state(ssl_.get());
      return true;
    }
    SSL_set_connect_state(ssl_.get());
    // SNI carries names only, never addresses (RFC 6066 §3).
    if (!host.empty() && !is_ip_address(host)) {
      // The macro casts with a C cast; the function it stands for, called directly:
      SSL_ctrl(ssl_.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
               const_cast<char*>(host.c_str()));
    }
    if (verify_host && !host.empty()) {
      // RFC 6125 through OpenSSL's own check: a DNS name against the certificate's names, an
      // IP address against its IP address entries.
      X509_VERIFY_PARAM* param = SSL_get0_param(ssl_.get());
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      const int ok = is_ip_address(host) ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                                         : X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
      if (ok != 1) {
        ec = std::error_code(static_cast<int>(ERR_get_error()), asio::error::get_ssl_category());
        ERR_clear_error();
        return false;
      }
    }
    return true;
  }

  // Runs the handshake; `done` gets the error, or none once it is complete (never inside
  // this call).
  void async_handshake(std::function<void(std::error_code)> done) {
    handshake_done_ = std::move(done);
    asio::post(socket_.get_executor(), [op = hold()]() mutable { op.take()->step_handshake(); });
  }

  // Closes the socket once the records produced so far (e.g. the alert of a failed
  // handshake, which tells the peer why) are written, or at once if none are waiting.
  void close_after_flush() {
    if (writing_) {
      close_when_written_ = true;
      return;
    }
    close_quietly();
  }

  void async_read_some(std::span<std::byte> buffer, io_handler handler) override {
    read_buffer_ = buffer;
    read_handler_ = std::move(handler);
    // Try first (the caller usually knows there are bytes); wait on the socket only when
    // OpenSSL finds too few for a record.
    asio::post(socket_.get_executor(), [op = hold()]() mutable { op.take()->try_read(); });
  }

  void async_wait_readable(std::function<void(std::error_code)> handler) override {
    // OpenSSL may hold decrypted or read-ahead bytes the socket no longer signals; bytes
    // already on the socket (a connection under load) need no round through the reactor.
    std::error_code available_error;
    if (SSL_has_pending(ssl_.get()) == 1 ||
        (socket_.available(available_error) > 0 && !available_error)) {
      asio::post(socket_.get_executor(), [h = std::move(handler)] { h({}); });
      return;
    }
    socket_.async_wait(asio::socket_base::wait_read,
                       [h = std::move(handler)](std::error_code ec) { h(ec); });
  }

  void async_write(const_buffers buffers, io_handler handler) override {
    if (failed_) {
      asio::post(socket_.get_executor(),
                 [h = std::move(handler)] { h(asio::error::broken_pipe, 0); });
      return;
    }
    std::size_t total = 0;
    for (const auto& b : buffers) {
      std::size_t at = 0;
      while (at < b.size()) {
        std::size_t n = 0;
        ERR_clear_error();
        const int r = SSL_write_ex(ssl_.get(), b.data() + at, b.size() - at, &n);
        if (r != 1) {
          const auto ec = ssl_error(ssl_.get(), r, errno);
          asio::post(socket_.get_executor(), [h = std::move(handler), ec] { h(ec, 0); });
          return;
        }
        at += n;
      }
      total += b.size();
    }
    // Done when everything produced so far is on the wire.
    write_handler_ = std::move(handler);
    write_mark_ = produced_;
    write_total_ = total;
    flush();
    if (!writing_) {
      // Nothing to send (an empty batch): done, but never inside this call.
      asio::post(socket_.get_executor(),
                 [op = hold()]() mutable { op.take()->complete_write({}); });
    }
  }

  void close() noexcept override {
    // No close_notify exchange (as on TCP): the AMQP close handshake already ended the
    // connection, and waiting for the peer's close_notify could hang on a peer that never
    // sends it.
    close_socket(socket_);
  }
  asio::any_io_executor executor() override { return socket_.get_executor(); }
  [[nodiscard]] std::string peer() const override { return endpoint_text(socket_); }
  [[nodiscard]] std::string peer_certificate_subject() const override {
    return verified_subject(ssl_.get());
  }
  [[nodiscard]] bool tls() const noexcept override { return true; }
  [[nodiscard]] std::string tls_server_name() const override {
    // OpenSSL 3: on the server, the name from the ClientHello once the handshake is done.
    const char* name = SSL_get_servername(ssl_.get(), TLSEXT_NAMETYPE_host_name);
    return name != nullptr ? std::string(name) : std::string();
  }

  // BIO callbacks.
  int bio_read(BIO* b, char* out, int len) {
    BIO_clear_retry_flags(b);
    for (;;) {
      const ssize_t n = ::recv(socket_.native_handle(), out, static_cast<std::size_t>(len), 0);
      if (n >= 0) {
        return static_cast<int>(n); // 0: the peer closed the stream
      }
      if (errno == EINTR) {
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        BIO_set_retry_read(b);
      }
      return -1;
    }
  }
  int bio_write(BIO* b, const char* in, int len) {
    BIO_clear_retry_flags(b);
    const auto* p = reinterpret_cast<const std::byte*>(in);
    out_.insert(out_.end(), p, p + len);
    produced_ += static_cast<std::uint64_t>(len);
    return len;
  }

private:
  // Closes after discarding what the peer sent and nobody read (a client sends its first
  // AMQP bytes right after its side of the handshake): closing a socket with unread input
  // resets the connection, and the peer's stack then drops the alert it has not read yet.
  void close_quietly() {
    std::array<char, 4096> sink{};
    for (int i = 0; i < 16; ++i) {
      if (::recv(socket_.native_handle(), sink.data(), sink.size(), MSG_DONTWAIT) <= 0) {
        break;
      }
    }
    close();
  }

  void step_handshake() {
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl_.get());
    const int saved = errno;
    flush();
    if (r == 1) {
      finish_handshake({});
      return;
    }
    const int e = SSL_get_error(ssl_.get(), r);
    if (e == SSL_ERROR_WANT_READ) {
      socket_.async_wait(asio::socket_base::wait_read, [op = hold()](std::error_code ec) mutable {
        auto self = op.take();
        if (ec) {
          self->finish_handshake(ec);
          return;
        }
        self->step_handshake();
      });
      return;
    }
    finish_handshake(ssl_error(ssl_.get(), r, saved));
  }

  void finish_handshake(std::error_code ec) {
    if (auto h = std::exchange(handshake_done_, nullptr)) {
      h(ec);
    }
  }

  void wait_readable() {
    socket_.async_wait(asio::socket_base::wait_read, [op = hold()](std::error_code ec) mutable {
      auto self = op.take();
      if (ec) {
        self->complete_read(ec, 0);
        return;
      }
      self->try_read();
    });
  }

  // Reads as much plaintext as fits (several records if the socket has them), then
  // completes the read; waits again when the socket had only part of a record.
  void try_read() {
    std::size_t total = 0;
    int r = 1;
    int saved = 0;
    while (total < read_buffer_.size()) {
      std::size_t n = 0;
      ERR_clear_error();
      r = SSL_read_ex(ssl_.get(), read_buffer_.data() + total, read_buffer_.size() - total, &n);
      saved = errno;
      if (r != 1) {
        break;
      }
      total += n;
    }
    // Reading may have produced records to send (a TLS 1.3 KeyUpdate answer, an alert).
    flush();
    if (total > 0) {
      ERR_clear_error(); // an error after some data shows again at the next read
      complete_read({}, total);
      return;
    }
    if (SSL_get_error(ssl_.get(), r) == SSL_ERROR_WANT_READ) {
      wait_readable();
      return;
    }
    complete_read(ssl_error(ssl_.get(), r, saved), 0);
  }

  void complete_read(std::error_code ec, std::size_t n) {
    read_buffer_ = {};
    if (auto h = std::exchange(read_handler_, nullptr)) {
      h(ec, n);
    }
  }

  // Sends the records produced so far, one batch at a time; the buffer is given back once
  // it is written.
  void flush() {
    if (writing_ || out_.empty() || failed_) {
      return;
    }
    writing_ = true;
    sending_.swap(out_);
    const std::uint64_t end = produced_;
    asio::async_write(socket_, asio::buffer(sending_.data(), sending_.size()),
                      [op = hold(), end](std::error_code ec, std::size_t) mutable {
                        op.take()->on_written(ec, end);
                      });
  }

  void on_written(std::error_code ec, std::uint64_t end) {
    writing_ = false;
    // Idle connections hold no output buffer.
    std::vector<std::byte>().swap(sending_);
    if (ec) {
      failed_ = true;
      out_.clear();
      out_.shrink_to_fit();
      complete_write(ec);
    } else {
      sent_ = end;
      if (write_handler_ && sent_ >= write_mark_) {
        complete_write({});
      }
      flush();
    }
    // A failed handshake's alert may have waited behind the flight before it.
    if (close_when_written_ && !writing_) {
      close_when_written_ = false;
      close_quietly();
    }
  }

  void complete_write(std::error_code ec) {
    if (auto h = std::exchange(write_handler_, nullptr)) {
      h(ec, ec ? 0 : write_total_);
    }
  }

  std::shared_ptr<asio::ssl::context> ctx_;
  asio::ip::tcp::socket socket_;
  std::unique_ptr<SSL, ssl_deleter> ssl_;
  std::function<void(std::error_code)> handshake_done_;
  // The read in flight: the caller's buffer and handler.
  std::span<std::byte> read_buffer_{};
  io_handler read_handler_;
  // Records produced by OpenSSL and not yet handed to the socket; the batch being written.
  std::vector<std::byte> out_;
  std::vector<std::byte> sending_;
  std::uint64_t produced_ = 0; // bytes of records produced, ever
  std::uint64_t sent_ = 0;     // ... and written
  bool writing_ = false;
  bool failed_ = false;
  bool close_when_written_ = false;
  // The write in flight: done once `write_mark_` bytes of records are written.
  io_handler write_handler_;
  std::uint64_t write_mark_ = 0;
  std::size_t write_total_ = 0;
};

tls_stream* stream_of(BIO* b) {
  return static_cast<tls_stream*>(BIO_get_data(b));
}

int bio_write_cb(BIO* b, const char* in, int len) {
  return stream_of(b)->bio_write(b, in, len);
}
int bio_read_cb(BIO* b, char* out, int len) {
  return stream_of(b)->bio_read(b, out, len);
}
long bio_ctrl_cb(BIO*, int cmd, long, void*) {
  // OpenSSL flushes after each flight; the stream sends what the BIO collected itself.
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}
int bio_create_cb(BIO* b) {
  BIO_set_init(b, 0);
  return 1;
}
int bio_destroy_cb(BIO* b) {
  BIO_set_data(b, nullptr);
  return 1;
}

BIO_METHOD* make_socket_bio_method() {
  BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "amqp-tls-socket");
  if (m == nullptr) {
    return nullptr;
  }
  BIO_meth_set_write(m, bio_write_cb);
  BIO_meth_set_read(m, bio_read_cb);
  BIO_meth_set_ctrl(m, bio_ctrl_cb);
  BIO_meth_set_create(m, bio_create_cb);
  BIO_meth_set_destroy(m, bio_destroy_cb);
  return m;
}

BIO_METHOD* socket_bio_method() {
  static BIO_METHOD* const method = make_socket_bio_method();
  return method;
}

} // namespace

void async_tls_handshake(std::shared_ptr<asio::ssl::context> ctx, asio::ip::tcp::socket socket,
                         bool server, const std::string& host, bool verify_host,
                         std::function<void(std::error_code, std::shared_ptr<byte_stream>)> done) {
  auto s = std::make_shared<tls_stream>(std::move(ctx), std::move(socket));
  std::error_code ec;
  if (!s->init(server, host, verify_host, ec)) {
    asio::post(s->executor(), [done = std::move(done), ec] { done(ec, nullptr); });
    return;
  }
  auto& ref = *s;
  ref.async_handshake([s, done = std::move(done)](std::error_code e) {
    if (e) {
      s->close_after_flush();
      done(e, nullptr);
      return;
    }
    done({}, s);
  });
}

std::size_t live_tls_streams() noexcept {
  return tls_streams.load(std::memory_order_relaxed);
}

} // namespace amqp::transport::detail
