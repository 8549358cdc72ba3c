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
      AMQP_FIELD(open, container_id, "container-id", mandatory),
      AMQP_FIELD(open, hostname, "hostname"),
      AMQP_FIELD(open, max_frame_size, "max-frame-size"),
      AMQP_FIELD(open, channel_max, "channel-max"),
      AMQP_FIELD(open, idle_time_out, "idle-time-out"),
      AMQP_FIELD(open, outgoing_locales, "outgoing-locales"),
      AMQP_FIELD(open, incoming_locales, "incoming-locales"),
      AMQP_FIELD(open, offered_capabilities, "offered-capabilities"),
      AMQP_FIELD(open, desired_capabilities, "desired-capabilities"),
      AMQP_FIELD(open, properties, "properties"),
  };
};

template <> struct composite_traits<begin> {
  static constexpr std::uint64_t code = 0x11;
  static constexpr std::string_view name = "amqp:begin:list";
  static constexpr auto fields = std::tuple{
      AMQP_FIELD(begin, remote_channel, "remote-channel"),
      AMQP_FIELD(begin, next_outgoing_id, "next-outgoing-id", mandatory),
      AMQP_FIELD(begin, incoming_window, "incoming-window", mandatory),
      AMQP_FIELD(begin, outgoing_window, "outgoing-window", mandatory),
      AMQP_FIELD(begin, handle_max, "handle-max"),
      AMQP_FIELD(begin, offered_capabilities, "offered-capabilities"),
      AMQP_FIELD(begin, desired_capabilities, "desired-capabilities"),
      AMQP_FIELD(begin, properties, "properties"),
  };
};

template <> struct composite_traits<attach> {
  static constexpr std::uint64_t code = 0x12;
  static constexpr std::string_view name = "amqp:attach:list";
  static constexpr auto fields = std::tuple{
      AMQP_FIELD(attach, name, "name", mandatory),
      AMQP_FIELD(attach, handle, "handle", mandatory),
      AMQP_FIELD(attach, role, "role", mandatory),
      AMQP_FIELD(attach, snd_settle_mode, "snd-settle-mode"),
      AMQP_FIELD(attach, rcv_settle_mode, "rcv-settle-mode"),
      AMQP_FIELD(attach, source, "source"),
      AMQP_FIELD(attach, target, "target"),
      AMQP_FIELD(attach, unsettled, "unsettled"),
      AMQP_FIELD(attach, incomplete_unsettled, "incomplete-unsettled"),
      AMQP_FIELD(attach, initial_delivery_count, "initial-delivery-count"),
      AMQP_FIELD(attach, max_message_size, "max-message-size"),
      AMQP_FIELD(attach, offered_capabilities, "offered-capabilities"),
      AMQP_FIELD(attach, desired_capabilities, "desired-capabilities"),
      AMQP_FIELD(attach, properties, "properties"),
  };
};

template <> struct composite_traits<flow> {
  static constexpr std::uint64_t code = 0x13;
  static constexpr std::string_view name = "amqp:flow:list";
  static constexpr auto fields = std::tuple{
      AMQP_FIELD(flow, next_incoming_id, "next-incoming-id"),
      AMQP_FIELD(flow, incoming_window, "incoming-window", mandatory),
      AMQP_FIELD(flow, next_outgoing_id, "next-outgoing-id", mandatory),
      AMQP_FIELD(flow, outgoing_window, "outgoing-window", mandatory),
      AMQP_FIELD(flow, handle, "handle"),
      AMQP_FIELD(flow, delivery_count, "delivery-count"),
      AMQP_FIELD(flow, link_credit, "link-credit"),
      AMQP_FIELD(flow, available, "available"),
      AMQP_FIELD(flow, drain, "drain"),
      AMQP_FIELD(flow, echo, "echo"),
      AMQP_FIELD(flow, properties, "properties"),
  };
};

template <> struct composite_traits<transfer> {
  static constexpr std::uint64_t code = 0x14;
  static constexpr std::string_view name = "amqp:transfer:list";
  static constexpr auto fields = std::tuple{
      AMQP_FIELD(transfer, handle, "handle", mandatory),
      AMQP_FIELD(transfer, delivery_id, "delivery-id"),
      AMQP_FIELD(transfer, delivery_tag, "delivery-tag"),
      AMQP_FIELD(transfer, message_format, "message-format"),
      AMQP_FIELD(transfer, settled, "settled"),
      AMQP_FIELD(transfer, more, "more"),
      AMQP_FIELD(transfer, rcv_settle_mode, "rcv-settle-mode"),
      AMQP_FIELD(transfer, state, "state"),
      AMQP_FIELD(transfer, resume, "resume"),
      AMQP_FIELD(transfer, aborted, "aborted"),
      AMQP_FIELD(transfer, batchable, "batchable"),
  };
};

template <> struct composite_traits<disposition> {
  static constexpr std::uint64_t code = 0x15;
  static constexpr std::string_view name = "amqp:disposition:list";
  static constexpr auto fields = std::tuple{
      AMQP_FIELD(disposition, role, "role", mandatory),
      AMQP_FIELD(disposition, first, "first", mandatory),
      AMQP_FIELD(disposition, last, "last"),
      AMQP_FIELD(disposition, settled, "settled"),
      AMQP_FIELD(disposition, state, "state"),
      AMQP_FIELD(disposition, batchable, "batchable"),
  };
};

template <> struct composite_traits<detach> {
  static constexpr std::uint64_t code = 0x16;
  static constexpr std::string_view name = "amqp:detach:list";
  static constexpr auto fields = std::tuple{
      AMQP_FIELD(detach, handle, "handle", mandatory),
      AMQP_FIELD(detach, closed, "closed"),
      AMQP_FIELD(detach, error, "error"),
  };
};

template <> struct composite_traits<end> {
  static constexpr std::uint64_t code = 0x17;
  static constexpr std::string_view name = "amqp:end:list";
  static constexpr auto fields = std::tuple{AMQP_FIELD(end, error, "error")};
};

template <> struct composite_traits<close> {
  static constexpr std::uint64_t code = 0x18;
  static constexpr std::string_view name = "amqp:close:list";
  static constexpr auto fields = std::tuple{AMQP_FIELD(close, error, "error")};
};

template <> struct composite_traits<error> {
  static constexpr std::uint64_t code = 0x1d;
  static constexpr std::string_view name = "amqp:error:list";
  static constexpr auto fields = std::tuple{
      AMQP_FIELD(error, condition, "condition", mandatory),
      AMQP_FIELD(error, description, "description"),
      AMQP_FIELD(error, info, "info"),
  };
};

// ---- messaging.xml (AMQP 1.0 §3.4, §3.5) ---------------------------------------------------

template <> struct composite_traits<received> {
  static constexpr std::uint64_t code = 0x23;
  static constexpr std::string_view name = "amqp:received:list";
  static constexpr auto fields = std::tuple{
      AMQP_FIELD(received, section_number, "section-number", mandatory),
      AMQP_FIELD(received, section_offset, "section-offset", mandatory),
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
  static constexpr auto fields = std::tuple{AMQP_FIELD(rejected, error, "error")};
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
      AMQP_FIELD(modified, delivery_failed, "delivery-failed"),
      AMQP_FIELD(modified, undeliverable_here, "undeliverable-here"),
      AMQP_FIELD(modified, message_annotations, "message-annotations"),
  };
};

template <> struct composite_traits<source> {
  static constexpr std::uint64_t code = 0x28;
  static constexpr std::string_view name = "amqp:source:list";
  static constexpr auto fields = std::tuple{
      AMQP_FIELD(source, address, "address"),
      AMQP_FIELD(source, durable, "durable"),
      AMQP_FIELD(source, expiry_policy, "expiry-policy"),
      AMQP_FIELD(source, timeout, "timeout"),
      AMQP_FIELD(source, dynamic, "dynamic"),
      AMQP_FIELD(source, dynamic_node_properties, "dynamic-node-properties"),
      AMQP_FIELD(source, distribution_mode, "distribution-mode"),
      AMQP_FIELD(source, filter, "filter"),
      AMQP_FIELD(source, default_outcome, "default-outcome"),
      AMQP_FIELD(source, outcomes, "outcomes"),
      AMQP_FIELD(source, capabilities, "capabilities"),
  };
};

template <> struct composite_traits<target> {
  static constexpr std::uint64_t code = 0x29;
  static constexpr std::string_view name = "amqp:target:list";
  static constexpr auto fields = std::tuple{
      AMQP_FIELD(target, address, "address"),
      AMQP_FIELD(target, durable, "durable"),
      AMQP_FIELD(target, expiry_policy, "expiry-policy"),
      AMQP_FIELD(target, timeout, "timeout"),
      AMQP_FIELD(target, dynamic, "dynamic"),
      AMQP_FIELD(target, dynamic_node_properties, "dynamic-node-properties"),
      AMQP_FIELD(target, capabilities, "capabilities"),
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
      AMQP_FIELD(sasl_mechanisms, sasl_server_mechanisms, "sasl-server-mechanisms", mandatory),
  };
};

template <> struct composite_traits<sasl_init> {
  static constexpr std::uint64_t code = 0x41;
  static constexpr std::string_view name = "amqp:sasl-init:list";
  static constexpr auto fields = std::tuple{
      AMQP_FIELD(sasl_init, mechanism, "mechanism", mandatory),
      AMQP_FIELD(sasl_init, initial_response, "initial-response"),
      AMQP_FIELD(sasl_init, hostname, "hostname"),
  };
};

template <> struct composite_traits<sasl_challenge> {
  static constexpr std::uint64_t code = 0x42;
  static constexpr std::string_view name = "amqp:sasl-challenge:list";
  static constexpr auto fields =
      std::tuple{AMQP_FIELD(sasl_challenge, challenge, "challenge", mandatory)};
};

template <> struct composite_traits<sasl_response> {
  static constexpr std::uint64_t code = 0x43;
  static constexpr std::string_view name = "amqp:sasl-response:list";
  static constexpr auto fields =
      std::tuple{AMQP_FIELD(sasl_response, response, "response", mandatory)};
};

template <> struct composite_traits<sasl_outcome> {
  static constexpr std::uint64_t code = 0x44;
  static constexpr std::string_view name = "amqp:sasl-outcome:list";
  static constexpr auto fields = std::tuple{
      AMQP_FIELD(sasl_outcome, code, "code", mandatory),
      AMQP_FIELD(sasl_outcome, additional_data, "additional-data"),
  };
};

// ---- transactions.xml (AMQP 1.0 §4.5) ------------------------------------------------------

template <> struct composite_traits<coordinator> {
  static constexpr std::uint64_t code = 0x30;
  static constexpr std::string_view name = "amqp:coordinator:list";
  static constexpr auto fields = std::tuple{AMQP_FIELD(coordinator, capabilities, "capabilities")};
};

template <> struct composite_traits<declare> {
  static constexpr std::uint64_t code = 0x31;
  static constexpr std::string_view name = "amqp:declare:list";
  static constexpr auto fields = std::tuple{AMQP_FIELD(declare, global_id, "global-id")};
};

template <> struct composite_traits<discharge> {
  static constexpr std::uint64_t code = 0x32;
  static constexpr std::string_view name = "amqp:discharge:list";
  static constexpr auto fields = std::tuple{
      AMQP_FIELD(discharge, txn_id, "txn-id", mandatory),
      AMQP_FIELD(discharge, fail, "fail"),
  };
};

template <> struct composite_traits<declared> {
  static constexpr std::uint64_t code = 0x33;
  static constexpr std::string_view name = "amqp:declared:list";
  static constexpr auto fields = std::tuple{AMQP_FIELD(declared, txn_id, "txn-id", mandatory)};
};

template <> struct composite_traits<transactional_state> {
  static constexpr std::uint64_t code = 0x34;
  static constexpr std::string_view name = "amqp:transactional-state:list";
  static constexpr auto fields = std::tuple{
      AMQP_FIELD(transactional_state, txn_id, "txn-id", mandatory),
      AMQP_FIELD(transactional_state, outcome, "outcome"),
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
      AMQP_FIELD(header, durable, "durable"),
      AMQP_FIELD(header, priority, "priority"),
      AMQP_FIELD(header, ttl, "ttl"),
      AMQP_FIELD(header, first_acquirer, "first-acquirer"),
      AMQP_FIELD(header, delivery_count, "delivery-count"),
  };
};

template <> struct composite_traits<properties> {
  static constexpr std::uint64_t code = 0x73;
  static constexpr std::string_view name = "amqp:properties:list";
  static constexpr auto fields = std::tuple{
      AMQP_FIELD(properties, message_id, "message-id"),
      AMQP_FIELD(properties, user_id, "user-id"),
      AMQP_FIELD(properties, to, "to"),
      AMQP_FIELD(properties, subject, "subject"),
      AMQP_FIELD(properties, reply_to, "reply-to"),
      AMQP_FIELD(properties, correlation_id, "correlation-id"),
      AMQP_FIELD(properties, content_type, "content-type"),
      AMQP_FIELD(properties, content_encoding, "content-encoding"),
      AMQP_FIELD(properties, absolute_expiry_time, "absolute-expiry-time"),
      AMQP_FIELD(properties, creation_time, "creation-time"),
      AMQP_FIELD(properties, group_id, "group-id"),
      AMQP_FIELD(properties, group_sequence, "group-sequence"),
      AMQP_FIELD(properties, reply_to_group_id, "reply-to-group-id"),
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
