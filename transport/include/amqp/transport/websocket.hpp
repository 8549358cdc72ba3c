// AMQP over WebSocket (RFC 6455), sans-IO: the HTTP/1.1 upgrade handshake in both roles and
// the framer. Bytes in, bytes out: no sockets, no clock, no RNG. The caller supplies the
// random bytes (the Sec-WebSocket-Key nonce and the client's masking keys), so the Asio
// transport can wrap these types around any byte stream, TCP or TLS.
//
// AMQP uses the subprotocol `AMQPWSB10` and binary messages only; the bytes carried are the
// same as on TCP (protocol headers, SASL and AMQP frames), so message boundaries do not
// matter and the framer can hand payload bytes over as they arrive (framer_options::stream).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

#include "amqp/error.hpp"
#include "amqp/result.hpp"

namespace amqp::transport::ws {

// The WebSocket subprotocol of AMQP 1.0 (AMQP WebSocket Binding 1.0, as IoT Hub and Service
// Bus serve it on port 443).
inline constexpr std::string_view amqp_subprotocol = "AMQPWSB10";

// Errors of the handshake and of the framer. Local misuse (an argument that cannot be
// encoded, a call in the wrong state) uses amqp::errc::invalid_argument and
// amqp::errc::invalid_state instead.
enum class error {
  // --- Handshake (RFC 6455 §4). A server answers each with the HTTP status given. ---
  // The HTTP header block is longer than max_header_size (400).
  header_too_large = 1,
  // The start line or a header field is not valid HTTP/1.1 (RFC 7230 §3): bad request or
  // status line, a field without a colon, a name that is not a token, a control character,
  // an obs-fold continuation line, a request-target not in origin form (400).
  bad_http,
  // The request method is not GET (§4.1, §4.2.1 item 1) (400).
  bad_method,
  // The HTTP version is below 1.1 (§4.1, §4.2.1 item 1) (400).
  bad_http_version,
  // No Host header field, or more than one (§4.2.1 item 2, RFC 7230 §5.4) (400).
  bad_host,
  // Upgrade does not list `websocket`, or Connection does not list `Upgrade`
  // (§4.2.1 items 3-4; §4.1 response items 2-3) (400).
  bad_upgrade,
  // Sec-WebSocket-Version is missing or is not 13 (§4.2.1 item 6, §4.4) (426, with
  // `Sec-WebSocket-Version: 13`).
  bad_version,
  // Sec-WebSocket-Key is missing, repeated, or not the base64 encoding of 16 bytes
  // (§4.2.1 item 5) (400).
  bad_key,
  // The client did not offer the subprotocol this server requires, or the server's response
  // does not select exactly the subprotocol the client asked for (§4.1, §4.2.2) (400).
  bad_subprotocol,
  // The request path is not one of server_options::paths (404).
  path_not_found,
  // Client: the response status is not 101 (§4.1: "If the status code received from the
  // server is not 101, the client handles the response per HTTP procedures"). The status,
  // reason and header fields remain readable.
  bad_status,
  // Client: Sec-WebSocket-Accept is missing or is not the key's accept value (§4.1).
  bad_accept,
  // Client: the response selects an extension the client did not offer (§4.1).
  bad_extension,

  // --- Framer (RFC 6455 §5). close_code() gives the status code to close with. ---
  // RSV1, RSV2 or RSV3 set while no extension was negotiated (§5.2) (1002).
  reserved_bits,
  // A reserved opcode: 0x3-0x7 or 0xB-0xF (§5.2) (1002).
  bad_opcode,
  // An unmasked frame from a client, or a masked frame from a server (§5.1) (1002).
  bad_mask,
  // A payload length not in its minimal encoding, or a 64-bit length with its most
  // significant bit set (§5.2) (1002).
  bad_length,
  // A control frame with a payload above 125 bytes or without FIN (§5.5) (1002).
  bad_control_frame,
  // A continuation frame with no message started, or a new data frame while a fragmented
  // message is unfinished (§5.4) (1002).
  bad_continuation,
  // A close frame with a 1-byte payload or a status code that must not be sent
  // (§5.5.1, §7.4) (1002).
  bad_close_code,
  // The reason in a close frame is not valid UTF-8 (§5.5.1, §8.1) (1007).
  bad_close_reason,
  // A text frame: AMQP messages are binary only (§7.4.1: 1003 "a type of data it cannot
  // accept") (1003).
  text_frame,
  // A frame or message larger than framer_options::max_frame_size / max_message_size,
  // detected from the frame header before any of its payload is buffered (§7.4.1) (1009).
  message_too_big,
  // Input after the peer's close frame (§5.5.1: the peer sends nothing after it).
  closed,
};

// The error category of `error`; its name is "websocket".
[[nodiscard]] const std::error_category& websocket_category() noexcept;

// An error_code of the websocket category (found by ADL, so `ec == error::bad_key` works).
[[nodiscard]] inline std::error_code make_error_code(error e) noexcept {
  return {static_cast<int>(e), websocket_category()};
}

// Close status codes (RFC 6455 §7.4.1).
namespace close_code_value {
inline constexpr std::uint16_t normal = 1000;
inline constexpr std::uint16_t going_away = 1001;
inline constexpr std::uint16_t protocol_error = 1002;
inline constexpr std::uint16_t unsupported_data = 1003;
inline constexpr std::uint16_t invalid_payload = 1007;
inline constexpr std::uint16_t policy_violation = 1008;
inline constexpr std::uint16_t message_too_big = 1009;
inline constexpr std::uint16_t internal_error = 1011;
} // namespace close_code_value

// The close status code to send after a framer error (RFC 6455 §7.4.1): 1002, 1003, 1007 or
// 1009 as documented on each `error`, 1000 for `closed`, and 1011 (internal error) for
// anything else.
[[nodiscard]] std::uint16_t close_code(std::error_code ec) noexcept;

// Whether a status code may appear in a close frame (RFC 6455 §7.4.1-§7.4.2): 1000-1003,
// 1007-1014 and 3000-4999. 1005, 1006 and 1015 are reserved for local use.
[[nodiscard]] bool is_valid_close_code(std::uint16_t code) noexcept;

// ---------------------------------------------------------------------------------------
// Handshake (RFC 6455 §4)
// ---------------------------------------------------------------------------------------

// The Sec-WebSocket-Accept value for a Sec-WebSocket-Key (RFC 6455 §4.2.2 item 5.4):
// base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")).
[[nodiscard]] std::string accept_key(std::string_view key);

// Standard base64 (RFC 4648 §4) with padding.
[[nodiscard]] std::string base64_encode(std::span<const std::byte> bytes);

// Decodes standard padded base64 (RFC 4648 §4); nullopt if `text` is not such an encoding
// (wrong length, a character outside the alphabet, misplaced padding).
[[nodiscard]] std::optional<std::vector<std::byte>> base64_decode(std::string_view text);

// One HTTP header field, as received (name case preserved, value without surrounding
// whitespace). Views into the handshake object, valid while it lives and is not moved.
struct header_field {
  std::string_view name;
  std::string_view value;
};

// Progress of a handshake parser after feed().
struct handshake_progress {
  // The HTTP header block is complete and the handshake succeeded.
  bool done = false;
  // How many bytes of the input belong to the HTTP header. When done, the bytes that follow
  // (in.subspan(consumed)) are already WebSocket frames: hand them to the framer. While not
  // done, this is all of the input.
  std::size_t consumed = 0;
};

namespace detail {
// An HTTP/1.1 header block (start line and fields) read incrementally and bounded; the
// common part of both handshakes.
class http_head {
public:
  explicit http_head(std::size_t max_size) : max_size_(max_size) {}

  // Takes bytes up to the end of the header block (the empty line). Errors:
  // error::header_too_large, error::bad_http.
  [[nodiscard]] result<handshake_progress> feed(std::span<const std::byte> in);
  [[nodiscard]] bool complete() const noexcept { return complete_; }
  [[nodiscard]] std::string_view start_line() const noexcept;
  [[nodiscard]] std::size_t field_count() const noexcept { return fields_.size(); }
  [[nodiscard]] header_field field(std::size_t i) const noexcept;
  // The first field named `name` (case-insensitive), and how many there are.
  [[nodiscard]] std::optional<std::string_view> find(std::string_view name) const noexcept;
  [[nodiscard]] std::size_t count(std::string_view name) const noexcept;
  // Whether the comma-separated lists of all fields named `name` contain `token`
  // (RFC 7230 §3.2.2, §7), comparing case-insensitively or exactly.
  [[nodiscard]] bool has_token(std::string_view name, std::string_view token,
                               bool case_insensitive) const noexcept;

private:
  struct field_pos {
    std::size_t name_at;
    std::size_t name_size;
    std::size_t value_at;
    std::size_t value_size;
  };
  [[nodiscard]] result<void> parse();

  std::string buf_;
  std::vector<field_pos> fields_;
  std::size_t max_size_;
  std::size_t start_line_size_ = 0;
  bool complete_ = false;
};
} // namespace detail

// Client handshake settings.
struct client_options {
  // The server's host name or IP address literal, sent in Host (RFC 7230 §5.4). An IPv6
  // literal is bracketed if it is not already.
  std::string host;
  // The server's port; left out of Host when it is the default (443 if secure, else 80).
  std::uint16_t port = 443;
  // wss (TLS) rather than ws; only decides the default port.
  bool secure = true;
  // The request-target: an absolute path with an optional query, e.g. "/$iothub/websocket".
  std::string path = "/";
  // The subprotocol offered and required in the response.
  std::string subprotocol = std::string(amqp_subprotocol);
  // More header fields, e.g. {"Authorization", "..."}, sent after the standard ones. They may
  // not repeat the fields the handshake itself sends (Host, Upgrade, Connection,
  // Sec-WebSocket-*).
  std::vector<std::pair<std::string, std::string>> extra_headers;
  // The largest response header block accepted.
  std::size_t max_header_size = 8192;
};

// The client side of the opening handshake (RFC 6455 §4.1): the request to send, then the
// response parsed incrementally from any chunking.
class client_handshake {
public:
  // Builds the request. `nonce`: 16 bytes, "randomly selected" for this connection (§4.1
  // item 7); its base64 is the Sec-WebSocket-Key.
  // Errors: errc::invalid_argument if the host is empty or holds characters not allowed in
  // a host, the path does not start with '/' or holds a space or control character, the
  // subprotocol is not a token, or an extra header name is not a token or its value holds a
  // control character other than tab, or is one of the fields the handshake sends itself.
  [[nodiscard]] static result<client_handshake> create(const client_options& opts,
                                                       std::span<const std::byte, 16> nonce);

  // The HTTP request to write, whole.
  [[nodiscard]] const std::string& request() const noexcept { return request_; }
  // The Sec-WebSocket-Key sent.
  [[nodiscard]] std::string_view key() const noexcept { return key_; }

  // Feeds response bytes (any chunking). Takes nothing beyond the header block.
  // Errors (sticky): error::header_too_large, bad_http, bad_http_version, bad_status,
  // bad_upgrade, bad_accept, bad_extension, bad_subprotocol; after done, errc::invalid_state.
  [[nodiscard]] result<handshake_progress> feed(std::span<const std::byte> in);

  // The handshake succeeded: the connection is now a WebSocket (client role).
  [[nodiscard]] bool done() const noexcept { return done_; }
  // The response status code once the header block is complete (0 before).
  [[nodiscard]] unsigned status() const noexcept { return status_; }
  // The response's reason phrase (empty before the header block is complete).
  [[nodiscard]] std::string_view reason() const noexcept;
  // The response's header fields (empty before the header block is complete); views valid
  // while this object lives and is not moved.
  // header(): the first field with this name (case-insensitive); header_count() and
  // header_at(i), i < header_count(): every field in order.
  [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const noexcept {
    return head_.find(name);
  }
  [[nodiscard]] std::size_t header_count() const noexcept { return head_.field_count(); }
  [[nodiscard]] header_field header_at(std::size_t i) const noexcept { return head_.field(i); }

private:
  explicit client_handshake(std::size_t max_header_size) : head_(max_header_size) {}
  [[nodiscard]] result<void> validate();

  detail::http_head head_;
  std::string request_;
  std::string key_;
  std::string expected_accept_;
  std::string subprotocol_;
  std::error_code error_;
  unsigned status_ = 0;
  bool done_ = false;
};

// Server handshake settings.
struct server_options {
  // The request paths accepted (exact match, query ignored), e.g. "/$iothub/websocket" and
  // "/$servicebus/websocket". Empty: any path, the caller checks path() itself.
  std::vector<std::string> paths;
  // The subprotocol the client must offer; the 101 response selects it.
  std::string subprotocol = std::string(amqp_subprotocol);
  // The largest request header block accepted.
  std::size_t max_header_size = 8192;
};

// The server side of the opening handshake (RFC 6455 §4.2): the request parsed incrementally
// from any chunking and validated, then the response to send.
class server_handshake {
public:
  explicit server_handshake(server_options opts = {});

  // Feeds request bytes (any chunking). Takes nothing beyond the header block. On an error,
  // response() holds the HTTP error response to send before closing the connection.
  // Errors (sticky): error::header_too_large, bad_http, bad_method, bad_http_version,
  // bad_host, bad_upgrade, bad_version, bad_key, bad_subprotocol, path_not_found; after
  // done, errc::invalid_state.
  [[nodiscard]] result<handshake_progress> feed(std::span<const std::byte> in);

  // The request was accepted: send response() (101), then the connection is a WebSocket
  // (server role).
  [[nodiscard]] bool done() const noexcept { return done_; }
  // The response to send: "101 Switching Protocols" once done, the 400/404/426 error
  // response after an error, empty before either.
  [[nodiscard]] const std::string& response() const noexcept { return response_; }
  // The response status: 101, 400, 404 or 426; 0 before the header block is complete.
  [[nodiscard]] unsigned status() const noexcept { return status_; }

  // The request, once its header block is complete (empty before); views valid while this
  // object lives and is not moved. target() is the request-target as sent, path() the part
  // before any '?'. header(), header_count() and header_at() as in client_handshake.
  [[nodiscard]] std::string_view method() const noexcept;
  [[nodiscard]] std::string_view target() const noexcept;
  [[nodiscard]] std::string_view path() const noexcept;
  [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const noexcept {
    return head_.find(name);
  }
  [[nodiscard]] std::size_t header_count() const noexcept { return head_.field_count(); }
  [[nodiscard]] header_field header_at(std::size_t i) const noexcept { return head_.field(i); }

private:
  [[nodiscard]] error validate();
  void reject(error e);

  server_options opts_;
  detail::http_head head_;
  std::string response_;
  std::error_code error_;
  unsigned status_ = 0;
  bool done_ = false;
};

// An HTTP/1.1 error response with `reason` as a text/plain body and `Connection: close`, for
// a server that rejects a request itself after the handshake parsed it (e.g. 401 after
// checking Authorization). `status` must be 100-999; reason phrases are the standard ones.
[[nodiscard]] std::string make_error_response(unsigned status, std::string_view reason);

// ---------------------------------------------------------------------------------------
// Framing (RFC 6455 §5)
// ---------------------------------------------------------------------------------------

// Which end of the connection this is. A client masks what it sends and requires unmasked
// frames; a server the reverse (RFC 6455 §5.1).
enum class role : std::uint8_t { client, server };

// Frame opcodes (RFC 6455 §5.2, §11.8).
enum class opcode : std::uint8_t {
  continuation = 0x0,
  text = 0x1,
  binary = 0x2,
  close = 0x8,
  ping = 0x9,
  pong = 0xA,
};

// A masking key (RFC 6455 §5.3): 4 bytes from a strong source of entropy, new for each frame
// a client sends (§10.3).
using masking_key = std::array<std::byte, 4>;

// The largest frame header: 2 bytes, a 64-bit extended length, a masking key (§5.2).
inline constexpr std::size_t max_frame_header_size = 14;
// The largest control frame payload (§5.5) and control frame.
inline constexpr std::size_t max_control_payload = 125;
inline constexpr std::size_t max_control_frame_size = 6 + max_control_payload;

// The fields of a frame header to encode (RSV bits are always 0: no extension is used).
struct frame_header {
  // The final fragment of a message (§5.4).
  bool fin = true;
  opcode op = opcode::binary;
  // At most 2^63 - 1; at most 125 for a control opcode.
  std::uint64_t payload_size = 0;
  // Set: the MASK bit and this key (client frames). Empty: unmasked (server frames).
  std::optional<masking_key> mask;
};

// The encoded size of a header with this payload size and masking (2 to 14 bytes).
[[nodiscard]] std::size_t frame_header_size(std::uint64_t payload_size, bool masked) noexcept;

// Writes `h` into `out` with the minimal length encoding (§5.2); returns the size written.
// The payload follows it separately (gather write), masked by mask() if h.mask is set.
// Errors: errc::invalid_argument if payload_size is above 2^63 - 1, or for a control opcode
// if the payload is above 125 bytes or fin is false (§5.5).
[[nodiscard]] result<std::size_t>
write_frame_header(const frame_header& h, std::span<std::byte, max_frame_header_size> out);

// Masks (or unmasks: the same XOR) `bytes` in place (§5.3). `offset` is the position of
// bytes[0] within the frame payload, so a payload can be masked in pieces.
void mask(std::span<std::byte> bytes, const masking_key& key, std::uint64_t offset = 0) noexcept;

// Appends a whole frame (header, then the payload, masked if `key` is set) to `out`.
// Errors: those of write_frame_header.
[[nodiscard]] result<void> append_frame(std::vector<std::byte>& out, opcode op, bool fin,
                                        std::span<const std::byte> payload,
                                        const std::optional<masking_key>& key);

// A complete control frame, encoded without allocation.
struct control_frame {
  // The frame is storage[0, size); bytes() views it (valid while this object lives).
  std::array<std::byte, max_control_frame_size> storage{};
  std::size_t size = 0;
  [[nodiscard]] std::span<const std::byte> bytes() const noexcept { return {storage.data(), size}; }
};

// Received binary payload bytes. In stream mode, a piece of a message as it arrived; in
// message mode, a whole message. `bytes` views either the caller's input (unmasked in place)
// or the framer's buffer; valid until the next feed() and while the input is.
struct data_received {
  std::span<const std::byte> bytes;
  // These bytes end a message. Every message ends with exactly one such event (possibly with
  // no bytes); pieces without it are never empty.
  bool message_end = false;
};

// A ping (§5.5.2): the caller must answer with pong() carrying the same payload, as soon as
// practical. The view is valid until the next feed().
struct ping_received {
  std::span<const std::byte> payload;
};

// A pong (§5.5.3), solicited or not; nothing to do. The view is valid until the next feed().
struct pong_received {
  std::span<const std::byte> payload;
};

// The peer's close frame (§5.5.1, validated per §7.4). If close_sent() is false, answer with
// close(code, {}) (echoing the code, §5.5.1), then close the TCP connection (a server at once,
// a client after the server has, §7.1.1). No more input is accepted. The reason view is
// valid until the next feed().
struct close_received {
  // Empty: the frame had no body (status 1005, "no status code present", §7.4.1).
  std::optional<std::uint16_t> code;
  std::string_view reason;
};

// What one feed() can decode.
using frame_event = std::variant<data_received, ping_received, pong_received, close_received>;

// The result of one feed().
struct feed_result {
  // Bytes of the input taken, at least 1 if the input was not empty. Without an event, all of
  // the input was taken; with one, feed the rest again.
  std::size_t consumed = 0;
  std::optional<frame_event> event;
};

// Framer settings. Every size the peer controls is bounded.
struct framer_options {
  // Stream mode: binary payload is handed over as it arrives, as views into the input, with
  // no buffering at all (what an AMQP connection wants: it reassembles its own frames).
  // Message mode (false): fragments are reassembled and each message is delivered whole,
  // buffering at most max_message_size bytes.
  bool stream = true;
  // The largest frame payload accepted (error::message_too_big above it).
  std::uint64_t max_frame_size = std::uint64_t{16} << 20U;
  // The largest message (sum of its fragments) accepted (error::message_too_big above it).
  std::uint64_t max_message_size = std::uint64_t{16} << 20U;
};

// One end of a WebSocket connection after the handshake: decodes what the peer sends and
// encodes what this end sends, enforcing the RFC 6455 rules for its role. Memory is bounded
// whatever the peer sends: 14 header bytes, 125 control bytes, and in message mode at most
// max_message_size bytes of reassembly.
class framer {
public:
  // A framer for this end's role, after the handshake.
  explicit framer(role local, const framer_options& opts = {});

  // --- Receiving ---

  // Decodes from `in`, returning at most one event; call again with the rest. The payload of
  // masked frames is unmasked in place in `in` (so a server hands views into the input
  // without copying). Errors (sticky, with close_code() for the close frame to send):
  // error::reserved_bits, bad_opcode, bad_mask, bad_length, bad_control_frame,
  // bad_continuation, bad_close_code, bad_close_reason, text_frame, message_too_big; after
  // a close_received event, error::closed (not sticky).
  [[nodiscard]] result<feed_result> feed(std::span<std::byte> in);

  // The peer's close frame was received.
  [[nodiscard]] bool close_received() const noexcept { return close_received_; }
  // Bytes held for the frame in progress: header, control payload, message reassembly.
  [[nodiscard]] std::size_t buffered() const noexcept;
  // A message (or a frame) is partly received.
  [[nodiscard]] bool in_message() const noexcept { return in_message_ || reading_payload_; }

  // --- Sending. `key`: a new random masking key for a client; ignored by a server. ---

  // Writes the header of a binary data frame of `payload_size` bytes into `out` and returns
  // its size; the payload follows it (a client masks it with mask(payload, key) first).
  // fin = false leaves the message open: the next data frame is its continuation.
  // Errors: errc::invalid_state after close(); errc::invalid_argument if payload_size is
  // above 2^63 - 1.
  [[nodiscard]] result<std::size_t>
  write_data_header(std::span<std::byte, max_frame_header_size> out, std::uint64_t payload_size,
                    const masking_key& key, bool fin = true);
  // A ping or pong frame (a pong answers a ping with its payload, §5.5.3). Errors:
  // errc::invalid_argument above 125 bytes; errc::invalid_state after close().
  [[nodiscard]] result<control_frame> ping(std::span<const std::byte> payload,
                                           const masking_key& key);
  [[nodiscard]] result<control_frame> pong(std::span<const std::byte> payload,
                                           const masking_key& key);
  // The close frame, sent at most once (§5.5.1); nothing may be sent after it. An empty code
  // sends no body (then the reason must be empty). Errors: errc::invalid_state if a close was
  // already made; errc::invalid_argument if the code is not is_valid_close_code(), the reason
  // is above 123 bytes or is not UTF-8, or a reason comes without a code.
  [[nodiscard]] result<control_frame> close(std::optional<std::uint16_t> code,
                                            std::string_view reason, const masking_key& key);
  // close() was called successfully.
  [[nodiscard]] bool close_sent() const noexcept { return close_sent_; }

private:
  [[nodiscard]] std::optional<error> check_first_bytes() const noexcept;
  [[nodiscard]] std::optional<error> start_frame() noexcept;
  [[nodiscard]] result<std::optional<frame_event>>
  end_of_frame_payload(std::span<const std::byte> piece);
  [[nodiscard]] result<control_frame> control(opcode op, std::span<const std::byte> payload,
                                              const masking_key& key);
  [[nodiscard]] std::error_code fail(error e) noexcept;

  role role_;
  framer_options opts_;

  // The frame being read (RFC 6455 §5.2).
  std::array<std::byte, max_frame_header_size> header_{};
  std::size_t header_have_ = 0;
  bool reading_payload_ = false;
  bool fin_ = false;
  opcode op_ = opcode::continuation;
  std::optional<masking_key> key_;
  std::uint64_t payload_size_ = 0;
  std::uint64_t payload_done_ = 0;

  // The message being read (§5.4).
  bool in_message_ = false;
  std::uint64_t message_size_ = 0; // declared by the headers so far, for the limit
  std::vector<std::byte> message_; // message mode only
  bool message_delivered_ = false; // message_ is a delivered message: clear it at next feed
  std::array<std::byte, max_control_payload> control_{};

  std::error_code error_;
  bool close_received_ = false;

  // Sending.
  bool sending_fragments_ = false;
  bool close_sent_ = false;
};

} // namespace amqp::transport::ws

template <> struct std::is_error_code_enum<amqp::transport::ws::error> : std::true_type {};
