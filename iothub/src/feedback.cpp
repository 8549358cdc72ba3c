// Feedback records (doc §5.1) as JSON. The only translation unit that uses nlohmann-json.
#include "amqp/iothub/feedback.hpp"

#include <array>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "amqp/iothub/messages.hpp"
#include "detail.hpp"

namespace amqp::iothub {

using detail::fail;

namespace {

constexpr std::array<std::string_view, 5> status_names = {
    "Success", "Expired", "DeliveryCountExceeded", "Rejected", "Purged"};

constexpr std::size_t max_json_depth = 16;

// Days since 1970-01-01 of a civil date, and back (H. Hinnant, "chrono-Compatible Low-Level
// Date Algorithms").
constexpr std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct civil {
  std::int64_t y;
  unsigned m, d;
};

constexpr civil civil_from_days(std::int64_t z) noexcept {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {y + (m <= 2 ? 1 : 0), m, d};
}

constexpr bool is_leap(std::int64_t y) noexcept {
  return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

constexpr unsigned days_in_month(std::int64_t y, unsigned m) noexcept {
  constexpr std::array<unsigned, 12> days = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

constexpr std::int64_t ms_per_day = 86'400'000;
constexpr std::int64_t min_ms = days_from_civil(0, 1, 1) * ms_per_day;
constexpr std::int64_t max_ms = days_from_civil(10000, 1, 1) * ms_per_day - 1;

// The nesting depth of JSON text, counting brackets outside strings. nlohmann's parser
// needs no stack of its own, but a bounded depth keeps every later walk bounded too.
std::size_t json_depth(std::string_view s) noexcept {
  std::size_t depth = 0;
  std::size_t max = 0;
  bool in_string = false;
  for (std::size_t k = 0; k < s.size(); ++k) {
    const char c = s[k];
    if (in_string) {
      if (c == '\\') {
        ++k;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      max = ++depth > max ? depth : max;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return max;
}

// A string member: required (absent is an error) or optional (absent or null read as "").
result<std::string> member(const nlohmann::json& obj, std::string_view key, bool required,
                           std::size_t index, std::string* why) {
  const std::string where = "feedback record " + std::to_string(index) + " ";
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    if (required) {
      return fail(why, errc::missing_field, where + "has no '" + std::string(key) + "'");
    }
    return std::string{};
  }
  if (!it->is_string()) {
    return fail(why, errc::invalid_value,
                where + "'" + std::string(key) + "' is a " + it->type_name() + ", not a string");
  }
  return it->get_ref<const std::string&>();
}

} // namespace

std::string_view to_string(feedback_status s) noexcept {
  return status_names[static_cast<std::size_t>(s)];
}

std::optional<feedback_status> feedback_status_from(std::string_view text) noexcept {
  for (std::size_t k = 0; k < status_names.size(); ++k) {
    if (text == status_names[k]) {
      return static_cast<feedback_status>(k);
    }
  }
  return std::nullopt;
}

std::string format_utc_time(amqp::timestamp t) {
  const std::int64_t ms = t.ms < min_ms ? min_ms : t.ms > max_ms ? max_ms : t.ms;
  std::int64_t days = ms / ms_per_day;
  std::int64_t rem = ms % ms_per_day;
  if (rem < 0) {
    rem += ms_per_day;
    --days;
  }
  const civil c = civil_from_days(days);
  // 24 characters are written (the year is clamped to 0000-9999); the size is what gcc's
  // -Wformat-truncation proves from the argument types alone.
  std::array<char, 160> buf{};
  std::snprintf(buf.data(), buf.size(), "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ",
                static_cast<long long>(c.y), c.m, c.d, static_cast<long long>(rem / 3'600'000),
                static_cast<long long>(rem / 60'000 % 60), static_cast<long long>(rem / 1000 % 60),
                static_cast<long long>(rem % 1000));
  return buf.data();
}

result<amqp::timestamp> parse_utc_time(std::string_view text, std::string* why) {
  const auto bad = [&]() -> result<amqp::timestamp> {
    return fail(why, errc::invalid_value,
                "not a UTC time YYYY-MM-DDTHH:MM:SS[.fff]Z: " + detail::quote(text));
  };
  // YYYY-MM-DDTHH:MM:SS is 19 characters, then an optional fraction, then Z.
  if (text.size() < 20 || text.back() != 'Z') {
    return bad();
  }
  const auto num = [&](std::size_t at, std::size_t n, unsigned& out) {
    out = 0;
    for (std::size_t k = at; k < at + n; ++k) {
      if (!detail::is_digit(text[k])) {
        return false;
      }
      out = out * 10 + static_cast<unsigned>(text[k] - '0');
    }
    return true;
  };
  unsigned y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  if (!num(0, 4, y) || text[4] != '-' || !num(5, 2, mo) || text[7] != '-' || !num(8, 2, d) ||
      text[10] != 'T' || !num(11, 2, h) || text[13] != ':' || !num(14, 2, mi) || text[16] != ':' ||
      !num(17, 2, s)) {
    return bad();
  }
  std::string_view frac = text.substr(19, text.size() - 20);
  unsigned ms = 0;
  if (!frac.empty()) {
    if (frac[0] != '.' || frac.size() < 2 || frac.size() > 10) {
      return bad();
    }
    frac.remove_prefix(1);
    for (std::size_t k = 0; k < frac.size(); ++k) {
      if (!detail::is_digit(frac[k])) {
        return bad();
      }
      if (k < 3) {
        ms += static_cast<unsigned>(frac[k] - '0') * (k == 0 ? 100U : k == 1 ? 10U : 1U);
      }
    }
  }
  if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || s > 59) {
    return bad();
  }
  const std::int64_t days = days_from_civil(y, mo, d);
  return amqp::timestamp{
      days * ms_per_day +
      (static_cast<std::int64_t>(h) * 3600 + static_cast<std::int64_t>(mi) * 60 + s) * 1000 + ms};
}

std::string encode_feedback(std::span<const feedback_record> records) {
  nlohmann::ordered_json arr = nlohmann::ordered_json::array();
  for (const feedback_record& r : records) {
    nlohmann::ordered_json o;
    o["originalMessageId"] = r.original_message_id;
    o["deviceGenerationId"] = r.device_generation_id;
    o["deviceId"] = r.device_id;
    o["enqueuedTimeUtc"] = format_utc_time(r.enqueued_time_utc);
    o["statusCode"] = std::string(to_string(r.status_code));
    o["description"] = r.description;
    arr.push_back(std::move(o));
  }
  // Invalid UTF-8 in a caller's string becomes U+FFFD instead of throwing.
  return arr.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

result<std::vector<feedback_record>> parse_feedback(std::string_view json, std::string* why) {
  if (json.size() > max_feedback_bytes) {
    return fail(why, errc::limit_exceeded,
                "the feedback body is larger than " + std::to_string(max_feedback_bytes) +
                    " bytes");
  }
  if (json_depth(json) > max_json_depth) {
    return fail(why, errc::limit_exceeded, "the feedback JSON is nested too deeply");
  }
  const nlohmann::json doc = nlohmann::json::parse(json.begin(), json.end(), nullptr, false);
  if (doc.is_discarded()) {
    return fail(why, errc::invalid_value, "the feedback body is not JSON (or not UTF-8)");
  }
  if (!doc.is_array()) {
    return fail(why, errc::invalid_value,
                std::string("the feedback body is a JSON ") + doc.type_name() + ", not an array");
  }
  if (doc.size() > max_feedback_records) {
    return fail(why, errc::limit_exceeded,
                "more than " + std::to_string(max_feedback_records) + " feedback records");
  }
  std::vector<feedback_record> out;
  out.reserve(doc.size());
  for (const nlohmann::json& obj : doc) {
    const std::size_t i = out.size();
    if (!obj.is_object()) {
      return fail(why, errc::invalid_value,
                  "feedback record " + std::to_string(i) + " is a " + obj.type_name() +
                      ", not an object");
    }
    feedback_record r;
    auto id = member(obj, "originalMessageId", false, i, why);
    if (!id) {
      return id.error();
    }
    auto dev = member(obj, "deviceId", true, i, why);
    if (!dev) {
      return dev.error();
    }
    auto gen = member(obj, "deviceGenerationId", false, i, why);
    if (!gen) {
      return gen.error();
    }
    auto status = member(obj, "statusCode", true, i, why);
    if (!status) {
      return status.error();
    }
    auto desc = member(obj, "description", false, i, why);
    if (!desc) {
      return desc.error();
    }
    auto time = member(obj, "enqueuedTimeUtc", true, i, why);
    if (!time) {
      return time.error();
    }
    const auto code = feedback_status_from(*status);
    if (!code) {
      return fail(why, errc::invalid_value,
                  "feedback record " + std::to_string(i) + " has an unknown statusCode " +
                      detail::quote(*status));
    }
    std::string time_why;
    auto t = parse_utc_time(*time, &time_why);
    if (!t) {
      return fail(why, errc::invalid_value,
                  "feedback record " + std::to_string(i) + " enqueuedTimeUtc: " + time_why);
    }
    r.original_message_id = std::move(*id);
    r.device_id = std::move(*dev);
    r.device_generation_id = std::move(*gen);
    r.status_code = *code;
    r.description = std::move(*desc);
    r.enqueued_time_utc = *t;
    out.push_back(std::move(r));
  }
  return out;
}

amqp::message build_feedback_message(std::span<const feedback_record> records,
                                     std::string_view hub_name, amqp::timestamp enqueued_time) {
  const std::string json = encode_feedback(records);
  amqp::message m(
      std::span<const std::byte>(reinterpret_cast<const std::byte*>(json.data()), json.size()));
  m.properties.content_type = std::string(feedback_content_type);
  const auto* p = reinterpret_cast<const std::byte*>(hub_name.data());
  m.properties.user_id = std::vector<std::byte>(p, p + hub_name.size());
  m.message_annotations.set(annotation::enqueued_time, owned_value(enqueued_time));
  return m;
}

result<std::vector<feedback_record>> parse_feedback_message(const amqp::message& m,
                                                            std::string* why) {
  if (m.properties.content_type != feedback_content_type) {
    return fail(why, errc::invalid_value,
                "the feedback content-type is " +
                    (m.properties.content_type ? detail::quote(*m.properties.content_type)
                                               : std::string("absent")) +
                    ", not " + std::string(feedback_content_type));
  }
  const auto body = m.body_bytes();
  if (!body) {
    return fail(why, errc::invalid_value, "the feedback message has no data body");
  }
  return parse_feedback(std::string_view(reinterpret_cast<const char*>(body->data()), body->size()),
                        why);
}

} // namespace amqp::iothub
