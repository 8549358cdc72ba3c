// Request/response over a sender + receiver link pair to one node (AMQP 1.0 messaging, the
// pattern of CBS `$cbs` put-token and `$management` operations): each request gets a new
// message-id (ulong) and our reply-to address; the node answers on the receiving link with a
// correlation-id equal to that message-id.
//
// A helper on the public engine API, outside the state machine: the application feeds it the
// events of its connection (on_event) and it never calls back. Single-threaded, like the
// connection it is used with.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory_resource>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "amqp/connection.hpp"
#include "amqp/message.hpp"

namespace amqp {

struct request_response_options {
  // The node requests go to, e.g. "$cbs" or "$management" (sender target, receiver source).
  std::string_view address{};
  // Our reply address (receiver target and the requests' reply-to); empty: address + "-reply".
  std::string_view reply_to{};
  // The link names are link_name + "-sender" and link_name + "-receiver"; empty: address.
  std::string_view link_name{};
  // Requests sent and not yet answered; more make request() return errc::would_block.
  std::uint32_t max_pending = 64;
  // Credit kept on the receiving link.
  std::uint32_t credit = 16;
  std::pmr::memory_resource* memory = std::pmr::new_delete_resource();
};

// A response: the request it answers and the message (views valid until the connection's
// next receive()).
struct response {
  std::uint64_t request = 0;
  message_view message{};
};

class request_response {
public:
  explicit request_response(std::pmr::memory_resource* m = std::pmr::new_delete_resource());

  // Attaches the two links in session `s`. Errors: those of connection::attach.
  [[nodiscard]] result<void> open(connection& c, session_id s, const request_response_options& o);
  // Both links are attached by the peer and the sender has credit.
  [[nodiscard]] bool ready(const connection& c) const noexcept;
  // Both links are attached by the peer, each with its terminus. A peer that refuses a link
  // (AMQP 1.0 §2.6.3: an attach without the terminus, then a detach) never makes this true;
  // its detach fails the helper.
  [[nodiscard]] bool attached() const noexcept {
    return sender_attached_ && receiver_attached_ && !failed_;
  }
  // Sends `m` as a request: its properties get a new message-id and our reply-to (other
  // sections and properties are kept). Returns the request's id (its message-id).
  // Errors: errc::invalid_state (not open, or the links are gone), errc::would_block (no
  // credit, or max_pending requests outstanding), errc::invalid_argument (m does not
  // encode), and those of connection::send.
  [[nodiscard]] result<std::uint64_t> request(connection& c, const message_parts& m);
  // The same for a decoded (or encoded, then decoded) message: its properties section is
  // replaced as above, every other section is sent byte for byte as it is in `m`.
  // Errors: those of the overload above.
  [[nodiscard]] result<std::uint64_t> request(connection& c, const message_view& m);
  // Offers one event of the connection. Returns the response it carries, if any; the
  // delivery is settled (accepted). Responses to no pending request (unknown or missing
  // correlation-id) are accepted and dropped. Detaching links fail the helper
  // (failed() then holds the reason, and pending requests are dropped).
  [[nodiscard]] std::optional<response> on_event(connection& c, const event& e);
  // Forgets a pending request (e.g. after the caller's timeout).
  void cancel(std::uint64_t id) noexcept;
  [[nodiscard]] std::size_t pending() const noexcept { return pending_.size(); }
  [[nodiscard]] std::error_code failed() const noexcept { return failed_; }
  [[nodiscard]] std::optional<link_id> sender() const noexcept { return sender_; }
  [[nodiscard]] std::optional<link_id> receiver() const noexcept { return receiver_; }
  // Detaches both links. Errors: those of connection::detach.
  [[nodiscard]] result<void> close(connection& c);

private:
  // Errors of request() that do not depend on the message.
  [[nodiscard]] result<void> can_request(const connection& c) const noexcept;
  // Sends buffer_ as the request with message-id next_id_.
  [[nodiscard]] result<std::uint64_t> send_buffer(connection& c);

  std::pmr::memory_resource* mem_;
  std::pmr::string reply_to_;
  std::pmr::vector<std::uint64_t> pending_;
  std::pmr::vector<std::byte> buffer_;
  std::optional<link_id> sender_{}, receiver_{};
  bool sender_attached_ = false, receiver_attached_ = false;
  std::uint32_t max_pending_ = 64, credit_ = 16, credit_left_ = 0;
  std::uint64_t next_id_ = 1;
  bool closing_ = false;
  std::error_code failed_{};
};

} // namespace amqp
