// Our engine (amqp::connection) and Qpid Proton's C engine (pn_connection_driver_t) wired back
// to back in memory, with one virtual clock. Each side keeps a log of what it saw (events,
// copies of the fields the scenarios check), the bytes each side wrote are split into frames
// for timing and size checks, and Proton's own frame trace is kept. When an assertion fails
// during a harness's life, its destructor prints all of that to stderr.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <doctest/doctest.h>
#include <proton/codec.h>
#include <proton/condition.h>
#include <proton/connection.h>
#include <proton/connection_driver.h>
#include <proton/delivery.h>
#include <proton/disposition.h>
#include <proton/event.h>
#include <proton/link.h>
#include <proton/logger.h>
#include <proton/sasl.h>
#include <proton/sasl_plugin.h>
#include <proton/session.h>
#include <proton/terminus.h>
#include <proton/transport.h>

#include "amqp/connection.hpp"
#include "amqp/error.hpp"
#include "amqp/event.hpp"
#include "amqp/options.hpp"
#include "amqp/types.hpp"

namespace conf {

using amqp::milliseconds;
using amqp::time_point;

// The number of failed assertions so far in this run (counted by a doctest listener in the
// test file): a harness prints its report when the count grows during its life.
int failed_assertions() noexcept;

template <class... F> struct overloaded : F... { using F::operator()...; };
template <class... F> overloaded(F...) -> overloaded<F...>;

inline std::span<const std::byte> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
inline std::string_view as_text(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}
inline std::string_view sv(pn_bytes_t b) {
  return b.start != nullptr ? std::string_view(b.start, b.size) : std::string_view();
}
inline std::string str(const char* s) {
  return s != nullptr ? std::string(s) : std::string("(null)");
}
inline std::optional<std::string> opt_str(const char* s) {
  return s != nullptr ? std::optional<std::string>(s) : std::nullopt;
}
inline std::string ms_text(time_point t) {
  return std::to_string(std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count()) +
         "ms";
}

// Records a failed engine command as a test failure (and carries on).
template <class T> bool expect_ok(const amqp::result<T>& r, std::string_view what) {
  if (!r.has_value()) {
    FAIL_CHECK(what << " failed: " << r.error().message());
    return false;
  }
  return true;
}

// ---- text forms (for logs and comparisons) ------------------------------------------------

inline std::string to_text(const amqp::value& v) {
  using amqp::type;
  switch (v.kind()) {
  case type::null:
    return "null";
  case type::boolean:
    return v.as_bool() ? "true" : "false";
  case type::ubyte:
  case type::ushort:
  case type::uint:
  case type::ulong:
    return std::to_string(v.get_unsigned().value_or(0));
  case type::byte:
  case type::short_:
  case type::int_:
  case type::long_:
    return std::to_string(v.get_signed().value_or(0));
  case type::string:
    return "\"" + std::string(v.as_string()) + "\"";
  case type::symbol:
    return ":" + std::string(v.as_symbol());
  case type::binary:
    return "b(" + std::to_string(v.as_binary().size()) + ")";
  case type::list:
  case type::array:
  case type::map: {
    std::string s = v.is(type::map) ? "{" : "[";
    bool first = true;
    for (const amqp::value& e : v.items()) {
      s += first ? "" : " ";
      first = false;
      s += to_text(e);
    }
    return s + (v.is(type::map) ? "}" : "]");
  }
  case type::described:
    return "@" + to_text(v.descriptor()) + " " + to_text(v.described_value());
  default:
    return std::string(amqp::type_name(v.kind()));
  }
}

inline std::string to_text(const amqp::error& e) {
  std::string s(e.condition.str);
  if (e.description) {
    s += ": " + std::string(*e.description);
  }
  return s;
}

// Delivery states as the scenarios compare them; Proton's dispositions are written the same
// way (proton_state_text), so the two sides compare as strings.
inline std::string to_text(const amqp::delivery_state& st) {
  return std::visit(
      overloaded{
          [](const amqp::received& x) {
            return "received(" + std::to_string(x.section_number) + "," +
                   std::to_string(x.section_offset) + ")";
          },
          [](const amqp::accepted&) { return std::string("accepted"); },
          [](const amqp::rejected& x) {
            return "rejected(" + (x.error ? to_text(*x.error) : std::string()) + ")";
          },
          [](const amqp::released&) { return std::string("released"); },
          [](const amqp::modified& x) {
            return std::string("modified(failed=") +
                   (x.delivery_failed.value_or(false) ? "true" : "false") +
                   ",undeliverable=" + (x.undeliverable_here.value_or(false) ? "true" : "false") +
                   ")";
          },
          [](const amqp::declared&) { return std::string("declared"); },
          [](const amqp::transactional_state&) { return std::string("transactional-state"); },
          [](const amqp::value& x) { return "other(" + to_text(x) + ")"; },
      },
      st);
}

inline std::string role_text(amqp::role r) {
  return r == amqp::role::sender ? "sender" : "receiver";
}

inline std::string to_text(const amqp::event& e) {
  return std::visit(
      overloaded{
          [](const amqp::sasl_init_received& x) {
            return "sasl_init_received mechanism=" + std::string(x.mechanism.str) +
                   " hostname=" + std::string(x.hostname) + " username=" + std::string(x.username) +
                   " initial_response=" + std::to_string(x.initial_response.size()) + "B";
          },
          [](const amqp::sasl_response_received& x) {
            return "sasl_response_received " + std::to_string(x.response.size()) + "B";
          },
          [](const amqp::sasl_challenge_received& x) {
            return "sasl_challenge_received " + std::to_string(x.challenge.size()) + "B";
          },
          [](const amqp::sasl_done& x) {
            return "sasl_done code=" + std::to_string(static_cast<int>(x.code)) +
                   " mechanism=" + std::string(x.mechanism.str);
          },
          [](const amqp::connection_opened& x) {
            return "connection_opened container-id=" + std::string(x.remote.container_id) +
                   " max-frame-size=" + std::to_string(x.remote.max_frame_size) +
                   " channel-max=" + std::to_string(x.remote.channel_max) + " idle-time-out=" +
                   (x.remote.idle_time_out ? std::to_string(*x.remote.idle_time_out) : "none");
          },
          [](const amqp::connection_closed& x) {
            return "connection_closed code=" + x.code.message() +
                   " remote=" + (x.remote ? "1" : "0") +
                   " error=" + (x.error ? to_text(*x.error) : "none");
          },
          [](const amqp::session_begun& x) {
            return "session_begun session=" + std::to_string(x.session.value) +
                   " remote_initiated=" + (x.remote_initiated ? "1" : "0") +
                   " handle_max=" + std::to_string(x.handle_max);
          },
          [](const amqp::session_ended& x) {
            return "session_ended session=" + std::to_string(x.session.value) +
                   " code=" + x.code.message() + " remote=" + (x.remote ? "1" : "0") +
                   " error=" + (x.error ? to_text(*x.error) : "none");
          },
          [](const amqp::link_attached& x) {
            return "link_attached link=" + std::to_string(x.link.value) +
                   " name=" + std::string(x.remote.name) +
                   " remote_initiated=" + (x.remote_initiated ? "1" : "0") +
                   " peer-role=" + role_text(x.remote.role);
          },
          [](const amqp::link_detached& x) {
            return "link_detached link=" + std::to_string(x.link.value) +
                   " closed=" + (x.closed ? "1" : "0") + " code=" + x.code.message() +
                   " remote=" + (x.remote ? "1" : "0") +
                   " error=" + (x.error ? to_text(*x.error) : "none");
          },
          [](const amqp::link_flow& x) {
            return "link_flow link=" + std::to_string(x.link.value) +
                   " credit=" + std::to_string(x.credit) +
                   " delivery_count=" + std::to_string(x.delivery_count) +
                   " available=" + std::to_string(x.available) + " drain=" + (x.drain ? "1" : "0");
          },
          [](const amqp::delivery_received& x) {
            return "delivery_received link=" + std::to_string(x.delivery.link.value) +
                   " id=" + std::to_string(x.delivery.number) +
                   " tag=" + std::to_string(x.tag.size()) +
                   "B payload=" + std::to_string(x.payload.size()) +
                   "B settled=" + (x.settled ? "1" : "0") + " aborted=" + (x.aborted ? "1" : "0");
          },
          [](const amqp::delivery_updated& x) {
            return "delivery_updated link=" + std::to_string(x.delivery.link.value) +
                   " id=" + std::to_string(x.delivery.number) +
                   " state=" + (x.state ? to_text(*x.state) : "none") +
                   " settled=" + (x.settled ? "1" : "0");
          },
      },
      e);
}

// ---- Proton data helpers ------------------------------------------------------------------

// The symbols of a multiple="true" symbol field (one symbol, or an array).
inline std::vector<std::string> pn_symbols(pn_data_t* d) {
  std::vector<std::string> out;
  pn_data_rewind(d);
  if (!pn_data_next(d)) {
    return out;
  }
  if (pn_data_type(d) == PN_SYMBOL) {
    out.emplace_back(sv(pn_data_get_symbol(d)));
  } else if (pn_data_type(d) == PN_ARRAY) {
    pn_data_enter(d);
    while (pn_data_next(d)) {
      out.emplace_back(sv(pn_data_get_symbol(d)));
    }
    pn_data_exit(d);
  }
  pn_data_rewind(d);
  return out;
}

// The value of `key` (a symbol or string key) in a map, as text: strings and symbols as they
// are, integers in decimal.
inline std::optional<std::string> pn_map_get(pn_data_t* d, std::string_view key) {
  std::optional<std::string> found;
  pn_data_rewind(d);
  if (!pn_data_next(d) || pn_data_type(d) != PN_MAP) {
    pn_data_rewind(d);
    return found;
  }
  pn_data_enter(d);
  while (pn_data_next(d)) {
    std::string_view k;
    if (pn_data_type(d) == PN_SYMBOL || pn_data_type(d) == PN_STRING) {
      k = sv(pn_data_get_bytes(d));
    }
    if (!pn_data_next(d)) {
      break;
    }
    if (k == key && !found) {
      switch (pn_data_type(d)) {
      case PN_STRING:
      case PN_SYMBOL:
        found = std::string(sv(pn_data_get_bytes(d)));
        break;
      case PN_ULONG:
        found = std::to_string(pn_data_get_ulong(d));
        break;
      case PN_UINT:
        found = std::to_string(pn_data_get_uint(d));
        break;
      case PN_INT:
        found = std::to_string(pn_data_get_int(d));
        break;
      case PN_LONG:
        found = std::to_string(pn_data_get_long(d));
        break;
      default:
        found = std::string("?") + pn_type_name(pn_data_type(d));
        break;
      }
    }
  }
  pn_data_exit(d);
  pn_data_rewind(d);
  return found;
}

inline void pn_put_symbols(pn_data_t* d, std::initializer_list<std::string_view> syms) {
  pn_data_clear(d);
  pn_data_put_array(d, false, PN_SYMBOL);
  pn_data_enter(d);
  for (std::string_view s : syms) {
    pn_data_put_symbol(d, pn_bytes(s.size(), s.data()));
  }
  pn_data_exit(d);
}

// A map with symbol keys and string values.
inline void
pn_put_string_map(pn_data_t* d,
                  std::initializer_list<std::pair<std::string_view, std::string_view>> kvs) {
  pn_data_clear(d);
  pn_data_put_map(d);
  pn_data_enter(d);
  for (const auto& [k, v] : kvs) {
    pn_data_put_symbol(d, pn_bytes(k.size(), k.data()));
    pn_data_put_string(d, pn_bytes(v.size(), v.data()));
  }
  pn_data_exit(d);
}

inline std::string pn_condition_text(pn_condition_t* c) {
  if (c == nullptr || !pn_condition_is_set(c)) {
    return "";
  }
  std::string s = str(pn_condition_get_name(c));
  if (const char* d = pn_condition_get_description(c)) {
    s += ": ";
    s += d;
  }
  return s;
}

// A remote (or local) disposition in the text form of to_text(amqp::delivery_state).
inline std::string proton_state_text(std::uint64_t type, pn_disposition_t* d) {
  switch (type) {
  case 0:
    return "none";
  case PN_ACCEPTED:
    return "accepted";
  case PN_REJECTED:
    return "rejected(" + pn_condition_text(pn_disposition_condition(d)) + ")";
  case PN_RELEASED:
    return "released";
  case PN_MODIFIED:
    return std::string("modified(failed=") + (pn_disposition_is_failed(d) ? "true" : "false") +
           ",undeliverable=" + (pn_disposition_is_undeliverable(d) ? "true" : "false") + ")";
  case PN_RECEIVED:
    return "received";
  default:
    return "other(" + std::to_string(type) + ")";
  }
}

inline std::string pn_tag_text(pn_delivery_t* d) {
  pn_delivery_tag_t t = pn_delivery_tag(d);
  return std::string(t.start, t.size);
}

// ---- frame scanner ------------------------------------------------------------------------

// One frame (or protocol header) written by one side.
struct frame_info {
  time_point at{};
  std::uint32_t size = 0;    // the frame's SIZE field; 8 for a protocol header
  bool header = false;       // a protocol header ("AMQP" + 4 bytes)
  std::uint8_t type = 0;     // 0 AMQP, 1 SASL
  std::uint16_t channel = 0; // frame channel
  std::int64_t code = -1;    // the performative's descriptor code; -1 for an empty frame
  std::string header_bytes;  // for a header: its 8 bytes, as hex
};

inline std::string performative_name(std::int64_t code) {
  switch (code) {
  case -1:
    return "(empty)";
  case 0x10:
    return "open";
  case 0x11:
    return "begin";
  case 0x12:
    return "attach";
  case 0x13:
    return "flow";
  case 0x14:
    return "transfer";
  case 0x15:
    return "disposition";
  case 0x16:
    return "detach";
  case 0x17:
    return "end";
  case 0x18:
    return "close";
  case 0x40:
    return "sasl-mechanisms";
  case 0x41:
    return "sasl-init";
  case 0x42:
    return "sasl-challenge";
  case 0x43:
    return "sasl-response";
  case 0x44:
    return "sasl-outcome";
  default:
    return "code-" + std::to_string(code);
  }
}

// Splits the byte stream one side writes into protocol headers and frames (AMQP 1.0 §2.2,
// §2.3). A protocol header is recognised by its "AMQP" prefix: a frame starting with those
// bytes would be over 1 GB.
class frame_scanner {
public:
  void feed(std::span<const std::byte> b, time_point at) {
    buf_.insert(buf_.end(), b.begin(), b.end());
    for (;;) {
      const std::size_t left = buf_.size() - pos_;
      if (left < 8) {
        break;
      }
      const std::byte* p = buf_.data() + pos_;
      frame_info f;
      f.at = at;
      if (std::memcmp(p, "AMQP", 4) == 0) {
        f.header = true;
        f.size = 8;
        static constexpr char hex[] = "0123456789abcdef";
        for (int i = 0; i < 8; ++i) {
          const auto c = static_cast<unsigned>(p[i]);
          f.header_bytes += hex[c >> 4];
          f.header_bytes += hex[c & 15];
        }
      } else {
        f.size = (static_cast<std::uint32_t>(p[0]) << 24) |
                 (static_cast<std::uint32_t>(p[1]) << 16) |
                 (static_cast<std::uint32_t>(p[2]) << 8) | static_cast<std::uint32_t>(p[3]);
        if (f.size < 8) {
          malformed_ = true;
          pos_ = buf_.size();
          break;
        }
        if (left < f.size) {
          break;
        }
        const std::size_t doff = static_cast<std::size_t>(p[4]) * 4;
        f.type = static_cast<std::uint8_t>(p[5]);
        f.channel = static_cast<std::uint16_t>((static_cast<unsigned>(p[6]) << 8) |
                                               static_cast<unsigned>(p[7]));
        if (f.size > doff + 2 && p[doff] == std::byte{0x00}) {
          if (p[doff + 1] == std::byte{0x53}) {
            f.code = static_cast<std::int64_t>(p[doff + 2]);
          } else if (p[doff + 1] == std::byte{0x80} && f.size >= doff + 10) {
            std::uint64_t c = 0;
            for (std::size_t i = 0; i < 8; ++i) {
              c = (c << 8) | static_cast<std::uint64_t>(p[doff + 2 + i]);
            }
            f.code = static_cast<std::int64_t>(c);
          } else {
            f.code = -2;
          }
        } else if (f.size > doff) {
          f.code = -2;
        }
      }
      pos_ += f.size;
      frames.push_back(std::move(f));
    }
    if (pos_ == buf_.size()) {
      buf_.clear();
      pos_ = 0;
    } else if (pos_ > (1U << 20)) {
      buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos_));
      pos_ = 0;
    }
  }

  // Frames (not headers) with performative `code` (-1: empty frames).
  [[nodiscard]] std::size_t count(std::int64_t code) const {
    return static_cast<std::size_t>(std::count_if(
        frames.begin(), frames.end(), [&](const auto& f) { return !f.header && f.code == code; }));
  }
  [[nodiscard]] std::uint32_t max_size() const {
    std::uint32_t m = 0;
    for (const auto& f : frames) {
      m = std::max(m, f.size);
    }
    return m;
  }
  [[nodiscard]] bool malformed() const { return malformed_; }

  std::vector<frame_info> frames;

private:
  std::vector<std::byte> buf_;
  std::size_t pos_ = 0;
  bool malformed_ = false;
};

// ---- our side -----------------------------------------------------------------------------

struct owned_error {
  std::string condition;
  std::optional<std::string> description;
  std::optional<std::string> info_reason; // info["reason"] when it is a string
  static owned_error from(const amqp::error& e) {
    owned_error o;
    o.condition = std::string(e.condition.str);
    if (e.description) {
      o.description = std::string(*e.description);
    }
    if (auto r = e.info.find("reason")) {
      if (auto s = r->get_string()) {
        o.info_reason = std::string(*s);
      }
    }
    return o;
  }
};

struct seen_attach {
  amqp::link_id link{};
  amqp::session_id session{};
  bool remote_initiated = false;
  std::string name;
  amqp::role peer_role{};
  amqp::sender_settle_mode snd_settle_mode{};
  amqp::receiver_settle_mode rcv_settle_mode{};
  std::optional<std::string> source_address;
  std::optional<std::string> target_address;
  std::optional<std::uint64_t> max_message_size;
  std::optional<std::uint32_t> initial_delivery_count;
  // Our role on the link: the opposite of the peer's.
  [[nodiscard]] amqp::role our_role() const {
    return peer_role == amqp::role::sender ? amqp::role::receiver : amqp::role::sender;
  }
};

struct seen_detach {
  amqp::link_id link{};
  bool closed = false;
  std::error_code code;
  std::optional<owned_error> error;
  bool remote = false;
};

struct seen_end {
  amqp::session_id session{};
  std::error_code code;
  std::optional<owned_error> error;
  bool remote = false;
};

struct seen_close {
  std::error_code code;
  std::optional<owned_error> error;
  bool remote = false;
};

struct received_message {
  amqp::delivery_id delivery{};
  std::vector<std::byte> tag;
  std::vector<std::byte> payload;
  std::uint32_t message_format = 0;
  bool settled = false;
  bool aborted = false;
};

struct delivery_update {
  amqp::delivery_id delivery{};
  std::string state;
  bool settled = false;
};

struct seen_sasl_init {
  std::string mechanism;
  std::string initial_response;
  std::string hostname;
  std::string authzid;
  std::string username;
  std::string password;
};

struct seen_sasl_done {
  amqp::sasl_code code{};
  std::string mechanism;
};

// Our engine with the reactions of a simple application (answer open, begin and attach,
// grant credit) and copies of everything it reported.
class ours_peer {
public:
  explicit ours_peer(const amqp::connection_options& o) : conn(o) {}
  ours_peer(const ours_peer&) = delete;
  ours_peer& operator=(const ours_peer&) = delete;

  amqp::connection conn;

  // Reactions.
  bool auto_open = true;   // answer the peer's open (server)
  bool auto_begin = true;  // answer the peer's begin
  bool auto_attach = true; // answer the peer's attach, with the peer's termini
  // Answer the peer's end, detach and close if the engine has not already done so (the
  // events say the endpoint ended; an answer is only sent while ours is still active).
  bool auto_end = true;
  bool auto_detach = true;
  bool auto_close = true;
  std::uint64_t answer_max_message_size = 0;
  std::uint32_t auto_credit = 0; // credit for each receiving link once attached
  // Called for every event after the reactions above.
  std::function<void(ours_peer&, const amqp::event&)> on_event;
  // Called for every complete message, with its index among all messages received.
  std::function<void(ours_peer&, const received_message&, std::size_t)> on_message;

  // What was seen.
  std::vector<std::string> log;
  std::vector<std::string> receive_errors;
  bool opened = false;
  std::vector<amqp::session_begun> begun;
  std::vector<seen_end> ends;
  std::vector<seen_attach> attaches;
  std::vector<seen_detach> detaches;
  std::vector<amqp::link_flow> flows;
  std::vector<received_message> messages;
  std::vector<delivery_update> updates;
  std::optional<seen_close> closed;
  std::optional<seen_sasl_init> sasl_init;
  std::optional<seen_sasl_done> sasl_done;

  [[nodiscard]] const seen_attach* attach_named(std::string_view name) const {
    for (const auto& a : attaches) {
      if (a.name == name) {
        return &a;
      }
    }
    return nullptr;
  }
  [[nodiscard]] const seen_detach* detach_of(amqp::link_id l) const {
    for (const auto& d : detaches) {
      if (d.link == l) {
        return &d;
      }
    }
    return nullptr;
  }
  [[nodiscard]] std::vector<delivery_update> updates_of(amqp::delivery_id d) const {
    std::vector<delivery_update> out;
    for (const auto& u : updates) {
      if (u.delivery == d) {
        out.push_back(u);
      }
    }
    return out;
  }

  void handle(const amqp::event& e) {
    log.push_back(to_text(e));
    std::visit(
        overloaded{
            [&](const amqp::sasl_init_received& x) {
              sasl_init = seen_sasl_init{
                  std::string(x.mechanism.str), std::string(as_text(x.initial_response)),
                  std::string(x.hostname),      std::string(x.authzid),
                  std::string(x.username),      std::string(x.password)};
            },
            [&](const amqp::sasl_done& x) {
              sasl_done = seen_sasl_done{x.code, std::string(x.mechanism.str)};
            },
            [&](const amqp::connection_opened&) {
              opened = true;
              if (auto_open && conn.state().local == amqp::endpoint_status::uninit) {
                expect_ok(conn.open(), "ours: open (answer)");
              }
            },
            [&](const amqp::connection_closed& x) {
              closed = seen_close{
                  x.code, x.error ? std::optional(owned_error::from(*x.error)) : std::nullopt,
                  x.remote};
              if (x.remote && auto_close && conn.state().local == amqp::endpoint_status::active) {
                log.emplace_back("(application answers close)");
                expect_ok(conn.close(), "ours: close (answer)");
              }
            },
            [&](const amqp::session_begun& x) {
              begun.push_back(x);
              if (x.remote_initiated && auto_begin) {
                expect_ok(conn.begin(x.session, {}), "ours: begin (answer)");
              }
            },
            [&](const amqp::session_ended& x) {
              ends.push_back(seen_end{
                  x.session, x.code,
                  x.error ? std::optional(owned_error::from(*x.error)) : std::nullopt, x.remote});
              auto st = conn.state(x.session);
              if (x.remote && auto_end && st && st->local == amqp::endpoint_status::active) {
                log.emplace_back("(application answers end)");
                expect_ok(conn.end(x.session), "ours: end (answer)");
              }
            },
            [&](const amqp::link_attached& x) { on_attached(x); },
            [&](const amqp::link_detached& x) {
              detaches.push_back(seen_detach{
                  x.link, x.closed, x.code,
                  x.error ? std::optional(owned_error::from(*x.error)) : std::nullopt, x.remote});
              auto st = conn.state(x.link);
              if (x.remote && auto_detach && st && st->local == amqp::endpoint_status::active) {
                log.emplace_back("(application answers detach)");
                expect_ok(conn.detach(x.link, x.closed), "ours: detach (answer)");
              }
            },
            [&](const amqp::link_flow& x) { flows.push_back(x); },
            [&](const amqp::delivery_received& x) {
              received_message m;
              m.delivery = x.delivery;
              m.tag.assign(x.tag.begin(), x.tag.end());
              m.payload.assign(x.payload.begin(), x.payload.end());
              m.message_format = x.message_format;
              m.settled = x.settled;
              m.aborted = x.aborted;
              messages.push_back(std::move(m));
              if (on_message) {
                on_message(*this, messages.back(), messages.size() - 1);
              }
            },
            [&](const amqp::delivery_updated& x) {
              updates.push_back(delivery_update{
                  x.delivery, x.state ? to_text(*x.state) : std::string("none"), x.settled});
            },
            [&](const auto&) {},
        },
        e);
    if (on_event) {
      on_event(*this, e);
    }
  }

private:
  void on_attached(const amqp::link_attached& x) {
    seen_attach a;
    a.link = x.link;
    a.session = x.session;
    a.remote_initiated = x.remote_initiated;
    a.name = std::string(x.remote.name);
    a.peer_role = x.remote.role;
    a.snd_settle_mode = x.remote.snd_settle_mode;
    a.rcv_settle_mode = x.remote.rcv_settle_mode;
    if (x.remote.source && x.remote.source->address) {
      a.source_address = std::string(*x.remote.source->address);
    }
    if (x.remote.target) {
      if (const auto* t = std::get_if<amqp::target>(&*x.remote.target); t && t->address) {
        a.target_address = std::string(*t->address);
      }
    }
    a.max_message_size = x.remote.max_message_size;
    a.initial_delivery_count = x.remote.initial_delivery_count;
    attaches.push_back(a);

    if (x.remote_initiated && auto_attach) {
      amqp::link_options o;
      o.name = keep(a.name);
      o.role = a.our_role();
      o.snd_settle_mode = a.snd_settle_mode;
      o.rcv_settle_mode = a.rcv_settle_mode;
      if (a.source_address) {
        amqp::source s;
        s.address = keep(*a.source_address);
        o.source = s;
      }
      if (a.target_address) {
        amqp::target t;
        t.address = keep(*a.target_address);
        o.target = t;
      }
      o.max_message_size = answer_max_message_size;
      expect_ok(conn.attach(x.link, o), "ours: attach (answer)");
    }
    if (a.our_role() == amqp::role::receiver && auto_credit > 0) {
      expect_ok(conn.flow(x.link, auto_credit), "ours: flow (auto credit)");
    }
  }

  std::string_view keep(const std::string& s) { return kept_.emplace_back(s); }
  std::deque<std::string> kept_;
};

// ---- Proton's side ------------------------------------------------------------------------

// A server-side SASL mechanism plug-in for Proton (sasl_plugin.h, exported by the core
// library): Proton's built-in implementation (no Cyrus SASL in Debian's build) offers only
// ANONYMOUS and EXTERNAL on a server, so PLAIN's credentials are checked here. Proton still
// encodes, decodes and sequences every SASL frame.
struct proton_plain_checker {
  std::string mechanisms = "PLAIN ANONYMOUS";
  std::string user;
  std::string password;
  std::string authenticated; // the user name Proton reports after success
  std::string seen_mechanism;
  std::string seen_authzid;
  std::string seen_user;
  std::string seen_password;
  int inits = 0;
};

namespace plugin {
inline proton_plain_checker* checker(pn_transport_t* t) {
  return static_cast<proton_plain_checker*>(pnx_sasl_get_context(t));
}
inline void free_impl(pn_transport_t*) {}
inline const char* list_mechanisms(pn_transport_t* t) {
  return checker(t)->mechanisms.c_str();
}
inline bool init_server(pn_transport_t* t) {
  pnx_sasl_set_desired_state(t, SASL_POSTED_MECHANISMS);
  return true;
}
inline bool init_client(pn_transport_t*) {
  return false;
}
inline void prepare_write(pn_transport_t*) {}
inline void process_init(pn_transport_t* t, const char* mechanism, const pn_bytes_t* recv) {
  proton_plain_checker* c = checker(t);
  ++c->inits;
  c->seen_mechanism = mechanism;
  const std::string_view mech(mechanism);
  if (mech == "ANONYMOUS") {
    c->authenticated = "anonymous";
    pnx_sasl_set_succeeded(t, c->authenticated.c_str(), nullptr);
  } else if (mech == "PLAIN" && recv != nullptr) {
    // RFC 4616: authzid NUL authcid NUL passwd.
    const std::string_view r(recv->start, recv->size);
    const auto a = r.find('\0');
    const auto b = a == std::string_view::npos ? a : r.find('\0', a + 1);
    if (b != std::string_view::npos) {
      c->seen_authzid = std::string(r.substr(0, a));
      c->seen_user = std::string(r.substr(a + 1, b - a - 1));
      c->seen_password = std::string(r.substr(b + 1));
    }
    if (b != std::string_view::npos && c->seen_user == c->user && c->seen_password == c->password) {
      c->authenticated = c->seen_user;
      pnx_sasl_set_succeeded(t, c->authenticated.c_str(), nullptr);
    } else {
      pnx_sasl_set_failed(t);
    }
  } else {
    pnx_sasl_set_failed(t);
  }
  pnx_sasl_set_desired_state(t, SASL_POSTED_OUTCOME);
}
inline void process_response(pn_transport_t*, const pn_bytes_t*) {}
inline bool process_mechanisms(pn_transport_t*, const char*) {
  return false;
}
inline void process_challenge(pn_transport_t*, const pn_bytes_t*) {}
inline void process_outcome(pn_transport_t*, const pn_bytes_t*) {}
inline bool can_encrypt(pn_transport_t*) {
  return false;
}
inline ssize_t max_encrypt_size(pn_transport_t*) {
  return 0;
}
inline ssize_t encode(pn_transport_t*, pn_bytes_t, pn_bytes_t*) {
  return 0;
}
inline ssize_t decode(pn_transport_t*, pn_bytes_t, pn_bytes_t*) {
  return 0;
}
inline const pnx_sasl_implementation plain_server{free_impl,
                                                  list_mechanisms,
                                                  init_server,
                                                  init_client,
                                                  prepare_write,
                                                  process_init,
                                                  process_response,
                                                  process_mechanisms,
                                                  process_challenge,
                                                  process_outcome,
                                                  can_encrypt,
                                                  max_encrypt_size,
                                                  encode,
                                                  decode};
} // namespace plugin

struct proton_message {
  std::string link;
  std::string tag;
  std::vector<std::byte> body;
  bool settled = false; // settled by the sender when it arrived
  bool aborted = false;
};

struct proton_attach {
  std::string name;
  bool local_receiver = false;
  std::optional<std::string> source_address;
  std::optional<std::string> target_address;
  pn_snd_settle_mode_t snd_settle_mode{};
  pn_rcv_settle_mode_t rcv_settle_mode{};
  std::uint64_t max_message_size = 0;
};

// Proton's connection driver with the reactions of a simple broker (answer open, begin and
// attach with the peer's termini, grant credit) and copies of everything it reported.
class proton_peer {
public:
  explicit proton_peer(bool server) {
    if (pn_connection_driver_init(&d, nullptr, nullptr) != 0) {
      FAIL("pn_connection_driver_init failed");
    }
    if (server) {
      pn_transport_set_server(d.transport);
    }
    pn_logger_t* logger = pn_transport_logger(d.transport);
    pn_logger_set_log_sink(logger, &proton_peer::sink, reinterpret_cast<intptr_t>(this));
    pn_logger_set_mask(logger, PN_SUBSYSTEM_ALL,
                       static_cast<std::uint16_t>(PN_LEVEL_FRAME | PN_LEVEL_ERROR |
                                                  PN_LEVEL_WARNING | PN_LEVEL_CRITICAL));
  }
  ~proton_peer() { pn_connection_driver_destroy(&d); }
  proton_peer(const proton_peer&) = delete;
  proton_peer& operator=(const proton_peer&) = delete;

  [[nodiscard]] pn_connection_t* connection() const { return d.connection; }
  [[nodiscard]] pn_transport_t* transport() const { return d.transport; }

  // Enables Proton's SASL layer with `mechs` allowed. On a server, PLAIN credentials are
  // checked by `checker` (which must outlive the peer).
  pn_sasl_t* enable_sasl(const char* mechs, proton_plain_checker* checker = nullptr) {
    pn_sasl_t* s = pn_sasl(d.transport);
    pn_sasl_allowed_mechs(s, mechs);
    pn_sasl_set_allow_insecure_mechs(s, true);
    if (checker != nullptr) {
      pnx_sasl_set_implementation(d.transport, &plugin::plain_server, checker);
    }
    return s;
  }

  // Sends a message; settles it first when `settled` (pre-settled).
  pn_delivery_t* send(pn_link_t* l, std::string_view tag, std::span<const std::byte> payload,
                      bool settled) {
    pn_delivery_t* dl = pn_delivery(l, pn_dtag(tag.data(), tag.size()));
    const ssize_t n =
        pn_link_send(l, reinterpret_cast<const char*>(payload.data()), payload.size());
    CHECK(n == static_cast<ssize_t>(payload.size()));
    pn_link_advance(l);
    if (settled) {
      pn_delivery_settle(dl);
    }
    return dl;
  }

  [[nodiscard]] pn_link_t* link_named(std::string_view name) const {
    for (pn_link_t* l = pn_link_head(d.connection, 0); l != nullptr; l = pn_link_next(l, 0)) {
      if (name == pn_link_name(l)) {
        return l;
      }
    }
    return nullptr;
  }
  [[nodiscard]] const proton_attach* attach_named(std::string_view name) const {
    for (const auto& a : attaches) {
      if (a.name == name) {
        return &a;
      }
    }
    return nullptr;
  }

  pn_connection_driver_t d{};

  // Reactions.
  bool auto_open = true;
  bool auto_begin = true;
  bool auto_attach = true;
  bool auto_close = true;  // answer the peer's close
  bool auto_end = true;    // answer the peer's end
  bool auto_detach = true; // answer the peer's detach
  std::uint64_t answer_max_message_size = 0;
  int auto_credit = 0; // credit for receiving links Proton answers
  std::function<void(proton_peer&, pn_event_t*)> on_event;
  // Called for every complete message, with its index among all messages received. It
  // settles unsettled deliveries (pre-settled ones are settled after it returns).
  std::function<void(proton_peer&, pn_delivery_t*, std::size_t)> on_message;

  // What was seen.
  std::string trace;
  std::vector<std::string> log;
  std::vector<proton_attach> attaches;
  std::vector<proton_message> messages;
  std::map<std::string, std::string> outcomes; // tag -> remote state, once remotely settled
  std::vector<std::string> transport_errors;
  std::vector<std::pair<std::string, std::string>> remote_closes; // ("link x", condition)
  int flow_events = 0;

  void handle(pn_event_t* e) {
    const pn_event_type_t type = pn_event_type(e);
    log.push_back(describe(e));
    pn_connection_t* c = d.connection;
    switch (type) {
    case PN_CONNECTION_REMOTE_OPEN:
      if (auto_open && (pn_connection_state(c) & PN_LOCAL_UNINIT) != 0) {
        pn_connection_open(c);
      }
      break;
    case PN_CONNECTION_REMOTE_CLOSE:
      remote_closes.emplace_back("connection",
                                 pn_condition_text(pn_connection_remote_condition(c)));
      if (auto_close && (pn_connection_state(c) & PN_LOCAL_ACTIVE) != 0) {
        pn_connection_close(c);
      }
      break;
    case PN_SESSION_REMOTE_OPEN: {
      pn_session_t* s = pn_event_session(e);
      if (auto_begin && (pn_session_state(s) & PN_LOCAL_UNINIT) != 0) {
        pn_session_open(s);
      }
      break;
    }
    case PN_SESSION_REMOTE_CLOSE: {
      pn_session_t* s = pn_event_session(e);
      remote_closes.emplace_back("session", pn_condition_text(pn_session_remote_condition(s)));
      if (auto_end && (pn_session_state(s) & PN_LOCAL_ACTIVE) != 0) {
        pn_session_close(s);
      }
      break;
    }
    case PN_LINK_REMOTE_OPEN:
      on_link_remote_open(pn_event_link(e));
      break;
    case PN_LINK_REMOTE_CLOSE:
    case PN_LINK_REMOTE_DETACH: {
      pn_link_t* l = pn_event_link(e);
      const bool closed = type == PN_LINK_REMOTE_CLOSE;
      remote_closes.emplace_back(std::string(closed ? "link-closed " : "link-detached ") +
                                     pn_link_name(l),
                                 pn_condition_text(pn_link_remote_condition(l)));
      if (auto_detach && (pn_link_state(l) & PN_LOCAL_ACTIVE) != 0) {
        if (closed) {
          pn_link_close(l);
        } else {
          pn_link_detach(l);
        }
      }
      break;
    }
    case PN_LINK_FLOW:
      ++flow_events;
      break;
    case PN_DELIVERY:
      on_delivery(pn_event_delivery(e));
      break;
    case PN_TRANSPORT_ERROR:
      transport_errors.push_back(pn_condition_text(pn_transport_condition(d.transport)));
      break;
    default:
      break;
    }
    if (on_event) {
      on_event(*this, e);
    }
  }

private:
  static void sink(intptr_t ctx, pn_log_subsystem_t, pn_log_level_t level, const char* msg) {
    auto* self = reinterpret_cast<proton_peer*>(ctx);
    if (level != PN_LEVEL_FRAME) {
      self->trace += pn_logger_level_name(level);
      self->trace += ": ";
    }
    self->trace += msg;
    self->trace += '\n';
  }

  static std::string describe(pn_event_t* e) {
    const pn_event_type_t type = pn_event_type(e);
    std::string s = pn_event_type_name(type);
    if (pn_link_t* l = pn_event_link(e)) {
      s += " link=";
      s += pn_link_name(l);
      if (type == PN_LINK_FLOW) {
        s += " credit=" + std::to_string(pn_link_credit(l)) +
             " drain=" + (pn_link_get_drain(l) ? "1" : "0");
        if (pn_link_is_receiver(l)) {
          s += std::string(" draining=") + (pn_link_draining(l) ? "1" : "0");
        }
      }
      if (type == PN_LINK_REMOTE_CLOSE || type == PN_LINK_REMOTE_DETACH) {
        s += " condition=" + pn_condition_text(pn_link_remote_condition(l));
      }
    }
    if (pn_delivery_t* dl = pn_event_delivery(e)) {
      s += " tag=" + pn_tag_text(dl) +
           " remote=" + proton_state_text(pn_delivery_remote_state(dl), pn_delivery_remote(dl)) +
           " settled=" + (pn_delivery_settled(dl) ? "1" : "0") +
           " partial=" + (pn_delivery_partial(dl) ? "1" : "0");
    }
    if (type == PN_SESSION_REMOTE_CLOSE) {
      s += " condition=" + pn_condition_text(pn_session_remote_condition(pn_event_session(e)));
    }
    if (type == PN_CONNECTION_REMOTE_CLOSE) {
      s +=
          " condition=" + pn_condition_text(pn_connection_remote_condition(pn_event_connection(e)));
    }
    if (type == PN_TRANSPORT_ERROR) {
      s += " condition=" + pn_condition_text(pn_transport_condition(pn_event_transport(e)));
    }
    return s;
  }

  void on_link_remote_open(pn_link_t* l) {
    proton_attach a;
    a.name = pn_link_name(l);
    a.local_receiver = pn_link_is_receiver(l);
    a.source_address = opt_str(pn_terminus_get_address(pn_link_remote_source(l)));
    a.target_address = opt_str(pn_terminus_get_address(pn_link_remote_target(l)));
    a.snd_settle_mode = pn_link_remote_snd_settle_mode(l);
    a.rcv_settle_mode = pn_link_remote_rcv_settle_mode(l);
    a.max_message_size = pn_link_remote_max_message_size(l);
    attaches.push_back(a);
    if (auto_attach && (pn_link_state(l) & PN_LOCAL_UNINIT) != 0) {
      pn_terminus_copy(pn_link_source(l), pn_link_remote_source(l));
      pn_terminus_copy(pn_link_target(l), pn_link_remote_target(l));
      pn_link_set_snd_settle_mode(l, a.snd_settle_mode);
      pn_link_set_rcv_settle_mode(l, a.rcv_settle_mode);
      if (answer_max_message_size != 0) {
        pn_link_set_max_message_size(l, answer_max_message_size);
      }
      pn_link_open(l);
      if (a.local_receiver && auto_credit > 0) {
        pn_link_flow(l, auto_credit);
      }
    }
  }

  void on_delivery(pn_delivery_t* dl) {
    pn_link_t* l = pn_delivery_link(dl);
    if (pn_link_is_receiver(l)) {
      if (pn_link_current(l) != dl) {
        return; // complete and advanced past already: a later change of its state
      }
      auto& buf = partial_[dl];
      if (pn_delivery_readable(dl)) {
        char chunk[16384];
        for (;;) {
          const ssize_t n = pn_link_recv(l, chunk, sizeof chunk);
          if (n <= 0) {
            break;
          }
          const auto* p = reinterpret_cast<const std::byte*>(chunk);
          buf.insert(buf.end(), p, p + n);
        }
      }
      if (pn_delivery_partial(dl) && !pn_delivery_aborted(dl)) {
        return;
      }
      proton_message m;
      m.link = pn_link_name(l);
      m.tag = pn_tag_text(dl);
      m.body = std::move(buf);
      m.settled = pn_delivery_settled(dl);
      m.aborted = pn_delivery_aborted(dl);
      partial_.erase(dl);
      messages.push_back(std::move(m));
      pn_link_advance(l);
      // The hook settles unsettled deliveries as it likes; pre-settled ones are settled here.
      if (on_message) {
        on_message(*this, dl, messages.size() - 1);
      }
      if (messages.back().settled) {
        pn_delivery_settle(dl);
      }
    } else if (pn_delivery_settled(dl)) {
      outcomes[pn_tag_text(dl)] =
          proton_state_text(pn_delivery_remote_state(dl), pn_delivery_remote(dl));
      pn_delivery_settle(dl);
    }
  }

  std::map<pn_delivery_t*, std::vector<std::byte>> partial_;
};

// ---- the pair -----------------------------------------------------------------------------

// Which engine plays the client (sends the protocol header first).
enum class topology { ours_client, proton_client };

inline const char* name(topology t) {
  return t == topology::ours_client ? "ours client, Proton server" : "Proton client, ours server";
}

class harness {
public:
  harness(const amqp::connection_options& ours_options, bool proton_server)
      : ours(ours_options), proton(proton_server), failures_at_start_(failed_assertions()) {}
  harness(const harness&) = delete;
  harness& operator=(const harness&) = delete;
  ~harness() {
    if (failed_assertions() != failures_at_start_) {
      std::cerr << report() << std::flush;
    }
  }

  time_point now{};
  ours_peer ours;
  proton_peer proton;
  frame_scanner ours_frames;           // what our engine wrote
  frame_scanner proton_frames;         // what Proton wrote
  std::size_t dropped_from_ours = 0;   // written by ours after Proton stopped reading
  std::size_t dropped_from_proton = 0; // written by Proton after ours stopped reading
  bool ours_eof = false;               // on_transport_closed() called
  bool tick_proton = true;             // drive Proton's timers (off: Proton goes silent)
  std::size_t chunk = 0; // the largest piece of bytes handed to either engine at once (0: all)

  // Proton's clock (milliseconds) for our time point. Proton treats 0 as "no deadline", so
  // its clock starts at one million.
  static std::int64_t proton_ms(time_point t) {
    return 1'000'000 + std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
  }
  static time_point from_proton_ms(std::int64_t ms) {
    return time_point{} + milliseconds(ms - 1'000'000);
  }

  // Moves bytes and events between the two engines until neither has anything to do. The
  // end of each byte stream is passed on once its writer is finished.
  void pump() {
    for (int round = 0; round < 1'000'000; ++round) {
      bool progress = false;
      // Our output into Proton.
      for (;;) {
        auto out = ours.conn.pending_output();
        if (out.empty()) {
          break;
        }
        if (pn_connection_driver_read_closed(&proton.d)) {
          ours_frames.feed(out, now);
          dropped_from_ours += out.size();
          ours.conn.consume_output(out.size());
          progress = true;
          break;
        }
        pn_rwbytes_t rb = pn_connection_driver_read_buffer(&proton.d);
        if (rb.size == 0) {
          break;
        }
        const std::size_t n = std::min({out.size(), rb.size, chunk != 0 ? chunk : out.size()});
        std::memcpy(rb.start, out.data(), n);
        ours_frames.feed(out.first(n), now);
        ours.conn.consume_output(n);
        pn_connection_driver_read_done(&proton.d, n);
        progress = true;
      }
      // Proton's events.
      while (pn_event_t* e = pn_connection_driver_next_event(&proton.d)) {
        proton.handle(e);
        progress = true;
      }
      // Proton's output into ours.
      pn_bytes_t wb = pn_connection_driver_write_buffer(&proton.d);
      if (wb.size > 0) {
        const std::span<const std::byte> in(reinterpret_cast<const std::byte*>(wb.start),
                                            chunk != 0 ? std::min(chunk, wb.size) : wb.size);
        if (ours_eof || ours.conn.finished()) {
          proton_frames.feed(in, now);
          dropped_from_proton += in.size();
          pn_connection_driver_write_done(&proton.d, in.size());
          progress = true;
        } else if (ours.conn.wants_read()) {
          proton_frames.feed(in, now);
          auto r = ours.conn.receive(in, now);
          if (!r) {
            ours.receive_errors.push_back(r.error().message());
            ours.log.push_back("receive() failed: " + r.error().message());
          }
          pn_connection_driver_write_done(&proton.d, in.size());
          progress = true;
        }
      }
      // Our events.
      while (auto e = ours.conn.next_event()) {
        ours.handle(*e);
        progress = true;
      }
      if (progress) {
        continue;
      }
      // Ends of stream.
      if (ours.conn.finished() && ours.conn.pending_output().empty() &&
          !pn_connection_driver_read_closed(&proton.d)) {
        pn_connection_driver_read_close(&proton.d);
        continue;
      }
      if (!ours_eof && pn_connection_driver_write_closed(&proton.d)) {
        ours_eof = true;
        ours.log.push_back("(transport closed by Proton)");
        ours.conn.on_transport_closed();
        continue;
      }
      if (wb.size > 0) {
        ours.log.push_back("(pump stopped with " + std::to_string(wb.size) +
                           " bytes from Proton unread: wants_read() is false)");
      }
      return;
    }
    FAIL("pump: the engines never went quiet");
  }

  // Advances the virtual clock to `end`, stopping at every deadline of either engine to run
  // its timers (our on_deadline(), Proton's pn_transport_tick()) and pump.
  void run_until(time_point end) {
    pump();
    for (int i = 0; i < 100'000; ++i) {
      time_point next = end;
      const auto ours_deadline = ours.conn.next_deadline();
      if (ours_deadline) {
        next = std::min(next, *ours_deadline);
      }
      if (tick_proton && proton_deadline_) {
        next = std::min(next, *proton_deadline_);
      }
      now = std::max(now, next);
      if (ours_deadline && *ours_deadline <= now) {
        ours.conn.on_deadline(now);
      }
      if (tick_proton && !pn_connection_driver_finished(&proton.d)) {
        const std::int64_t dl = pn_transport_tick(proton.transport(), proton_ms(now));
        proton_deadline_ = dl != 0 ? std::optional(from_proton_ms(dl)) : std::nullopt;
      } else {
        proton_deadline_.reset();
      }
      pump();
      const auto again = ours.conn.next_deadline();
      const bool ours_due = again && *again <= now;
      const bool proton_due = tick_proton && proton_deadline_ && *proton_deadline_ <= now;
      if (now >= end && !ours_due && !proton_due) {
        return;
      }
    }
    FAIL("run_until: the deadlines never moved past " << ms_text(now));
  }
  void advance(milliseconds d) { run_until(now + d); }

  // True when both engines are done: our engine finished, Proton's transport closed.
  [[nodiscard]] bool both_finished() {
    return ours.conn.finished() && pn_connection_driver_finished(&proton.d);
  }

  [[nodiscard]] std::string report() const {
    std::ostringstream o;
    o << "\n======== harness report (virtual time " << ms_text(now) << ") ========\n";
    o << "---- our engine's events ----\n";
    lines(o, ours.log);
    o << "---- Proton's events ----\n";
    lines(o, proton.log);
    o << "---- frames written by our engine ----\n";
    frames(o, ours_frames);
    o << "---- frames written by Proton ----\n";
    frames(o, proton_frames);
    if (dropped_from_ours != 0 || dropped_from_proton != 0) {
      o << "bytes written after the reader stopped: ours " << dropped_from_ours << ", Proton "
        << dropped_from_proton << "\n";
    }
    o << "---- Proton's frame trace (<- received from ours, -> sent) ----\n";
    std::vector<std::string> trace;
    std::istringstream t(proton.trace);
    for (std::string l; std::getline(t, l);) {
      if (l.size() > 600) {
        l = l.substr(0, 600) + "...";
      }
      trace.push_back(std::move(l));
    }
    lines(o, trace);
    o << "======== end of report ========\n";
    return o.str();
  }

private:
  static void lines(std::ostream& o, const std::vector<std::string>& v) {
    constexpr std::size_t keep = 150;
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (v.size() > 2 * keep && i == keep) {
        o << "  ... " << (v.size() - 2 * keep) << " lines ...\n";
        i = v.size() - keep;
      }
      o << "  " << v[i] << "\n";
    }
  }
  static void frames(std::ostream& o, const frame_scanner& s) {
    std::vector<std::string> v;
    for (const auto& f : s.frames) {
      std::string l = ms_text(f.at) + " ";
      if (f.header) {
        l += "header " + f.header_bytes;
      } else {
        l += (f.type == 1 ? "sasl " : "amqp ") + performative_name(f.code) +
             " ch=" + std::to_string(f.channel) + " size=" + std::to_string(f.size);
      }
      v.push_back(std::move(l));
    }
    if (s.malformed()) {
      v.emplace_back("(malformed frame: SIZE below 8)");
    }
    lines(o, v);
  }

  std::optional<time_point> proton_deadline_;
  int failures_at_start_ = 0;
};

} // namespace conf
