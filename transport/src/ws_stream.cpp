// AMQP over WebSocket as a byte_stream (ws_stream.hpp).
#include "ws_stream.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <deque>
#include <vector>

#include <asio/error.hpp>
#include <asio/post.hpp>
#include <openssl/rand.h>

#include "amqp/error.hpp"

namespace amqp::transport::detail {
namespace {

// Bytes read from the inner stream at a time.
constexpr std::size_t read_chunk = std::size_t{64} * 1024;

// The masking key of the next frame: random for a client (RFC 6455 §10.3: from a strong
// source of entropy); a server does not mask, so it draws nothing.
ws::masking_key frame_key(ws::role r) {
  ws::masking_key k{};
  if (r == ws::role::client) {
    (void)RAND_bytes(reinterpret_cast<unsigned char*>(k.data()), static_cast<int>(k.size()));
  }
  return k;
}

std::span<const std::byte> as_bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

class ws_stream final : public byte_stream, public std::enable_shared_from_this<ws_stream> {
public:
  ws_stream(std::shared_ptr<byte_stream> inner, ws::role r, std::vector<std::byte> initial,
            std::string path = {})
      : inner_(std::move(inner)), role_(r), framer_(r), rbuf_(std::move(initial)),
        path_(std::move(path)) {
    unread_ = std::span<std::byte>(rbuf_);
  }

  void async_read_some(std::span<std::byte> buffer, io_handler handler) override {
    if (!data_.empty()) {
      deliver(buffer, std::move(handler));
      return;
    }
    if (!unread_.empty()) {
      // Decode what is buffered; it may yield data, control frames, or need more bytes.
      if (auto ec = decode()) {
        asio::post(inner_->executor(), [h = std::move(handler), ec] { h(ec, 0); });
        return;
      }
      if (!data_.empty()) {
        deliver(buffer, std::move(handler));
        return;
      }
      if (eof_) {
        asio::post(inner_->executor(), [h = std::move(handler)] { h(asio::error::eof, 0); });
        return;
      }
    }
    // Keep any partial frame: the framer consumed it (it buffers headers itself).
    rbuf_.resize(read_chunk);
    auto self = shared_from_this();
    inner_->async_read_some(
        rbuf_, [self, buffer, h = std::move(handler)](std::error_code ec, std::size_t n) mutable {
          if (ec) {
            h(ec, 0);
            return;
          }
          self->unread_ = std::span<std::byte>(self->rbuf_).first(n);
          self->async_read_some(buffer, std::move(h));
        });
  }

  void async_write(const_buffers buffers, io_handler handler) override {
    std::size_t total = 0;
    for (const auto& b : buffers) {
      total += b.size();
    }
    const auto key = frame_key(role_);
    auto hs = framer_.write_data_header(header_, total, key);
    if (!hs) {
      asio::post(inner_->executor(), [h = std::move(handler), ec = hs.error()] { h(ec, 0); });
      return;
    }
    header_size_ = *hs;
    if (role_ == ws::role::client) {
      // A client masks its payload (§5.3): the one copy this layer makes.
      wbuf_.clear();
      for (const auto& b : buffers) {
        wbuf_.insert(wbuf_.end(), b.begin(), b.end());
      }
      ws::mask(wbuf_, key);
      parts_.assign({std::span<const std::byte>(header_.data(), header_size_),
                     std::span<const std::byte>(wbuf_)});
    } else {
      // A server's frame is the header then the caller's buffers, unchanged (gather write).
      parts_.assign(1, std::span<const std::byte>(header_.data(), header_size_));
      parts_.insert(parts_.end(), buffers.begin(), buffers.end());
    }
    pending_write_ = [self = shared_from_this(), total, h = std::move(handler)](
                         std::error_code ec, std::size_t) { h(ec, ec ? 0 : total); };
    start_writes();
  }

  void close() noexcept override { inner_->close(); }
  asio::any_io_executor executor() override { return inner_->executor(); }
  std::string peer() const override { return inner_->peer(); }
  std::string peer_certificate_subject() const override {
    return inner_->peer_certificate_subject();
  }
  bool tls() const noexcept override { return inner_->tls(); }
  std::string tls_server_name() const override { return inner_->tls_server_name(); }
  std::string websocket_path() const override { return path_; }

private:
  void deliver(std::span<std::byte> buffer, io_handler handler) {
    const std::size_t n = std::min(buffer.size(), data_.size());
    std::memcpy(buffer.data(), data_.data(), n);
    data_ = data_.subspan(n);
    asio::post(inner_->executor(), [h = std::move(handler), n] { h({}, n); });
  }

  // Feeds unread bytes to the framer until it yields data or needs more input.
  std::error_code decode() {
    while (!unread_.empty() && data_.empty()) {
      auto r = framer_.feed(unread_);
      if (!r) {
        queue_control(framer_.close(ws::close_code(r.error()), {}, frame_key(role_)));
        return r.error();
      }
      unread_ = unread_.subspan(r->consumed);
      if (!r->event) {
        continue;
      }
      if (const auto* d = std::get_if<ws::data_received>(&*r->event)) {
        data_ = d->bytes;
      } else if (const auto* p = std::get_if<ws::ping_received>(&*r->event)) {
        queue_control(framer_.pong(p->payload, frame_key(role_))); // §5.5.2
      } else if (std::holds_alternative<ws::close_received>(*r->event)) {
        // §5.5.1: answer the close once, then the stream ends.
        if (!framer_.close_sent()) {
          queue_control(framer_.close(ws::close_code_value::normal, {}, frame_key(role_)));
        }
        eof_ = true;
        unread_ = {};
      }
    }
    return {};
  }

  void queue_control(result<ws::control_frame> f) {
    if (!f) {
      return;
    }
    controls_.push_back(*f);
    start_writes();
  }

  // One write at a time on the inner stream: control frames first, then the data frame.
  void start_writes() {
    if (writing_) {
      return;
    }
    if (!controls_.empty()) {
      writing_ = true;
      control_now_ = controls_.front();
      controls_.pop_front();
      one_[0] = control_now_.bytes();
      inner_->async_write(one_, [self = shared_from_this()](std::error_code, std::size_t) {
        self->writing_ = false;
        self->start_writes();
      });
      return;
    }
    if (pending_write_) {
      writing_ = true;
      auto done = std::move(pending_write_);
      pending_write_ = nullptr;
      inner_->async_write(parts_, [self = shared_from_this(),
                                   done = std::move(done)](std::error_code ec, std::size_t n) {
        self->writing_ = false;
        done(ec, n);
        self->start_writes();
      });
    }
  }

  std::shared_ptr<byte_stream> inner_;
  ws::role role_;
  ws::framer framer_;
  std::vector<std::byte> rbuf_;
  std::string path_; // server: the request path of the handshake
  std::span<std::byte> unread_{};
  std::span<const std::byte> data_{};
  bool eof_ = false;

  std::array<std::byte, ws::max_frame_header_size> header_{};
  std::size_t header_size_ = 0;
  std::vector<std::byte> wbuf_;
  std::vector<std::span<const std::byte>> parts_;
  io_handler pending_write_;
  std::deque<ws::control_frame> controls_;
  ws::control_frame control_now_{};
  std::span<const std::byte> one_[1];
  bool writing_ = false;
};

// Reads a handshake's HTTP header block from `inner`, feeding `feed` until it is done or
// fails; hands over the bytes that followed it.
struct handshake_reader : std::enable_shared_from_this<handshake_reader> {
  std::shared_ptr<byte_stream> inner;
  std::vector<std::byte> buf = std::vector<std::byte>(4096);
  std::function<result<ws::handshake_progress>(std::span<const std::byte>)> feed;
  std::function<void(std::error_code, std::vector<std::byte>)> done;

  void read() {
    inner->async_read_some(buf, [self = shared_from_this()](std::error_code ec, std::size_t n) {
      if (ec) {
        self->done(ec, {});
        return;
      }
      const auto in = std::span<const std::byte>(self->buf).first(n);
      auto r = self->feed(in);
      if (!r) {
        self->done(r.error(), {});
        return;
      }
      if (r->done) {
        const auto rest = in.subspan(r->consumed);
        self->done({}, std::vector<std::byte>(rest.begin(), rest.end()));
        return;
      }
      self->read();
    });
  }
};

} // namespace

void async_websocket_client(
    std::shared_ptr<byte_stream> inner, const std::string& host, std::uint16_t port, bool secure,
    const std::string& path,
    std::function<void(std::error_code, std::shared_ptr<byte_stream>)> done) {
  ws::client_options o;
  o.host = host;
  o.port = port;
  o.secure = secure;
  o.path = path.empty() ? "/" : path;
  std::array<std::byte, 16> nonce{};
  (void)RAND_bytes(reinterpret_cast<unsigned char*>(nonce.data()), 16);
  auto hs = ws::client_handshake::create(o, nonce);
  if (!hs) {
    asio::post(inner->executor(), [done = std::move(done), ec = hs.error()] { done(ec, nullptr); });
    return;
  }
  auto state = std::make_shared<ws::client_handshake>(std::move(*hs));
  auto reader = std::make_shared<handshake_reader>();
  reader->inner = inner;
  reader->feed = [state](std::span<const std::byte> in) { return state->feed(in); };
  reader->done = [inner = std::move(inner), state,
                  done = std::move(done)](std::error_code ec, std::vector<std::byte> rest) {
    if (ec) {
      done(ec, nullptr);
      return;
    }
    done({}, std::make_shared<ws_stream>(inner, ws::role::client, std::move(rest)));
  };
  auto part = std::make_shared<std::array<std::span<const std::byte>, 1>>();
  (*part)[0] = as_bytes(state->request());
  reader->inner->async_write(*part, [reader, state, part](std::error_code ec, std::size_t) {
    if (ec) {
      reader->done(ec, {});
      return;
    }
    reader->read();
  });
}

void async_websocket_server(
    std::shared_ptr<byte_stream> inner, std::vector<std::string> paths,
    std::function<void(std::error_code, std::shared_ptr<byte_stream>)> done) {
  ws::server_options o;
  o.paths = std::move(paths);
  auto state = std::make_shared<ws::server_handshake>(std::move(o));
  auto reader = std::make_shared<handshake_reader>();
  reader->inner = inner;
  reader->feed = [state](std::span<const std::byte> in) { return state->feed(in); };
  reader->done = [inner = std::move(inner), state,
                  done = std::move(done)](std::error_code ec, std::vector<std::byte> rest) {
    if (ec && state->response().empty()) {
      done(ec, nullptr);
      return;
    }
    // The 101 response, or the HTTP error response before closing (§4.2.2).
    auto part = std::make_shared<std::array<std::span<const std::byte>, 1>>();
    (*part)[0] = as_bytes(state->response());
    inner->async_write(*part, [inner, state, part, done, ec,
                               rest = std::move(rest)](std::error_code we, std::size_t) mutable {
      if (ec || we) {
        inner->close();
        done(ec ? ec : we, nullptr);
        return;
      }
      done({}, std::make_shared<ws_stream>(inner, ws::role::server, std::move(rest),
                                           std::string(state->path())));
    });
  };
  reader->read();
}

} // namespace amqp::transport::detail
