// The "amqp.iothub" error category and the hub's texts.
#include "amqp/iothub/errors.hpp"

#include <string>

namespace amqp::iothub {

namespace {
class category_impl final : public std::error_category {
public:
  [[nodiscard]] const char* name() const noexcept override { return "amqp.iothub"; }
  [[nodiscard]] std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
    case errc::missing_field:
      return "required field missing";
    case errc::invalid_value:
      return "invalid value";
    case errc::conflict:
      return "conflicting or repeated fields";
    case errc::not_supported:
      return "not supported";
    case errc::limit_exceeded:
      return "limit exceeded";
    case errc::signature_mismatch:
      return "SAS signature matches no key";
    case errc::token_expired:
      return "SAS token expired";
    }
    return "unknown amqp.iothub error";
  }
};
} // namespace

const std::error_category& iothub_category() noexcept {
  static const category_impl instance;
  return instance;
}

std::string message_size_description(std::size_t size, std::size_t max_size) {
  return "Message size is " + std::to_string(size) + " bytes which is greater than the max size " +
         std::to_string(max_size) + " bytes allowed.";
}

std::string_view condition_of_status(std::int32_t status) noexcept {
  switch (status) {
  case cbs_status::bad_request:
    return amqp::symbol::invalid_field;
  case cbs_status::unauthorized:
    return amqp::symbol::unauthorized_access;
  case cbs_status::forbidden:
    return amqp::symbol::transfer_limit_exceeded;
  case cbs_status::not_found:
    return amqp::symbol::not_found;
  default:
    return amqp::symbol::internal_error;
  }
}

} // namespace amqp::iothub
