// The "amqp" error category and the mapping of local errors to AMQP conditions.
#include "amqp/error.hpp"

#include <string>

namespace amqp {

namespace {
class category_impl final : public std::error_category {
public:
  [[nodiscard]] const char* name() const noexcept override { return "amqp"; }
  [[nodiscard]] std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
    case errc::decode_error:
      return "malformed AMQP encoding";
    case errc::depth_exceeded:
      return "AMQP value nested too deeply";
    case errc::resource_limit:
      return "resource limit exceeded";
    case errc::type_mismatch:
      return "AMQP value of the wrong type";
    case errc::missing_field:
      return "mandatory field missing";
    case errc::unexpected_descriptor:
      return "unexpected descriptor";
    case errc::invalid_message:
      return "message sections out of order or repeated";
    case errc::invalid_argument:
      return "invalid argument";
    case errc::buffer_too_small:
      return "buffer too small";
    case errc::out_of_memory:
      return "out of memory";
    case errc::framing_error:
      return "malformed frame";
    case errc::frame_too_large:
      return "frame larger than the maximum frame size";
    case errc::unexpected_frame_type:
      return "unexpected frame type";
    case errc::protocol_mismatch:
      return "unsupported protocol header";
    case errc::invalid_state:
      return "not valid in the current state";
    case errc::would_block:
      return "would block: no credit, window or output space";
    case errc::not_allowed:
      return "not allowed by the protocol";
    case errc::illegal_state:
      return "frame not valid in the current state";
    case errc::invalid_field:
      return "invalid field value";
    case errc::frame_size_too_small:
      return "frame size too small";
    case errc::window_violation:
      return "session window violation";
    case errc::unattached_handle:
      return "unattached handle";
    case errc::handle_in_use:
      return "handle in use";
    case errc::transfer_limit_exceeded:
      return "transfer beyond link credit";
    case errc::message_size_exceeded:
      return "message larger than max-message-size";
    case errc::timeout:
      return "timed out";
    case errc::unauthorized:
      return "authentication failed";
    case errc::remote_error:
      return "closed by the peer with an error";
    case errc::connection_lost:
      return "connection lost";
    }
    return "unknown amqp error";
  }
};
} // namespace

const std::error_category& amqp_category() noexcept {
  static const category_impl instance;
  return instance;
}

std::string_view to_condition_symbol(std::error_code ec) noexcept {
  if (ec.category() != amqp_category()) {
    return symbol::internal_error;
  }
  switch (static_cast<errc>(ec.value())) {
  case errc::decode_error:
  case errc::depth_exceeded:
  case errc::type_mismatch:
  case errc::unexpected_descriptor:
  case errc::invalid_message:
    return symbol::decode_error;
  case errc::resource_limit:
    return symbol::resource_limit_exceeded;
  case errc::missing_field:
    return symbol::invalid_field;
  case errc::invalid_argument:
  case errc::buffer_too_small:
  case errc::out_of_memory:
    return symbol::internal_error;
  case errc::framing_error:
  case errc::frame_too_large:
  case errc::unexpected_frame_type:
    return symbol::framing_error;
  case errc::protocol_mismatch:
    return symbol::not_implemented;
  case errc::invalid_state:
  case errc::would_block:
  case errc::remote_error:
  case errc::connection_lost:
    return symbol::internal_error;
  case errc::not_allowed:
    return symbol::not_allowed;
  case errc::illegal_state:
    return symbol::illegal_state;
  case errc::invalid_field:
    return symbol::invalid_field;
  case errc::frame_size_too_small:
    return symbol::frame_size_too_small;
  case errc::window_violation:
    return symbol::window_violation;
  case errc::unattached_handle:
    return symbol::unattached_handle;
  case errc::handle_in_use:
    return symbol::handle_in_use;
  case errc::transfer_limit_exceeded:
    return symbol::transfer_limit_exceeded;
  case errc::message_size_exceeded:
    return symbol::message_size_exceeded;
  case errc::timeout:
    return symbol::resource_limit_exceeded;
  case errc::unauthorized:
    return symbol::unauthorized_access;
  }
  return symbol::internal_error;
}

} // namespace amqp
