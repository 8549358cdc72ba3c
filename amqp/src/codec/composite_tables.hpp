// The field tables of the AMQP 1.0 composite types: the
// spec XML transcribed, one composite_traits specialisation per <type class="composite">,
// fields in the XML's order. tests/amqp/codec/spec_xml_test.cpp checks them against the XML.
//
// They are in one header because the types nest across spec parts (close holds an error,
// transfer a delivery state, attach a source and a coordinator), and every translation unit
// that encodes or decodes a composite must see the tables of the composites inside it.
#pragma once

#include <cstdint>
#include <string_view>
#include <tuple>

#include "amqp/message.hpp"
#include "amqp/messaging.hpp"
#include "amqp/performatives.hpp"
#include "amqp/sasl.hpp"
#include "amqp/transactions.hpp"
#include "codec/composite.hpp"

namespace amqp::detail {

// ---- transport.xml (AMQP 1.0 §2.7, §2.8.14) ----------------------------------------------

template <> struct composite_traits<open> {
  static constexpr std::uint64_t code = 0x10;
  static constexpr std::string_view name = "amqp:open:list";
  static constexpr auto fields = std::tuple{
      field{&open::container_id, "container-id", mandatory},
      field{&open::hostname, "hostname"},
      field{&open::max_frame_size, "max-frame-size"},
      field{&open::channel_max, "channel-max"},
      field{&open::idle_time_out, "idle-time-out"},
      field{&open::outgoing_locales, "outgoing-locales"},
      field{&open::incoming_locales, "incoming-locales"},
      field{&open::offered_capabilities, "offered-capabilities"},
      field{&open::desired_capabilities, "desired-capabilities"},
      field{&open::properties, "properties"},
  };
};

template <> struct composite_traits<begin> {
  static constexpr std::uint64_t code = 0x11;
  static constexpr std::string_view name = "amqp:begin:list";
  static constexpr auto fields = std::tuple{
      field{&begin::remote_channel, "remote-channel"},
      field{&begin::next_outgoing_id, "next-outgoing-id", mandatory},
      field{&begin::incoming_window, "incoming-window", mandatory},
      field{&begin::outgoing_window, "outgoing-window", mandatory},
      field{&begin::handle_max, "handle-max"},
      field{&begin::offered_capabilities, "offered-capabilities"},
      field{&begin::desired_capabilities, "desired-capabilities"},
      field{&begin::properties, "properties"},
  };
};

template <> struct composite_traits<attach> {
  static constexpr std::uint64_t code = 0x12;
  static constexpr std::string_view name = "amqp:attach:list";
  static constexpr auto fields = std::tuple{
      field{&attach::name, "name", mandatory},
      field{&attach::handle, "handle", mandatory},
      field{&attach::role, "role", mandatory},
      field{&attach::snd_settle_mode, "snd-settle-mode"},
      field{&attach::rcv_settle_mode, "rcv-settle-mode"},
      field{&attach::source, "source"},
      field{&attach::target, "target"},
      field{&attach::unsettled, "unsettled"},
      field{&attach::incomplete_unsettled, "incomplete-unsettled"},
      field{&attach::initial_delivery_count, "initial-delivery-count"},
      field{&attach::max_message_size, "max-message-size"},
      field{&attach::offered_capabilities, "offered-capabilities"},
      field{&attach::desired_capabilities, "desired-capabilities"},
      field{&attach::properties, "properties"},
  };
};

template <> struct composite_traits<flow> {
  static constexpr std::uint64_t code = 0x13;
  static constexpr std::string_view name = "amqp:flow:list";
  static constexpr auto fields = std::tuple{
      field{&flow::next_incoming_id, "next-incoming-id"},
      field{&flow::incoming_window, "incoming-window", mandatory},
      field{&flow::next_outgoing_id, "next-outgoing-id", mandatory},
      field{&flow::outgoing_window, "outgoing-window", mandatory},
      field{&flow::handle, "handle"},
      field{&flow::delivery_count, "delivery-count"},
      field{&flow::link_credit, "link-credit"},
      field{&flow::available, "available"},
      field{&flow::drain, "drain"},
      field{&flow::echo, "echo"},
      field{&flow::properties, "properties"},
  };
};

template <> struct composite_traits<transfer> {
  static constexpr std::uint64_t code = 0x14;
  static constexpr std::string_view name = "amqp:transfer:list";
  static constexpr auto fields = std::tuple{
      field{&transfer::handle, "handle", mandatory},
      field{&transfer::delivery_id, "delivery-id"},
      field{&transfer::delivery_tag, "delivery-tag"},
      field{&transfer::message_format, "message-format"},
      field{&transfer::settled, "settled"},
      field{&transfer::more, "more"},
      field{&transfer::rcv_settle_mode, "rcv-settle-mode"},
      field{&transfer::state, "state"},
      field{&transfer::resume, "resume"},
      field{&transfer::aborted, "aborted"},
      field{&transfer::batchable, "batchable"},
  };
};

template <> struct composite_traits<disposition> {
  static constexpr std::uint64_t code = 0x15;
  static constexpr std::string_view name = "amqp:disposition:list";
  static constexpr auto fields = std::tuple{
      field{&disposition::role, "role", mandatory},
      field{&disposition::first, "first", mandatory},
      field{&disposition::last, "last"},
      field{&disposition::settled, "settled"},
      field{&disposition::state, "state"},
      field{&disposition::batchable, "batchable"},
  };
};

template <> struct composite_traits<detach> {
  static constexpr std::uint64_t code = 0x16;
  static constexpr std::string_view name = "amqp:detach:list";
  static constexpr auto fields = std::tuple{
      field{&detach::handle, "handle", mandatory},
      field{&detach::closed, "closed"},
      field{&detach::error, "error"},
  };
};

template <> struct composite_traits<end> {
  static constexpr std::uint64_t code = 0x17;
  static constexpr std::string_view name = "amqp:end:list";
  static constexpr auto fields = std::tuple{field{&end::error, "error"}};
};

template <> struct composite_traits<close> {
  static constexpr std::uint64_t code = 0x18;
  static constexpr std::string_view name = "amqp:close:list";
  static constexpr auto fields = std::tuple{field{&close::error, "error"}};
};

template <> struct composite_traits<error> {
  static constexpr std::uint64_t code = 0x1d;
  static constexpr std::string_view name = "amqp:error:list";
  static constexpr auto fields = std::tuple{
      field{&error::condition, "condition", mandatory},
      field{&error::description, "description"},
      field{&error::info, "info"},
  };
};

// ---- messaging.xml (AMQP 1.0 §3.4, §3.5) ---------------------------------------------------

template <> struct composite_traits<received> {
  static constexpr std::uint64_t code = 0x23;
  static constexpr std::string_view name = "amqp:received:list";
  static constexpr auto fields = std::tuple{
      field{&received::section_number, "section-number", mandatory},
      field{&received::section_offset, "section-offset", mandatory},
  };
};

template <> struct composite_traits<accepted> {
  static constexpr std::uint64_t code = 0x24;
  static constexpr std::string_view name = "amqp:accepted:list";
  static constexpr auto fields = std::tuple{};
};

template <> struct composite_traits<rejected> {
  static constexpr std::uint64_t code = 0x25;
  static constexpr std::string_view name = "amqp:rejected:list";
  static constexpr auto fields = std::tuple{field{&rejected::error, "error"}};
};

template <> struct composite_traits<released> {
  static constexpr std::uint64_t code = 0x26;
  static constexpr std::string_view name = "amqp:released:list";
  static constexpr auto fields = std::tuple{};
};

template <> struct composite_traits<modified> {
  static constexpr std::uint64_t code = 0x27;
  static constexpr std::string_view name = "amqp:modified:list";
  static constexpr auto fields = std::tuple{
      field{&modified::delivery_failed, "delivery-failed"},
      field{&modified::undeliverable_here, "undeliverable-here"},
      field{&modified::message_annotations, "message-annotations"},
  };
};

template <> struct composite_traits<source> {
  static constexpr std::uint64_t code = 0x28;
  static constexpr std::string_view name = "amqp:source:list";
  static constexpr auto fields = std::tuple{
      field{&source::address, "address"},
      field{&source::durable, "durable"},
      field{&source::expiry_policy, "expiry-policy"},
      field{&source::timeout, "timeout"},
      field{&source::dynamic, "dynamic"},
      field{&source::dynamic_node_properties, "dynamic-node-properties"},
      field{&source::distribution_mode, "distribution-mode"},
      field{&source::filter, "filter"},
      field{&source::default_outcome, "default-outcome"},
      field{&source::outcomes, "outcomes"},
      field{&source::capabilities, "capabilities"},
  };
};

template <> struct composite_traits<target> {
  static constexpr std::uint64_t code = 0x29;
  static constexpr std::string_view name = "amqp:target:list";
  static constexpr auto fields = std::tuple{
      field{&target::address, "address"},
      field{&target::durable, "durable"},
      field{&target::expiry_policy, "expiry-policy"},
      field{&target::timeout, "timeout"},
      field{&target::dynamic, "dynamic"},
      field{&target::dynamic_node_properties, "dynamic-node-properties"},
      field{&target::capabilities, "capabilities"},
  };
};

template <> struct composite_traits<delete_on_close> {
  static constexpr std::uint64_t code = 0x2b;
  static constexpr std::string_view name = "amqp:delete-on-close:list";
  static constexpr auto fields = std::tuple{};
};

template <> struct composite_traits<delete_on_no_links> {
  static constexpr std::uint64_t code = 0x2c;
  static constexpr std::string_view name = "amqp:delete-on-no-links:list";
  static constexpr auto fields = std::tuple{};
};

template <> struct composite_traits<delete_on_no_messages> {
  static constexpr std::uint64_t code = 0x2d;
  static constexpr std::string_view name = "amqp:delete-on-no-messages:list";
  static constexpr auto fields = std::tuple{};
};

template <> struct composite_traits<delete_on_no_links_or_messages> {
  static constexpr std::uint64_t code = 0x2e;
  static constexpr std::string_view name = "amqp:delete-on-no-links-or-messages:list";
  static constexpr auto fields = std::tuple{};
};

// ---- security.xml (AMQP 1.0 §5.3.3) --------------------------------------------------------

template <> struct composite_traits<sasl_mechanisms> {
  static constexpr std::uint64_t code = 0x40;
  static constexpr std::string_view name = "amqp:sasl-mechanisms:list";
  static constexpr auto fields = std::tuple{
      field{&sasl_mechanisms::sasl_server_mechanisms, "sasl-server-mechanisms", mandatory},
  };
};

template <> struct composite_traits<sasl_init> {
  static constexpr std::uint64_t code = 0x41;
  static constexpr std::string_view name = "amqp:sasl-init:list";
  static constexpr auto fields = std::tuple{
      field{&sasl_init::mechanism, "mechanism", mandatory},
      field{&sasl_init::initial_response, "initial-response"},
      field{&sasl_init::hostname, "hostname"},
  };
};

template <> struct composite_traits<sasl_challenge> {
  static constexpr std::uint64_t code = 0x42;
  static constexpr std::string_view name = "amqp:sasl-challenge:list";
  static constexpr auto fields =
      std::tuple{field{&sasl_challenge::challenge, "challenge", mandatory}};
};

template <> struct composite_traits<sasl_response> {
  static constexpr std::uint64_t code = 0x43;
  static constexpr std::string_view name = "amqp:sasl-response:list";
  static constexpr auto fields = std::tuple{field{&sasl_response::response, "response", mandatory}};
};

template <> struct composite_traits<sasl_outcome> {
  static constexpr std::uint64_t code = 0x44;
  static constexpr std::string_view name = "amqp:sasl-outcome:list";
  static constexpr auto fields = std::tuple{
      field{&sasl_outcome::code, "code", mandatory},
      field{&sasl_outcome::additional_data, "additional-data"},
  };
};

// ---- transactions.xml (AMQP 1.0 §4.5) ------------------------------------------------------

template <> struct composite_traits<coordinator> {
  static constexpr std::uint64_t code = 0x30;
  static constexpr std::string_view name = "amqp:coordinator:list";
  static constexpr auto fields = std::tuple{field{&coordinator::capabilities, "capabilities"}};
};

template <> struct composite_traits<declare> {
  static constexpr std::uint64_t code = 0x31;
  static constexpr std::string_view name = "amqp:declare:list";
  static constexpr auto fields = std::tuple{field{&declare::global_id, "global-id"}};
};

template <> struct composite_traits<discharge> {
  static constexpr std::uint64_t code = 0x32;
  static constexpr std::string_view name = "amqp:discharge:list";
  static constexpr auto fields = std::tuple{
      field{&discharge::txn_id, "txn-id", mandatory},
      field{&discharge::fail, "fail"},
  };
};

template <> struct composite_traits<declared> {
  static constexpr std::uint64_t code = 0x33;
  static constexpr std::string_view name = "amqp:declared:list";
  static constexpr auto fields = std::tuple{field{&declared::txn_id, "txn-id", mandatory}};
};

template <> struct composite_traits<transactional_state> {
  static constexpr std::uint64_t code = 0x34;
  static constexpr std::string_view name = "amqp:transactional-state:list";
  static constexpr auto fields = std::tuple{
      field{&transactional_state::txn_id, "txn-id", mandatory},
      field{&transactional_state::outcome, "outcome"},
  };
};

// The short spec name of a composite ("amqp:open:list" -> "open"), for tracing.
template <composite T> constexpr std::string_view short_name() noexcept {
  constexpr std::string_view n = composite_traits<T>::name;
  return n.substr(5, n.size() - 10);
}

// ---- messaging.xml message sections (AMQP 1.0 §3.2.1, §3.2.4) ------------------------

template <> struct composite_traits<header> {
  static constexpr std::uint64_t code = 0x70;
  static constexpr std::string_view name = "amqp:header:list";
  static constexpr auto fields = std::tuple{
      field{&header::durable, "durable"},
      field{&header::priority, "priority"},
      field{&header::ttl, "ttl"},
      field{&header::first_acquirer, "first-acquirer"},
      field{&header::delivery_count, "delivery-count"},
  };
};

template <> struct composite_traits<properties> {
  static constexpr std::uint64_t code = 0x73;
  static constexpr std::string_view name = "amqp:properties:list";
  static constexpr auto fields = std::tuple{
      field{&properties::message_id, "message-id"},
      field{&properties::user_id, "user-id"},
      field{&properties::to, "to"},
      field{&properties::subject, "subject"},
      field{&properties::reply_to, "reply-to"},
      field{&properties::correlation_id, "correlation-id"},
      field{&properties::content_type, "content-type"},
      field{&properties::content_encoding, "content-encoding"},
      field{&properties::absolute_expiry_time, "absolute-expiry-time"},
      field{&properties::creation_time, "creation-time"},
      field{&properties::group_id, "group-id"},
      field{&properties::group_sequence, "group-sequence"},
      field{&properties::reply_to_group_id, "reply-to-group-id"},
  };
};

} // namespace amqp::detail

// Defines the public decode/encoded_size/encode overloads of a composite type T, all three
// forwarding to the generic table-driven code. Used once per type in the .cpp files. T is a
// type name, which cannot be parenthesized.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define AMQP_DEFINE_COMPOSITE_API(T)                                                               \
  result<void> decode(const value& described, T& out) noexcept {                                   \
    return detail::decode_composite(described, out);                                               \
  }                                                                                                \
  result<std::size_t> encoded_size(const T& x) noexcept {                                          \
    return detail::composite_size(x);                                                              \
  }                                                                                                \
  result<std::size_t> encode(const T& x, std::span<std::byte> out) noexcept {                      \
    return detail::encode_composite(x, out);                                                       \
  }
// NOLINTEND(bugprone-macro-parentheses)
